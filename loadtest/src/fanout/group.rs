//! A group of subscriber peers (in this process, or in a worker process), what they measure, and
//! the line protocol a worker reports it with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use starling_engine::{Peer, PeerConfig, StreamAddress, SubscribeOptions};
use starling_net::entry::session;
use starling_net::overlay::{OverlayConfig, OverlayStats};
use starling_net::{KeyType, Keypair};

use crate::util::{now_us, peak_rss_mb};

/// Width of a throughput bucket.
pub(crate) const BUCKET_US: u64 = 250_000;

/// What a group runs.
#[derive(Clone, Debug)]
pub(crate) struct GroupSpec {
    /// Every stream each subscriber opens, with where its owner listens.
    pub(crate) streams: Vec<(StreamAddress, SocketAddr)>,
    pub(crate) subscribers: usize,
    pub(crate) overlay: OverlayConfig,
    /// Fraction of this group's relays throttled mid-run.
    pub(crate) throttle: f64,
    /// Their upload limit, bytes/s.
    pub(crate) throttle_rate: u64,
}

/// When the run happens, shared by every group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    /// Streaming starts, µs since the epoch.
    pub(crate) t0_us: u64,
    pub(crate) seconds: f64,
    /// Frames each stream publishes.
    pub(crate) frames: u64,
}

impl Schedule {
    fn end_us(&self) -> u64 {
        self.t0_us + (self.seconds * 1e6) as u64
    }
}

/// What a group measured.
#[derive(Debug)]
pub(crate) struct GroupResult {
    pub(crate) subscribers: usize,
    pub(crate) delivered: u64,
    pub(crate) delivered_bytes: u64,
    pub(crate) skipped: u64,
    pub(crate) invalid: u64,
    pub(crate) throttled: usize,
    /// Publish → receipt, µs.
    pub(crate) hist: Histogram<u64>,
    /// Payload bytes received per [`BUCKET_US`] since `t0`.
    pub(crate) buckets: Vec<u64>,
    pub(crate) peak_rss_mb: f64,
    /// RSS before the subscribers started.
    pub(crate) base_rss_mb: f64,
}

pub(crate) fn new_hist() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

impl GroupResult {
    pub(crate) fn empty() -> Result<GroupResult> {
        Ok(GroupResult {
            subscribers: 0,
            delivered: 0,
            delivered_bytes: 0,
            skipped: 0,
            invalid: 0,
            throttled: 0,
            hist: new_hist()?,
            buckets: Vec::new(),
            peak_rss_mb: 0.0,
            base_rss_mb: 0.0,
        })
    }

    pub(crate) fn merge(&mut self, other: &GroupResult) -> Result<()> {
        self.subscribers += other.subscribers;
        self.delivered += other.delivered;
        self.delivered_bytes += other.delivered_bytes;
        self.skipped += other.skipped;
        self.invalid += other.invalid;
        self.throttled += other.throttled;
        self.hist.add(&other.hist)?;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.peak_rss_mb += other.peak_rss_mb;
        self.base_rss_mb += other.base_rss_mb;
        Ok(())
    }

    /// The worker's report: one `key values…` line each, `end` last.
    pub(crate) fn to_lines(&self) -> String {
        let mut out = format!(
            "counts {} {} {} {} {} {}\nrss {} {}\n",
            self.subscribers,
            self.delivered,
            self.delivered_bytes,
            self.skipped,
            self.invalid,
            self.throttled,
            self.peak_rss_mb,
            self.base_rss_mb
        );
        out.push_str("buckets");
        for b in &self.buckets {
            out.push_str(&format!(" {b}"));
        }
        out.push('\n');
        for v in self.hist.iter_recorded() {
            out.push_str(&format!(
                "hist {} {}\n",
                v.value_iterated_to(),
                v.count_at_value()
            ));
        }
        out.push_str("end\n");
        out
    }

    /// Parses [`to_lines`](Self::to_lines).
    pub(crate) fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<GroupResult> {
        let mut r = GroupResult::empty()?;
        let num = |s: Option<&str>| -> Result<u64> {
            s.ok_or_else(|| anyhow!("short line"))?
                .parse()
                .context("bad number")
        };
        let float = |s: Option<&str>| -> Result<f64> {
            s.ok_or_else(|| anyhow!("short line"))?
                .parse()
                .context("bad number")
        };
        for line in lines {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("counts") => {
                    r.subscribers = num(f.next())? as usize;
                    r.delivered = num(f.next())?;
                    r.delivered_bytes = num(f.next())?;
                    r.skipped = num(f.next())?;
                    r.invalid = num(f.next())?;
                    r.throttled = num(f.next())? as usize;
                }
                Some("rss") => {
                    r.peak_rss_mb = float(f.next())?;
                    r.base_rss_mb = float(f.next())?;
                }
                Some("buckets") => r.buckets = f.map(|b| num(Some(b))).collect::<Result<_>>()?,
                Some("hist") => {
                    let (v, c) = (num(f.next())?, num(f.next())?);
                    r.hist.record_n(v, c)?;
                }
                Some("end") => return Ok(r),
                _ => bail!("unexpected worker line {line:?}"),
            }
        }
        bail!("worker report ended early")
    }
}

/// Started subscriber peers, attached to every stream's tree.
pub(crate) struct Group {
    spec: GroupSpec,
    peers: Vec<Peer>,
    subs: Vec<starling_engine::Subscription>,
    base_rss_mb: f64,
}

impl Group {
    pub(crate) async fn start(spec: GroupSpec) -> Result<Group> {
        let base_rss_mb = crate::util::rss_mb();
        let started = std::time::Instant::now();
        let config = PeerConfig {
            overlay: spec.overlay.clone(),
            transport: starling_net::transport::TransportConfig::one_host_swarm(),
            ..PeerConfig::default()
        };
        let mut peers = Vec::with_capacity(spec.subscribers);
        let mut subs = Vec::with_capacity(spec.subscribers * spec.streams.len());
        for _ in 0..spec.subscribers {
            let peer = Peer::start(Keypair::generate(KeyType::Ed25519), config.clone()).await?;
            for (address, owner) in &spec.streams {
                subs.push(peer.subscribe(
                    address,
                    SubscribeOptions {
                        owner_addr: Some(*owner),
                        buffer_frames: 256,
                        ..SubscribeOptions::default()
                    },
                )?);
            }
            peers.push(peer);
        }
        eprintln!(
            "{} subscribers started in {:.1} s",
            peers.len(),
            started.elapsed().as_secs_f64()
        );
        let group = Group {
            spec,
            peers,
            subs,
            base_rss_mb,
        };
        group.wait_attached(Duration::from_secs(120)).await?;
        Ok(group)
    }

    async fn wait_attached(&self, limit: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        let mut next_report = Duration::from_secs(10);
        loop {
            let mut missing = 0;
            for p in &self.peers {
                for (a, _) in &self.spec.streams {
                    missing += usize::from(p.overlay().parent(a.topic()).await.is_none());
                }
            }
            if missing == 0 {
                return Ok(());
            }
            let elapsed = start.elapsed();
            if elapsed >= next_report || elapsed > limit {
                next_report += Duration::from_secs(10);
                eprintln!(
                    "attach {:>4.0} s: {missing} not attached; {}",
                    elapsed.as_secs_f64(),
                    self.churn().await
                );
            }
            if elapsed > limit {
                bail!("{missing} subscriptions did not attach in {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The tree's movements so far, summed over the subscribers: why members changed parents.
    async fn churn(&self) -> String {
        let mut sum = OverlayStats::default();
        for p in &self.peers {
            if let Some(s) = p.overlay().stats().await {
                sum.reattaches += s.reattaches;
                sum.left_congested += s.left_congested;
                sum.moved_by_parent += s.moved_by_parent;
                sum.lost_parent += s.lost_parent;
                sum.swaps += s.swaps;
            }
        }
        format!(
            "re-attaches {} (left congested {}, moved by parent {}, parent lost {}), swaps {}",
            sum.reattaches, sum.left_congested, sum.moved_by_parent, sum.lost_parent, sum.swaps
        )
    }

    /// Receives until every stream's last frame or `drain` after the end; throttles relays at
    /// half time.
    pub(crate) async fn run(self, schedule: Schedule, drain: Duration) -> Result<GroupResult> {
        let hist = Arc::new(Mutex::new(new_hist()?));
        let n_buckets = ((schedule.seconds * 1e6) as u64 + drain.as_micros() as u64)
            .div_ceil(BUCKET_US) as usize
            + 1;
        let deadline = tokio::time::Instant::now()
            + Duration::from_micros(schedule.end_us().saturating_sub(now_us()))
            + drain;
        let throttler = {
            let peers = self.peers.clone();
            let spec = self.spec.clone();
            tokio::spawn(async move {
                let half = schedule.t0_us + (schedule.seconds * 5e5) as u64;
                tokio::time::sleep(Duration::from_micros(half.saturating_sub(now_us()))).await;
                throttle_relays(&peers, &spec).await
            })
        };
        let mut collectors = tokio::task::JoinSet::new();
        for mut sub in self.subs {
            let hist = hist.clone();
            collectors.spawn(async move {
                let mut buckets = vec![0u64; n_buckets];
                let (mut frames, mut bytes, mut skipped) = (0u64, 0u64, 0u64);
                let mut pending: Vec<u64> = Vec::with_capacity(64);
                let flush = |pending: &mut Vec<u64>| {
                    let mut h = hist.lock().unwrap_or_else(PoisonError::into_inner);
                    for v in pending.drain(..) {
                        h.saturating_record(v);
                    }
                };
                loop {
                    let f = tokio::select! {
                        f = sub.recv() => f,
                        _ = tokio::time::sleep_until(deadline) => None,
                    };
                    let Some(f) = f else { break };
                    let now = now_us();
                    pending.push(now.saturating_sub(f.published_us).max(1));
                    if pending.len() == 64 {
                        flush(&mut pending);
                    }
                    let b = (now.saturating_sub(schedule.t0_us) / BUCKET_US) as usize;
                    if let Some(slot) = buckets.get_mut(b) {
                        *slot += f.data.len() as u64;
                    }
                    frames += 1;
                    bytes += f.data.len() as u64;
                    skipped += f.skipped;
                    if session::index_of(f.seq) + 1 >= schedule.frames {
                        break;
                    }
                }
                flush(&mut pending);
                let invalid = sub.stats().invalid;
                (frames, bytes, skipped, invalid, buckets, sub)
            });
        }
        let mut result = GroupResult::empty()?;
        result.subscribers = self.peers.len();
        result.buckets = vec![0; n_buckets];
        let mut open = Vec::new();
        while let Some(done) = collectors.join_next().await {
            let (frames, bytes, skipped, invalid, buckets, sub) = done?;
            result.delivered += frames;
            result.delivered_bytes += bytes;
            result.skipped += skipped;
            result.invalid += invalid;
            for (a, b) in result.buckets.iter_mut().zip(&buckets) {
                *a += b;
            }
            // Kept open until all are done: leaving the tree would starve the others.
            open.push(sub);
        }
        throttler.abort();
        result.throttled = throttler.await.unwrap_or(0);
        let mut orphans = 0;
        for p in &self.peers {
            if let Some(s) = p.overlay().stats().await {
                tracing::debug!(peer = %p.peer_id(), ?s, "overlay stats");
            }
            for (a, _) in &self.spec.streams {
                orphans += usize::from(p.overlay().parent(a.topic()).await.is_none());
            }
        }
        // Diagnostics (RUST_LOG=starling_loadtest=info): a stuck tree shows here first.
        tracing::info!(
            orphans,
            "subscriptions without a parent at the end of the run"
        );
        tracing::debug!(buckets = ?result.buckets, "bytes per 250 ms");
        drop(open);
        result.hist = std::mem::replace(
            &mut *hist.lock().unwrap_or_else(PoisonError::into_inner),
            new_hist()?,
        );
        result.peak_rss_mb = peak_rss_mb();
        result.base_rss_mb = self.base_rss_mb;

        let mut closing = tokio::task::JoinSet::new();
        for p in self.peers {
            closing.spawn(async move { p.close().await });
        }
        closing.join_all().await;
        Ok(result)
    }
}

/// Throttles `spec.throttle` of the peers that relay (have children in some stream); returns
/// how many.
async fn throttle_relays(peers: &[Peer], spec: &GroupSpec) -> usize {
    if spec.throttle <= 0.0 {
        return 0;
    }
    let mut relays = Vec::new();
    for p in peers {
        let mut children = 0;
        for (a, _) in &spec.streams {
            children += p.overlay().children(a.topic()).await.len();
        }
        if children > 0 {
            relays.push(p);
        }
    }
    let n = ((relays.len() as f64) * spec.throttle).round() as usize;
    for p in relays.iter().take(n) {
        p.overlay().dangerous_throttle(Some(spec.throttle_rate));
    }
    tracing::info!(throttled = n, relays = relays.len(), "relays throttled");
    n
}

//! `starling demo`: a local swarm in one process — one publisher and N subscribers on loopback,
//! each a full [`Peer`] with its own QUIC endpoint — streaming synthetic frames as signed log
//! entries through the direct-sub tree, then a latency histogram summary and the tree's shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use starling_engine::{
    Bitrate, MediaFrame, Peer, PeerConfig, PublishOptions, StreamError, SubscribeOptions,
};
use starling_net::entry::{session, unix_time_us};
use starling_net::identity::{KeyType, Keypair, PeerId};
use starling_net::overlay::{OverlayConfig, Topic};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Subscribers in the swarm.
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Stream bitrate, e.g. 2Mbit, 800kbit, 20Mbit.
    #[arg(long, default_value = "2Mbit")]
    bitrate: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Seconds of streaming.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Children per node in the fan-out tree.
    #[arg(long, default_value_t = 4)]
    max_children: usize,
    /// A keyframe every this many frames.
    #[arg(long, default_value_t = 30)]
    keyframe_every: u64,
}

async fn new_peer(config: &OverlayConfig) -> Result<Peer> {
    Ok(Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            overlay: config.clone(),
            transport: starling_net::transport::TransportConfig::one_host_swarm(),
            ..PeerConfig::default()
        },
    )
    .await?)
}

struct Tally {
    hist: Histogram<u64>,
    frames: u64,
    skipped: u64,
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    let bitrate = args
        .bitrate
        .parse::<Bitrate>()
        .context("--bitrate")?
        .bits_per_s();
    if args.fps <= 0.0 || args.seconds <= 0.0 || args.subscribers == 0 || args.keyframe_every == 0 {
        bail!("--fps, --seconds, --subscribers and --keyframe-every must be positive");
    }
    let frame_bytes = ((bitrate / 8.0 / args.fps) as usize).max(16);
    let total_frames = (args.seconds * args.fps).round() as u64;
    let config = OverlayConfig {
        max_children: args.max_children,
        ..OverlayConfig::default()
    };

    let owner = new_peer(&config).await?;
    let mut publisher = owner.publish_stream("demo", PublishOptions::default())?;
    let address = publisher.address().clone();
    let topic = address.topic();
    println!(
        "Starling demo: 1 publisher -> {} subscribers on 127.0.0.1, {:.1} Mbit/s at {} fps ({} B frames, keyframe every {}), {} s",
        args.subscribers,
        bitrate / 1e6,
        args.fps,
        frame_bytes,
        args.keyframe_every,
        args.seconds
    );
    println!("stream {address}");
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let mut subscriptions = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let peer = new_peer(&config).await?;
        subscriptions.push(peer.subscribe(
            &address,
            SubscribeOptions {
                owner_addr: Some(owner.local_addr()),
                ..SubscribeOptions::default()
            },
        )?);
        subscribers.push(peer);
    }
    let attach_start = Instant::now();
    loop {
        let mut attached = 0;
        for s in &subscribers {
            attached += usize::from(s.overlay().parent(topic).await.is_some());
        }
        if attached == subscribers.len() {
            break;
        }
        if attach_start.elapsed() > Duration::from_secs(20) {
            bail!(
                "only {attached} of {} subscribers attached",
                subscribers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "all {} subscribers attached in {:.0} ms",
        subscribers.len(),
        attach_start.elapsed().as_secs_f64() * 1e3
    );

    let received = Arc::new(AtomicU64::new(0));
    let mut collectors = Vec::new();
    for mut sub in subscriptions {
        let received = received.clone();
        collectors.push(tokio::spawn(async move {
            let mut tally = Tally {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
                frames: 0,
                skipped: 0,
            };
            while let Some(f) = sub.recv().await {
                let latency = unix_time_us().saturating_sub(f.published_us).max(1);
                tally.hist.saturating_record(latency);
                tally.frames += 1;
                tally.skipped += f.skipped;
                received.fetch_add(1, Ordering::Relaxed);
                if session::index_of(f.seq) + 1 >= total_frames {
                    break;
                }
            }
            // Handed back: dropping a subscription leaves the tree, and the shape comes later.
            anyhow::Ok((tally, sub))
        }));
    }

    let bar = ProgressBar::new(total_frames);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} frames  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let interval = Duration::from_secs_f64(1.0 / args.fps);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut last_report = (Instant::now(), 0u64);
    let mut refused = 0u64;
    for seq in 0..total_frames {
        ticker.tick().await;
        let frame = MediaFrame::synthetic(seq, frame_bytes, args.fps, args.keyframe_every);
        match publisher.push(frame) {
            Ok(_) => {}
            // A live source drops what its node cannot take; subscribers skip to a keyframe.
            Err(StreamError::Congested) => refused += 1,
            Err(e) => return Err(e.into()),
        }
        bar.set_position(seq + 1);
        if last_report.0.elapsed() >= Duration::from_millis(500) {
            let now = received.load(Ordering::Relaxed);
            let rate = (now - last_report.1) as f64 * frame_bytes as f64
                / last_report.0.elapsed().as_secs_f64()
                / 1e6;
            bar.set_message(format!("{rate:.1} MB/s delivered to all subscribers"));
            last_report = (Instant::now(), now);
        }
    }
    bar.finish();
    if refused > 0 {
        println!("{refused} frames refused by the publisher's node (it fell behind)");
    }
    let streamed = start.elapsed();
    // Let the last frames arrive (each collector stops at the last frame), then stop.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut delivered, mut skipped) = (0u64, 0u64);
    let mut open = Vec::with_capacity(args.subscribers);
    let drain = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(drain);
    for c in collectors {
        let (tally, sub) = tokio::select! {
            t = c => t??,
            _ = &mut drain => bail!("subscribers still missing frames 5 s after the end"),
        };
        delivered += tally.frames;
        skipped += tally.skipped;
        hist.add(&tally.hist)?;
        open.push(sub);
    }
    let shape = tree_shape(&owner, &subscribers, topic).await;
    drop(open);
    let closing = Instant::now();
    // Closing waits for each QUIC close handshake: do them all at once.
    let mut closing_all = tokio::task::JoinSet::new();
    for s in subscribers {
        closing_all.spawn(async move { s.close().await });
    }
    closing_all.join_all().await;
    drop(publisher);
    owner.close().await;
    tracing::debug!(ms = closing.elapsed().as_millis() as u64, "swarm closed");

    let expected = total_frames * args.subscribers as u64;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "frames delivered: {delivered} / {expected} ({:.3}%, {skipped} skipped), {:.1} MB/s aggregate over {:.1} s",
        100.0 * delivered as f64 / expected.max(1) as f64,
        delivered as f64 * frame_bytes as f64 / streamed.as_secs_f64() / 1e6,
        streamed.as_secs_f64()
    );
    println!(
        "latency publish -> verified receipt: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1000.0
    );
    println!("{shape}");
    Ok(())
}

/// Depth of every subscriber and children per relay, from each node's current parent.
async fn tree_shape(publisher: &Peer, subs: &[Peer], topic: Topic) -> String {
    let mut parent: HashMap<PeerId, PeerId> = HashMap::new();
    for s in subs {
        if let Some(p) = s.overlay().parent(topic).await {
            parent.insert(s.peer_id(), p);
        }
    }
    let root = publisher.peer_id();
    let mut by_depth: Vec<usize> = Vec::new();
    let mut children: HashMap<PeerId, usize> = HashMap::new();
    for (child, p) in &parent {
        *children.entry(*p).or_default() += 1;
        let (mut depth, mut at) = (1usize, *p);
        while at != root && depth <= subs.len() {
            match parent.get(&at) {
                Some(next) => {
                    at = *next;
                    depth += 1;
                }
                None => break,
            }
        }
        let _ = child;
        if by_depth.len() < depth {
            by_depth.resize(depth, 0);
        }
        by_depth[depth - 1] += 1;
    }
    let levels: Vec<String> = by_depth
        .iter()
        .enumerate()
        .map(|(d, n)| format!("depth {}: {n}", d + 1))
        .collect();
    let relays = children.keys().filter(|p| **p != root).count();
    format!(
        "tree: {}; publisher sends to {} children; {} relays, at most {} children each",
        levels.join(", "),
        children.get(&root).copied().unwrap_or(0),
        relays,
        children
            .iter()
            .filter(|(p, _)| **p != root)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    )
}

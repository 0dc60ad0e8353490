//! `starling-loadtest fanout`: a swarm streaming live frames, measured end to end.
//!
//! Publishers are [`Peer`]s in this process; subscribers are peers in this process or spread over
//! `--procs` worker processes (this binary, `fanout-worker`), which report their counts,
//! histograms and throughput buckets back on stdout. Every subscriber records publish → verified
//! receipt latency. Then the same frames at the same pace go from one publisher straight to as
//! many plain quinn receivers: the baseline, in the same run.

mod baseline;
mod group;
mod report;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use starling_engine::{
    Bitrate, MediaFrame, Peer, PeerConfig, PublishOptions, StreamAddress, StreamError,
};
use starling_net::overlay::OverlayConfig;
use starling_net::{KeyType, Keypair};

use crate::util::{now_us, peak_rss_mb};
use group::{BUCKET_US, Group, GroupResult, GroupSpec, Schedule};

#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// Publishers (each its own stream; every subscriber opens all of them).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers in the swarm.
    #[arg(long, default_value_t = 8)]
    subscribers: usize,
    /// Bytes per frame; with it, --bitrate decides the frame rate.
    #[arg(long)]
    frame_bytes: Option<usize>,
    /// Frames per second (without --frame-bytes, --bitrate decides the frame size).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Stream bitrate per publisher, e.g. 2Mbit, 800Mbit.
    #[arg(long, default_value = "2Mbit")]
    bitrate: Bitrate,
    /// Children per node in the fan-out trees.
    #[arg(long, default_value_t = 4)]
    max_children: usize,
    /// Each node's upload budget for admitting children (loopback has no link limit: the CPU
    /// is the limit, so the default is high).
    #[arg(long, default_value = "8Gbit")]
    upload: Bitrate,
    /// Frames each node keeps for repairing its children's gaps.
    #[arg(long, default_value_t = 128)]
    repair_cache: usize,
    /// Candidates a joiner probes before descending (0: no latency-aware placement).
    #[arg(long, default_value_t = OverlayConfig::default().join_probes)]
    join_probes: usize,
    /// A node trades places with a child whose RTT to the root is below this fraction of its
    /// own (0: never), as in `sim --swap-factor`.
    #[arg(long, default_value_t = OverlayConfig::default().swap_factor)]
    swap_factor: f64,
    /// Seconds of streaming.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Spread the subscribers over this many worker processes (1: all in this process).
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Fraction of relays throttled below the stream rate at half time.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// A keyframe every this many frames.
    #[arg(long, default_value_t = 30)]
    keyframe_every: u64,
    /// Where the .hgrm and .svg files go.
    #[arg(long, default_value = "target/fanout")]
    out_dir: PathBuf,
    /// Skip the raw quinn baseline.
    #[arg(long)]
    no_baseline: bool,
}

/// Hidden: one worker process's share of the subscribers.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// `ADDRESS@SOCKET` of each stream.
    #[arg(long = "stream", required = true)]
    streams: Vec<String>,
    #[arg(long)]
    subscribers: usize,
    #[arg(long)]
    max_children: usize,
    #[arg(long)]
    upload: Bitrate,
    #[arg(long)]
    repair_cache: usize,
    #[arg(long)]
    join_probes: usize,
    #[arg(long)]
    swap_factor: f64,
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    #[arg(long, default_value_t = 0)]
    throttle_rate: u64,
}

/// Time allowed after the last frame for stragglers.
const DRAIN: Duration = Duration::from_secs(3);

pub(crate) async fn run(args: FanoutArgs) -> Result<()> {
    if args.publishers == 0 || args.subscribers == 0 || args.procs == 0 || args.seconds <= 0.0 {
        bail!("--publishers, --subscribers, --procs and --seconds must be positive");
    }
    if args.keyframe_every == 0 || !(0.0..=1.0).contains(&args.throttle) {
        bail!("--keyframe-every must be positive and --throttle within 0..=1");
    }
    let rate = args.bitrate.bytes_per_s();
    let (frame_bytes, fps) = match args.frame_bytes {
        Some(b) if b > 0 => (b, rate / b as f64),
        Some(_) => bail!("--frame-bytes must be positive"),
        None if args.fps > 0.0 => (((rate / args.fps) as usize).max(16), args.fps),
        None => bail!("--fps must be positive"),
    };
    let frames = (args.seconds * fps).round().max(1.0) as u64;
    let overlay = OverlayConfig {
        max_children: args.max_children,
        upload_bytes_per_s: args.upload.bytes_per_s() as u64,
        repair_cache: args.repair_cache.max(1),
        join_probes: args.join_probes,
        swap_factor: args.swap_factor,
        ..OverlayConfig::default()
    };
    eprintln!(
        "fanout: {} publisher(s) x {} subscribers, {} ({} B frames at {:.1} fps), {} s, {} process(es){}",
        args.publishers,
        args.subscribers,
        args.bitrate,
        frame_bytes,
        fps,
        args.seconds,
        args.procs,
        if args.throttle > 0.0 {
            format!(
                ", {:.0}% of relays throttled at half time",
                args.throttle * 100.0
            )
        } else {
            String::new()
        }
    );

    let mut owners = Vec::new();
    let mut publishers = Vec::new();
    for i in 0..args.publishers {
        let peer = Peer::start(
            Keypair::generate(KeyType::Ed25519),
            PeerConfig {
                overlay: overlay.clone(),
                transport: starling_net::transport::TransportConfig::one_host_swarm(),
                ..PeerConfig::default()
            },
        )
        .await?;
        publishers.push(peer.publish_stream(&format!("fanout-{i}"), PublishOptions::default())?);
        owners.push(peer);
    }
    let streams: Vec<(StreamAddress, SocketAddr)> = publishers
        .iter()
        .zip(&owners)
        .map(|(p, o)| (p.address().clone(), o.local_addr()))
        .collect();
    let throttle_rate = (rate * 0.5) as u64;
    let attach_start = std::time::Instant::now();

    // Subscribers: in this process, or in workers.
    let shares = split(args.subscribers, args.procs);
    let mut workers = Vec::new();
    let mut local = None;
    if args.procs == 1 {
        local = Some(
            Group::start(GroupSpec {
                streams: streams.clone(),
                subscribers: args.subscribers,
                overlay: overlay.clone(),
                throttle: args.throttle,
                throttle_rate,
            })
            .await?,
        );
    } else {
        for share in &shares {
            workers.push(Worker::spawn(&streams, *share, &args, throttle_rate)?);
        }
        for w in &mut workers {
            w.wait_ready()?;
        }
    }
    eprintln!(
        "{} subscriptions attached in {:.1} s",
        args.subscribers * args.publishers,
        attach_start.elapsed().as_secs_f64()
    );

    let schedule = Schedule {
        t0_us: now_us() + 200_000,
        seconds: args.seconds,
        frames,
    };
    for w in &mut workers {
        w.go(&schedule)?;
    }
    let local_run = local.map(|g| tokio::spawn(g.run(schedule, DRAIN)));
    tokio::time::sleep(Duration::from_micros(
        schedule.t0_us.saturating_sub(now_us()),
    ))
    .await;
    let refused = publish(
        &mut publishers,
        frames,
        frame_bytes,
        fps,
        args.keyframe_every,
    )
    .await?;

    let mut total = GroupResult::empty()?;
    if let Some(run) = local_run {
        total.merge(&run.await??)?;
        total.peak_rss_mb = peak_rss_mb();
    }
    for w in workers {
        total.merge(&w.finish()?)?;
    }
    let publisher_rss = if args.procs > 1 { peak_rss_mb() } else { 0.0 };
    drop(publishers);
    for o in &owners {
        if let Some(s) = o.overlay().stats().await {
            tracing::debug!(peer = %o.peer_id(), ?s, "publisher overlay stats");
        }
        o.close().await;
    }

    let baseline = if args.no_baseline {
        None
    } else {
        eprintln!(
            "baseline: the same frames to {} raw quinn receivers",
            args.subscribers
        );
        Some(baseline::run(args.subscribers * args.publishers, frame_bytes, fps, frames).await?)
    };
    summarize(
        &args,
        &total,
        baseline.as_ref(),
        Offered {
            frame_bytes,
            fps,
            frames,
            refused,
        },
        publisher_rss,
    )
}

/// Pushes `frames` frames on every publisher at `fps`.
async fn publish(
    publishers: &mut [starling_engine::Publisher],
    frames: u64,
    frame_bytes: usize,
    fps: f64,
    keyframe_every: u64,
) -> Result<u64> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = std::time::Instant::now();
    let mut refused = 0u64;
    for seq in 0..frames {
        ticker.tick().await;
        for p in publishers.iter_mut() {
            let frame = MediaFrame::synthetic(seq, frame_bytes, fps, keyframe_every);
            match p.push(frame) {
                Ok(_) => {}
                // Offered but not sent: counts against delivery like any lost frame.
                Err(StreamError::Congested) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    tracing::info!(
        frames,
        refused,
        secs = start.elapsed().as_secs_f64(),
        "published"
    );
    Ok(refused)
}

/// `n` split into `k` near-equal shares.
fn split(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

struct Worker {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Worker {
    fn spawn(
        streams: &[(StreamAddress, SocketAddr)],
        subscribers: usize,
        args: &FanoutArgs,
        throttle_rate: u64,
    ) -> Result<Worker> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("fanout-worker")
            .args(["--subscribers", &subscribers.to_string()])
            .args(["--max-children", &args.max_children.to_string()])
            .args(["--upload", &format!("{}bit", args.upload.bits_per_s())])
            .args(["--repair-cache", &args.repair_cache.to_string()])
            .args(["--join-probes", &args.join_probes.to_string()])
            .args(["--swap-factor", &args.swap_factor.to_string()])
            .args(["--throttle", &args.throttle.to_string()])
            .args(["--throttle-rate", &throttle_rate.to_string()]);
        for (a, s) in streams {
            cmd.args(["--stream", &format!("{a}@{s}")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a worker")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("worker stdout"))?;
        Ok(Worker {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn next_line(&mut self) -> Result<String> {
        self.lines
            .next()
            .ok_or_else(|| anyhow!("worker exited early"))?
            .context("reading a worker")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let line = self.next_line()?;
        if line.trim() != "ready" {
            bail!("worker said {line:?} instead of ready");
        }
        Ok(())
    }

    fn go(&mut self, s: &Schedule) -> Result<()> {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("worker stdin"))?;
        writeln!(stdin, "go {} {} {}", s.t0_us, s.seconds, s.frames).context("starting a worker")
    }

    fn finish(mut self) -> Result<GroupResult> {
        let mut lines = Vec::new();
        loop {
            let line = self.next_line()?;
            let end = line.trim() == "end";
            lines.push(line);
            if end {
                break;
            }
        }
        let _ = self.child.wait();
        GroupResult::from_lines(lines.iter().map(String::as_str))
    }
}

/// The worker process: start its subscribers, say `ready`, wait for `go`, report.
pub(crate) async fn worker(args: WorkerArgs) -> Result<()> {
    let streams = args
        .streams
        .iter()
        .map(|s| {
            let (a, sock) = s
                .rsplit_once('@')
                .ok_or_else(|| anyhow!("--stream wants ADDRESS@SOCKET: {s}"))?;
            Ok((
                StreamAddress::parse(a)?,
                sock.parse().context("socket address")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let group = Group::start(GroupSpec {
        streams,
        subscribers: args.subscribers,
        overlay: OverlayConfig {
            max_children: args.max_children,
            upload_bytes_per_s: args.upload.bytes_per_s() as u64,
            repair_cache: args.repair_cache.max(1),
            join_probes: args.join_probes,
            swap_factor: args.swap_factor,
            ..OverlayConfig::default()
        },
        throttle: args.throttle,
        throttle_rate: args.throttle_rate,
    })
    .await?;
    println!("ready");
    std::io::stdout().flush()?;
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    let mut f = line.split_whitespace();
    let (Some("go"), Some(t0), Some(secs), Some(frames)) = (f.next(), f.next(), f.next(), f.next())
    else {
        bail!("expected `go T0 SECONDS FRAMES`, got {line:?}");
    };
    let schedule = Schedule {
        t0_us: t0.parse()?,
        seconds: secs.parse()?,
        frames: frames.parse()?,
    };
    let result = group.run(schedule, DRAIN).await?;
    print!("{}", result.to_lines());
    std::io::stdout().flush()?;
    Ok(())
}

/// What the publishers offered.
struct Offered {
    frame_bytes: usize,
    fps: f64,
    frames: u64,
    /// Frames their nodes refused (behind on publishing).
    refused: u64,
}

fn summarize(
    args: &FanoutArgs,
    total: &GroupResult,
    baseline: Option<&baseline::Baseline>,
    offered: Offered,
    publisher_rss: f64,
) -> Result<()> {
    let Offered {
        frame_bytes,
        fps,
        frames,
        refused,
    } = offered;
    let subs = args.subscribers * args.publishers;
    let expected = frames * subs as u64;
    let last_bucket = total.buckets.iter().rposition(|b| *b > 0).unwrap_or(0);
    let secs = args
        .seconds
        .max((last_bucket + 1) as f64 * BUCKET_US as f64 / 1e6);
    let aggregate = total.delivered_bytes as f64 / 1e6 / secs;
    let ms = |q: f64| total.hist.value_at_quantile(q) as f64 / 1000.0;
    let peak = total.peak_rss_mb + publisher_rss;
    let rss_per_sub_kb =
        (total.peak_rss_mb - total.base_rss_mb).max(0.0) * 1024.0 / args.subscribers as f64;
    let delivered_ratio = total.delivered as f64 / expected.max(1) as f64;
    let offered = args.bitrate.bytes_per_s() / 1e6 * subs as f64;

    let stem = format!(
        "fanout-{}x{}-{}b{}",
        args.publishers,
        args.subscribers,
        frame_bytes,
        if args.throttle > 0.0 {
            "-throttled"
        } else {
            ""
        }
    );
    let hgrm_path = args.out_dir.join(format!("{stem}.hgrm"));
    let svg_path = args.out_dir.join(format!("{stem}.svg"));
    report::write(&hgrm_path, &report::hgrm(&total.hist))?;
    report::plot(
        &svg_path,
        &report::PlotInput {
            title: format!(
                "{} -> {} subscribers, {}, {:.0} fps{}",
                args.publishers,
                args.subscribers,
                args.bitrate,
                fps,
                if args.throttle > 0.0 {
                    format!(", {:.0}% relays throttled", args.throttle * 100.0)
                } else {
                    String::new()
                }
            ),
            hist: &total.hist,
            buckets: &total.buckets,
            throttle_at: (args.throttle > 0.0).then_some(args.seconds / 2.0),
            offered_mb_s: offered,
        },
    )?;

    println!("{:<34}{:>14}", "metric", "value");
    let row = |k: &str, v: String| println!("{k:<34}{v:>14}");
    row("subscribers", subs.to_string());
    row(
        "frames delivered / expected",
        format!("{}/{}", total.delivered, expected),
    );
    row("delivered ratio", format!("{delivered_ratio:.5}"));
    row("frames skipped", total.skipped.to_string());
    row("frames refused at the publisher", refused.to_string());
    row("invalid records", total.invalid.to_string());
    row("relays throttled", total.throttled.to_string());
    row("aggregate goodput MB/s", format!("{aggregate:.2}"));
    row(
        "per subscriber MB/s",
        format!("{:.3}", aggregate / subs as f64),
    );
    row("latency p50 ms", format!("{:.2}", ms(0.5)));
    row("latency p99 ms", format!("{:.2}", ms(0.99)));
    row("latency p99.9 ms", format!("{:.2}", ms(0.999)));
    row(
        "latency max ms",
        format!("{:.2}", total.hist.max() as f64 / 1000.0),
    );
    row("peak RSS MB (all processes)", format!("{peak:.0}"));
    row("RSS per subscriber KB", format!("{rss_per_sub_kb:.0}"));
    let (raw, ratio) = match baseline {
        Some(b) => {
            row(
                "raw quinn aggregate MB/s",
                format!("{:.2}", b.aggregate_mb_s),
            );
            row(
                "raw quinn delivered ratio",
                format!("{:.5}", b.delivered_ratio),
            );
            row(
                "Starling / raw quinn",
                format!("{:.3}", aggregate / b.aggregate_mb_s),
            );
            (b.aggregate_mb_s, aggregate / b.aggregate_mb_s)
        }
        None => (0.0, 0.0),
    };
    eprintln!("wrote {} and {}", hgrm_path.display(), svg_path.display());
    println!(
        "{{\"publishers\":{},\"subscribers\":{},\"frame_bytes\":{},\"fps\":{:.2},\"seconds\":{},\"procs\":{},\"throttle\":{},\"throttled_relays\":{},\"mb_s_per_sub\":{:.4},\"aggregate_mb_s\":{:.2},\"delivered_ratio\":{:.5},\"skipped\":{},\"publisher_refused\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"p999_ms\":{:.2},\"max_ms\":{:.2},\"peak_rss_mb\":{:.0},\"rss_per_sub_kb\":{:.0},\"raw_quinn_aggregate_mb_s\":{:.2},\"ratio_vs_raw\":{:.3},\"hgrm\":\"{}\",\"svg\":\"{}\"}}",
        args.publishers,
        subs,
        frame_bytes,
        fps,
        args.seconds,
        args.procs,
        args.throttle,
        total.throttled,
        aggregate / subs as f64,
        aggregate,
        delivered_ratio,
        total.skipped,
        refused,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        total.hist.max() as f64 / 1000.0,
        peak,
        rss_per_sub_kb,
        raw,
        ratio,
        hgrm_path.display(),
        svg_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_complete() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(1000, 1), vec![1000]);
    }

    #[test]
    fn worker_report_round_trips() {
        let mut r = GroupResult::empty().unwrap();
        r.subscribers = 3;
        r.delivered = 90;
        r.delivered_bytes = 9000;
        r.skipped = 2;
        r.throttled = 1;
        r.buckets = vec![1, 2, 3];
        r.peak_rss_mb = 12.5;
        r.hist.record(1234).unwrap();
        r.hist.record_n(99_000, 7).unwrap();
        let text = r.to_lines();
        let back = GroupResult::from_lines(text.lines()).unwrap();
        assert_eq!(back.to_lines(), text);
        assert!(GroupResult::from_lines("counts 1 2".lines()).is_err());
        assert!(GroupResult::from_lines("nonsense".lines()).is_err());
    }
}

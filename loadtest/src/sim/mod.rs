//! `starling-loadtest sim`: thousands of overlay cores in virtual time, deterministic from a
//! seed. Prints a summary table and, as its last line, one JSON object.

mod model;
mod oracle;
mod world;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Args;
use hdrhistogram::Histogram;
use starling_net::overlay::{Action, Command, Event, OverlayConfig, Topic};

use crate::util::peak_rss_mb;
use model::SimFrame;
use world::{Kind, World};

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Subscribers (publishers come on top).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Publishers, each the root of its own topic; every subscriber takes every topic.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Bytes per frame.
    #[arg(long, default_value_t = 16 * 1024)]
    frame_bytes: u32,
    /// Frames per second per publisher.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Packet loss probability on every path.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Fraction of subscribers that leave per minute (killed, not replaced).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Fraction of relays throttled below the stream rate at mid-run.
    #[arg(long, default_value_t = 0.0)]
    congest: f64,
    /// Virtual seconds to run.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seed: the same seed gives the same output, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Children per node per topic (upload capacity admits fewer when the stream is heavy).
    /// Each child waits its turn on the uplink for every frame, so more children means more
    /// delay per hop as well as fewer hops.
    #[arg(long, default_value_t = 8)]
    max_children: usize,
    /// Upload bandwidth of every node (Mbit/s); publishers get 4×. 100 Mbit/s is a back-end
    /// relay; at 25 Mbit/s (a home uplink) a 16 KiB frame takes 5 ms per child and that
    /// serialisation, not placement, dominates latency (README gives both).
    #[arg(long, default_value_t = 100.0)]
    upload_mbit: f64,
    /// Candidates a joiner probes before descending (0: take the redirecting node's order,
    /// i.e. no latency-aware placement).
    #[arg(long, default_value_t = OverlayConfig::default().join_probes)]
    join_probes: usize,
    /// A full node swaps its farthest child for a joiner nearer than this fraction of it (0:
    /// never). With `--join-probes 0 --preempt-factor 0` placement ignores latency entirely.
    #[arg(long, default_value_t = OverlayConfig::default().preempt_factor)]
    preempt_factor: f64,
    /// A node trades places with a child whose RTT to the node's parent is below this fraction
    /// of its own, as the parent measures them (0: never): the tree sorts itself after the
    /// flash crowd.
    #[arg(long, default_value_t = OverlayConfig::default().swap_factor)]
    swap_factor: f64,
    /// Smallest RTT between two nodes (ms).
    #[arg(long, default_value_t = 5.0)]
    rtt_min_ms: f64,
    /// Largest RTT between two nodes (ms).
    #[arg(long, default_value_t = 100.0)]
    rtt_max_ms: f64,
    /// Subscribers start joining this many seconds after the stream starts (viewers join a
    /// live stream)...
    #[arg(long, default_value_t = 0.5)]
    join_at_s: f64,
    /// ...over this many seconds (default: 1 s per 10,000 subscribers, at least 1 s — a flash
    /// crowd, but not every viewer in the same second).
    #[arg(long)]
    join_spread_s: Option<f64>,
    /// Seconds before measurement starts (default: 2 s after the last join). Measurement stops
    /// 2 s before the end.
    #[arg(long)]
    warmup_s: Option<f64>,
    /// Print every tree message to or from this node on stderr (frames and probes left out),
    /// with its virtual time in µs: how to follow one node through joins and swaps.
    #[arg(long)]
    trace_node: Option<u32>,
    /// This fraction of the subscribers are attackers from one address prefix: they take
    /// joiners in and forward them nothing, and claim 1 µs RTTs in joins and reports. The
    /// same world is then run again with Sybils that only starve (the baseline); the summary
    /// gives, for honest nodes, the delivered ratio and the fraction whose path to the root
    /// crosses a Sybil, sampled every second over the measurement window (`captured_fraction`,
    /// and `captured_fraction_baseline`).
    #[arg(long, default_value_t = 0.0)]
    sybils: f64,
    /// (Set for the baseline run: Sybils starve but do not lie.)
    #[arg(skip)]
    sybils_starve_only: bool,
}

/// Frames and probes: too many to trace.
fn is_chatter(msg: &world::Msg) -> bool {
    use starling_net::overlay::Message;
    matches!(
        msg,
        Message::Frame { .. } | Message::Probe { .. } | Message::ProbeAck { .. }
    )
}

fn topic(p: usize) -> Topic {
    let mut t = [0u8; 32];
    t[..8].copy_from_slice(&(p as u64).to_be_bytes());
    t[31] = 0x5a;
    Topic(t)
}

struct Metrics {
    latency: Histogram<u64>,
    stretch_x100: Histogram<u64>,
    attach: Histogram<u64>,
    reroute: Histogram<u64>,
    delivered: HashMap<u32, u64>,
    within_2s: HashMap<u32, u64>,
    total_deliveries: u64,
    skipped: u64,
    /// Captured fractions sampled once a second over the window (with `--sybils`).
    captured_samples: Vec<f64>,
}

pub(crate) fn run(args: SimArgs) -> Result<()> {
    if let Some(status) = rerun_with_huge_pages()? {
        std::process::exit(status);
    }
    let (table, mut json) = simulate(&args)?;
    print!("{table}");
    if args.sybils > 0.0 {
        let baseline = SimArgs {
            sybils_starve_only: true,
            trace_node: None,
            ..args
        };
        let (_, base_json) = simulate(&baseline)?;
        let captured = json_field(&json, "captured_fraction");
        let base = json_field(&base_json, "captured_fraction");
        // A ratio over a baseline of zero says nothing: then it is null.
        let ratio = (base > 0.0).then(|| captured / base);
        println!(
            "captured: {captured:.4} lying, {base:.4} starving only (baseline), ratio {}",
            ratio.map_or("n/a".into(), |r| format!("{r:.2}"))
        );
        json.pop();
        json.push_str(&format!(
            ",\"captured_fraction_baseline\":{base:.5},\"captured_vs_baseline\":{}}}",
            ratio.map_or("null".into(), |r| format!("{r:.3}"))
        ));
    }
    println!("{json}");
    Ok(())
}

/// A number field of a flat JSON line (NaN if absent).
fn json_field(json: &str, name: &str) -> f64 {
    let key = format!("\"{name}\":");
    json.split(&key)
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// glibc's malloc hands out 4 KiB pages; 100,000 overlay cores spread over ~1.6 GB then miss
/// the TLB on nearly every event. On glibc ≥ 2.35 one tunable makes malloc use transparent huge
/// pages (the kernel here allows them on request), which cut the run by ~18 % at 30,000 nodes.
/// The tunable is read at start-up only, so the process runs itself again with it set; the
/// simulation is the same either way (`STARLING_SIM_SMALL_PAGES=1` skips this).
fn rerun_with_huge_pages() -> Result<Option<i32>> {
    const TUNABLE: &str = "glibc.malloc.hugetlb=1";
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("STARLING_SIM_SMALL_PAGES").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("hugetlb"))
    {
        return Ok(None);
    }
    let tunables = match std::env::var("GLIBC_TUNABLES") {
        Ok(existing) if !existing.is_empty() => format!("{existing}:{TUNABLE}"),
        _ => TUNABLE.to_string(),
    };
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", tunables)
        .status()?;
    Ok(Some(status.code().unwrap_or(1)))
}

/// Runs the simulation; returns the summary table and the JSON line.
pub(crate) fn simulate(args: &SimArgs) -> Result<(String, String)> {
    ensure!(
        args.publishers >= 1 && args.nodes >= 1,
        "need at least one publisher and one node"
    );
    let wall = Instant::now();
    let us = |s: f64| (s * 1e6) as u64;
    let join_spread_s = args
        .join_spread_s
        .unwrap_or((args.nodes as f64 / 10_000.0).max(1.0));
    let warmup_s = args
        .warmup_s
        .unwrap_or(args.join_at_s + join_spread_s + 2.0);
    let end = us(args.seconds);
    let (window_start, window_end) = (us(warmup_s), end.saturating_sub(us(2.0)));
    ensure!(
        window_end > window_start,
        "--seconds must exceed the warm-up ({warmup_s} s) + 2"
    );
    let stream_bps = f64::from(args.frame_bytes) * args.rate * args.publishers as f64;
    let upload = args.upload_mbit * 1e6 / 8.0;
    let config = OverlayConfig {
        max_children: args.max_children,
        upload_bytes_per_s: upload as u64,
        // Simulated nodes hold no real frames: keep the count bound (128 frames) in charge.
        repair_cache_bytes: usize::MAX,
        join_probes: args.join_probes,
        preempt_factor: args.preempt_factor,
        swap_factor: args.swap_factor,
        ..OverlayConfig::default()
    };
    let pubs = args.publishers;
    let n = pubs + args.nodes;
    let mut w = World::new(
        n,
        &config,
        args.seed,
        args.rtt_min_ms,
        args.rtt_max_ms,
        upload,
        args.loss,
    );
    if args.sybils > 0.0 {
        // The same draws in the baseline run: the same nodes are Sybils in both.
        for i in pubs..n {
            w.hosts[i].sybil = w.rng.next_f64() < args.sybils;
        }
        w.sybils_lie = !args.sybils_starve_only;
    }
    for p in 0..pubs {
        w.hosts[p].upload_bps = upload * 4.0;
        w.queue.push(
            0,
            Kind::Publish {
                publisher: p as u32,
            },
        );
    }
    let mut arrivals = Vec::with_capacity(args.nodes);
    for i in pubs..n {
        let at = us(args.join_at_s) + w.rng.below(us(join_spread_s).max(1));
        w.queue.push(at, Kind::Join { node: i as u32 });
        arrivals.push((at, i as u32));
    }
    arrivals.sort_unstable();
    if args.congest > 0.0 {
        w.queue.push(end / 2, Kind::Congest);
    }
    let churn_every = if args.churn > 0.0 {
        let per_s = args.churn * args.nodes as f64 / 60.0;
        Some((1e6 / per_s) as u64)
    } else {
        None
    };
    if let Some(every) = churn_every {
        w.queue.push(us(warmup_s).max(every), Kind::Churn);
    }

    let mut m = Metrics {
        latency: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        stretch_x100: Histogram::new_with_bounds(1, 100_000, 3)?,
        attach: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        reroute: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        delivered: HashMap::new(),
        within_2s: HashMap::new(),
        total_deliveries: 0,
        skipped: 0,
        captured_samples: Vec::new(),
    };
    let mut next_sample = window_start;
    let mut killed: HashSet<u32> = HashSet::new();
    let mut affected: HashMap<u32, u64> = HashMap::new();
    let mut published_in_window = 0u64;
    let mut next_seq: Vec<u64> = vec![0; pubs];
    let interval = (1e6 / args.rate) as u64;
    let topics: Vec<Topic> = (0..pubs).map(topic).collect();

    while let Some((at, kind)) = w.queue.pop() {
        if at > end {
            break;
        }
        w.now = at;
        if args.sybils > 0.0 && at >= next_sample && at < window_end {
            // The fraction captured at one instant is noise (a node under a Sybil moves on
            // within a second or two); sampled every second over the window, it is a rate.
            next_sample = at + 1_000_000;
            let honest: Vec<u32> = (pubs as u32..n as u32)
                .filter(|i| w.hosts[*i as usize].alive && !w.hosts[*i as usize].sybil)
                .collect();
            m.captured_samples
                .push(captured_fraction(&w, &honest, pubs));
        }
        let (node, actions) = match kind {
            Kind::Deliver { to, from, msg } => {
                if !w.hosts[to as usize].alive {
                    continue;
                }
                if args.trace_node.is_some_and(|t| t == to || t == from) && !is_chatter(&msg) {
                    eprintln!("{at} {from}->{to} {msg:?}");
                }
                if matches!(msg, starling_net::overlay::Message::Frame { .. }) {
                    w.bytes.frame_msgs_received += 1;
                }
                if matches!(msg, starling_net::overlay::Message::Join { .. })
                    && w.nodes[to as usize]
                        .link(&from)
                        .is_none_or(|l| l.min_rtt_us == 0)
                {
                    // A join arrives over a connection whose QUIC handshake measured the RTT
                    // (the driver feeds it): the receiver places the joiner by that sample.
                    let rtt = 2 * w.latency(from, to);
                    w.feed(
                        to,
                        Event::LinkMeasured {
                            peer: from,
                            rtt_us: Some(rtt),
                            queued_bytes: 0,
                            delivery_rate: 0.0,
                            lost: 0,
                        },
                    );
                }
                if args.sybils > 0.0 && matches!(msg, starling_net::overlay::Message::Join { .. }) {
                    // The driver reports each connection's source network: Sybils share one
                    // prefix, every honest node has its own.
                    let network = if w.hosts[from as usize].sybil {
                        u64::MAX
                    } else {
                        u64::from(from)
                    };
                    w.feed(
                        to,
                        Event::LinkNetwork {
                            peer: from,
                            network,
                        },
                    );
                }
                (to, w.feed(to, Event::Received { from, message: msg }))
            }
            Kind::Tick { node } => {
                if !w.hosts[node as usize].alive {
                    continue;
                }
                w.feed_link_figures(node, &topics);
                (node, w.feed(node, Event::Tick))
            }
            Kind::Publish { publisher } => {
                let frame = SimFrame {
                    bytes: args.frame_bytes,
                    published_at: at,
                    publisher,
                };
                if (window_start..window_end).contains(&at) {
                    published_in_window += 1;
                }
                w.queue.push(at + interval, Kind::Publish { publisher });
                (
                    publisher,
                    w.feed(
                        publisher,
                        Event::Command(Command::Publish {
                            topic: topic(publisher as usize),
                            seq: {
                                let s = &mut next_seq[publisher as usize];
                                *s += 1;
                                *s - 1
                            },
                            payload: frame,
                        }),
                    ),
                )
            }
            Kind::Join { node } => {
                let mut all = Vec::new();
                for p in 0..pubs {
                    all.extend(w.feed(
                        node,
                        Event::Command(Command::Subscribe {
                            topic: topic(p),
                            root: p as u32,
                        }),
                    ));
                }
                (node, all)
            }
            Kind::Kill { node } => {
                w.hosts[node as usize].alive = false;
                // Neighbours notice when their QUIC connection times out (~0.5 s).
                for other in 0..n as u32 {
                    if other != node && w.nodes[other as usize].link(&node).is_some() {
                        w.queue.push(
                            at + 500_000,
                            Kind::Notice {
                                node: other,
                                gone: node,
                            },
                        );
                    }
                }
                continue;
            }
            Kind::Notice { node, gone } => {
                if !w.hosts[node as usize].alive {
                    continue;
                }
                (node, w.feed(node, Event::LinkDown(gone)))
            }
            Kind::Churn => {
                if let Some(every) = churn_every {
                    w.queue.push(at + every, Kind::Churn);
                }
                let alive: Vec<u32> = (pubs as u32..n as u32)
                    .filter(|i| w.hosts[*i as usize].alive)
                    .collect();
                if alive.len() > 1 {
                    let victim = alive[w.rng.below(alive.len() as u64) as usize];
                    killed.insert(victim);
                    w.queue.push(at, Kind::Kill { node: victim });
                }
                continue;
            }
            Kind::Congest => {
                let relays: Vec<u32> = (pubs as u32..n as u32)
                    .filter(|i| {
                        (0..pubs).any(|p| !w.nodes[*i as usize].children(&topic(p)).is_empty())
                    })
                    .collect();
                let k = ((relays.len() as f64) * args.congest).ceil() as usize;
                let mut pool = relays;
                for _ in 0..k.min(pool.len()) {
                    let idx = w.rng.below(pool.len() as u64) as usize;
                    let r = pool.swap_remove(idx);
                    // Throttled to half the stream rate: it cannot even feed one child.
                    w.hosts[r as usize].upload_bps = stream_bps * 0.5;
                    for p in 0..pubs {
                        for c in w.nodes[r as usize].children(&topic(p)) {
                            affected.insert(*c, at);
                        }
                    }
                }
                continue;
            }
        };
        for a in actions {
            match a {
                Action::Deliver { payload, .. } => {
                    m.total_deliveries += 1;
                    if !(window_start..window_end).contains(&payload.published_at) {
                        continue;
                    }
                    let latency = at.saturating_sub(payload.published_at).max(1);
                    *m.delivered.entry(node).or_default() += 1;
                    if latency <= 2_000_000 {
                        *m.within_2s.entry(node).or_default() += 1;
                    }
                    m.latency.saturating_record(latency);
                    let direct = w.latency(payload.publisher, node).max(1);
                    m.stretch_x100.saturating_record(latency * 100 / direct);
                }
                Action::Attached {
                    took_us, reattach, ..
                } => {
                    if !reattach {
                        m.attach.saturating_record(took_us.max(1));
                    } else if let Some(since) = affected.remove(&node) {
                        m.reroute.saturating_record(at.saturating_sub(since).max(1));
                    }
                }
                Action::Skipped { from, to, .. } => m.skipped += to - from + 1,
                _ => {}
            }
        }
    }
    let arrival_order: Vec<u32> = arrivals.into_iter().map(|(_, node)| node).collect();
    report(
        args,
        &w,
        &m,
        &killed,
        &arrival_order,
        published_in_window,
        n,
        wall,
    )
}

/// The fraction of honest `survivors` whose path to the (first) root crosses a Sybil.
fn captured_fraction(w: &World, survivors: &[u32], pubs: usize) -> f64 {
    if !w.hosts.iter().any(|h| h.sybil) {
        return 0.0;
    }
    let t = topic(0);
    let captured = survivors
        .iter()
        .filter(|&&i| {
            let mut at = i;
            // Bounded walk: a path is at most as long as the tree is deep (loops end it).
            for _ in 0..64 {
                match w.nodes[at as usize].parent(&t) {
                    Some(p) if (p as usize) < pubs => return false,
                    Some(p) if w.hosts[p as usize].sybil => return true,
                    Some(p) => at = p,
                    None => return false,
                }
            }
            false
        })
        .count();
    captured as f64 / survivors.len().max(1) as f64
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &SimArgs,
    w: &World,
    m: &Metrics,
    killed: &HashSet<u32>,
    arrival_order: &[u32],
    in_window: u64,
    n: usize,
    wall: Instant,
) -> Result<(String, String)> {
    let pubs = args.publishers;
    // Honest survivors: Sybils are not counted as receivers.
    let survivors: Vec<u32> = (pubs as u32..n as u32)
        .filter(|i| !killed.contains(i) && !w.hosts[*i as usize].sybil)
        .collect();
    // Averaged over the window's samples (or, without samples, at the end).
    let captured = if m.captured_samples.is_empty() {
        captured_fraction(w, &survivors, pubs)
    } else {
        m.captured_samples.iter().sum::<f64>() / m.captured_samples.len() as f64
    };
    let expected = in_window * survivors.len() as u64;
    let delivered: u64 = survivors
        .iter()
        .map(|i| m.delivered.get(i).copied().unwrap_or(0))
        .sum();
    let within: u64 = survivors
        .iter()
        .map(|i| m.within_2s.get(i).copied().unwrap_or(0))
        .sum();
    let ratio = delivered as f64 / expected.max(1) as f64;
    let ratio_2s = within as f64 / expected.max(1) as f64;
    // Payload bytes the subscribers needed: one copy per delivery.
    let payload_total = f64::from(args.frame_bytes) * m.total_deliveries as f64;
    let overhead = (w.bytes.payload_sent + w.bytes.control_sent) as f64 / payload_total.max(1.0);
    let mut depth = Histogram::<u64>::new_with_bounds(1, 10_000, 3)?;
    let (mut max_children, mut ldh, mut reattaches, mut swaps) = (0usize, 0usize, 0u64, 0u64);
    for i in 0..n as u32 {
        let node = &w.nodes[i as usize];
        reattaches += node.stats().reattaches;
        swaps += node.stats().swaps;
        for p in 0..pubs {
            max_children = max_children.max(node.children(&topic(p)).len());
            if i >= pubs as u32
                && !killed.contains(&i)
                && let Some(d) = node.depth(&topic(p))
            {
                depth.saturating_record(d as u64);
                ldh = ldh.max(d);
            }
        }
    }
    let rmr = w.bytes.frame_msgs_received as f64 / m.total_deliveries.max(1) as f64 - 1.0;
    let control_per_node_s = w.bytes.control_sent as f64 / n as f64 / args.seconds;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let wall_s = wall.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    let stretch_p95 = m.stretch_x100.value_at_quantile(0.95) as f64 / 100.0;
    let reference = references(args, w, killed, arrival_order);
    use std::fmt::Write as _;
    let mut table = String::new();
    writeln!(
        table,
        "nodes {} (+{} publishers), {:.0} frames/s of {} B, loss {}, churn {}/min, congest {}",
        args.nodes, pubs, args.rate, args.frame_bytes, args.loss, args.churn, args.congest
    )?;
    writeln!(table, "{:<28} {:>12}", "metric", "value")?;
    let reference_row = match reference {
        Some(r) => format!(
            "{:.2} / {:.2} (depth {})",
            r.nearest_first, r.arrival_order, r.depth
        ),
        None => format!("n/a (> {} nodes)", oracle::MAX_MEMBERS),
    };
    let rows: [(&str, String); 15] = [
        ("delivered ratio", format!("{ratio:.5}")),
        ("delivered within 2 s", format!("{ratio_2s:.5}")),
        ("overhead (bytes/payload)", format!("{overhead:.3}")),
        ("attach p95", format!("{:.0} ms", ms(&m.attach, 0.95))),
        (
            "depth p95 / LDH",
            format!("{} / {ldh}", depth.value_at_quantile(0.95)),
        ),
        (
            "latency p50 / p99",
            format!(
                "{:.0} / {:.0} ms",
                ms(&m.latency, 0.5),
                ms(&m.latency, 0.99)
            ),
        ),
        ("stretch p95", format!("{stretch_p95:.2}")),
        ("  full-knowledge trees", reference_row),
        ("max children", format!("{max_children}")),
        ("reroute p95", format!("{:.0} ms", ms(&m.reroute, 0.95))),
        ("re-attachments / swaps", format!("{reattaches} / {swaps}")),
        ("RMR", format!("{rmr:.4}")),
        ("skipped frames", format!("{}", m.skipped)),
        ("control B/node/s", format!("{control_per_node_s:.0}")),
        ("wall / peak RSS", format!("{wall_s:.1} s / {rss:.0} MB")),
    ];
    for (k, v) in rows {
        writeln!(table, "{k:<28} {v:>12}")?;
    }
    let json = format!(
        "{{\"nodes\":{},\"publishers\":{},\"seed\":{},\"delivered_ratio\":{ratio:.5},\"delivered_within_2s\":{ratio_2s:.5},\"overhead\":{overhead:.4},\"attach_p95_ms\":{:.1},\"depth_p95\":{},\"latency_p50_ms\":{:.1},\"latency_p99_ms\":{:.1},\"stretch_p95\":{stretch_p95:.3},\"reference_stretch_p95\":{},\"arrival_order_stretch_p95\":{},\"max_children\":{max_children},\"reroute_p95_ms\":{:.1},\"reattaches\":{reattaches},\"swaps\":{swaps},\"rmr\":{rmr:.5},\"ldh\":{ldh},\"skipped\":{},\"control_bytes_per_node_s\":{control_per_node_s:.1},\"wall_s\":{wall_s:.1},\"peak_rss_mb\":{rss:.0},\"sybils\":{},\"captured_fraction\":{captured:.5}}}",
        args.nodes,
        pubs,
        args.seed,
        ms(&m.attach, 0.95),
        depth.value_at_quantile(0.95),
        ms(&m.latency, 0.5),
        ms(&m.latency, 0.99),
        reference.map_or("null".into(), |r| format!("{:.3}", r.nearest_first)),
        reference.map_or("null".into(), |r| format!("{:.3}", r.arrival_order)),
        ms(&m.reroute, 0.95),
        m.skipped,
        args.sybils,
    );
    Ok((table, json))
}

/// Stretch p95 of the full-knowledge trees for the first publisher's surviving subscribers.
#[derive(Clone, Copy)]
struct References {
    /// Placed nearest-first: the bar.
    nearest_first: f64,
    /// Placed in the order the simulation's nodes arrived.
    arrival_order: f64,
    /// Depth p95 of the nearest-first tree.
    depth: u64,
}

fn references(
    args: &SimArgs,
    w: &World,
    killed: &HashSet<u32>,
    arrival_order: &[u32],
) -> Option<References> {
    let arrived: Vec<u32> = arrival_order
        .iter()
        .copied()
        .filter(|m| !killed.contains(m))
        .collect();
    if arrived.len() > oracle::MAX_MEMBERS {
        return None;
    }
    let mut nearest = arrived.clone();
    nearest.sort_by_key(|m| (w.latency(0, *m), *m));
    let tree = |order: &[u32]| {
        oracle::reference_tree(w, 0, order, args.max_children, u64::from(args.frame_bytes))
    };
    let (stretch, depth) = tree(&nearest);
    let (in_arrival_order, _) = tree(&arrived);
    Some(References {
        nearest_first: oracle::quantile(stretch, 0.95) as f64 / 100.0,
        arrival_order: oracle::quantile(in_arrival_order, 0.95) as f64 / 100.0,
        depth: oracle::quantile(depth, 0.95),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(extra: &[&str]) -> SimArgs {
        let mut argv = vec!["sim", "--nodes", "300", "--seconds", "7"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).sim
    }

    /// The JSON line without the fields that measure the run itself (wall time, memory).
    fn outcome(json: &str) -> String {
        json.split(",\"wall_s\"")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let a = args(&[
            "--seed",
            "5",
            "--loss",
            "0.01",
            "--churn",
            "0.2",
            "--congest",
            "0.1",
        ]);
        let (table1, json1) = simulate(&a).unwrap();
        let (table2, json2) = simulate(&a).unwrap();
        assert_eq!(outcome(&json1), outcome(&json2));
        let strip = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("wall"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&table1), strip(&table2));
        let (_, other) = simulate(&args(&[
            "--seed",
            "6",
            "--loss",
            "0.01",
            "--churn",
            "0.2",
            "--congest",
            "0.1",
        ]))
        .unwrap();
        assert_ne!(outcome(&json1), outcome(&other), "the seed must matter");
    }

    #[test]
    fn a_small_swarm_gets_every_frame() {
        let (_, json) = simulate(&args(&[])).unwrap();
        assert!(json.contains("\"delivered_ratio\":1.00000"), "{json}");
        assert!(json.contains("\"skipped\":0"), "{json}");
    }

    /// Sybils that take joiners in and starve them (and lie, or not) are counted apart: honest
    /// nodes still get nearly every frame, and the captured fraction is measured.
    #[test]
    fn sybils_are_measured_apart_and_honest_nodes_escape_them() {
        let (_, json) = simulate(&args(&["--sybils", "0.05"])).unwrap();
        assert!(json_field(&json, "sybils") > 0.0);
        let captured = json_field(&json, "captured_fraction");
        assert!((0.0..0.05).contains(&captured), "{json}");
        assert!(json_field(&json, "delivered_ratio") > 0.95, "{json}");
        let (_, clean) = simulate(&args(&[])).unwrap();
        assert_eq!(json_field(&clean, "captured_fraction"), 0.0);
    }
}

//! `starling run`, `starling publish` and `starling subscribe`: a swarm node, and the two ends
//! of a live stream, all on the engine's [`Peer`].

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use starling_engine::{
    Bitrate, MediaFrame, Peer, PeerConfig, PublishOptions, StreamAddress, StreamError,
    SubscribeOptions,
};
use starling_net::Keypair;
use starling_net::entry::{session, unix_time_us};
use starling_net::transport::{Multiaddr, parse_quic_multiaddr};

use crate::node::load_or_generate;

/// What every swarm command shares: identity, where to listen, whom to know.
#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// Key file (from `starling keygen`); without it a fresh, ephemeral identity.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
    listen: Multiaddr,
    /// Peers to join through (repeatable), as `starling run` prints them.
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Where logs are stored; a temporary directory otherwise.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Starts a peer and connects to the bootstrap peers, checking their PeerIds when given.
async fn start_peer(args: &PeerArgs) -> Result<Peer> {
    let key: Keypair = load_or_generate(args.key.as_ref())?;
    let (listen, _) = parse_quic_multiaddr(&args.listen.to_string())
        .with_context(|| format!("--listen {}", args.listen))?;
    let peer = Peer::start(
        key,
        PeerConfig {
            listen,
            data_dir: args.data_dir.clone(),
            ..PeerConfig::default()
        },
    )
    .await
    .context("cannot start the peer")?;
    let mut reached = 0;
    for addr in &args.bootstrap {
        let (socket, expected) = parse_quic_multiaddr(&addr.to_string())
            .with_context(|| format!("--bootstrap {addr}"))?;
        match peer.connect(socket).await {
            Ok(id) if expected.is_some_and(|e| e != id) => {
                tracing::warn!(%addr, %id, "bootstrap peer has another PeerId; ignored");
            }
            Ok(id) => {
                tracing::info!(%id, %addr, "joined through bootstrap peer");
                reached += 1;
            }
            Err(e) => tracing::warn!(%addr, "bootstrap peer unreachable: {e}"),
        }
    }
    if !args.bootstrap.is_empty() && reached == 0 {
        peer.close().await;
        bail!("no bootstrap peer could be reached");
    }
    Ok(peer)
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    peer: PeerArgs,
    /// Seconds between stats lines in the log.
    #[arg(long, default_value_t = 10.0)]
    stats_every: f64,
    /// Keep a replica of these JSON document stores (repeatable): take writes, reconcile with
    /// the other replicators, answer queries. Definitions are fetched from --bootstrap peers
    /// unless --data-dir has them.
    #[arg(long)]
    replicate: Vec<starling_engine::program::ProgramAddress>,
}

/// A swarm node: relays for the overlay and serves until Ctrl-C.
pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let peer = start_peer(&args.peer).await?;
    let replicas =
        match crate::docs::replicate(&peer, &args.replicate, Duration::from_secs(30)).await {
            Ok(r) => r,
            Err(e) => {
                peer.close().await;
                return Err(e);
            }
        };
    // The one line scripts wait for.
    println!("{}", peer.multiaddr());
    tracing::info!(peer = %peer.peer_id(), "serving; Ctrl-C to stop");
    let every = Duration::try_from_secs_f64(args.stats_every.max(0.1)).context("--stats-every")?;
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Some(s) = peer.overlay().stats().await {
                    tracing::info!(
                        relayed = s.frames_relayed,
                        delivered = s.frames_delivered,
                        direct = s.direct_forwarded,
                        dropped = s.dropped_congested,
                        invalid = s.invalid,
                        "overlay"
                    );
                }
                for r in &replicas {
                    let s = r.stats();
                    tracing::info!(
                        store = %r.address(),
                        documents = r.count().unwrap_or(0),
                        replicators = s.replicators,
                        applied = s.applied,
                        rejected = s.rejected,
                        served = s.served,
                        "replica"
                    );
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    drop(replicas);
    peer.close().await;
    Ok(())
}

/// Opens `graph` (fetched from the bootstrap peers) and waits until it has caught up, so its
/// answers are final.
async fn follow_graph(
    peer: &Peer,
    graph: starling_engine::program::ProgramAddress,
) -> Result<starling_engine::trust::Trust> {
    let limit = Duration::from_secs(10);
    let trust = peer
        .open_trust(graph, limit)
        .await
        .with_context(|| format!("cannot open the trust graph {graph}"))?;
    if !trust.wait_caught_up(limit).await {
        bail!("the trust graph {graph} did not catch up within {limit:?}");
    }
    Ok(trust)
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The stream: a name (this key's stream) or its full address.
    stream: String,
    #[command(flatten)]
    peer: PeerArgs,
    /// Stream this file (in chunks of --frame-bytes); stdin when neither this nor --synthetic.
    #[arg(long, conflicts_with = "synthetic")]
    file: Option<PathBuf>,
    /// Stream synthetic frames at this bitrate (e.g. 2Mbit) instead of a file.
    #[arg(long)]
    synthetic: Option<String>,
    /// Frames per second (0 with a file or stdin: as fast as the tree takes them).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Chunk size for a file or stdin.
    #[arg(long, default_value_t = 64 * 1024)]
    frame_bytes: usize,
    /// A keyframe every this many frames (the first frame is always one).
    #[arg(long, default_value_t = 30)]
    keyframe_every: u64,
    /// Stop synthetic streaming after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
    /// Wait this long after starting before the first frame (lets subscribers attach).
    #[arg(long, default_value_t = 0.0)]
    start_after: f64,
    /// Frames kept for late joiners.
    #[arg(long, default_value_t = 300)]
    window: usize,
    /// Keep serving this long after the last frame (catch-ups, slow relays).
    #[arg(long, default_value_t = 1.0)]
    linger: f64,
    /// Encrypt the frames to these PeerIds (and this key): relays forward them unread.
    #[arg(long, num_args = 1.., value_name = "PEERID")]
    encrypt_to: Vec<String>,
    /// Publish another owner's stream (give its address) as one of the owner's devices: this
    /// trust graph, rooted at the owner, must delegate to this key. Fetched from --bootstrap.
    #[arg(long, value_name = "GRAPH")]
    trust: Option<starling_engine::program::ProgramAddress>,
}

/// Where a publisher's frames come from.
enum Source {
    Synthetic { frame_bytes: usize },
    Reader(Box<dyn Read + Send>),
}

impl Source {
    /// The next frame's bytes, `None` at the end of the input.
    fn next(&mut self, seq: u64, chunk: usize) -> Result<Option<Bytes>> {
        match self {
            Source::Synthetic { frame_bytes } => {
                Ok(Some(MediaFrame::synthetic(seq, *frame_bytes, 1.0, 1).data))
            }
            Source::Reader(reader) => {
                let mut buf = vec![0u8; chunk];
                let mut filled = 0;
                while filled < chunk {
                    let n = reader.read(&mut buf[filled..]).context("reading input")?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok((filled > 0).then(|| Bytes::from(buf)))
            }
        }
    }
}

pub(crate) async fn publish(args: PublishArgs) -> Result<()> {
    if args.frame_bytes == 0 || args.keyframe_every == 0 {
        bail!("--frame-bytes and --keyframe-every must be positive");
    }
    let peer = start_peer(&args.peer).await?;
    let address = match args
        .stream
        .strip_prefix(starling_engine::stream::address::ADDRESS_PREFIX)
    {
        Some(_) => StreamAddress::parse(&args.stream)?,
        None => peer.stream_address(&args.stream)?,
    };
    let options = PublishOptions {
        window_frames: args.window.max(1),
        ..PublishOptions::default()
    };
    let mut publisher = match args.trust {
        _ if address.owner() == peer.peer_id() => peer.publish_stream(address.name(), options)?,
        Some(graph) => {
            let trust = follow_graph(&peer, graph).await?;
            peer.publish_delegated(&address, &trust, options)?
        }
        None => bail!(
            "{address} is owned by {}; this key is {} (use --key with the owner's key file, \
             or --trust GRAPH as a device the owner delegates to)",
            address.owner(),
            peer.peer_id()
        ),
    };
    if !args.encrypt_to.is_empty() {
        let others = crate::keys::receiver_keys(&args.encrypt_to)?;
        let to = starling_net::crypto::Receivers::new(&peer.public_key(), others)?;
        eprintln!("frames encrypted to {} key(s)", to.len());
        publisher.encrypt_to(Some(to));
    }
    {
        // Scripts read these two lines; a reader that closed the pipe afterwards is no error.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", peer.multiaddr());
        let _ = writeln!(out, "{}", publisher.address());
        let _ = out.flush();
    }
    eprintln!(
        "stream program address {}",
        publisher.address().definition().address()
    );
    let mut source = match (&args.file, &args.synthetic) {
        (_, Some(rate)) => {
            if args.fps <= 0.0 {
                bail!("--synthetic needs a positive --fps");
            }
            Source::Synthetic {
                frame_bytes: (rate.parse::<Bitrate>()?.bytes_per_s() / args.fps) as usize,
            }
        }
        (Some(path), None) => Source::Reader(Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        (None, None) => Source::Reader(Box::new(std::io::stdin())),
    };
    tokio::time::sleep(Duration::from_secs_f64(args.start_after.max(0.0))).await;
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut ticker = (args.fps > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / args.fps));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let start = Instant::now();
    let (mut frames, mut bytes, mut refused) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(t) = &mut ticker {
            tokio::select! {
                _ = t.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        // The frame's number in this session (a continued log keeps counting).
        let seq = session::index_of(publisher.next_seq());
        let chunk = args.frame_bytes;
        let data = match &mut source {
            Source::Reader(_) => {
                // Reading may block (stdin): keep it off the runtime's workers.
                tokio::task::block_in_place(|| source.next(seq, chunk))?
            }
            Source::Synthetic { .. } => source.next(seq, chunk)?,
        };
        let Some(data) = data else { break };
        bytes += data.len() as u64;
        let media_ts = (seq as f64 * 1e6 / args.fps.max(1.0)) as u64;
        let frame = if seq.is_multiple_of(args.keyframe_every) {
            MediaFrame::key(data, media_ts)
        } else {
            MediaFrame::delta(data, media_ts)
        };
        loop {
            match publisher.push(frame.clone()) {
                Ok(_) => {
                    frames += 1;
                    break;
                }
                // A paced (live) source drops what its node cannot take; an unpaced file or
                // stdin waits, so the output is the whole input.
                Err(StreamError::Congested) if ticker.is_some() => {
                    refused += 1;
                    break;
                }
                Err(StreamError::Congested) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) => return Err(e.into()),
            }
        }
        if ticker.is_none() && frames.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "published {frames} frames, {:.2} MB ({:.2} MB/s)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    eprintln!(
        "done: {frames} frames, {:.2} MB in {:.1} s, {refused} refused (node behind)",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    publisher.flush()?;
    let stats = publisher.stats();
    if stats.unstored > 0 {
        // The stream went on; only the on-disk window (for late joiners) missed them.
        eprintln!(
            "{} frames were published but not stored: {}",
            stats.unstored,
            stats
                .store_error
                .as_deref()
                .unwrap_or("the store failed earlier")
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.linger.max(0.0))).await;
    drop(publisher);
    peer.close().await;
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// The stream's address, `live/<PeerId>/<name>` or its program address `bafkr4…`, as
    /// `starling publish` prints them.
    address: String,
    #[command(flatten)]
    peer: PeerArgs,
    /// Write the frames' bytes here (stdout with `-`; nothing when absent).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Exit after this many frames.
    #[arg(long)]
    frames: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Where the publisher listens, if it is not reachable through the bootstrap peers' knowledge.
    #[arg(long)]
    owner_addr: Option<SocketAddr>,
    /// Store every entry in this peer's own copy of the log.
    #[arg(long)]
    persist: bool,
    /// The device publishing the stream for its owner, when not the owner (needs --trust).
    #[arg(long, value_name = "PEERID", requires = "trust")]
    publisher: Option<String>,
    /// The owner's trust graph: frames signed by keys it delegates count as the owner's.
    /// Fetched from --bootstrap.
    #[arg(long, value_name = "GRAPH")]
    trust: Option<starling_engine::program::ProgramAddress>,
}

struct Second {
    frames: u64,
    bytes: u64,
    skipped: u64,
    hist: Histogram<u64>,
}

impl Second {
    fn new() -> Result<Second> {
        Ok(Second {
            frames: 0,
            bytes: 0,
            skipped: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        })
    }
}

pub(crate) async fn subscribe(args: SubscribeArgs) -> Result<()> {
    let peer = start_peer(&args.peer).await?;
    // `live/<PeerId>/<name>`, or the stream's program address (its definition is fetched).
    let address = match args
        .address
        .parse::<starling_engine::program::ProgramAddress>()
    {
        Ok(program) => {
            let definition = peer
                .fetch_definition(program, Duration::from_secs(10))
                .await
                .with_context(|| format!("cannot find the stream {program}"))?;
            StreamAddress::from_definition(&definition)?
        }
        Err(_) => StreamAddress::parse(&args.address)?,
    };
    let publisher = match &args.publisher {
        Some(text) => Some(
            starling_net::identity::parse_peer_id(text)
                .with_context(|| format!("--publisher {text}: not a PeerId"))?,
        ),
        None => None,
    };
    let delegates = match args.trust {
        Some(graph) => Some(follow_graph(&peer, graph).await?),
        None => None,
    };
    let mut sub = peer.subscribe(
        &address,
        SubscribeOptions {
            owner_addr: args.owner_addr,
            persist: args.persist,
            publisher,
            delegates,
            ..SubscribeOptions::default()
        },
    )?;
    eprintln!("subscribed to {} as {}", address, peer.peer_id());
    let mut out: Option<Box<dyn Write + Send>> = match &args.output {
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))),
        None => None,
    };
    let deadline = args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut second = Second::new()?;
    let mut total = Second::new()?;
    let mut report = tokio::time::interval(Duration::from_secs(1));
    report.tick().await;
    loop {
        let frame = tokio::select! {
            f = sub.recv() => f,
            _ = report.tick() => {
                eprintln!(
                    "{} frames/s  {:.2} MB/s  latency p50 {:.1} ms p99 {:.1} ms  skipped {}",
                    second.frames,
                    second.bytes as f64 / 1e6,
                    second.hist.value_at_quantile(0.5) as f64 / 1e3,
                    second.hist.value_at_quantile(0.99) as f64 / 1e3,
                    second.skipped
                );
                second = Second::new()?;
                continue;
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(frame) = frame else { break };
        let latency = unix_time_us().saturating_sub(frame.published_us).max(1);
        for s in [&mut second, &mut total] {
            s.frames += 1;
            s.bytes += frame.data.len() as u64;
            s.skipped += frame.skipped;
            s.hist.saturating_record(latency);
        }
        if let Some(w) = &mut out {
            w.write_all(&frame.data).context("writing output")?;
        }
        if args.frames.is_some_and(|n| total.frames >= n) {
            break;
        }
    }
    if let Some(mut w) = out {
        w.flush().context("writing output")?;
    }
    let unreadable = sub.stats().unreadable;
    eprintln!(
        "received {} frames, {:.2} MB, skipped {}; not readable with this key {unreadable}; latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        total.frames,
        total.bytes as f64 / 1e6,
        total.skipped,
        total.hist.value_at_quantile(0.5) as f64 / 1e3,
        total.hist.value_at_quantile(0.99) as f64 / 1e3,
        total.hist.max() as f64 / 1e3
    );
    drop(sub);
    peer.close().await;
    Ok(())
}

//! `starling ping` (a client that measures a node) and the key loading the node commands share.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use starling_net::entry::{EntryFields, EntrySigner, LogId, unix_time_us};
use starling_net::identity::{KeyType, Keypair, load_key_file};
use starling_net::transport::{Connection, Endpoint, Multiaddr, TransportConfig};
use starling_net::wire::{Frame, Lane};

pub(crate) fn load_or_generate(key: Option<&PathBuf>) -> Result<Keypair> {
    Ok(match key {
        Some(path) => load_key_file(path)?,
        None => {
            tracing::info!("no --key given: using an ephemeral identity");
            Keypair::generate(KeyType::Ed25519)
        }
    })
}

#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The node's multiaddr, as `starling run` prints it.
    addr: Multiaddr,
    /// Number of pings.
    #[arg(long, default_value_t = 4)]
    count: u32,
    /// Then stream this many signed frames and report throughput.
    #[arg(long, default_value_t = 0)]
    frames: u64,
    /// Payload bytes per streamed frame.
    #[arg(long, default_value_t = 64 * 1024)]
    frame_bytes: usize,
    /// Key file; a fresh identity otherwise.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seconds to wait for the node to answer the handshake.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

pub(crate) async fn ping(args: PingArgs) -> Result<()> {
    let key = match &args.key {
        Some(path) => load_key_file(path)?,
        None => Keypair::generate(KeyType::Ed25519),
    };
    let config = TransportConfig {
        connect_timeout: Duration::try_from_secs_f64(args.timeout).context("--timeout")?,
        ..TransportConfig::default()
    };
    let endpoint = Endpoint::bind(
        key.clone(),
        "0.0.0.0:0".parse().context("bind address")?,
        config,
    )?;
    let conn = endpoint
        .dial(&args.addr)
        .await
        .with_context(|| format!("cannot reach {}", args.addr))?;
    println!("{}", conn.peer_id());
    for seq in 1..=args.count {
        let rtt = conn.ping().await?;
        println!("seq={seq} rtt={:.3} ms", rtt.as_secs_f64() * 1e3);
        if seq < args.count {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if args.frames > 0 {
        stream_frames(&conn, &key, args.frames, args.frame_bytes).await?;
    }
    conn.close("done");
    endpoint.close().await;
    Ok(())
}

async fn stream_frames(conn: &Connection, key: &Keypair, frames: u64, size: usize) -> Result<()> {
    let payload = Bytes::from(vec![0x5a; size]);
    let mut signer = EntrySigner::new(key.clone());
    let start = Instant::now();
    for seq in 0..frames {
        let frame = signer.sign_one(&EntryFields::new(
            LogId([0; 32]),
            seq,
            unix_time_us(),
            payload.clone(),
        ))?;
        conn.send(Lane::High, &Frame::Entry(frame)).await?;
    }
    // A ping behind the frames on the same lane returns once the node has read them all.
    conn.ping_on(Lane::High).await?;
    let secs = start.elapsed().as_secs_f64();
    let mb = (frames as f64 * size as f64) / 1e6;
    println!(
        "streamed {frames} frames ({mb:.1} MB) in {secs:.2} s: {:.1} MB/s, {:.0} frames/s",
        mb / secs,
        frames as f64 / secs
    );
    Ok(())
}

//! `starling-loadtest link`: one loopback link, raw quinn against Starling's full pipeline.
//!
//! (a) raw quinn: one connection, one stream, 64 KiB chunk writes, with Starling's own socket,
//!     TLS and transport settings (`raw_quinn_endpoint`), so the ceiling is fair.
//! (b) raw quinn sending 1 KiB messages with Starling's framing (`varint(len) kind body`),
//!     written 64 at a time as the lane writers do: the baseline for small frames.
//! (c) Starling: signed entries (BLAKE3 + one Ed25519 signature per batch of `--max-batch`)
//!     through lanes and credit, decoded without copies and verified on receipt (one signature
//!     check per batch root); latency is publish time to verified receipt.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use starling_net::entry::{EntryFields, EntrySigner, EntryVerifier, LogId};
use starling_net::identity::{KeyType, Keypair};
use starling_net::transport::{Endpoint, TransportConfig, raw_quinn_endpoint};
use starling_net::wire::{Frame, Lane};

use crate::util::{mb_per_s, now_us};

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// Seconds per measurement (each frame size, and the raw baseline).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Frame payload sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1024usize, 16 * 1024, 64 * 1024, 1024 * 1024])]
    sizes: Vec<usize>,
    /// Entries signed under one signature when the sender is backed up (1: each alone).
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
}

struct Measured {
    frames_per_s: f64,
    mb_s: f64,
    hist: Histogram<u64>,
}

pub(crate) async fn run(args: LinkArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let config = TransportConfig::default();
    let raw = raw_quinn(budget, &config).await?;
    println!("raw quinn, 1 stream, 64 KiB writes: {raw:.1} MB/s");
    let raw_1k = raw_quinn_messages(budget, &config, 1024).await?;
    println!("raw quinn, 1 stream, framed 1 KiB messages: {raw_1k:.0} messages/s");
    println!(
        "{:>9} {:>12} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "frame", "frames/s", "MB/s", "vs raw", "p50 µs", "p99 µs", "p999 µs"
    );
    let mut json = vec![
        format!("\"raw_quinn_mb_s\":{raw:.1}"),
        format!("\"raw_quinn_frames_per_s_1k\":{raw_1k:.0}"),
        format!("\"max_batch\":{}", args.max_batch),
    ];
    for &size in &args.sizes {
        let m = starling(budget, &config, size, args.max_batch).await?;
        if size == 1024 {
            json.push(format!(
                "\"ratio_frames_1k\":{:.3}",
                m.frames_per_s / raw_1k
            ));
        }
        let (p50, p99, p999) = (
            m.hist.value_at_quantile(0.5),
            m.hist.value_at_quantile(0.99),
            m.hist.value_at_quantile(0.999),
        );
        println!(
            "{:>9} {:>12.0} {:>10.1} {:>8.2} {:>10} {:>10} {:>10}",
            size_label(size),
            m.frames_per_s,
            m.mb_s,
            m.mb_s / raw,
            p50,
            p99,
            p999
        );
        let tag = size_label(size).to_lowercase();
        json.push(format!(
            "\"starling_mb_s_{tag}\":{:.1},\"frames_per_s_{tag}\":{:.0},\"ratio_{tag}\":{:.3},\"p50_us_{tag}\":{p50},\"p99_us_{tag}\":{p99},\"p999_us_{tag}\":{p999}",
            m.mb_s,
            m.frames_per_s,
            m.mb_s / raw
        ));
    }
    println!("{{{}}}", json.join(","));
    Ok(())
}

fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{}M", size >> 20)
    } else if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}k", size >> 10)
    } else {
        format!("{size}b")
    }
}

/// Accepts one connection and one stream and counts its bytes: (bytes, seconds from the first
/// chunk to the end, the connection, kept open until the sender has its figures).
async fn count_one_stream(server: quinn::Endpoint) -> Result<(u64, f64, quinn::Connection)> {
    let conn = server
        .accept()
        .await
        .ok_or_else(|| anyhow!("no connection"))?
        .await?;
    let mut stream = conn.accept_uni().await?;
    let mut bytes = 0u64;
    let mut start = None;
    while let Some(chunk) = stream.read_chunk(usize::MAX, true).await? {
        start.get_or_insert_with(Instant::now);
        bytes += chunk.bytes.len() as u64;
    }
    let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
    Ok((bytes, secs, conn))
}

/// The ceiling: bytes per second on one raw quinn stream with Starling's settings.
async fn raw_quinn(budget: Duration, config: &TransportConfig) -> Result<f64> {
    let local = "127.0.0.1:0".parse()?;
    let (server, buffers) =
        raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, config)?;
    let (client, _) = raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, config)?;
    eprintln!(
        "UDP socket buffers granted: send {} recv {} (requested {})",
        buffers.send, buffers.recv, config.socket_buffer_bytes
    );
    let addr = server.local_addr()?;
    let receiver = tokio::spawn(count_one_stream(server));
    let conn = client.connect(addr, "l")?.await?;
    let mut stream = conn.open_uni().await?;
    let chunk = Bytes::from(vec![0xa5u8; 64 * 1024]);
    let start = Instant::now();
    while start.elapsed() < budget {
        stream.write_chunk(chunk.clone()).await?;
    }
    stream.finish()?;
    let (bytes, secs, _server_conn) = receiver.await??;
    conn.close(0u32.into(), b"done");
    Ok(mb_per_s(bytes, secs))
}

/// Messages per second on one raw quinn stream carrying `size`-byte bodies framed as Starling
/// frames are, written up to 64 per call as Starling's lane writers do.
async fn raw_quinn_messages(
    budget: Duration,
    config: &TransportConfig,
    size: usize,
) -> Result<f64> {
    let local = "127.0.0.1:0".parse()?;
    let (server, _) = raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, config)?;
    let (client, _) = raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, config)?;
    let addr = server.local_addr()?;
    let mut message = BytesMut::new();
    let mut n = (size + 1) as u64;
    while n >= 0x80 {
        message.extend_from_slice(&[(n as u8) | 0x80]);
        n >>= 7;
    }
    message.extend_from_slice(&[n as u8, 0x03]);
    message.extend_from_slice(&vec![0x5au8; size]);
    let message = message.freeze();
    let len = message.len() as u64;
    let receiver = tokio::spawn(count_one_stream(server));
    let conn = client.connect(addr, "l")?.await?;
    let mut stream = conn.open_uni().await?;
    let mut chunks: Vec<Bytes> = Vec::with_capacity(64);
    let start = Instant::now();
    while start.elapsed() < budget {
        chunks.extend(std::iter::repeat_n(message.clone(), 64));
        stream.write_all_chunks(&mut chunks).await?;
        chunks.clear();
    }
    stream.finish()?;
    let (bytes, secs, _server_conn) = receiver.await??;
    conn.close(0u32.into(), b"done");
    Ok((bytes / len) as f64 / secs)
}

/// Starling's pipeline on one link: sign (in batches) → frame → lanes → decode → verify.
async fn starling(
    budget: Duration,
    config: &TransportConfig,
    size: usize,
    max_batch: usize,
) -> Result<Measured> {
    let local = "127.0.0.1:0".parse()?;
    let server = Endpoint::bind(Keypair::generate(KeyType::Ed25519), local, config.clone())?;
    let client = Endpoint::bind(Keypair::generate(KeyType::Ed25519), local, config.clone())?;
    let s = server.clone();
    let accept = tokio::spawn(async move { s.accept().await });
    let out = client.dial(&server.local_multiaddr()).await?;
    let inc = accept.await?.ok_or_else(|| anyhow!("no connection"))??;
    let (total_tx, total_rx) = tokio::sync::oneshot::channel::<u64>();
    let receiver = tokio::spawn(async move {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut verifier = EntryVerifier::default();
        let mut batch = Vec::with_capacity(64);
        let mut frames = Vec::with_capacity(64);
        let (mut received, mut bytes) = (0u64, 0u64);
        let mut total_rx = total_rx;
        let mut total = None;
        while total.is_none_or(|t| received < t) {
            tokio::select! {
                t = &mut total_rx, if total.is_none() => total = Some(t?),
                n = inc.recv_many(&mut batch, 64) => {
                    if n == 0 { break; }
                    for item in batch.drain(..) {
                        if let Frame::Entry(d) = item?.into_frame() {
                            frames.push(d);
                        }
                    }
                    for (i, r) in verifier.verify_many(&frames).into_iter().enumerate() {
                        r.map_err(|e| anyhow!("frame {i}: {e}"))?;
                    }
                    let now = now_us();
                    for f in frames.drain(..) {
                        hist.saturating_record(now.saturating_sub(f.wall_us()).max(1));
                        bytes += f.stored_payload().len() as u64;
                        received += 1;
                    }
                }
            }
        }
        anyhow::Ok((received, bytes, hist, Instant::now()))
    });
    let mut signer = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    let payload = Bytes::from(vec![0x3cu8; size]);
    let start = Instant::now();
    let mut seq = 0u64;
    let mut prev = Vec::with_capacity(1);
    let max_batch = max_batch.clamp(1, starling_net::entry::MAX_BATCH);
    while start.elapsed() < budget {
        // A sender that is backed up signs what queued up as one batch, as a publisher does.
        let mut sealed = Vec::with_capacity(max_batch);
        let now = now_us();
        for i in 0..max_batch as u64 {
            let u = signer.seal(&EntryFields {
                logical: i as u32,
                next: &prev,
                ..EntryFields::new(LogId([7; 32]), seq + i, now, payload.clone())
            })?;
            prev = vec![u.hash()];
            sealed.push(u);
        }
        for e in signer.sign(sealed)? {
            out.send(Lane::High, &Frame::Entry(e)).await?;
            seq += 1;
        }
    }
    total_tx
        .send(seq)
        .map_err(|_| anyhow!("receiver ended early"))?;
    let (received, bytes, hist, end) = receiver.await?.context("receiver")?;
    anyhow::ensure!(received == seq, "sent {seq} frames, {received} arrived");
    let secs = (end - start).as_secs_f64();
    out.close("done");
    client.close().await;
    server.close().await;
    Ok(Measured {
        frames_per_s: received as f64 / secs,
        mb_s: mb_per_s(bytes, secs),
        hist,
    })
}

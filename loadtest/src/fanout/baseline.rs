//! The baseline: the same frames, at the same pace, sent by one publisher straight to the same
//! number of plain quinn receivers (one endpoint and connection each, Starling's socket, TLS and
//! transport settings) — no signatures, no log, no tree.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use starling_net::transport::{TransportConfig, raw_quinn_endpoint};
use starling_net::{KeyType, Keypair};
use tokio::sync::broadcast;

/// What the baseline moved.
#[derive(Debug)]
pub(crate) struct Baseline {
    /// Payload bytes received by all receivers per second of the run.
    pub(crate) aggregate_mb_s: f64,
    /// Fraction of the bytes sent that every receiver got.
    pub(crate) delivered_ratio: f64,
}

/// Sends `frames` frames of `frame_bytes` at `fps` (0: as fast as possible) to `receivers`.
pub(crate) async fn run(
    receivers: usize,
    frame_bytes: usize,
    fps: f64,
    frames: u64,
) -> Result<Baseline> {
    let config = TransportConfig::default();
    let local = "127.0.0.1:0".parse()?;
    let (sender, _) = raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, &config)?;
    let mut readers = Vec::with_capacity(receivers);
    let mut conns = Vec::with_capacity(receivers);
    for _ in 0..receivers {
        let (server, _) = raw_quinn_endpoint(&Keypair::generate(KeyType::Ed25519), local, &config)?;
        let addr = server.local_addr()?;
        let accept = tokio::spawn(async move {
            let conn = server
                .accept()
                .await
                .ok_or_else(|| anyhow!("no connection"))?
                .await?;
            let mut stream = conn.accept_uni().await?;
            let mut bytes = 0u64;
            while let Some(chunk) = stream.read_chunk(usize::MAX, true).await? {
                bytes += chunk.bytes.len() as u64;
            }
            drop(conn);
            drop(server);
            anyhow::Ok(bytes)
        });
        conns.push(sender.connect(addr, "l")?.await?);
        readers.push(accept);
    }
    // One writer task per receiver fed by a broadcast channel: a slow receiver loses frames
    // (counted) instead of stalling the others, as Starling's newer-wins links do.
    let (tx, _) = broadcast::channel::<Bytes>(256);
    let mut writers = Vec::with_capacity(receivers);
    for conn in &conns {
        let mut rx = tx.subscribe();
        let mut stream = conn.open_uni().await?;
        writers.push(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(frame) => stream.write_chunk(frame).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            stream.finish()?;
            let _ = stream.stopped().await;
            anyhow::Ok(())
        }));
    }
    let frame = Bytes::from(vec![0xa5u8; frame_bytes]);
    let mut ticker = (fps > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let start = Instant::now();
    for i in 0..frames {
        match &mut ticker {
            Some(t) => {
                t.tick().await;
            }
            None if i % 32 == 0 => tokio::task::yield_now().await,
            None => {}
        }
        let _ = tx.send(frame.clone());
    }
    drop(tx);
    for w in writers {
        w.await??;
    }
    let mut received = 0u64;
    for r in readers {
        received += r.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    for c in conns {
        c.close(0u32.into(), b"done");
    }
    sender.wait_idle().await;
    let sent = frames * frame_bytes as u64 * receivers as u64;
    Ok(Baseline {
        aggregate_mb_s: received as f64 / 1e6 / secs.max(1e-9),
        delivered_ratio: received as f64 / sent.max(1) as f64,
    })
}

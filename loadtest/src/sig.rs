//! `starling-loadtest sig`: how many signatures per second the hot path can sign and verify.
//! The single-verify figure is the baseline for batch verification.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use clap::Args;
use starling_net::identity::{KeyType, Keypair, Signature, VerifyItem, verify_batch};

#[derive(Debug, Args)]
pub(crate) struct SigArgs {
    /// Signed message size in bytes (a frame header is about 200).
    #[arg(long, default_value_t = 200)]
    message_bytes: usize,
    /// Batch size for batch verification.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// Runs `op` repeatedly for about `budget`, returning operations per second.
fn rate(budget: Duration, ops_per_call: usize, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut ops = 0usize;
    while start.elapsed() < budget {
        op()?;
        ops += ops_per_call;
    }
    Ok(ops as f64 / start.elapsed().as_secs_f64())
}

pub(crate) fn run(args: SigArgs) -> Result<()> {
    ensure!(args.batch > 0, "--batch must be at least 1");
    let budget = Duration::from_secs_f64(args.seconds);
    let mut json = Vec::new();
    println!(
        "{:<10} {:>12} {:>14} {:>14} {:>8}",
        "key", "sign/s", "verify/s", "batch/s", "ratio"
    );
    for key_type in [KeyType::Ed25519, KeyType::Secp256k1] {
        let keys: Vec<Keypair> = (0..args.batch)
            .map(|_| Keypair::generate(key_type))
            .collect();
        let messages: Vec<Vec<u8>> = (0..args.batch)
            .map(|i| vec![i as u8; args.message_bytes])
            .collect();
        let sigs: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        let mut i = 0;
        let sign = rate(budget, 1, || {
            std::hint::black_box(keys[0].sign(&messages[i % messages.len()]));
            i += 1;
            Ok(())
        })?;
        let mut j = 0;
        let verify = rate(budget, 1, || {
            let n = j % keys.len();
            j += 1;
            Ok(keys[n].public().verify(&messages[n], &sigs[n])?)
        })?;
        let items: Vec<VerifyItem<'_>> = keys
            .iter()
            .zip(&messages)
            .zip(&sigs)
            .map(|((k, m), s)| VerifyItem {
                key: k.public(),
                message: m,
                signature: s,
            })
            .collect();
        let batch = rate(budget, items.len(), || Ok(verify_batch(&items)?))?;
        println!(
            "{:<10} {:>12.0} {:>14.0} {:>14.0} {:>8.2}",
            key_type,
            sign,
            verify,
            batch,
            batch / verify
        );
        json.push(format!(
            "\"{key_type}_sign_per_s\":{sign:.0},\"{key_type}_verify_per_s\":{verify:.0},\"{key_type}_batch_verify_per_s\":{batch:.0}"
        ));
    }
    println!("{{{}}}", json.join(","));
    Ok(())
}

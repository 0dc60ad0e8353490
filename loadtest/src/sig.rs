//! `starling-loadtest sig`: how many signatures per second the hot path can sign and verify
//! (the single-verify figure is the baseline for batch verification), and what an entry costs
//! to sign and verify when entries share a batch signature (batches of 1, 8 and 64).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use clap::Args;
use starling_net::entry::{Entry, EntryFields, EntrySigner, EntryVerifier, LogId};
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
    println!(
        "\nentries of {} payload bytes, amortised µs per entry:",
        args.message_bytes
    );
    println!(
        "{:<10} {:>6} {:>10} {:>10}",
        "key", "batch", "sign µs", "verify µs"
    );
    for key_type in [KeyType::Ed25519, KeyType::Secp256k1] {
        for n in [1usize, 8, 64] {
            let (sign_us, verify_us) = entry_costs(key_type, n, args.message_bytes, budget)?;
            println!("{key_type:<10} {n:>6} {sign_us:>10.2} {verify_us:>10.2}");
            json.push(format!(
                "\"{key_type}_entry_sign_us_batch_{n}\":{sign_us:.2},\"{key_type}_entry_verify_us_batch_{n}\":{verify_us:.2}"
            ));
        }
    }
    println!("{{{}}}", json.join(","));
    Ok(())
}

/// µs per entry to seal and sign `n` entries as one batch, and to verify them as a peer that
/// has not seen the batch (16 different batches in turn through a verifier that remembers one
/// root, so every batch costs its signature check; the writer's key stays decoded, as it does
/// on a link).
fn entry_costs(key_type: KeyType, n: usize, size: usize, budget: Duration) -> Result<(f64, f64)> {
    let mut signer = EntrySigner::new(Keypair::generate(key_type));
    let payload = Bytes::from(vec![7u8; size]);
    let mut base = 0u64;
    // Every batch distinct (its own seqs), so no verifier can have seen it.
    let mut sign_batch = |signer: &mut EntrySigner| -> Result<Vec<Entry>> {
        let mut sealed = Vec::with_capacity(n);
        base += n as u64;
        for i in base..base + n as u64 {
            sealed.push(signer.seal(&EntryFields::new(LogId([1; 32]), i, i, payload.clone()))?);
        }
        Ok(signer.sign(sealed)?)
    };
    let signed = rate(budget, n, || {
        std::hint::black_box(sign_batch(&mut signer)?);
        Ok(())
    })?;
    let batches: Vec<Vec<Entry>> = (0..16)
        .map(|_| sign_batch(&mut signer))
        .collect::<Result<_>>()?;
    let mut v = EntryVerifier::new(1);
    let mut k = 0;
    let verified = rate(budget, n, || {
        let results = v.verify_many(&batches[k % batches.len()]);
        k += 1;
        ensure!(results.iter().all(Result::is_ok), "a batch did not verify");
        Ok(())
    })?;
    Ok((1e6 / signed, 1e6 / verified))
}

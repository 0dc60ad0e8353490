//! `starling-loadtest crypto`: what end-to-end encryption costs a writer and a reader.
//!
//! - Appends of 64 KiB payloads to four logs (batches of `--max-batch`, one write batch
//!   each), plain, encrypted with the preferred suite (AES-256-GCM with AES instructions),
//!   encrypted with XChaCha20-Poly1305 — each to the writer and one receiver — and the
//!   preferred suite again from payloads given as `Bytes` (copied into each envelope), batch
//!   by batch in turns (so all share the disk's state); at the default durability (fdatasync
//!   per write batch) and OS-buffered. The application writes each payload into a fresh
//!   buffer before each call (not timed): the log's `payload_buf`, so the first three differ
//!   only in what the log does with it — store it, or seal it where it lies.
//!   Each batch is timed in two phases (sign: compress, seal, hash, sign; store: the write
//!   batch). Reported: µs per entry of each phase; MB/s per round (medians); and two ratios
//!   of plain ÷ encrypted — `ratio_encrypted_64k`, the median over all batches of the time
//!   of the same payloads in the same turn (a writeback stall moves one batch, not that
//!   median), and `…_per_round`, the median of the rounds' MB/s ratios, which a stall
//!   landing on one log swings both ways.
//! - The baselines: ring's raw ChaCha20-Poly1305 and AES-256-GCM (what envelopes run) over the
//!   same 64 KiB buffers, in place, no allocation: the ceilings of the one encryption pass;
//!   and RustCrypto's XChaCha20-Poly1305 beside them.
//! - Opening: a receiver's reads of the encrypted entries (the content key cached after the
//!   first).
//! - Wrapping one content key for 1, 10 and 100 receivers (a fresh ephemeral key and one
//!   agreement per receiver), and unwrapping it as one receiver.

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use clap::Args;
use starling_engine::log::{Draft, Entry, Log, LogConfig, LogId, Payload};
use starling_net::crypto::{
    ContentKey, Opener, Receivers, Sealer, Suite, seal_under, wrapped_header,
};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

use crate::util::noise;

#[derive(Debug, Args)]
pub(crate) struct CryptoArgs {
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds of each append measurement (alternating plain and encrypted; medians).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Entries per append call (one batch signature, one write batch).
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Directory for the stores (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const SIZE: usize = 64 * 1024;

fn open_log(dir: &std::path::Path, writer: &Keypair, durability: Durability) -> Result<Log> {
    let store = Store::open(
        dir,
        StoreConfig {
            durability,
            ..StoreConfig::default()
        },
    )?;
    Ok(Log::open(
        store,
        LogId([1; 32]),
        writer.clone(),
        LogConfig::default(),
    )?)
}

/// What appending to one log cost in one round.
struct Appended {
    /// Payload MB/s, signing and storing together.
    mb_s: f64,
    /// µs per entry preparing (compressing, sealing) and signing it.
    sign_us: f64,
    /// µs per entry storing it (one write batch, synced per the durability).
    store_us: f64,
    /// Each batch's time (µs), in turn order: the logs took the same drafts in each turn.
    batch_us: Vec<f64>,
}

/// Appends to each log in turns, batch by batch, for `budget`, timing each call's two
/// phases (sign, store): all see the same disk, caches and background work. The logs marked
/// in `as_bytes` take their payloads as `Bytes`, the rest in their `payload_buf`. Per log,
/// and the entries of the last call to the second log.
fn append_in_turns(
    logs: &mut [Log],
    as_bytes: &[bool],
    per_batch: usize,
    budget: Duration,
) -> Result<(Vec<Appended>, Vec<Entry>)> {
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(SIZE, i)).collect();
    let start = Instant::now();
    let mut n = 0usize;
    let mut spent = vec![(Duration::ZERO, Duration::ZERO); logs.len()];
    let mut batch_us = vec![Vec::new(); logs.len()];
    let mut last = Vec::new();
    while start.elapsed() < budget {
        // A new order each turn (seeded: runs repeat it), so none always follows another's
        // writes. A fixed rotation put every store flush on one log: the logs write alike,
        // so their memtables fill in the same turn, every 4th, when that log went first.
        let turn = n / per_batch;
        for which in turn_order(turn, logs.len()) {
            // Fresh buffers each batch, as an application's new data is: reusing the same
            // 64 buffers kept the plain path's reads in cache while the sealed path wrote
            // new memory.
            let drafts: Vec<Draft<'_>> = (0..per_batch)
                .map(|i| {
                    let data = &payloads[(n + i) % 64];
                    let payload = if as_bytes[which] {
                        Payload::Bytes(Bytes::copy_from_slice(data))
                    } else {
                        let mut buf = logs[which].payload_buf(data.len());
                        buf.extend_from_slice(data);
                        Payload::Buf(buf)
                    };
                    Draft::new(payload)
                })
                .collect();
            let t = Instant::now();
            let now = starling_net::entry::unix_time_us();
            let batch = logs[which].sign_batch_at(drafts, now)?;
            let signed = t.elapsed();
            logs[which].store_batch_at(&batch, now)?;
            spent[which].0 += signed;
            spent[which].1 += t.elapsed() - signed;
            batch_us[which].push(t.elapsed().as_secs_f64() * 1e6);
            if which == 1 {
                last = batch.into_entries();
            }
        }
        n += per_batch;
    }
    let mb = (n * SIZE) as f64 / 1e6;
    let per_entry = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let appended = spent
        .iter()
        .zip(batch_us)
        .map(|((sign, store), batch_us)| Appended {
            mb_s: mb / (*sign + *store).as_secs_f64(),
            sign_us: per_entry(*sign),
            store_us: per_entry(*store),
            batch_us,
        })
        .collect();
    Ok((appended, last))
}

/// A permutation of `0..len` for turn `turn` (Fisher–Yates over a SplitMix64 stream).
fn turn_order(turn: usize, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut x = (turn as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..len).rev() {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    order
}

/// Raw `algorithm` of ring (what envelopes run: ChaCha20-Poly1305 under an HChaCha20 subkey,
/// or AES-256-GCM) over 64 KiB buffers, in place: the ceiling of the one encryption pass.
fn raw_ring(algorithm: &'static ring::aead::Algorithm, budget: Duration) -> Result<f64> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(
        UnboundKey::new(algorithm, &[7u8; 32]).map_err(|_| anyhow::anyhow!("a 32-byte key"))?,
    );
    let mut buf = noise(SIZE, 1).to_vec();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| anyhow::anyhow!("64 KiB seals"))?;
        let _ = std::hint::black_box(tag);
        n += 1;
    }
    Ok((n as usize * SIZE) as f64 / 1e6 / start.elapsed().as_secs_f64())
}

/// RustCrypto's XChaCha20-Poly1305 over the same buffers (the crate envelopes do not use
/// for the pass: slower here).
fn raw_rustcrypto_xchacha(budget: Duration) -> f64 {
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = noise(SIZE, 1).to_vec();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let mut nonce = XNonce::default();
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        let tag = cipher
            .encrypt_in_place_detached(&nonce, b"", &mut buf)
            .expect("64 KiB seals");
        std::hint::black_box(tag);
        n += 1;
    }
    (n as usize * SIZE) as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// A receiver opening `entries` again and again for `budget` (key cached after the first).
fn open(entries: &[Entry], reader: &Keypair, budget: Duration) -> Result<f64> {
    let opener = Opener::new(reader);
    let start = Instant::now();
    let mut bytes = 0usize;
    while start.elapsed() < budget {
        for e in entries {
            bytes += e.open_payload(&opener)?.len();
        }
    }
    Ok(bytes as f64 / 1e6 / start.elapsed().as_secs_f64())
}

/// µs to wrap one content key for a set of `n` receivers (the writer among them), and µs for
/// one receiver to unwrap it (a fresh opener: one agreement).
fn wrap(key_type: KeyType, n: usize, budget: Duration) -> Result<(f64, f64)> {
    let writer = Keypair::generate(key_type);
    let others: Vec<Keypair> = (1..n).map(|_| Keypair::generate(key_type)).collect();
    let set = Receivers::new(writer.public(), others.iter().map(|k| *k.public()))?;
    let start = Instant::now();
    let mut times = 0u32;
    let mut header = Vec::new();
    let key = ContentKey::generate();
    while start.elapsed() < budget || times < 3 {
        header = wrapped_header(&key, &set, Suite::preferred())?;
        times += 1;
    }
    let wrap_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(times);
    let env = seal_under(&header, &key, b"x")?;
    let reader = others.last().unwrap_or(&writer);
    let start = Instant::now();
    let mut opened = 0u32;
    while start.elapsed() < budget / 4 || opened < 3 {
        Opener::new(reader).open(&env)?;
        opened += 1;
    }
    let unwrap_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(opened);
    Ok((wrap_us, unwrap_us))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn run(args: CryptoArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds.max(0.1));
    let tmp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let writer = Keypair::generate(KeyType::Ed25519);
    let reader = Keypair::generate(KeyType::Ed25519);
    let receivers = Receivers::new(writer.public(), [*reader.public()])?;
    let per_batch = args.max_batch.clamp(1, 256);
    let mut encrypted_entries = Vec::new();
    let mut json = serde_json::Map::new();
    let mut ratio = 0.0;
    let preferred = Suite::preferred();
    println!("the preferred suite on this CPU: {preferred:?}");
    for (durability, label, suffix) in [
        (
            Durability::SyncEachWrite,
            "fdatasync per write batch (the default)",
            "",
        ),
        (Durability::Buffered, "OS-buffered", "_buffered"),
    ] {
        // Per log (plain, preferred suite, XChaCha20-Poly1305, preferred from `Bytes`): MB/s
        // and ratios per round.
        let mut rates: [Vec<f64>; 4] = Default::default();
        let mut ratios: [Vec<f64>; 3] = Default::default();
        // Plain, preferred-suite and from-`Bytes` logs: µs per entry signing, and storing,
        // per round.
        let mut phases: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        // Plain ÷ encrypted time of each batch (the same payloads, the same turn) per
        // encrypted log, over every round: a disk stall hits one batch, not the median.
        let mut per_batch_ratios: [Vec<f64>; 3] = Default::default();
        for round in 0..args.rounds.max(1) {
            let dirs: Vec<_> = ["plain", "preferred", "xchacha", "copied"]
                .iter()
                .map(|name| root.join(format!("{name}{suffix}-{round}")))
                .collect();
            let mut logs = dirs
                .iter()
                .map(|d| open_log(d, &writer, durability))
                .collect::<Result<Vec<_>>>()?;
            logs[1].encrypt_to(Some(receivers.clone()));
            logs[2].encrypt_with(
                receivers.clone(),
                Sealer::with_suite(Suite::XChaCha20Poly1305, 4096),
            );
            logs[3].encrypt_to(Some(receivers.clone()));
            let as_bytes = [false, false, false, true];
            let (appended, entries) = append_in_turns(&mut logs, &as_bytes, per_batch, budget)?;
            let mb: Vec<f64> = appended.iter().map(|a| a.mb_s).collect();
            println!(
                "{label}, round {round}: append 64 KiB plain {:.0} MB/s, encrypted {:.0} MB/s ({:.3}), XChaCha20 {:.0} MB/s ({:.3}), encrypted from Bytes {:.0} MB/s ({:.3}); µs per entry sign+store: plain {:.0}+{:.0}, encrypted {:.0}+{:.0}, XChaCha20 {:.0}+{:.0}, from Bytes {:.0}+{:.0}",
                mb[0],
                mb[1],
                mb[1] / mb[0],
                mb[2],
                mb[2] / mb[0],
                mb[3],
                mb[3] / mb[0],
                appended[0].sign_us,
                appended[0].store_us,
                appended[1].sign_us,
                appended[1].store_us,
                appended[2].sign_us,
                appended[2].store_us,
                appended[3].sign_us,
                appended[3].store_us,
            );
            for (r, m) in rates.iter_mut().zip(&mb) {
                r.push(*m);
            }
            for (ratios, sealed) in per_batch_ratios.iter_mut().zip(&appended[1..]) {
                ratios.extend(
                    appended[0]
                        .batch_us
                        .iter()
                        .zip(&sealed.batch_us)
                        .map(|(plain, sealed)| plain / sealed),
                );
            }
            for (phase, a) in phases
                .iter_mut()
                .zip([&appended[0], &appended[1], &appended[3]])
            {
                phase.0.push(a.sign_us);
                phase.1.push(a.store_us);
            }
            ratios[0].push(mb[1] / mb[0]);
            ratios[1].push(mb[2] / mb[0]);
            ratios[2].push(mb[3] / mb[0]);
            encrypted_entries = entries;
            // Deleting the stores drops their dirty pages: the next round does not start
            // behind this one's writeback.
            drop(logs);
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        // Medians: of each round's MB/s and ratio (all logs in the same turns), and of every
        // batch's ratio — the headline: a writeback stall lands on whichever log is writing
        // and swings a round's ratio both ways (0.6 to 2.2 OS-buffered), not the batches'.
        let [plain, sealed, xchacha, copied] = rates.map(median);
        let [r, rx, rc] = ratios.map(median);
        let batches = per_batch_ratios[0].len();
        let [b, bx, bc] = per_batch_ratios.map(median);
        println!(
            "{label} (medians of {} rounds): plain {plain:.0} MB/s, encrypted {sealed:.0} MB/s, ratio {r:.3}; XChaCha20 {xchacha:.0} MB/s, ratio {rx:.3}; from Bytes {copied:.0} MB/s, ratio {rc:.3}",
            args.rounds.max(1)
        );
        println!(
            "{label} (medians of {batches} batches): ratio {b:.3}; XChaCha20 {bx:.3}; from Bytes {bc:.3}"
        );
        for (key, value) in [
            (format!("append_mb_s_64k{suffix}"), plain),
            (format!("append_mb_s_64k_encrypted{suffix}"), sealed),
            (
                format!("append_mb_s_64k_encrypted_xchacha{suffix}"),
                xchacha,
            ),
            (format!("append_mb_s_64k_encrypted_copied{suffix}"), copied),
        ] {
            json.insert(key, round2(value).into());
        }
        for (key, per_batch, per_round) in [("", b, r), ("_xchacha", bx, rx), ("_copied", bc, rc)] {
            let name = format!("ratio_encrypted_64k{key}");
            json.insert(format!("{name}{suffix}"), round3(per_batch).into());
            json.insert(
                format!("{name}_per_round{suffix}"),
                round3(per_round).into(),
            );
        }
        for ((sign, store), which) in phases.into_iter().zip(["", "_encrypted", "_copied"]) {
            let (sign, store) = (median(sign), median(store));
            json.insert(format!("sign_us{which}{suffix}"), round2(sign).into());
            json.insert(format!("store_us{which}{suffix}"), round2(store).into());
        }
        if suffix.is_empty() {
            ratio = b;
        }
    }
    let raw = raw_ring(&ring::aead::CHACHA20_POLY1305, budget)?;
    let aes = raw_ring(&ring::aead::AES_256_GCM, budget)?;
    let rustcrypto = raw_rustcrypto_xchacha(budget);
    let opened = open(&encrypted_entries, &reader, budget)?;
    println!(
        "raw, 64 KiB in place: ring ChaCha20-Poly1305 {raw:.0} MB/s, ring AES-256-GCM {aes:.0} MB/s, RustCrypto XChaCha20-Poly1305 {rustcrypto:.0} MB/s; a receiver opens {opened:.0} MB/s"
    );
    println!("wrap one content key (fresh ephemeral key, one agreement per receiver):");
    for (kt, suffix) in [(KeyType::Ed25519, ""), (KeyType::Secp256k1, "_secp256k1")] {
        for n in [1usize, 10, 100] {
            let (w, u) = wrap(kt, n, budget / 2)?;
            println!("  {kt} × {n:>3}: wrap {w:>8.1} µs, unwrap as one receiver {u:.1} µs");
            json.insert(format!("wrap_us_{n}{suffix}"), serde_json::json!(round2(w)));
            if n == 1 {
                json.insert(format!("unwrap_us{suffix}"), serde_json::json!(round2(u)));
            }
        }
    }
    println!("target: ratio_encrypted_64k ≥ 0.85 (at the default durability): {ratio:.3}");
    json.insert("scenario".into(), "crypto".into());
    json.insert("raw_chacha_mb_s".into(), round2(raw).into());
    json.insert(
        "raw_rustcrypto_xchacha_mb_s".into(),
        round2(rustcrypto).into(),
    );
    json.insert("raw_aes_gcm_mb_s".into(), round2(aes).into());
    json.insert("suite".into(), format!("{preferred:?}").into());
    json.insert("open_mb_s_64k".into(), round2(opened).into());
    json.insert("target_met".into(), (ratio >= 0.85).into());
    let json = serde_json::Value::Object(json);
    println!("{json}");
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::turn_order;

    #[test]
    fn turn_orders_are_permutations_and_put_each_log_first_alike() {
        let mut first = [0u32; 4];
        for turn in 0..4000 {
            let mut order = turn_order(turn, 4);
            first[order[0]] += 1;
            order.sort_unstable();
            assert_eq!(order, [0, 1, 2, 3]);
        }
        assert!(first.iter().all(|&n| (800..1200).contains(&n)), "{first:?}");
    }
}

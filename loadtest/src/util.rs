//! Small helpers shared by the scenarios.

/// Microseconds since the Unix epoch (frames carry their publish time in this unit).
pub(crate) use starling_net::entry::unix_time_us as now_us;

/// Megabytes (10^6) per second.
pub(crate) fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Peak resident memory of this process in MB (VmHWM), 0 where unknown.
pub(crate) fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

/// Resident memory of this process now, in MB (VmRSS), 0 where unknown.
pub(crate) fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// `len` incompressible bytes, the same for the same `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> bytes::Bytes {
    let mut buf = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut buf);
    bytes::Bytes::from(buf)
}

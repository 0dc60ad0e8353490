//! The stream rate a node measures from the frames it sees: smoothed bytes/s (admission by
//! bandwidth, and what an accept tells a new child) and smoothed frame size (how long each
//! child waits its turn on the uplink).

/// Span of one measuring window (µs).
const WINDOW_US: u64 = 500_000;

/// Rate and frame size, smoothed.
#[derive(Clone, Debug, Default)]
pub(super) struct RateMeter {
    /// Smoothed stream rate, bytes/s; 0 until the first window closes or a parent tells us.
    pub(super) bytes_per_s: f64,
    /// Smoothed frame size (bytes).
    pub(super) frame_bytes: f64,
    window_start: u64,
    window_bytes: u64,
}

impl RateMeter {
    /// Counts a frame of `bytes` seen at `now`.
    pub(super) fn note(&mut self, bytes: usize, now: u64) {
        if self.window_start == 0 {
            // The first frame opens the first window (no rate from before the stream began).
            self.window_start = now.max(1);
        }
        self.window_bytes += bytes as u64;
        self.frame_bytes = if self.frame_bytes == 0.0 {
            bytes as f64
        } else {
            0.9 * self.frame_bytes + 0.1 * bytes as f64
        };
        let span = now.saturating_sub(self.window_start);
        if span >= WINDOW_US {
            let sample = self.window_bytes as f64 * 1e6 / span as f64;
            self.bytes_per_s = if self.bytes_per_s == 0.0 {
                sample
            } else {
                0.7 * self.bytes_per_s + 0.3 * sample
            };
            self.window_start = now;
            self.window_bytes = 0;
        }
    }

    /// The time between frames at the measured rate (µs), 0 until measured.
    pub(super) fn frame_interval_us(&self) -> u64 {
        if self.bytes_per_s <= 0.0 || self.frame_bytes <= 0.0 {
            return 0;
        }
        (self.frame_bytes / self.bytes_per_s * 1e6).min(u64::MAX as f64 / 16.0) as u64
    }

    /// Takes the rate a parent measured (`bytes_per_s`) until we have measured our own, so a
    /// new relay admits children by bandwidth from its first frame.
    pub(super) fn adopt(&mut self, bytes_per_s: u64) {
        if self.bytes_per_s == 0.0 {
            self.bytes_per_s = bytes_per_s as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_is_measured_after_one_window() {
        let mut m = RateMeter::default();
        // 1,000-byte frames every 10 ms: 100 kB/s.
        for i in 0..50 {
            m.note(1_000, 1_000_000 + i * 10_000);
        }
        assert_eq!(m.bytes_per_s, 0.0, "no window has closed yet");
        m.note(1_000, 1_000_000 + 50 * 10_000);
        assert!((m.bytes_per_s - 102_000.0).abs() < 1.0, "{}", m.bytes_per_s);
        assert_eq!(m.frame_bytes, 1_000.0);
    }

    #[test]
    fn a_parents_rate_counts_only_until_our_own() {
        let mut m = RateMeter::default();
        m.adopt(5_000);
        assert_eq!(m.bytes_per_s, 5_000.0);
        m.adopt(9_000);
        assert_eq!(m.bytes_per_s, 5_000.0, "the first figure stands");
        m.note(100_000, 1);
        m.note(0, 1 + WINDOW_US);
        assert!((m.bytes_per_s - (0.7 * 5_000.0 + 0.3 * 200_000.0)).abs() < 1e-6);
    }

    #[test]
    fn frame_size_is_smoothed() {
        let mut m = RateMeter::default();
        m.note(1_000, 1);
        m.note(2_000, 2);
        assert!((m.frame_bytes - 1_100.0).abs() < 1e-9);
    }
}

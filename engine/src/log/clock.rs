//! Hybrid logical clocks over [`Clock`] (wall µs, logical, writer). Time is always passed in,
//! never read here.

use std::time::Duration;

use super::{Clock, LogError};

/// One writer's clock: monotonic, and merged with every remote clock it has seen so that its
/// next tick orders after them.
#[derive(Clone, Debug)]
pub struct HybridClock {
    wall_us: u64,
    logical: u32,
    writer: [u8; 32],
    max_drift_us: u64,
}

impl HybridClock {
    /// A clock for `writer` that refuses remote clocks more than `max_drift` ahead of now.
    pub fn new(writer: [u8; 32], max_drift: Duration) -> Self {
        HybridClock {
            wall_us: 0,
            logical: 0,
            writer,
            max_drift_us: max_drift.as_micros().min(u128::from(u64::MAX)) as u64,
        }
    }

    /// The next clock value: strictly after every value ticked or observed before.
    pub fn tick(&mut self, now_us: u64) -> Clock {
        if now_us > self.wall_us {
            self.wall_us = now_us;
            self.logical = 0;
        } else if self.logical == u32::MAX {
            self.wall_us += 1;
            self.logical = 0;
        } else {
            self.logical += 1;
        }
        Clock {
            wall_us: self.wall_us,
            logical: self.logical,
            writer: self.writer,
        }
    }

    /// Checks a remote clock against the drift bound without merging it.
    pub fn check(&self, remote: &Clock, now_us: u64) -> Result<(), LogError> {
        let ahead = remote.wall_us.saturating_sub(now_us);
        if ahead > self.max_drift_us {
            return Err(LogError::ClockTooFarAhead {
                ahead_us: ahead,
                max_us: self.max_drift_us,
            });
        }
        Ok(())
    }

    /// Merges a remote clock so that the next tick orders after it.
    pub fn observe(&mut self, remote: &Clock, now_us: u64) -> Result<(), LogError> {
        self.check(remote, now_us)?;
        if (remote.wall_us, remote.logical) > (self.wall_us, self.logical) {
            self.wall_us = remote.wall_us;
            self.logical = remote.logical;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_monotonic_even_when_time_goes_back() {
        let mut c = HybridClock::new([1; 32], Duration::from_secs(1));
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(500);
        let e = c.tick(2000);
        assert!(a < b && b < d && d < e);
        assert_eq!(e.logical, 0);
    }

    #[test]
    fn observing_a_remote_clock_orders_later_ticks_after_it() {
        let mut c = HybridClock::new([1; 32], Duration::from_secs(10));
        let remote = Clock {
            wall_us: 5_000_000,
            logical: 7,
            writer: [2; 32],
        };
        c.observe(&remote, 1_000_000).unwrap();
        let next = c.tick(1_000_001);
        assert!((next.wall_us, next.logical) > (remote.wall_us, remote.logical));
    }

    #[test]
    fn a_clock_too_far_ahead_is_refused() {
        let mut c = HybridClock::new([1; 32], Duration::from_secs(1));
        let remote = Clock {
            wall_us: 10_000_000,
            logical: 0,
            writer: [2; 32],
        };
        assert!(matches!(
            c.observe(&remote, 1_000_000),
            Err(LogError::ClockTooFarAhead { .. })
        ));
        assert_eq!(c.tick(1).wall_us, 1, "a refused clock is not merged");
    }
}

//! Connection receive windows: each link's grows with what it receives, and all of them share
//! one budget.
//!
//! QUIC's connection window is what a peer may send before we read: each link's window is
//! memory the remote can make us hold. A fixed 12 MiB window is right for a few fast links and
//! 12 GiB for 1,000. So a link starts at `min_receive_window` (the transport parameter a peer
//! sees first) and doubles each time a window's worth of data arrives within
//! [`GROWTH_SPAN`] — that is, while the window, not the sender, limits the link at any RTT up
//! to that span — up to its share of the budget: `total / links`, rounded down to a power of
//! two, within the link's `[min, max]`. When links are added and the share falls below a
//! link's window, the window is lowered to it.
//!
//! quinn raises a window at once (a MAX_DATA frame) and lowers it by withholding credit as
//! data is read: credit a peer was granted stays granted until it is used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quinn::VarInt;

/// A link whose window fills within this span grows (see the module doc).
pub(super) const GROWTH_SPAN: Duration = Duration::from_millis(200);

/// The windows of every link sharing one budget.
#[derive(Debug)]
pub(super) struct ReceiveWindows {
    total: u64,
    links: Mutex<Links>,
}

#[derive(Debug, Default)]
struct Links {
    next_id: u64,
    live: HashMap<u64, Link>,
    /// Each link's share now.
    share: u64,
}

#[derive(Debug)]
struct Link {
    conn: quinn::Connection,
    bounds: Bounds,
    /// The window last set (starts at `bounds.min`, the transport parameter).
    window: u64,
}

/// The smallest and largest window one link may have.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    pub(super) min: u32,
    pub(super) max: u32,
}

impl Bounds {
    fn clamp(self, window: u64) -> u64 {
        window.clamp(u64::from(self.min), u64::from(self.max.max(self.min)))
    }
}

/// A link's place in the shared windows: counts what the link receives, grows its window, and
/// gives the place back when dropped.
#[derive(Debug)]
pub(super) struct WindowLease {
    windows: Arc<ReceiveWindows>,
    id: u64,
    /// Bytes received since the span began.
    received: AtomicU64,
    /// The window now (a copy, read per frame without the lock).
    window: AtomicU64,
    span_start: Mutex<Instant>,
}

impl Drop for WindowLease {
    fn drop(&mut self) {
        let mut links = self.windows.lock();
        links.live.remove(&self.id);
        self.windows.rebalance(&mut links);
    }
}

impl WindowLease {
    /// Counts `bytes` received; once a window's worth has arrived, grows the window if it
    /// took less than [`GROWTH_SPAN`], and starts a new span. One atomic add per frame.
    pub(super) fn on_received(&self, bytes: u64) {
        let received = self.received.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if received < self.window.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let fast = {
            let mut start = self
                .span_start
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let fast = now.duration_since(*start) <= GROWTH_SPAN;
            *start = now;
            fast
        };
        self.received.store(0, Ordering::Relaxed);
        if fast {
            let window = self.windows.grow(self.id);
            self.window.store(window, Ordering::Relaxed);
        }
    }
}

impl ReceiveWindows {
    /// Windows sharing about `total` bytes over all links (each link keeps at least its
    /// minimum, so past `total / min` links the sum is `links × min`).
    pub(super) fn new(total: u64) -> ReceiveWindows {
        ReceiveWindows {
            total,
            links: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Links> {
        // Each change is one insert, remove or assignment: a poisoned table is still whole.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `conn`, whose window starts at `bounds.min` (the transport parameter it was
    /// opened with).
    pub(super) fn register(
        self: &Arc<Self>,
        conn: &quinn::Connection,
        bounds: Bounds,
    ) -> WindowLease {
        let mut links = self.lock();
        let id = links.next_id;
        links.next_id += 1;
        let window = u64::from(bounds.min);
        links.live.insert(
            id,
            Link {
                conn: conn.clone(),
                bounds,
                window,
            },
        );
        self.rebalance(&mut links);
        WindowLease {
            windows: self.clone(),
            id,
            received: AtomicU64::new(0),
            window: AtomicU64::new(window.max(1)),
            span_start: Mutex::new(Instant::now()),
        }
    }

    /// Doubles link `id`'s window, up to its share; the window now.
    fn grow(&self, id: u64) -> u64 {
        let mut links = self.lock();
        let share = links.share;
        let Some(link) = links.live.get_mut(&id) else {
            return 0;
        };
        let target = link.bounds.clamp((2 * link.window).min(share));
        if target > link.window {
            link.window = target;
            link.conn.set_receive_window(varint(target));
        }
        link.window
    }

    /// Each link's share for `links` links: `total / links`, rounded down to a power of two.
    fn share(&self, links: usize) -> u64 {
        let each = self.total / links.max(1) as u64;
        if each == 0 { 0 } else { 1 << each.ilog2() }
    }

    /// Recomputes the share after a link came or went, and lowers windows above it.
    fn rebalance(&self, links: &mut Links) {
        let share = self.share(links.live.len());
        if share >= links.share {
            links.share = share;
            return;
        }
        links.share = share;
        for link in links.live.values_mut() {
            let capped = link.bounds.clamp(share);
            if link.window > capped {
                link.window = capped;
                link.conn.set_receive_window(varint(capped));
            }
        }
    }

    /// The share a link may grow to now, before its bounds.
    pub(super) fn current_share(&self) -> u64 {
        self.lock().share
    }

    /// Links sharing the windows.
    pub(super) fn links(&self) -> usize {
        self.lock().live.len()
    }

    /// The window of each live link, in no particular order.
    pub(super) fn windows(&self) -> Vec<u64> {
        self.lock().live.values().map(|l| l.window).collect()
    }
}

fn varint(window: u64) -> VarInt {
    VarInt::from_u64(window).unwrap_or(VarInt::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_halves_as_links_double_in_powers_of_two() {
        let w = ReceiveWindows::new(256 << 20);
        assert_eq!(w.share(1), 256 << 20);
        assert_eq!(w.share(2), 128 << 20);
        assert_eq!(w.share(3), 64 << 20, "85 MiB rounds down");
        assert_eq!(w.share(1_000), 256 << 10, "262 KiB rounds down");
        assert_eq!(w.share(0), 256 << 20);
        assert_eq!(ReceiveWindows::new(10).share(100), 0);
    }

    #[test]
    fn bounds_clamp_the_share() {
        let b = Bounds {
            min: 128 << 10,
            max: 12 << 20,
        };
        assert_eq!(b.clamp(256 << 20), 12 << 20);
        assert_eq!(b.clamp(1 << 20), 1 << 20);
        assert_eq!(b.clamp(0), 128 << 10);
        let inverted = Bounds { min: 4096, max: 1 };
        assert_eq!(inverted.clamp(1 << 20), 4096, "min wins");
    }
}

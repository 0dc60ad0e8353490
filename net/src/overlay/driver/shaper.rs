//! A token-bucket upload shaper, for tests and load tests that need a slow relay: frames wait in
//! a bounded queue (oldest dropped first when it overflows: newer wins) and leave at the rate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::identity::PeerId;
use crate::wire::{Frame, Lane};

/// Bytes the shaper queues before dropping the oldest frames.
const MAX_QUEUE: usize = 4 << 20;

fn frame_len(frame: &Frame) -> usize {
    match frame {
        Frame::Entry(d) => d.wire_len(),
        Frame::Overlay(b) => b.len() + 2,
        _ => 16,
    }
}

#[derive(Debug)]
pub(super) struct Shaper {
    rate: u64,
    tokens: f64,
    last: Instant,
    queue: VecDeque<(PeerId, Lane, Frame, usize)>,
    queued: usize,
}

impl Shaper {
    pub(super) fn new(rate: u64) -> Self {
        Shaper {
            rate: rate.max(1),
            tokens: 0.0,
            last: Instant::now(),
            queue: VecDeque::new(),
            queued: 0,
        }
    }

    pub(super) fn rate(&self) -> u64 {
        self.rate
    }

    pub(super) fn push(&mut self, to: PeerId, lane: Lane, frame: Frame) {
        let len = frame_len(&frame);
        self.queue.push_back((to, lane, frame, len));
        self.queued += len;
        while self.queued > MAX_QUEUE {
            match self.queue.pop_front() {
                Some((_, _, _, n)) => self.queued -= n,
                None => break,
            }
        }
    }

    pub(super) fn queued_for(&self, peer: &PeerId) -> usize {
        self.queue
            .iter()
            .filter(|(p, ..)| p == peer)
            .map(|(.., n)| *n)
            .sum()
    }

    /// When the head of the queue may leave.
    pub(super) fn next_release(&self) -> Option<Instant> {
        let (.., len) = self.queue.front()?;
        let missing = (*len as f64 - self.tokens).max(0.0);
        Some(self.last + Duration::from_secs_f64(missing / self.rate as f64))
    }

    /// Frames whose tokens have accrued.
    pub(super) fn release(&mut self) -> Vec<(PeerId, Lane, Frame)> {
        let now = Instant::now();
        self.tokens += now.duration_since(self.last).as_secs_f64() * self.rate as f64;
        self.last = now;
        let mut out = Vec::new();
        while let Some((_, _, _, len)) = self.queue.front() {
            if (*len as f64) > self.tokens {
                break;
            }
            self.tokens -= *len as f64;
            if let Some((to, lane, frame, len)) = self.queue.pop_front() {
                self.queued -= len;
                out.push((to, lane, frame));
            }
        }
        if self.queue.is_empty() {
            // Idle links do not bank unlimited credit.
            self.tokens = self.tokens.min(64.0 * 1024.0);
        }
        out
    }
}

//! Frames through a tree node: sequencing at the root, verification, forwarding (newer wins),
//! in-order delivery, the repair cache and gap repair.

use std::fmt::Debug;
use std::hash::Hash;

use super::{Context, TopicState};
use crate::overlay::event::Action;
use crate::overlay::message::{Message, Payload, Verifier};
use crate::overlay::shared::Shared;

/// Frames served per repair request to a node that is not our child.
const MAX_FOREIGN_REPAIR: u64 = 8;

impl<P, B> TopicState<P, B>
where
    P: Copy + Eq + Hash + Ord + Debug,
    B: Payload,
{
    /// Root: cache and send a new frame. Its seq (the entry's) must be above every frame
    /// published before; a restarted publisher continues from its log, so it may start above 0.
    pub(in crate::overlay) fn publish<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        seq: u64,
        payload: B,
    ) {
        if seq < self.next_seq {
            cx.shared.stats.invalid += 1;
            return;
        }
        self.next_seq = seq + 1;
        self.rate.note(payload.wire_len(), cx.now);
        self.remember(cx.shared, seq, payload.clone());
        self.forward(cx, None, seq, &payload);
    }

    pub(super) fn remember<V>(&mut self, shared: &Shared<P, V>, seq: u64, payload: B) {
        if self.cache.back().is_some_and(|(s, _)| *s >= seq) {
            // Out of order (a repair): keep the cache sorted by inserting in place.
            let at = self.cache.partition_point(|(s, _)| *s < seq);
            if self.cache.get(at).is_some_and(|(s, _)| *s == seq) {
                return;
            }
            self.cache_bytes += payload.wire_len();
            self.cache.insert(at, (seq, payload));
        } else {
            self.cache_bytes += payload.wire_len();
            self.cache.push_back((seq, payload));
        }
        let c = &shared.config;
        while self.cache.len() > c.repair_cache
            || self.cache_bytes > c.repair_cache_bytes && self.cache.len() > 1
        {
            if let Some((_, old)) = self.cache.pop_front() {
                self.cache_bytes -= old.wire_len();
            }
        }
    }

    pub(super) fn forward<V>(
        &self,
        cx: &mut Context<'_, P, V, B>,
        except: Option<P>,
        seq: u64,
        payload: &B,
    ) {
        // The longest queue over all links bounds every child's: when even that is short, no
        // per-child lookup is needed (a relay's common case, and this runs for every frame).
        let any_full = cx.shared.own_backlog() > cx.shared.config.max_child_queue_bytes;
        for c in &self.children {
            if Some(*c) == except {
                continue;
            }
            let queued = if any_full {
                cx.shared.links.get(c).map_or(0, |l| l.queued_bytes)
            } else {
                0
            };
            if queued > cx.shared.config.max_child_queue_bytes {
                // Newer wins: a child whose link is full loses this frame, not later ones.
                cx.shared.stats.dropped_congested += 1;
                continue;
            }
            cx.shared.stats.frames_relayed += 1;
            cx.send(
                *c,
                Message::Frame {
                    topic: cx.topic,
                    seq,
                    payload: payload.clone(),
                },
            );
        }
    }

    pub(in crate::overlay) fn on_frame<V: Verifier<P, B>>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        from: P,
        seq: u64,
        payload: B,
    ) {
        if self.is_root {
            return;
        }
        if seq < self.next_seq && self.started || self.pending.contains_key(&seq) {
            cx.shared.stats.duplicates += 1;
            return;
        }
        if !cx
            .shared
            .verifier
            .verify_frame(&cx.topic, &self.root, seq, &payload)
        {
            cx.shared.stats.invalid += 1;
            return;
        }
        if !self.started {
            self.started = true;
            if seq < self.next_seq || self.next_seq == 0 {
                self.next_seq = seq;
            }
        }
        if Some(from) == self.parent() {
            self.last_frame_at = cx.now;
        }
        self.rate.note(payload.wire_len(), cx.now);
        self.remember(cx.shared, seq, payload.clone());
        self.forward(cx, Some(from), seq, &payload);
        if seq == self.next_seq {
            self.deliver(cx, seq, payload);
            self.next_seq += 1;
            self.drain(cx);
        } else if seq > self.next_seq {
            self.pending.insert(seq, payload);
            self.gap_since.get_or_insert(cx.now);
            if seq - self.next_seq > cx.shared.config.reorder_window {
                self.skip_to_first_pending(cx);
            }
        }
        if self.pending.is_empty() {
            self.gap_since = None;
        }
    }

    pub(super) fn deliver<V>(&self, cx: &mut Context<'_, P, V, B>, seq: u64, payload: B) {
        if self.subscribed {
            cx.shared.stats.frames_delivered += 1;
            cx.out.push(Action::Deliver {
                topic: cx.topic,
                seq,
                payload,
            });
        }
    }

    pub(super) fn drain<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        while let Some(payload) = self.pending.remove(&self.next_seq) {
            let seq = self.next_seq;
            self.deliver(cx, seq, payload);
            self.next_seq += 1;
        }
        if self.pending.is_empty() {
            self.gap_since = None;
        }
    }

    pub(super) fn skip_to_first_pending<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        if let Some((&first, _)) = self.pending.iter().next() {
            if first > self.next_seq {
                cx.shared.stats.skipped += first - self.next_seq;
                cx.out.push(Action::Skipped {
                    topic: cx.topic,
                    from: self.next_seq,
                    to: first - 1,
                });
                self.next_seq = first;
            }
            self.gap_since = None;
            self.drain(cx);
        }
    }

    pub(in crate::overlay) fn on_repair<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        child: P,
        from: u64,
        to: u64,
    ) {
        let start = self.cache.partition_point(|(s, _)| *s < from);
        // Children get up to 256 frames per request; anyone else (a grandchild whose parent
        // lacks them) a few.
        let most = if self.children.contains(&child) {
            256
        } else {
            MAX_FOREIGN_REPAIR as usize
        };
        for (seq, payload) in self
            .cache
            .iter()
            .skip(start)
            .take_while(|(s, _)| *s <= to)
            .take(most)
        {
            cx.shared.stats.repairs_sent += 1;
            cx.send(
                child,
                Message::Frame {
                    topic: cx.topic,
                    seq: *seq,
                    payload: payload.clone(),
                },
            );
        }
    }

    pub(super) fn check_gap<V>(&mut self, cx: &mut Context<'_, P, V, B>, parent: P) {
        let Some(since) = self.gap_since else { return };
        if cx.now.saturating_sub(since) > cx.shared.config.give_up_us {
            self.skip_to_first_pending(cx);
            return;
        }
        if cx.now.saturating_sub(self.last_repair_at) >= cx.shared.config.repair_delay_us
            && let Some((&first, _)) = self.pending.iter().next()
        {
            self.last_repair_at = cx.now;
            // The parent may not have what we miss (it joined after those frames): from the
            // sixth attempt on, every third asks the grandparent instead, for the first few
            // missing frames only. Not sooner, higher or more: under congestion or churn whole
            // subtrees miss frames at once, and repairs from farther up, past the tree's
            // fan-cx.out, flooded the upper uplinks (10,000 nodes at 25 Mbit/s: asking the root
            // took 10 % throttled from 99.9 % to 62 % delivered; asking the grandparent from
            // the second attempt took 5 %/min churn from 99.5 % to 64 %).
            let attempts = cx.now.saturating_sub(since) / cx.shared.config.repair_delay_us.max(1);
            let grandparent = self.path.len().checked_sub(2).map(|i| self.path[i]);
            let (target, last) = match grandparent {
                Some(g) if attempts >= 6 && attempts.is_multiple_of(3) => {
                    cx.out.push(Action::Connect(g));
                    (g, (first - 1).min(self.next_seq + MAX_FOREIGN_REPAIR - 1))
                }
                _ => (parent, first - 1),
            };
            cx.send(
                target,
                Message::Repair {
                    topic: cx.topic,
                    from: self.next_seq,
                    to: last,
                },
            );
        }
    }
}

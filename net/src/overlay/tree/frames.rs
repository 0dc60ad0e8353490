//! Frames through a tree node: sequencing at the root, verification, forwarding (newer wins),
//! in-order delivery, the repair cache and gap repair.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::{Context, TopicState};
use crate::entry::session;
use crate::overlay::OverlayConfig;
use crate::overlay::event::Action;
use crate::overlay::message::{Message, Payload, Verifier};
use crate::overlay::shared::Shared;
use crate::overlay::util::TokenBucket;

/// Where a node stands in the stream: the next seq (root: to publish; member: to deliver),
/// frames waiting for a gap to fill, and the timers of gap repair and parent silence.
#[derive(Debug)]
pub(super) struct Sequencing<B> {
    pub(super) next: u64,
    /// Out-of-order frames waiting for a gap to fill.
    pub(super) pending: BTreeMap<u64, B>,
    /// Since when a gap is open (frames pending).
    pub(super) gap_since: Option<u64>,
    pub(super) last_repair_at: u64,
    /// Whether a frame arrived yet (until then `next` is what the parent's accept said).
    pub(super) started: bool,
    /// When the parent last sent a frame (or we attached).
    pub(super) last_frame_at: u64,
    /// The newest session of the stream its owner vouched for (by the root's word or a
    /// verified frame): frames of older sessions are refused (`entry::session`).
    pub(super) session: u64,
}

impl<B> Default for Sequencing<B> {
    fn default() -> Self {
        Sequencing {
            next: 0,
            pending: BTreeMap::new(),
            gap_since: None,
            last_repair_at: 0,
            started: false,
            last_frame_at: 0,
            session: 0,
        }
    }
}

/// What a topic may still send for repairs (see `OverlayConfig::repair_frames_per_s`).
#[derive(Debug)]
pub(super) struct RepairBudget {
    pub(super) children: TokenBucket,
    pub(super) foreign: TokenBucket,
}

impl RepairBudget {
    pub(super) fn new(config: &OverlayConfig) -> Self {
        RepairBudget {
            children: TokenBucket::new(config.repair_frames_per_s, config.repair_frames_per_s),
            foreign: TokenBucket::new(
                config.foreign_repair_frames_per_s,
                config.foreign_repair_frames_per_s,
            ),
        }
    }
}

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
        if seq < self.seq.next {
            cx.shared.stats.invalid += 1;
            return;
        }
        self.seq.next = seq.saturating_add(1);
        self.rate.note(payload.wire_len(), cx.now);
        self.remember(cx.shared, seq, payload.clone());
        self.forward(cx, None, seq, &payload);
    }

    pub(super) fn remember<V>(&mut self, shared: &Shared<P, V>, seq: u64, payload: B) {
        let c = &shared.config;
        self.cache
            .insert(seq, payload, c.repair_cache, c.repair_cache_bytes);
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
        if !self.sends_us_frames(&from) {
            // Frames come down our path only: an outsider could otherwise replay old frames
            // ahead of live ones, and the live ones would look like duplicates.
            cx.shared.stats.unexpected += 1;
            return;
        }
        if session::session_of(seq) < self.seq.session {
            // An old session's frame, validly signed but replayed (or from a relay that has
            // not seen the new session yet): it is neither delivered nor a sign of life.
            cx.shared.stats.stale += 1;
            return;
        }
        if seq < self.seq.next && self.seq.started || self.seq.pending.contains_key(&seq) {
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
        self.enter_session(session::session_of(seq));
        if !self.seq.started {
            self.seq.started = true;
            if seq < self.seq.next || self.seq.next == 0 {
                self.seq.next = seq;
            }
        }
        if Some(from) == self.parent() {
            self.seq.last_frame_at = cx.now;
        }
        self.rate.note(payload.wire_len(), cx.now);
        self.remember(cx.shared, seq, payload.clone());
        self.forward(cx, Some(from), seq, &payload);
        if seq == self.seq.next {
            self.deliver(cx, seq, payload);
            self.seq.next = self.seq.next.saturating_add(1);
            self.drain(cx);
        } else if seq > self.seq.next {
            self.seq.pending.insert(seq, payload);
            self.seq.gap_since.get_or_insert(cx.now);
            if seq - self.seq.next > cx.shared.config.reorder_window {
                self.skip_to_first_pending(cx);
            }
        }
        if self.seq.pending.is_empty() {
            self.seq.gap_since = None;
        }
    }

    /// The owner vouched for `session` (a verified frame or the root's word): from a newer
    /// one on, the older session's frames still waiting are dropped and delivery continues at
    /// the new session's start.
    pub(super) fn enter_session(&mut self, session: u64) {
        if session <= self.seq.session {
            return;
        }
        self.seq.session = session;
        let first = session::first_seq(session);
        self.seq.pending = self.seq.pending.split_off(&first);
        if self.seq.next < first {
            // Before the first frame, 0 means "start at the first frame that comes".
            self.seq.next = if self.seq.started { first } else { 0 };
        }
        if self.seq.pending.is_empty() {
            self.seq.gap_since = None;
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
        while let Some(payload) = self.seq.pending.remove(&self.seq.next) {
            let seq = self.seq.next;
            self.deliver(cx, seq, payload);
            self.seq.next = self.seq.next.saturating_add(1);
        }
        if self.seq.pending.is_empty() {
            self.seq.gap_since = None;
        }
    }

    pub(super) fn skip_to_first_pending<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        if let Some((&first, _)) = self.seq.pending.iter().next() {
            if first > self.seq.next {
                cx.shared.stats.skipped =
                    (cx.shared.stats.skipped).saturating_add(first - self.seq.next);
                cx.out.push(Action::Skipped {
                    topic: cx.topic,
                    from: self.seq.next,
                    to: first - 1,
                });
                self.seq.next = first;
            }
            self.seq.gap_since = None;
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
        // Children get up to 256 frames per request; anyone else (a grandchild whose parent
        // lacks them) a few. Both within the topic's repair budgets: a 49-byte request must
        // not buy unbounded frames, whatever number of identities sends it.
        let (most, budget) = if self.children.contains(&child) {
            (256, &mut self.repair_budget.children)
        } else {
            (MAX_FOREIGN_REPAIR as usize, &mut self.repair_budget.foreign)
        };
        let wanted = self.cache.range(from, to, most).count();
        let granted = budget.take_up_to(wanted, cx.now);
        cx.shared.stats.repairs_refused += (wanted - granted) as u64;
        for (seq, payload) in self.cache.range(from, to, granted) {
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
        let Some(since) = self.seq.gap_since else {
            return;
        };
        if cx.now.saturating_sub(since) > cx.shared.config.give_up_us {
            self.skip_to_first_pending(cx);
            return;
        }
        if cx.now.saturating_sub(self.seq.last_repair_at) >= cx.shared.config.repair_delay_us
            && let Some((&first, _)) = self.seq.pending.iter().next()
        {
            self.seq.last_repair_at = cx.now;
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
                    (
                        g,
                        (first - 1).min(self.seq.next.saturating_add(MAX_FOREIGN_REPAIR - 1)),
                    )
                }
                _ => (parent, first - 1),
            };
            cx.send(
                target,
                Message::Repair {
                    topic: cx.topic,
                    from: self.seq.next,
                    to: last,
                },
            );
        }
    }
}

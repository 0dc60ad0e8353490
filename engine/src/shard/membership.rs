//! Who replicates a sharded store, as one peer knows it: each replicator's announced ranges and
//! whether it is ready (holds the data of its ranges), when it was last heard, and the two
//! placements every decision reads. Sans-IO: time is an input (microseconds).
//!
//! Two placements, because a newcomer's range counts only once it holds its data:
//! - **settled**: the ready replicators' ranges — who certainly holds an entry now;
//! - **target**: every live replicator's ranges — where entries are going.
//!
//! An entry's keepers are its holders in both. Writers push to the keepers, queries ask the
//! settled holders, and nobody prunes an entry it keeps. A replicator that leaves on purpose
//! announces `leaving` (out of the target, still settled: the new holders fetch from it) and
//! goes once every entry it holds is confirmed at its target holders; one that dies is dropped
//! after `dead_after` without being heard.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::placement::Placement;
use super::ring::{Point, Range, Ring};

/// Ranges one replicator may declare (more are ignored).
pub const MAX_RANGES_PER_PEER: usize = 16;

/// What a replicator announces about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    /// Its ranges (none: it is leaving, or only observes).
    pub ranges: Vec<Range>,
    /// It holds the data of its ranges.
    pub ready: bool,
    /// It is leaving: out of the target placement, still a settled holder of what it holds
    /// until that is confirmed at the target holders (then it goes).
    pub leaving: bool,
}

/// The placements made from one state of the membership (see the module docs).
#[derive(Clone, Debug)]
pub struct Views<P> {
    /// Ready replicators' ranges.
    pub settled: Placement<P>,
    /// Every live replicator's ranges.
    pub target: Placement<P>,
}

impl<P: Clone + Ord> Views<P> {
    /// The placements of these members (`(peer, announcement)`) for `replicas` replicas.
    pub fn of<'a>(
        members: impl IntoIterator<Item = (&'a P, &'a Announcement)> + Clone,
        replicas: usize,
    ) -> Views<P>
    where
        P: 'a,
    {
        let ranges = |ready_only: bool| {
            Ring::new(
                members
                    .clone()
                    .into_iter()
                    .filter(move |(_, a)| if ready_only { a.ready } else { !a.leaving })
                    .flat_map(|(p, a)| {
                        a.ranges
                            .iter()
                            .take(MAX_RANGES_PER_PEER)
                            .map(move |r| (p.clone(), *r))
                    }),
            )
        };
        Views {
            settled: Placement::new(&ranges(true), replicas),
            target: Placement::new(&ranges(false), replicas),
        }
    }

    /// The peers that keep an entry at `p`: its target holders, then its settled holders.
    pub fn keepers(&self, p: Point) -> Vec<P> {
        let mut out = self.target.holders(p).to_vec();
        for h in self.settled.holders(p) {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }
}

/// One peer's knowledge of a store's replicators (see the module docs).
#[derive(Debug)]
pub struct Membership<P> {
    me: P,
    mine: Announcement,
    members: BTreeMap<P, Member>,
    replicas: usize,
    dead_after_us: u64,
    max_members: usize,
    views: Option<Arc<Views<P>>>,
}

#[derive(Debug)]
struct Member {
    announced: Announcement,
    last_heard_us: u64,
}

/// Why an announcement was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The table is full (a newcomer waits until a member dies or leaves).
    #[error("membership table full")]
    Full,
}

impl<P: Clone + Ord> Membership<P> {
    /// `me`, announcing `mine`; entries kept by `replicas` replicas; a member not heard for
    /// `dead_after_us` is dropped; at most `max_members` others are remembered.
    pub fn new(
        me: P,
        mine: Announcement,
        replicas: usize,
        dead_after_us: u64,
        max_members: usize,
    ) -> Membership<P> {
        Membership {
            me,
            mine,
            members: BTreeMap::new(),
            replicas: replicas.max(1),
            dead_after_us,
            max_members,
            views: None,
        }
    }

    /// This peer.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// What this peer announces.
    pub fn mine(&self) -> &Announcement {
        &self.mine
    }

    /// Replicas per entry.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Changes what this peer announces; whether it changed.
    pub fn set_mine(&mut self, mine: Announcement) -> bool {
        if self.mine == mine {
            return false;
        }
        self.mine = mine;
        self.views = None;
        true
    }

    /// `peer` announced `announced` at `now_us`; whether the membership changed.
    pub fn announce(
        &mut self,
        peer: P,
        mut announced: Announcement,
        now_us: u64,
    ) -> Result<bool, MembershipError> {
        if peer == self.me {
            return Ok(false);
        }
        announced.ranges.truncate(MAX_RANGES_PER_PEER);
        match self.members.get_mut(&peer) {
            Some(m) => {
                m.last_heard_us = m.last_heard_us.max(now_us);
                if m.announced == announced {
                    return Ok(false);
                }
                m.announced = announced;
            }
            None => {
                if self.members.len() >= self.max_members {
                    return Err(MembershipError::Full);
                }
                self.members.insert(
                    peer,
                    Member {
                        announced,
                        last_heard_us: now_us,
                    },
                );
            }
        }
        self.views = None;
        Ok(true)
    }

    /// `peer` was heard from at `now_us` (any message counts as alive).
    pub fn heard(&mut self, peer: &P, now_us: u64) {
        if let Some(m) = self.members.get_mut(peer) {
            m.last_heard_us = m.last_heard_us.max(now_us);
        }
    }

    /// Drops members not heard for `dead_after`; the ones dropped.
    pub fn expire(&mut self, now_us: u64) -> Vec<P> {
        let dead: Vec<P> = self
            .members
            .iter()
            .filter(|(_, m)| now_us.saturating_sub(m.last_heard_us) > self.dead_after_us)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &dead {
            self.members.remove(p);
        }
        if !dead.is_empty() {
            self.views = None;
        }
        dead
    }

    /// Forgets `peer` (it said it left); whether it was a member.
    pub fn remove(&mut self, peer: &P) -> bool {
        let was = self.members.remove(peer).is_some();
        if was {
            self.views = None;
        }
        was
    }

    /// What `peer` announced, if it is a member.
    pub fn announced(&self, peer: &P) -> Option<&Announcement> {
        self.members.get(peer).map(|m| &m.announced)
    }

    /// Whether `peer` is a member (other than this peer).
    pub fn contains(&self, peer: &P) -> bool {
        self.members.contains_key(peer)
    }

    /// The other members and what they announced.
    pub fn members(&self) -> impl Iterator<Item = (&P, &Announcement)> {
        self.members.iter().map(|(p, m)| (p, &m.announced))
    }

    /// Members other than this peer.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no other member is known.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The placements of the current membership (this peer included), made once per change.
    pub fn views(&mut self) -> Arc<Views<P>> {
        if let Some(v) = &self.views {
            return v.clone();
        }
        let all = self
            .members
            .iter()
            .map(|(p, m)| (p, &m.announced))
            .chain(std::iter::once((&self.me, &self.mine)));
        let views = Arc::new(Views::of(all, self.replicas));
        self.views = Some(views.clone());
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(offset: u64, width: u64, ready: bool) -> Announcement {
        Announcement {
            ranges: vec![Range { offset, width }],
            ready,
            leaving: false,
        }
    }

    const Q: u64 = 1 << 62;

    #[test]
    fn a_newcomer_is_a_target_holder_but_not_settled_until_ready() {
        let mut m = Membership::new(0u8, ann(0, 2 * Q, true), 1, 3_000_000, 16);
        m.announce(1, ann(2 * Q, 2 * Q, true), 0).unwrap();
        let p = 3 * Q; // in peer 1's half
        assert_eq!(m.views().keepers(p), [1]);
        // Peer 2 joins at 3Q: the target moves, the settled stays.
        assert!(m.announce(2, ann(3 * Q, Q, false), 0).unwrap());
        let v = m.views();
        assert_eq!(v.target.holders(p), [2]);
        assert_eq!(v.settled.holders(p), [1]);
        assert_eq!(v.keepers(p), [2, 1]);
        // Ready: the settled moves too, peer 1 keeps it no more.
        assert!(m.announce(2, ann(3 * Q, Q, true), 10).unwrap());
        assert_eq!(m.views().keepers(p), [2]);
        assert!(
            !m.announce(2, ann(3 * Q, Q, true), 20).unwrap(),
            "no change"
        );
    }

    #[test]
    fn the_silent_are_dropped_and_the_table_is_bounded() {
        let mut m = Membership::new(0u8, ann(0, Q, true), 2, 1_000, 2);
        m.announce(1, ann(Q, Q, true), 0).unwrap();
        m.announce(2, ann(2 * Q, Q, true), 0).unwrap();
        assert_eq!(
            m.announce(3, ann(3 * Q, Q, true), 0),
            Err(MembershipError::Full)
        );
        m.heard(&1, 900);
        assert_eq!(m.expire(1_500), [2]);
        assert!(m.contains(&1) && !m.contains(&2));
        assert_eq!(m.views().keepers(2 * Q + 1).len(), 2);
        assert!(m.announce(3, ann(3 * Q, Q, true), 1_500).unwrap());
        assert!(m.remove(&3) && !m.remove(&3));
        assert!(m.views().keepers(3 * Q).iter().all(|p| [0, 1].contains(p)));
    }

    #[test]
    fn a_leaver_stays_settled_until_it_goes_and_ranges_are_capped() {
        let mut m = Membership::new(0u8, ann(0, Q, true), 1, 1_000, 8);
        m.announce(1, ann(Q, 3 * Q, true), 0).unwrap();
        let mut leaving = ann(Q, 3 * Q, true);
        leaving.leaving = true;
        m.announce(1, leaving, 1).unwrap();
        assert_eq!(m.views().target.holders(2 * Q), [0]);
        assert_eq!(
            m.views().keepers(2 * Q),
            [0, 1],
            "the new holder fetches from it"
        );
        m.announce(1, Announcement::default(), 1).unwrap();
        assert_eq!(m.views().keepers(2 * Q), [0]);
        let many = Announcement {
            ranges: (0..100)
                .map(|i| Range {
                    offset: i,
                    width: 1,
                })
                .collect(),
            ready: true,
            leaving: false,
        };
        m.announce(2, many, 2).unwrap();
        let (_, a) = m.members().find(|(p, _)| **p == 2).unwrap();
        assert_eq!(a.ranges.len(), MAX_RANGES_PER_PEER);
    }
}

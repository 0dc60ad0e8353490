//! The routing plane: direct messages along the cheapest learned route.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::OverlayConfig;
use super::event::Action;
use super::message::{Message, Payload, Verifier};
use super::shared::Shared;
use super::util::{BoundedSet, TokenBucket};

#[derive(Clone, Copy, Debug)]
struct Route<P> {
    next_hop: P,
    cost: u64,
    expires: u64,
}

/// Routes learned from the reverse path of messages, and the duplicate filter.
pub(super) struct Routing<P: Hash + Eq + Copy> {
    routes: HashMap<P, Route<P>>,
    seen: BoundedSet<(P, u64)>,
    max_routes: usize,
    ttl: u64,
    /// What may still be flooded (messages with no known route).
    floods: TokenBucket,
}

impl<P> Routing<P>
where
    P: Copy + Eq + Hash + Ord + Debug,
{
    pub(super) fn new(config: &OverlayConfig) -> Self {
        Routing {
            routes: HashMap::new(),
            seen: BoundedSet::new(config.dedup_cache),
            max_routes: config.max_routes,
            ttl: config.route_ttl_us,
            floods: TokenBucket::new(config.max_floods_per_s, config.max_floods_per_s),
        }
    }

    pub(super) fn forget(&mut self, peer: &P) {
        self.routes
            .retain(|dest, r| dest != peer && r.next_hop != *peer);
    }

    /// Whether any route leads to or through `peer`.
    pub(super) fn uses(&self, peer: &P) -> bool {
        self.routes
            .iter()
            .any(|(dest, r)| dest == peer || r.next_hop == *peer)
    }

    pub(super) fn expire(&mut self, now: u64) {
        self.routes.retain(|_, r| r.expires > now);
    }

    fn learn(&mut self, dest: P, next_hop: P, cost: u64, now: u64) {
        let fresh = Route {
            next_hop,
            cost,
            expires: now + self.ttl,
        };
        let full = self.routes.len() >= self.max_routes;
        match self.routes.get_mut(&dest) {
            Some(r) if r.expires > now && r.cost < cost && r.next_hop != next_hop => {}
            Some(r) => *r = fresh,
            None if !full => {
                self.routes.insert(dest, fresh);
            }
            None => {}
        }
    }

    /// The next hop towards `dest`, if a live route is known.
    fn next_hop(&self, dest: &P, now: u64) -> Option<P> {
        self.routes
            .get(dest)
            .filter(|r| r.expires > now)
            .map(|r| r.next_hop)
    }

    pub(super) fn send_direct<B: Payload, V>(
        &mut self,
        shared: &mut Shared<P, V>,
        now: u64,
        dest: P,
        id: u64,
        payload: B,
        out: &mut Vec<Action<P, B>>,
    ) {
        let me = shared.me;
        self.seen.insert((me, id));
        let message = Message::Direct {
            origin: me,
            dest,
            id,
            hops_left: shared.config.hop_limit,
            cost: 0,
            payload,
        };
        self.route(shared, now, None, dest, message, out);
    }

    pub(super) fn on_direct<B: Payload, V: Verifier<P, B>>(
        &mut self,
        shared: &mut Shared<P, V>,
        now: u64,
        from: P,
        message: Message<P, B>,
        out: &mut Vec<Action<P, B>>,
    ) {
        let Message::Direct {
            origin,
            dest,
            id,
            hops_left,
            cost,
            payload,
        } = message
        else {
            return;
        };
        if origin == shared.me || self.seen.contains(&(origin, id)) {
            shared.stats.direct_dropped += 1;
            return;
        }
        // Verify before anything changes: a forged message must not plant a reverse route or
        // a seen-id (which would make the real one look like a duplicate), nor travel on.
        if !shared.verifier.verify_direct(&origin, &dest, id, &payload) {
            shared.stats.invalid += 1;
            return;
        }
        self.seen.insert((origin, id));
        let cost = cost.saturating_add(shared.cost(&from));
        self.learn(origin, from, cost, now);
        if dest == shared.me {
            shared.stats.direct_delivered += 1;
            out.push(Action::DeliverDirect { origin, payload });
            return;
        }
        if hops_left == 0 {
            shared.stats.direct_dropped += 1;
            return;
        }
        let message = Message::Direct {
            origin,
            dest,
            id,
            hops_left: hops_left - 1,
            cost,
            payload,
        };
        self.route(shared, now, Some(from), dest, message, out);
    }

    /// Along the learned route, or to every neighbour but the sender when none is known (within
    /// the flood budget).
    fn route<B: Payload, V>(
        &mut self,
        shared: &mut Shared<P, V>,
        now: u64,
        from: Option<P>,
        dest: P,
        message: Message<P, B>,
        out: &mut Vec<Action<P, B>>,
    ) {
        let direct = shared.links.contains_key(&dest).then_some(dest);
        match direct
            .or_else(|| self.next_hop(&dest, now))
            .filter(|h| Some(*h) != from)
        {
            Some(hop) => {
                shared.stats.direct_forwarded += 1;
                out.push(Action::Send { to: hop, message });
            }
            None => {
                if self.floods.take_up_to(1, now) == 0 {
                    shared.stats.direct_dropped += 1;
                    return;
                }
                let mut neighbours: Vec<P> = shared
                    .links
                    .keys()
                    .copied()
                    .filter(|p| Some(*p) != from)
                    .collect();
                neighbours.sort();
                if neighbours.is_empty() {
                    shared.stats.direct_dropped += 1;
                }
                for n in neighbours {
                    shared.stats.direct_forwarded += 1;
                    out.push(Action::Send {
                        to: n,
                        message: message.clone(),
                    });
                }
            }
        }
    }
}

//! The tree sorting itself: a parent trades places with a child much nearer the grandparent; the
//! safeguards around it; and repairs that climb past a parent that cannot serve them.

use super::*;

pub(super) fn rtt_to(peer: u32, rtt_us: u64) -> Event<u32, P> {
    Event::LinkMeasured {
        peer,
        rtt_us: Some(rtt_us),
        queued_bytes: 0,
        delivery_rate: 0.0,
        lost: 0,
    }
}

pub(super) fn received(from: u32, message: Message<u32, P>) -> Event<u32, P> {
    Event::Received { from, message }
}

/// A redirect to one candidate, `peer`, from a node whose next seq is `next_seq`.
pub(super) fn redirect_to(peer: u32, next_seq: u64) -> Message<u32, P> {
    Message::Redirect {
        topic: T,
        candidates: vec![Candidate { peer, delay_us: 0 }],
        next_seq,
    }
}

pub(super) fn sends(out: &[Action<u32, P>]) -> Vec<(u32, &Message<u32, P>)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((*to, message)),
            _ => None,
        })
        .collect()
}

/// A chain root 0 → 1 → 2 → 3 → 4 (one child each) where node 3 is much nearer node 1 than
/// its parent 2 is: after the swap interval the two trade places — 0 → 1 → 3 → 2 → 4 — and
/// every node still gets every frame, in order, once. (Node 1 probes the root as its parent,
/// so the in-memory network's zero RTT makes it the nearest of all: it stays. Node 1 checks
/// 3's claim by its own probe — zero RTT here, against 50 ms to 2 — before giving the slot;
/// periodic probes are off so that its 50 ms to 2 stands.)
#[test]
fn a_child_near_the_root_trades_places_with_its_far_parent() {
    let mut net = Net::new(
        5,
        OverlayConfig {
            preempt_factor: 0.0,
            probe_interval_us: u64::MAX / 2,
            ..config(1)
        },
    );
    net.publish(1);
    net.subscribe_all();
    assert_eq!(net.nodes[3].parent(&T), Some(2));
    assert_eq!(net.nodes[4].parent(&T), Some(3));
    for (node, rtt) in [(2, 60_000), (3, 10_000), (4, 80_000)] {
        net.event(node, rtt_to(0, rtt));
    }
    net.event(1, rtt_to(2, 50_000));
    // 2 measured its parent 1 and its child 3: 55 ms from 2, 3 may be much nearer 1 than 2 is
    // (more than 20 % of 2's 50 ms to 1), so 2 proposes it, and 1 measures.
    net.event(2, rtt_to(1, 50_000));
    net.event(2, rtt_to(3, 55_000));
    net.publish(10);
    net.tick(100_000); // children report their distance from the root
    assert_eq!(net.nodes[3].parent(&T), Some(2), "not before the interval");
    for _ in 0..5 {
        net.tick(600_000);
        net.publish(5);
    }
    let parents: Vec<_> = (1..5).map(|i| net.nodes[i].parent(&T)).collect();
    assert_eq!(
        parents,
        vec![Some(0), Some(3), Some(1), Some(2)],
        "parents of 1..=4"
    );
    assert_eq!(
        net.nodes[4].depth(&T),
        Some(4),
        "3's child went below 2, at its depth"
    );
    assert_eq!(net.nodes[1].stats().swaps, 1);
    net.publish(20);
    for i in 1..5u32 {
        let got = &net.delivered[&i];
        assert_eq!(got, &(1..=55).collect::<Vec<u64>>(), "node {i}");
    }
    // 2 is not nearer than 3: no swap back.
    net.tick(1_100_000);
    assert_eq!(net.nodes[3].parent(&T), Some(1));
    assert_eq!(net.nodes[1].stats().swaps, 1);
}

/// The root with children 1 and 5; 1 gives its slot to its child 2.
fn root_after_a_hand_over() -> Overlay<u32, P, Check> {
    let mut root = Overlay::new(0, config(2), Check, 0);
    let mut out = Vec::new();
    root.handle(
        T0,
        Event::Command(Command::Publish {
            topic: T,
            seq: 0,
            payload: P {
                len: 10,
                valid: true,
            },
        }),
        &mut out,
    );
    for joiner in [1, 5] {
        root.handle(T0, received(joiner, join()), &mut out);
    }
    assert_eq!(root.children(&T), &[1, 5]);
    // The root measured 1 far and 2 near itself (it checks the claim before a swap).
    root.handle(T0, rtt_to(1, 40_000), &mut out);
    root.handle(T0, rtt_to(2, 5_000), &mut out);
    out.clear();
    let t = T0 + 2_000_000;
    root.handle(
        t,
        received(1, Message::Handover { topic: T, to: 2 }),
        &mut out,
    );
    let adopted = sends(&out).into_iter().any(|(to, m)| {
        to == 2 && matches!(m, Message::Accept { adoption: true, path, .. } if path == &[0])
    });
    assert!(adopted, "{out:?}");
    assert_eq!(
        root.children(&T),
        &[2, 5, 1],
        "2 in 1's slot; 1 served last until it moves"
    );
    root
}

pub(super) const T0: u64 = 1_000_000;

#[test]
fn a_refused_slot_goes_back_to_the_child_that_gave_it() {
    let mut root = root_after_a_hand_over();
    let mut out = Vec::new();
    root.handle(
        T0 + 2_100_000,
        received(2, Message::Leave { topic: T }),
        &mut out,
    );
    assert_eq!(root.children(&T), &[1, 5]);
}

#[test]
fn the_old_parent_is_kept_beyond_capacity_only_while_it_moves() {
    let mut root = root_after_a_hand_over();
    let mut out = Vec::new();
    root.handle(T0 + 2_100_000, Event::Tick, &mut out);
    assert_eq!(root.children(&T).len(), 3, "kept while it moves");
    root.handle(T0 + 3_500_000, Event::Tick, &mut out);
    assert_eq!(root.children(&T), &[2, 5], "shed once the swap stalled");
}

#[test]
fn a_node_gives_no_second_slot_while_one_swap_is_under_way() {
    let mut root = root_after_a_hand_over();
    let mut out = Vec::new();
    let again = Message::Handover { topic: T, to: 6 };
    root.handle(T0 + 2_200_000, received(5, again), &mut out);
    assert_eq!(root.children(&T), &[2, 5, 1]);
    assert!(sends(&out).is_empty(), "{out:?}");
}

/// An accept of `path` (root … sender), plain or an adoption.
pub(super) fn accept(path: Vec<u32>, next_seq: u64, adoption: bool) -> Message<u32, P> {
    Message::Accept {
        topic: T,
        path,
        next_seq,
        rate: 0,
        delay_us: 0,
        adoption,
    }
}

pub(super) fn join() -> Message<u32, P> {
    Message::Join {
        topic: T,
        root: 0,
        rtt_us: 0,
    }
}

/// Node `me` (fan-out `fanout`) attached at the end of `path`, taking frames from `next_seq`:
/// it subscribes, answers the root's probe, is sent by the root to the parent (if not the
/// root itself) and accepted there — an accept counts only from the node asked.
pub(super) fn attached(
    me: u32,
    fanout: usize,
    path: Vec<u32>,
    next_seq: u64,
) -> Overlay<u32, P, Check> {
    let mut n = Overlay::new(me, config(fanout), Check, u64::from(me));
    let mut out = Vec::new();
    n.handle(
        T0,
        Event::Command(Command::Subscribe { topic: T, root: 0 }),
        &mut out,
    );
    answer_probes(&mut n, T0, &out);
    let parent = *path.last().unwrap_or(&0);
    if parent != 0 {
        let away = redirect_to(parent, 0);
        n.handle(T0, received(0, away), &mut out);
    }
    n.handle(
        T0,
        received(parent, accept(path, next_seq, false)),
        &mut out,
    );
    assert_eq!(n.parent(&T), Some(parent));
    n
}

/// Answers every probe in `out` at once (an RTT of zero).
pub(super) fn answer_probes(n: &mut Overlay<u32, P, Check>, now: u64, out: &[Action<u32, P>]) {
    let probes: Vec<(u32, u64)> = sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Probe { nonce } => Some((to, *nonce)),
            _ => None,
        })
        .collect();
    let mut more = Vec::new();
    for (to, nonce) in probes {
        n.handle(now, received(to, Message::ProbeAck { nonce }), &mut more);
    }
}

/// Node 1 under the root, with child 2.
pub(super) fn relay() -> Overlay<u32, P, Check> {
    let mut n = attached(1, 2, vec![0], 0);
    let mut out = Vec::new();
    n.handle(T0, received(2, join()), &mut out);
    assert_eq!((n.parent(&T), n.children(&T)), (Some(0), &[2][..]));
    n
}

#[test]
fn a_child_cannot_make_its_parent_leave() {
    let mut n = relay();
    let mut out = Vec::new();
    n.handle(
        T0 + 10,
        received(2, Message::Handover { topic: T, to: 2 }),
        &mut out,
    );
    assert_eq!((n.parent(&T), n.children(&T)), (Some(0), &[2][..]));
    assert!(sends(&out).is_empty(), "{out:?}");
}

#[test]
fn an_adoption_takes_the_parents_place_and_its_children_follow_the_old_parent() {
    // Node 2 under 1 under 0; 0 adopts 2, and 1 joins 2 afterwards.
    let mut n = attached(2, 1, vec![0, 1], 0);
    let mut out = Vec::new();
    n.handle(T0, received(3, join()), &mut out);
    assert_eq!(n.children(&T), &[3]);
    // A plain accept from the grandparent (a late path update) is not an adoption.
    out.clear();
    let t = T0 + 2_000_000;
    n.handle(t, received(0, accept(vec![0], 0, false)), &mut out);
    assert_eq!(n.parent(&T), Some(1));
    out.clear();
    n.handle(t, received(0, accept(vec![0], 0, true)), &mut out);
    assert_eq!(n.parent(&T), Some(0));
    assert!(
        sends(&out).contains(&(1, &Message::Handover { topic: T, to: 2 })),
        "tells the old parent: {out:?}"
    );
    // The old parent joins (admitted though we are full); our child goes below it.
    out.clear();
    n.handle(t + 50_000, received(1, join()), &mut out);
    assert_eq!(n.children(&T), &[1]);
    let to_three: Vec<_> = sends(&out).into_iter().filter(|(to, _)| *to == 3).collect();
    assert!(
        matches!(to_three[..], [(3, Message::Redirect { candidates, .. })] if candidates[0].peer == 1),
        "{out:?}"
    );
}

#[test]
fn a_stale_path_update_from_the_parent_being_left_does_not_reattach() {
    let mut n = relay();
    let mut out = Vec::new();
    let away = redirect_to(7, 0);
    n.handle(T0 + 10, received(0, away), &mut out);
    assert_eq!(n.parent(&T), None, "joining 7");
    let stale = accept(vec![], 0, false);
    n.handle(T0 + 20, received(0, stale), &mut out);
    assert_eq!(n.parent(&T), None, "still joining 7");
}

#[test]
fn repairs_go_past_a_parent_that_cannot_serve_them() {
    let mut n = attached(9, 2, vec![0, 1, 2], 5);
    let mut out = Vec::new();
    for seq in [5, 8] {
        let frame = Message::Frame {
            topic: T,
            seq,
            payload: P {
                len: 10,
                valid: true,
            },
        };
        n.handle(T0, received(2, frame), &mut out);
    }
    let mut asked = Vec::new();
    for step in 1..=9 {
        out.clear();
        n.handle(T0 + step * 150_000, Event::Tick, &mut out);
        asked.extend(sends(&out).into_iter().filter_map(|(to, m)| {
            matches!(m, Message::Repair { from: 6, to: 7, .. }).then_some(to)
        }));
    }
    assert_eq!(
        asked,
        vec![2, 2, 2, 2, 2, 1, 2, 2, 1],
        "the parent, then from the sixth attempt the grandparent every third time"
    );
}

/// A node serves its children's repairs in full but anyone else (a grandchild whose parent
/// lacks the frames, or a peer asking in a loop) at most a few frames per request.
#[test]
fn repairs_for_non_children_are_bounded() {
    let mut n = relay();
    let mut out = Vec::new();
    for seq in 0..20 {
        let frame = Message::Frame {
            topic: T,
            seq,
            payload: P {
                len: 10,
                valid: true,
            },
        };
        n.handle(T0, received(0, frame), &mut out);
    }
    let frames_to = |out: &[Action<u32, P>], peer: u32| {
        sends(out)
            .iter()
            .filter(|(to, m)| *to == peer && matches!(m, Message::Frame { .. }))
            .count()
    };
    let repair = || Message::Repair {
        topic: T,
        from: 0,
        to: 19,
    };
    out.clear();
    n.handle(T0 + 10, received(2, repair()), &mut out);
    assert_eq!(frames_to(&out, 2), 20, "a child gets the whole range");
    out.clear();
    n.handle(T0 + 10, received(9, repair()), &mut out);
    assert_eq!(frames_to(&out, 9), 8, "a stranger gets a few");
}

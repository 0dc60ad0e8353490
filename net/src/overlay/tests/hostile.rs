//! Attacks on the overlay core by one peer or a few cheap identities, each shown not to work:
//! the state changes only for messages from the peers it expects, and for what this node
//! measured itself.

use super::swap::{
    T0, accept, answer_probes, attached, join, received, redirect_to, rtt_to, sends,
};
use super::*;
use crate::entry::session;

/// A subscriber asking the root (it has measured the root first).
fn joiner() -> Overlay<u32, P, Check> {
    joiner_with(config(4))
}

/// [`joiner`] with its own settings.
fn joiner_with(config: OverlayConfig) -> Overlay<u32, P, Check> {
    let mut n = Overlay::new(5, config, Check, 5);
    let mut out = Vec::new();
    n.handle(
        T0,
        Event::Command(Command::Subscribe { topic: T, root: 0 }),
        &mut out,
    );
    answer_probes(&mut n, T0, &out);
    n
}

/// The local command to publish frame `seq` of `len` bytes on `topic`.
fn publish(topic: Topic, seq: u64, len: usize) -> Event<u32, P> {
    Event::Command(Command::Publish {
        topic,
        seq,
        payload: P { len, valid: true },
    })
}

fn accept_with_rate(path: Vec<u32>, rate: u64) -> Message<u32, P> {
    Message::Accept {
        topic: T,
        path,
        next_seq: 0,
        rate,
        delay_us: 0,
        adoption: false,
    }
}

#[test]
fn an_accept_from_a_node_not_asked_is_refused_and_the_root_keeps_us() {
    let mut n = joiner();
    let mut out = Vec::new();
    n.handle(T0 + 10, received(9, accept(vec![0, 9], 0, false)), &mut out);
    assert_eq!(n.parent(&T), None, "the stranger is not our parent");
    let sent = sends(&out);
    assert_eq!(sent, [(9, &Message::Leave { topic: T })], "{out:?}");
    // The root's own answer still counts.
    n.handle(T0 + 20, received(0, accept(vec![0], 0, false)), &mut out);
    assert_eq!(n.parent(&T), Some(0));
}

#[test]
fn an_accept_whose_path_does_not_run_from_the_root_to_its_sender_is_refused() {
    for path in [vec![], vec![7], vec![7, 0], vec![0, 7]] {
        let mut n = joiner();
        let mut out = Vec::new();
        n.handle(
            T0 + 10,
            received(0, accept(path.clone(), 0, false)),
            &mut out,
        );
        assert_eq!(n.parent(&T), None, "path {path:?}");
    }
}

/// A root with four children, then a stranger's accept claiming an enormous stream rate: the
/// root takes no rate from it and sheds no one.
#[test]
fn a_strangers_accept_sets_no_rate() {
    let mut root = Overlay::new(0, config(4), Check, 0);
    let mut out = Vec::new();
    root.handle(T0, publish(T, 0, 1000), &mut out);
    for child in 1..=4 {
        root.handle(T0, received(child, join()), &mut out);
    }
    assert_eq!(root.children(&T), &[1, 2, 3, 4]);
    root.handle(
        T0 + 10,
        received(9, accept_with_rate(vec![0, 9], u64::MAX)),
        &mut out,
    );
    root.handle(T0 + 200_000, Event::Tick, &mut out);
    root.handle(T0 + 400_000, Event::Tick, &mut out);
    assert_eq!(root.children(&T), &[1, 2, 3, 4], "no one shed");
}

fn frame_from(from: u32, seq: u64) -> Event<u32, P> {
    received(
        from,
        Message::Frame {
            topic: T,
            seq,
            payload: P {
                len: 100,
                valid: true,
            },
        },
    )
}

fn delivered(out: &[Action<u32, P>]) -> Vec<u64> {
    out.iter()
        .filter_map(|a| match a {
            Action::Deliver { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// Validly signed old frames injected by a neighbour that is not on our path are dropped
/// before they can make the live ones look like duplicates.
#[test]
fn frames_from_outside_our_path_are_dropped_and_the_live_ones_still_count() {
    let mut n = attached(2, 2, vec![0, 1], 0);
    let mut out = Vec::new();
    for seq in 0..3 {
        n.handle(T0 + 10, frame_from(9, seq), &mut out);
    }
    assert!(delivered(&out).is_empty(), "{out:?}");
    assert_eq!(n.stats().unexpected, 3);
    for seq in 0..3 {
        n.handle(T0 + 20, frame_from(1, seq), &mut out);
    }
    assert_eq!(delivered(&out), [0, 1, 2]);
    assert_eq!(n.stats().duplicates, 0);
    // The grandparent (a repair our parent could not serve) is on our path.
    n.handle(T0 + 30, frame_from(0, 3), &mut out);
    assert_eq!(delivered(&out), [0, 1, 2, 3]);
}

/// An RTT is what this node measured: an answer counts only if it echoes the nonce of a probe
/// it sent to that very peer, and only once. Forged, misdirected and replayed answers (a
/// Sybil making itself look near) change nothing.
#[test]
fn only_an_answer_to_our_own_probe_measures_a_link() {
    let mut n = Overlay::new(5, config(4), Check, 5);
    let mut out = Vec::new();
    n.handle(T0, Event::LinkUp(7), &mut out);
    n.handle(T0, Event::LinkUp(8), &mut out);
    let nonce_to = |peer| {
        sends(&out)
            .into_iter()
            .find_map(|(to, m)| match m {
                Message::Probe { nonce } if to == peer => Some(*nonce),
                _ => None,
            })
            .unwrap()
    };
    let (to_7, to_8) = (nonce_to(7), nonce_to(8));
    let ack = |nonce| Message::ProbeAck { nonce };
    let mut more = Vec::new();
    n.handle(T0 + 1, received(7, ack(to_7 ^ 1)), &mut more);
    n.handle(T0 + 1, received(7, ack(to_8)), &mut more);
    assert_eq!(
        n.link(&7).map(|l| l.srtt_us),
        Some(0),
        "forged or not its nonce"
    );
    assert_eq!(n.stats().unexpected, 2);
    n.handle(T0 + 30_000, received(7, ack(to_7)), &mut more);
    assert_eq!(n.link(&7).map(|l| l.srtt_us), Some(30_000));
    n.handle(T0 + 30_001, received(7, ack(to_7)), &mut more);
    assert_eq!(
        n.link(&7).map(|l| l.last_rtt_us),
        Some(30_000),
        "a replayed answer is not a second sample"
    );
    assert_eq!(n.link(&8).map(|l| l.srtt_us), Some(0));
}

/// A Sybil claiming a 1 µs RTT in its join does not preempt the root's farthest child: the
/// root places joiners by its own measurement (here 50 ms), and the same join from a joiner
/// it measured at 1 ms does.
#[test]
fn a_joiner_claiming_to_be_near_preempts_no_one() {
    let full_root = |measured_us: u64| {
        let mut root = Overlay::new(0, config(2), Check, 0);
        let mut out = Vec::new();
        for (peer, rtt) in [(1, 40_000), (2, 20_000), (8, measured_us)] {
            root.handle(
                T0,
                Event::LinkMeasured {
                    peer,
                    rtt_us: Some(rtt),
                    queued_bytes: 0,
                    delivery_rate: 0.0,
                    lost: 0,
                },
                &mut out,
            );
        }
        for child in [1, 2] {
            root.handle(T0, received(child, join()), &mut out);
        }
        let lie = Message::Join {
            topic: T,
            root: 0,
            rtt_us: 1,
        };
        root.handle(T0 + 200_000, received(8, lie), &mut out);
        root.children(&T).to_vec()
    };
    assert_eq!(full_root(50_000), [1, 2], "the liar is redirected");
    assert_eq!(
        full_root(1_000),
        [2, 8],
        "a joiner measured near takes child 1's place"
    );
}

/// A child claiming to be near the root (its parent passes the claim on in a `Handover`) is
/// not handed its parent's slot on its word: the grandparent measures it first, and swaps
/// only if it is much nearer by that measurement.
#[test]
fn a_child_claiming_to_be_near_the_root_takes_no_slot_on_its_word() {
    let run = |measured_us: u64| {
        let mut root = Overlay::new(0, config(2), Check, 0);
        let mut out = Vec::new();
        root.handle(T0, publish(T, 0, 10), &mut out);
        for child in [1, 5] {
            root.handle(T0, received(child, join()), &mut out);
        }
        root.handle(T0, rtt_to(1, 40_000), &mut out);
        let handover = || received(1, Message::Handover { topic: T, to: 2 });
        out.clear();
        root.handle(T0 + 2_000_000, handover(), &mut out);
        assert_eq!(root.children(&T), &[1, 5], "not measured: no swap yet");
        let nonce = sends(&out)
            .into_iter()
            .find_map(|(to, m)| match m {
                Message::Probe { nonce } if to == 2 => Some(*nonce),
                _ => None,
            })
            .expect("the grandparent measures the claimant");
        root.handle(
            T0 + 2_000_000 + measured_us,
            received(2, Message::ProbeAck { nonce }),
            &mut out,
        );
        root.handle(T0 + 3_500_000, handover(), &mut out);
        root.children(&T).to_vec()
    };
    assert_eq!(run(60_000), [1, 5], "farther than its parent: refused");
    assert_eq!(run(5_000), [2, 5, 1], "much nearer: 2 takes 1's slot");
}

fn topic(n: u8) -> Topic {
    Topic([n; 32])
}

/// A peer naming us as the root of made-up topics fills at most half the topic table, cannot
/// keep our own publishes and subscribes out, and its idle topics are given up.
#[test]
fn joins_for_made_up_topics_cannot_crowd_out_our_own() {
    let mut n = Overlay::new(0, config(4), Check, 0);
    let mut out = Vec::new();
    for t in 1..=8u8 {
        let j = Message::Join {
            topic: topic(t),
            root: 0,
            rtt_us: 0,
        };
        n.handle(T0, received(9, j), &mut out);
    }
    let opened: Vec<u8> = (1..=8u8)
        .filter(|t| n.depth(&topic(*t)).is_some())
        .collect();
    assert_eq!(opened, [1, 2, 3, 4], "half of the 8 slots");
    // Our own topics still fit — and once the table is full, a peer's topic makes way.
    for t in 20..24u8 {
        n.handle(T0, publish(topic(t), 0, 10), &mut out);
    }
    assert!((20..24u8).all(|t| n.depth(&topic(t)).is_some()), "ours fit");
    out.clear();
    n.handle(
        T0,
        Event::Command(Command::Subscribe {
            topic: topic(30),
            root: 7,
        }),
        &mut out,
    );
    assert!(
        sends(&out).iter().any(|(to, _)| *to == 7),
        "the subscription starts joining: {out:?}"
    );
    let peers_left = (1..=4u8).filter(|t| n.depth(&topic(*t)).is_some()).count();
    assert_eq!(peers_left, 3, "one of the peer's topics made way");
    // Its viewer leaves, and nobody joins again: they are given up.
    for t in 1..=4u8 {
        n.handle(
            T0,
            received(9, Message::Leave { topic: topic(t) }),
            &mut out,
        );
    }
    n.handle(T0 + 10_000_000, Event::Tick, &mut out);
    let peers_left = (1..=4u8).filter(|t| n.depth(&topic(*t)).is_some()).count();
    assert_eq!(peers_left, 0);
    assert!(
        (20..24u8).all(|t| n.depth(&topic(t)).is_some()),
        "ours stay"
    );
}

/// Repairs cost the asker 49 bytes and the server whole frames: whatever number of
/// identities asks, a topic serves non-children at most `foreign_repair_frames_per_s`, and
/// its children within their own budget.
#[test]
fn repair_requests_cannot_amplify_without_bound() {
    let mut root = Overlay::new(0, config(4), Check, 0);
    let mut out = Vec::new();
    root.handle(T0, received(1, join()), &mut out);
    for seq in 0..100 {
        root.handle(T0, publish(T, seq, 1000), &mut out);
    }
    let repaired = |root: &mut Overlay<u32, P, Check>, asker: u32, now: u64| {
        let mut out = Vec::new();
        let ask = Message::Repair {
            topic: T,
            from: 0,
            to: 99,
        };
        root.handle(now, received(asker, ask), &mut out);
        sends(&out)
            .iter()
            .filter(|(to, m)| *to == asker && matches!(m, Message::Frame { .. }))
            .count()
    };
    // A thousand strangers, 8 frames each at most, 64 in all.
    let foreign: usize = (100..1_100)
        .map(|asker| repaired(&mut root, asker, T0))
        .sum();
    assert_eq!(foreign, 64);
    assert_eq!(root.stats().repairs_refused, 1_000 * 8 - 64);
    // A second later, 64 more.
    let later: usize = (100..1_100)
        .map(|a| repaired(&mut root, a, T0 + 1_000_000))
        .sum();
    assert_eq!(later, 64);
    // The child is served from its own budget: all 100 frames, ten times over, then no more.
    let child: Vec<usize> = (0..12)
        .map(|_| repaired(&mut root, 1, T0 + 1_000_000))
        .collect();
    assert_eq!(&child[..10], &[100; 10]);
    assert_eq!(child[10..].iter().sum::<usize>(), 24, "1,024 in all");
}

/// A forged direct message changes nothing before it fails verification: no seen-id (the real
/// message with that id still gets through) and no reverse route through its sender.
#[test]
fn a_forged_direct_message_plants_neither_a_seen_id_nor_a_route() {
    let mut n = Overlay::new(5, config(4), Check, 5);
    let direct = |valid: bool| Message::Direct {
        origin: 7,
        dest: 5,
        id: 42,
        hops_left: 4,
        cost: 0,
        payload: P { len: 10, valid },
    };
    let mut out = Vec::new();
    n.handle(T0, received(9, direct(false)), &mut out);
    assert_eq!(n.stats().invalid, 1);
    n.handle(T0 + 10, received(8, direct(true)), &mut out);
    let delivered: Vec<u32> = out
        .iter()
        .filter_map(|a| match a {
            Action::DeliverDirect { origin, .. } => Some(*origin),
            _ => None,
        })
        .collect();
    assert_eq!(
        delivered,
        [7],
        "the real message is not taken for a duplicate"
    );
    // Replies to 7 go back the way the real message came (8), not through the forger (9).
    out.clear();
    n.handle(
        T0 + 20,
        Event::Command(Command::SendDirect {
            dest: 7,
            id: 1,
            payload: P {
                len: 10,
                valid: true,
            },
        }),
        &mut out,
    );
    let via: Vec<u32> = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, Message::Direct { .. }))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(via, [8]);
}

/// Messages to destinations nobody knows are flooded to every neighbour: at most
/// `max_floods_per_s` of them, however many (free) origins send them.
#[test]
fn floods_to_unknown_destinations_are_bounded() {
    let mut n = Overlay::new(5, config(4), Check, 5);
    let mut out = Vec::new();
    for peer in 10..20 {
        n.handle(T0, Event::LinkUp(peer), &mut out);
    }
    out.clear();
    for origin in 1_000..2_000u32 {
        let m = Message::Direct {
            origin,
            dest: 99,
            id: 1,
            hops_left: 4,
            cost: 0,
            payload: P {
                len: 10,
                valid: true,
            },
        };
        n.handle(T0, received(10, m), &mut out);
    }
    let sent = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, Message::Direct { .. }))
        .count();
    assert_eq!(sent, 64 * 9, "64 floods to the 9 other neighbours");
}

/// A parent that accepts and then sends nothing: once the root has said the stream is live
/// (its redirect's `next_seq`), the silence counts and the node moves on, avoiding it. Before
/// the stream starts, waiting for the first frame is normal and the node stays.
#[test]
fn a_parent_that_accepts_and_starves_us_is_left_once_the_stream_is_live() {
    let run = |root_next_seq: u64| {
        let mut n = joiner();
        let mut out = Vec::new();
        let to_sybil = redirect_to(9, root_next_seq);
        n.handle(T0 + 10, received(0, to_sybil), &mut out);
        n.handle(T0 + 20, received(9, accept(vec![0, 9], 0, false)), &mut out);
        assert_eq!(n.parent(&T), Some(9));
        for step in 1..=60 {
            n.handle(T0 + 20 + step * 100_000, Event::Tick, &mut out);
        }
        (n.parent(&T), n.stats().left_congested)
    };
    assert_eq!(run(0), (Some(9), 0), "no frame yet anywhere: it waits");
    let (parent, left) = run(50);
    assert_eq!(left, 1, "the stream is live and 9 sends nothing: it leaves");
    assert_ne!(parent, Some(9));
}

/// A handful of identities on one network cannot fill a node's children: the third from one
/// network goes on to the node's children, while a joiner from elsewhere is admitted.
#[test]
fn identities_from_one_network_cannot_fill_the_children() {
    let mut root = Overlay::new(0, config(8), Check, 0);
    let mut out = Vec::new();
    for (peer, network) in [(1, 77), (2, 77), (3, 77), (4, 5)] {
        root.handle(T0, Event::LinkUp(peer), &mut out);
        root.handle(T0, Event::LinkNetwork { peer, network }, &mut out);
        root.handle(T0, received(peer, join()), &mut out);
    }
    assert_eq!(root.children(&T), &[1, 2, 4]);
    let to_3: Vec<_> = sends(&out).into_iter().filter(|(to, _)| *to == 3).collect();
    assert!(
        to_3.iter()
            .any(|(_, m)| matches!(m, Message::Redirect { .. })),
        "{to_3:?}"
    );
    // A peer whose network is unknown (loopback, the simulator) is not counted.
    root.handle(T0, received(10, join()), &mut out);
    assert_eq!(root.children(&T), &[1, 2, 4, 10]);
}

/// Silence is judged against the stream's own pace (as the parent's accept states it, then
/// as measured): a stream with a frame every 4 s is not a silent parent after 1 s, while a
/// parent of a 30 fps stream that stops for 1.5 s is.
#[test]
fn silence_is_measured_in_frame_intervals_of_the_stream() {
    let left_after = |every_us: u64, gap_us: u64| {
        // (No periodic probes: unanswered, they would read as an inflated RTT.)
        let mut n = joiner_with(OverlayConfig {
            probe_interval_us: u64::MAX / 2,
            ..config(4)
        });
        let mut out = Vec::new();
        let rate = 100 * 1_000_000 / every_us;
        n.handle(
            T0 + 5,
            received(0, accept_with_rate(vec![0], rate)),
            &mut out,
        );
        assert_eq!(n.parent(&T), Some(0));
        let mut now = T0 + 10;
        let mut seq = 0;
        // The stream, long enough for its rate to be measured…
        while now < T0 + 20_000_000 {
            n.handle(now, frame_from(0, seq), &mut out);
            seq += 1;
            let next = now + every_us;
            while now < next {
                now += 100_000;
                n.handle(now, Event::Tick, &mut out);
            }
        }
        // …then a pause of `gap_us`, ticking.
        let until = now + gap_us;
        while now < until {
            now += 100_000;
            n.handle(now, Event::Tick, &mut out);
        }
        n.stats().left_congested
    };
    assert_eq!(left_after(4_000_000, 3_000_000), 0, "a slow stream's pause");
    assert_eq!(left_after(33_333, 1_500_000), 1, "a fast stream stopped");
}

/// Whether a node asks for a swap is its own measurements' choice: a child's report (here a
/// claim of 1 µs to the root, or an honest 500 ms) only orders the children it may ask for.
/// Node 2's parent is 10 ms away; a child 1 ms from it cannot be much nearer that parent and
/// is never asked for, a child 30 ms away may be and is, whatever it claims (the grandparent
/// then measures) — twice, and then not again for a while when nothing came of it.
#[test]
fn a_swap_is_asked_for_by_what_the_parent_measured_not_by_what_the_child_claims() {
    let asks = |to_child_us: u64, claim_us: u64| {
        // Node 2, 40 ms from the root (its probe answered after 40 ms), sent to 1, accepted.
        let mut n = Overlay::new(2, config(2), Check, 2);
        let mut out = Vec::new();
        n.handle(
            T0,
            Event::Command(Command::Subscribe { topic: T, root: 0 }),
            &mut out,
        );
        answer_probes(&mut n, T0 + 40_000, &out);
        let to_1 = redirect_to(1, 0);
        n.handle(T0 + 40_000, received(0, to_1), &mut out);
        n.handle(
            T0 + 40_000,
            received(1, accept(vec![0, 1], 0, false)),
            &mut out,
        );
        assert_eq!(n.parent(&T), Some(1));
        n.handle(T0, received(3, join()), &mut out);
        n.handle(T0, rtt_to(3, to_child_us), &mut out);
        let report = Message::Report {
            topic: T,
            descendants: 0,
            root_rtt_us: claim_us,
        };
        n.handle(T0 + 10, received(3, report), &mut out);
        let mut asked = 0;
        for step in 1..=60 {
            let now = T0 + step * 100_000;
            out.clear();
            n.handle(now, Event::Tick, &mut out);
            asked += sends(&out)
                .iter()
                .filter(|(to, m)| *to == 1 && matches!(m, Message::Handover { .. }))
                .count();
            // The parent answers its probes after 10 ms (a calm link); the child's stay
            // unanswered so that its measured 1 or 30 ms stands.
            let to_parent: Vec<u64> = sends(&out)
                .iter()
                .filter_map(|(to, m)| match m {
                    Message::Probe { nonce } if *to == 1 => Some(*nonce),
                    _ => None,
                })
                .collect();
            for nonce in to_parent {
                n.handle(
                    now + 10_000,
                    received(1, Message::ProbeAck { nonce }),
                    &mut Vec::new(),
                );
            }
        }
        asked
    };
    assert_eq!(asks(1_000, 1), 0, "too near us: a lie does not help");
    assert_eq!(asks(1_000, 500_000), 0);
    assert_eq!(asks(30_000, 1), 2, "far enough: asked for twice in 6 s…");
    assert_eq!(asks(30_000, 500_000), 2, "…whatever it claims");
}

/// A joiner the root redirected to node 1, telling it the stream is in session `live`.
fn redirected_to_1(live: u64) -> Overlay<u32, P, Check> {
    let mut n = joiner();
    let mut out = Vec::new();
    let away = redirect_to(1, session::first_seq(live) + 50);
    n.handle(T0, received(0, away), &mut out);
    n.handle(T0, received(1, accept(vec![0, 1], 0, false)), &mut out);
    assert_eq!(n.parent(&T), Some(1));
    n
}

/// A publisher that lost its log starts a new session above its old seqs. Its old frames,
/// still validly signed, replayed by our own parent (a Sybil on the path), are refused: not
/// delivered, and not taken as a sign of life, so the silent parent is left.
#[test]
fn an_old_sessions_frames_are_refused_even_from_our_parent_and_do_not_keep_it() {
    let (old, live) = (1_000, 1_003);
    let mut n = redirected_to_1(live);
    let mut out = Vec::new();
    let mut t = T0;
    // Far ahead of the live session's index, so they would make its frames look like duplicates.
    for i in 0..40 {
        t += 50_000;
        n.handle(
            t,
            frame_from(1, session::first_seq(old) + 900_000 + i),
            &mut out,
        );
        n.handle(t, Event::Tick, &mut out);
    }
    assert!(delivered(&out).is_empty(), "{out:?}");
    assert_eq!(n.stats().stale, 40);
    assert_eq!(n.stats().left_congested, 1, "the silent parent is left");
    assert!(
        sends(&out)
            .iter()
            .any(|(to, m)| *to != 1 && matches!(m, Message::Join { .. })),
        "{out:?}"
    );
}

/// Subscribers that stay through a publisher's restart go on with its new session at once;
/// what they count as skipped is the new session's frames they missed, not the seq distance.
#[test]
fn a_new_session_is_delivered_at_once_and_old_ones_are_refused_from_then_on() {
    let mut n = attached(2, 2, vec![0], 0);
    let mut out = Vec::new();
    let old = session::first_seq(1_000);
    for i in 0..3 {
        n.handle(T0 + 10, frame_from(0, old + i), &mut out);
    }
    let new = session::first_seq(1_001);
    for i in 0..2 {
        n.handle(T0 + 20, frame_from(0, new + i), &mut out);
    }
    assert_eq!(delivered(&out), [old, old + 1, old + 2, new, new + 1]);
    assert_eq!(n.stats().skipped, 0);
    n.handle(T0 + 30, frame_from(0, old + 3), &mut out);
    assert_eq!(n.stats().stale, 1);
    // A newer session that arrives from its fourth frame on: three missed, not 2^28.
    let newer = session::first_seq(1_002);
    n.handle(T0 + 40, frame_from(0, newer + 3), &mut out);
    n.handle(T0 + 40 + 5_000_000, Event::Tick, &mut out);
    assert_eq!(delivered(&out).last(), Some(&(newer + 3)));
    assert_eq!(n.stats().skipped, 3);
}

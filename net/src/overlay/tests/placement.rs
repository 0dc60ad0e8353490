//! Latency-aware placement: probing candidates, subtree pricing, and swaps for nearer joiners;
//! each rule driven on a lone node, event by event.

use super::*;

/// Feeds one event to a lone node and returns its actions.
fn feed(node: &mut Overlay<u32, P, Check>, now: u64, e: Event<u32, P>) -> Vec<Action<u32, P>> {
    let mut out = Vec::new();
    node.handle(now, e, &mut out);
    out
}

fn joins(out: &[Action<u32, P>]) -> Vec<u32> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::Join { .. },
            } => Some(*to),
            _ => None,
        })
        .collect()
}

fn candidate(peer: u32, delay_us: u64) -> Candidate<u32> {
    Candidate { peer, delay_us }
}

/// A joiner redirected by the root to candidates 1, 2, 3 (delays 40, 10, 10 ms from the root);
/// returns it probing them at `T0`, and the nonce each probe carries.
const T0: u64 = 1_000_000;
fn probing_joiner() -> (Overlay<u32, P, Check>, HashMap<u32, u64>) {
    let mut j = Overlay::new(
        9,
        OverlayConfig {
            join_probes: 3,
            // (Joins the root at once, without measuring it first.)
            preempt_factor: 0.0,
            ..OverlayConfig::default()
        },
        Check,
        9,
    );
    let out = feed(
        &mut j,
        T0,
        Event::Command(Command::Subscribe { topic: T, root: 0 }),
    );
    assert_eq!(joins(&out), vec![0]);
    let redirect = Message::Redirect {
        topic: T,
        candidates: vec![
            candidate(1, 40_000),
            candidate(2, 10_000),
            candidate(3, 10_000),
        ],
        next_seq: 0,
    };
    let out = feed(
        &mut j,
        T0,
        Event::Received {
            from: 0,
            message: redirect,
        },
    );
    let probed: Vec<(u32, u64)> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::Probe { nonce },
            } => Some((*to, *nonce)),
            _ => None,
        })
        .collect();
    let peers: Vec<u32> = probed.iter().map(|(p, _)| *p).collect();
    assert_eq!(peers, vec![1, 2, 3], "probes every candidate first");
    assert!(joins(&out).is_empty(), "and joins none before measuring");
    (j, probed.into_iter().collect())
}

/// Candidate 3 admits the joiner (below the root).
fn accept_from_3(j: &mut Overlay<u32, P, Check>) {
    let accept = Message::Accept {
        topic: T,
        path: vec![0, 3],
        next_seq: 0,
        rate: 0,
        delay_us: 12_000,
        adoption: false,
    };
    feed(
        j,
        T0 + 150_000,
        Event::Received {
            from: 3,
            message: accept,
        },
    );
}

fn ack(
    j: &mut Overlay<u32, P, Check>,
    nonces: &HashMap<u32, u64>,
    from: u32,
    rtt_us: u64,
) -> Vec<Action<u32, P>> {
    feed(
        j,
        T0 + rtt_us,
        Event::Received {
            from,
            message: Message::ProbeAck {
                nonce: nonces[&from],
            },
        },
    )
}

#[test]
fn a_redirected_joiner_descends_towards_the_candidate_that_delivers_soonest() {
    let (mut j, nonces) = probing_joiner();
    // Scores (delay + RTT/2): 1 → 40 + 10 = 50 ms, 2 → 10 + 50 = 60 ms, 3 → 10 + 15 = 25 ms.
    assert!(joins(&ack(&mut j, &nonces, 1, 20_000)).is_empty());
    assert!(joins(&ack(&mut j, &nonces, 3, 30_000)).is_empty());
    // The last answer completes the measurement: the nearest in delivery time is asked first,
    // though it was listed last and is not the nearest by RTT.
    assert_eq!(joins(&ack(&mut j, &nonces, 2, 100_000)), vec![3]);
    accept_from_3(&mut j);
    assert_eq!(j.parent(&T), Some(3));
}

#[test]
fn a_candidate_that_does_not_answer_is_tried_last_after_the_probe_wait() {
    let (mut j, nonces) = probing_joiner();
    ack(&mut j, &nonces, 1, 20_000); // 50 ms
    ack(&mut j, &nonces, 3, 90_000); // 10 + 45 = 55 ms
    // 2 never answers: nothing happens until the wait is over…
    assert!(joins(&feed(&mut j, T0 + 200_000, Event::Tick)).is_empty());
    // …then the answered ones are ranked and the best is asked.
    let out = feed(&mut j, T0 + 300_000, Event::Tick);
    assert_eq!(joins(&out), vec![1]);
}

#[test]
fn a_crowded_branch_is_priced_further_away_in_redirects() {
    let mut root = Overlay::new(0, config(2), Check, 0);
    for child in [1, 2] {
        let out = feed(
            &mut root,
            T0,
            Event::Received {
                from: child,
                message: Message::Join {
                    topic: T,
                    root: 0,
                    rtt_us: 0,
                },
            },
        );
        assert!(matches!(
            out.last(),
            Some(Action::Send {
                message: Message::Accept { .. },
                ..
            })
        ));
        feed(
            &mut root,
            T0,
            Event::LinkMeasured {
                peer: child,
                rtt_us: Some(20_000),
                queued_bytes: 0,
                delivery_rate: 0.0,
                lost: 0,
            },
        );
    }
    let report = |descendants| Event::Received {
        from: 1,
        message: Message::Report {
            topic: T,
            descendants,
            root_rtt_us: 0,
        },
    };
    feed(&mut root, T0, report(50));
    let out = feed(
        &mut root,
        T0,
        Event::Received {
            from: 7,
            message: Message::Join {
                topic: T,
                root: 0,
                rtt_us: 0,
            },
        },
    );
    let Some(Action::Send {
        to: 7,
        message: Message::Redirect { candidates, .. },
    }) = out.last()
    else {
        panic!("a full root redirects: {out:?}")
    };
    let delay = |p| candidates.iter().find(|c| c.peer == p).map(|c| c.delay_us);
    let (crowded, empty) = (delay(1).unwrap(), delay(2).unwrap());
    assert_eq!(empty, 10_000, "half the RTT below the root");
    // 50 nodes below a fan-out of 2 is ~5.7 more levels of ~10 ms each.
    assert!(crowded > empty + 50_000, "{crowded} vs {empty}");
    // A report from a node that is not a child changes nothing.
    feed(
        &mut root,
        T0,
        Event::Received {
            from: 5,
            message: Message::Report {
                topic: T,
                descendants: 1000,
                root_rtt_us: 0,
            },
        },
    );
    assert_eq!(root.children(&T), &[1, 2]);
}

#[test]
fn a_first_join_measures_the_root_and_tells_it_the_rtt() {
    let mut j = Overlay::new(9, config(4), Check, 9);
    let out = feed(
        &mut j,
        T0,
        Event::Command(Command::Subscribe { topic: T, root: 0 }),
    );
    assert!(joins(&out).is_empty(), "probe first: {out:?}");
    let nonces: HashMap<u32, u64> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::Probe { nonce },
            } => Some((*to, *nonce)),
            _ => None,
        })
        .collect();
    let out = ack(&mut j, &nonces, 0, 8_000);
    let rtts: Vec<u64> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to: 0,
                message: Message::Join { rtt_us, .. },
            } => Some(*rtt_us),
            _ => None,
        })
        .collect();
    assert_eq!(rtts, vec![8_000]);
}

/// A root with children 1 (RTT 40 ms) and 2 (RTT 20 ms) and room for no more.
fn full_root() -> Overlay<u32, P, Check> {
    let mut root = Overlay::new(0, config(2), Check, 0);
    for (child, rtt) in [(1, 40_000), (2, 20_000)] {
        feed(
            &mut root,
            T0,
            Event::Received {
                from: child,
                message: Message::Join {
                    topic: T,
                    root: 0,
                    rtt_us: rtt,
                },
            },
        );
        feed(
            &mut root,
            T0,
            Event::LinkMeasured {
                peer: child,
                rtt_us: Some(rtt),
                queued_bytes: 0,
                delivery_rate: 0.0,
                lost: 0,
            },
        );
    }
    root
}

/// A join from `joiner`, whose connection measured an RTT of `rtt_us` (0: not measured; it
/// claims the same).
fn join_at(
    root: &mut Overlay<u32, P, Check>,
    now: u64,
    joiner: u32,
    rtt_us: u64,
) -> Vec<Action<u32, P>> {
    if rtt_us > 0 {
        feed(
            root,
            now,
            Event::LinkMeasured {
                peer: joiner,
                rtt_us: Some(rtt_us),
                queued_bytes: 0,
                delivery_rate: 0.0,
                lost: 0,
            },
        );
    }
    feed(
        root,
        now,
        Event::Received {
            from: joiner,
            message: Message::Join {
                topic: T,
                root: 0,
                rtt_us,
            },
        },
    )
}

/// Whether the last action sends `to` on elsewhere.
fn redirected_last(out: &[Action<u32, P>], to: u32) -> bool {
    matches!(
        out.last(),
        Some(Action::Send { to: t, message: Message::Redirect { .. } }) if *t == to
    )
}

#[test]
fn a_much_nearer_joiner_takes_the_farthest_childs_place_and_the_child_moves_under_it() {
    let mut root = full_root();
    // 15 ms is not below 0.3 × 40 ms: a plain redirect.
    let out = join_at(&mut root, T0 + 200_000, 7, 15_000);
    assert!(redirected_last(&out, 7), "{out:?}");
    // 10 ms is: the joiner is admitted and child 1 (the farthest) is sent below it.
    let out = join_at(&mut root, T0 + 200_000, 8, 10_000);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            to: 8,
            message: Message::Accept { .. }
        }
    )));
    let moved = out.iter().find_map(|a| match a {
        Action::Send {
            to: 1,
            message: Message::Redirect { candidates, .. },
        } => Some(candidates.iter().map(|c| c.peer).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(moved, Some(vec![8]));
    assert_eq!(root.children(&T), &[2, 8]);
    // Not again within the interval, however near the next joiner is.
    let out = join_at(&mut root, T0 + 250_000, 9, 1_000);
    assert!(
        !out.iter().any(|a| matches!(
            a,
            Action::Send {
                message: Message::Accept { .. },
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn a_joiner_without_a_measured_rtt_never_displaces_anyone() {
    let mut root = full_root();
    let out = join_at(&mut root, T0 + 200_000, 8, 0);
    assert!(redirected_last(&out, 8), "{out:?}");
    assert_eq!(root.children(&T), &[1, 2]);
}

#[test]
fn connections_made_only_to_measure_candidates_are_closed_once_the_join_is_over() {
    let (mut j, nonces) = probing_joiner();
    ack(&mut j, &nonces, 1, 20_000);
    ack(&mut j, &nonces, 3, 30_000);
    assert_eq!(joins(&ack(&mut j, &nonces, 2, 100_000)), vec![3]);
    accept_from_3(&mut j);
    let disconnects = |out: &[Action<u32, P>]| -> Vec<u32> {
        out.iter()
            .filter_map(|a| match a {
                Action::Disconnect(p) => Some(*p),
                _ => None,
            })
            .collect()
    };
    // Not while the join could still need them…
    assert!(disconnects(&feed(&mut j, T0 + 1_000_000, Event::Tick)).is_empty());
    // …then the two candidates not chosen go; the parent stays.
    let mut closed = disconnects(&feed(&mut j, T0 + 2_500_000, Event::Tick));
    closed.sort();
    assert_eq!(closed, vec![1, 2]);
    assert!(j.link(&1).is_none() && j.link(&3).is_some());
    assert_eq!(j.parent(&T), Some(3));
}

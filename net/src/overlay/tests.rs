//! Rules of the core, each tested on a small in-memory network (no I/O, no clock).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::*;

mod arbitrary;
mod hostile;
mod placement;
mod rejoin;
mod swap;

#[derive(Clone, Debug, PartialEq)]
struct P {
    len: usize,
    valid: bool,
}

impl Payload for P {
    fn wire_len(&self) -> usize {
        self.len
    }
}

#[derive(Default)]
struct Check;

impl Verifier<u32, P> for Check {
    fn verify_frame(&mut self, _: &Topic, _: &u32, _: u64, p: &P) -> bool {
        p.valid
    }
    fn verify_direct(&mut self, _: &u32, _: &u32, _: u64, p: &P) -> bool {
        p.valid
    }
}

const T: Topic = Topic([7; 32]);

/// N nodes; messages are delivered in FIFO order with no delay. Links can be cut.
struct Net {
    nodes: Vec<Overlay<u32, P, Check>>,
    queue: VecDeque<(u32, u32, Message<u32, P>)>,
    delivered: HashMap<u32, Vec<u64>>,
    direct: HashMap<u32, Vec<u32>>,
    cut: BTreeSet<u32>,
    now: u64,
    /// The root's next frame seq.
    published: u64,
}

impl Net {
    fn new(n: u32, config: OverlayConfig) -> Net {
        Net {
            nodes: (0..n)
                .map(|i| Overlay::new(i, config.clone(), Check, i as u64))
                .collect(),
            queue: VecDeque::new(),
            delivered: HashMap::new(),
            direct: HashMap::new(),
            cut: BTreeSet::new(),
            now: 1_000_000,
            published: 0,
        }
    }

    fn apply(&mut self, at: u32, actions: Vec<Action<u32, P>>) {
        for a in actions {
            match a {
                Action::Send { to, message }
                    if !self.cut.contains(&to) && !self.cut.contains(&at) =>
                {
                    self.queue.push_back((to, at, message));
                }
                Action::Deliver { seq, .. } => self.delivered.entry(at).or_default().push(seq),
                Action::DeliverDirect { origin, .. } => {
                    self.direct.entry(at).or_default().push(origin)
                }
                _ => {}
            }
        }
    }

    fn event(&mut self, at: u32, e: Event<u32, P>) {
        let mut out = Vec::new();
        self.nodes[at as usize].handle(self.now, e, &mut out);
        self.apply(at, out);
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some((to, from, message)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 1_000_000, "message storm");
            if self.cut.contains(&to) {
                continue;
            }
            self.event(to, Event::Received { from, message });
        }
    }

    fn tick(&mut self, us: u64) {
        self.now += us;
        for i in 0..self.nodes.len() as u32 {
            if !self.cut.contains(&i) {
                self.event(i, Event::Tick);
            }
        }
        self.run();
    }

    fn publish(&mut self, n: usize) {
        for _ in 0..n {
            let seq = self.published;
            self.published += 1;
            self.event(
                0,
                Event::Command(Command::Publish {
                    topic: T,
                    seq,
                    payload: P {
                        len: 1000,
                        valid: true,
                    },
                }),
            );
            self.run();
            self.now += 33_000;
        }
    }

    fn subscribe_all(&mut self) {
        for i in 1..self.nodes.len() as u32 {
            self.event(i, Event::Command(Command::Subscribe { topic: T, root: 0 }));
            self.run();
        }
    }

    fn kill(&mut self, victim: u32) {
        self.cut.insert(victim);
        for i in 0..self.nodes.len() as u32 {
            if i != victim {
                self.event(i, Event::LinkDown(victim));
            }
        }
        self.run();
    }
}

fn config(max_children: usize) -> OverlayConfig {
    OverlayConfig {
        max_children,
        ..OverlayConfig::default()
    }
}

#[test]
fn every_subscriber_gets_every_frame_in_order_once() {
    let mut net = Net::new(31, config(3));
    net.publish(1); // the root exists before anyone joins
    net.subscribe_all();
    net.publish(50);
    for i in 1..31u32 {
        let got = &net.delivered[&i];
        assert_eq!(got.len(), 50, "node {i}");
        assert!(
            got.windows(2).all(|w| w[1] == w[0] + 1),
            "node {i} out of order"
        );
        assert!(net.nodes[i as usize].children(&T).len() <= 3);
        assert!(net.nodes[i as usize].depth(&T).unwrap() <= 4);
    }
    assert_eq!(net.nodes[0].children(&T).len(), 3);
    let dups: u64 = net.nodes.iter().map(|n| n.stats().duplicates).sum();
    assert_eq!(dups, 0);
}

#[test]
fn a_stream_larger_than_the_upload_budget_still_reaches_everyone_by_a_chain() {
    // 1,000 B frames every 33 ms ≈ 30 kB/s against a 20 kB/s upload: by rate no node can serve
    // anyone, but then the stream would reach no one. Each serves one: a chain.
    let mut net = Net::new(4, {
        let mut c = config(3);
        c.upload_bytes_per_s = 20_000;
        c
    });
    net.publish(1);
    net.subscribe_all();
    net.publish(60);
    for _ in 0..20 {
        net.tick(100_000);
    }
    net.publish(30);
    for i in 0..4 {
        assert!(net.nodes[i].children(&T).len() <= 1);
    }
    let last: Vec<u64> = (1..4u32)
        .map(|i| net.delivered[&i].last().copied().unwrap_or(0))
        .collect();
    assert!(last.iter().all(|s| *s == 90), "{last:?}");
}

#[test]
fn a_relay_that_can_upload_nothing_gives_its_slot_back_and_everyone_still_gets_frames() {
    let mut net = Net::new(15, config(2));
    net.publish(1);
    net.subscribe_all();
    net.publish(30);
    let x = net.nodes[0].children(&T)[0];
    assert!(!net.nodes[x as usize].children(&T).is_empty());
    // X's uplink now moves 1 kB/s against a ~30 kB/s stream.
    let parent = net.nodes[x as usize].parent(&T).unwrap();
    net.event(
        x,
        Event::LinkMeasured {
            peer: parent,
            rtt_us: None,
            queued_bytes: 0,
            delivery_rate: 1_000.0,
            lost: 0,
        },
    );
    for _ in 0..30 {
        net.tick(100_000);
    }
    net.publish(30);
    assert!(net.nodes[x as usize].children(&T).is_empty());
    assert!(!net.nodes[0].children(&T).contains(&x), "slot given back");
    for i in 1..15u32 {
        assert_eq!(net.delivered[&i].last(), Some(&60), "node {i}");
    }
}

#[test]
fn a_full_node_redirects_to_its_children() {
    let mut net = Net::new(4, config(1));
    net.publish(1);
    net.subscribe_all();
    // A chain: 0 → a → b → c, each admitted by the one before.
    let depths: BTreeSet<usize> = (1..4).map(|i| net.nodes[i].depth(&T).unwrap()).collect();
    assert_eq!(depths, BTreeSet::from([1, 2, 3]));
}

#[test]
fn a_killed_relay_is_replaced_and_the_gap_repaired() {
    let mut net = Net::new(8, config(2));
    net.publish(1);
    net.subscribe_all();
    net.publish(10);
    let relay = net.nodes[0].children(&T)[0];
    let orphans: Vec<u32> = net.nodes[relay as usize].children(&T).to_vec();
    assert!(!orphans.is_empty());
    net.kill(relay);
    // Frames published while the orphans re-attach.
    net.publish(5);
    net.tick(100_000);
    net.tick(100_000);
    net.publish(5);
    for o in orphans {
        let parent = net.nodes[o as usize].parent(&T).unwrap();
        assert_ne!(parent, relay);
        let got = &net.delivered[&o];
        assert_eq!(got.len(), 20, "orphan {o} got {got:?}");
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(net.nodes[o as usize].stats().reattaches >= 1);
    }
}

#[test]
fn a_congested_parent_is_left_after_the_hold_time_not_before() {
    // No probes: RTTs come only from the measurements this test feeds in.
    let mut net = Net::new(
        6,
        OverlayConfig {
            probe_interval_us: u64::MAX / 2,
            ..config(2)
        },
    );
    net.publish(1);
    net.subscribe_all();
    let child = (1..6u32)
        .find(|i| net.nodes[*i as usize].depth(&T) == Some(2))
        .unwrap();
    let parent = net.nodes[child as usize].parent(&T).unwrap();
    // Let the cooldown after the initial attach pass, with a healthy baseline RTT.
    for _ in 0..25 {
        net.event(
            child,
            Event::LinkMeasured {
                peer: parent,
                rtt_us: Some(5_000),
                queued_bytes: 0,
                delivery_rate: 0.0,
                lost: 0,
            },
        );
        net.publish(1);
        net.tick(100_000);
    }
    // RTT jumps to 10× the baseline.
    net.event(
        child,
        Event::LinkMeasured {
            peer: parent,
            rtt_us: Some(200_000),
            queued_bytes: 0,
            delivery_rate: 0.0,
            lost: 0,
        },
    );
    for _ in 0..5 {
        net.event(
            child,
            Event::LinkMeasured {
                peer: parent,
                rtt_us: Some(200_000),
                queued_bytes: 0,
                delivery_rate: 0.0,
                lost: 0,
            },
        );
    }
    net.tick(100_000);
    assert_eq!(
        net.nodes[child as usize].parent(&T),
        Some(parent),
        "left before the hold time"
    );
    for _ in 0..4 {
        net.tick(100_000);
    }
    let now_parent = net.nodes[child as usize].parent(&T);
    assert!(
        now_parent.is_some() && now_parent != Some(parent),
        "still on the congested parent"
    );
    // No flapping: the avoided parent is not chosen again right away.
    for _ in 0..10 {
        net.tick(100_000);
    }
    assert_ne!(net.nodes[child as usize].parent(&T), Some(parent));
}

/// A child of the root that finds the root congested has nowhere else to go: it asks the root
/// again and must take the root's accept. It used to discard that accept as a stale path update
/// from the parent it was leaving, ask again, discard again… forever — and while it was
/// "joining", it sent its own joiners back to the root, which sent them back to it (a 300-peer
/// swarm on loopback spun at 200 % CPU with half its peers never attached).
#[test]
fn a_child_of_the_root_leaving_a_congested_root_comes_back_to_it() {
    let mut net = Net::new(
        4,
        OverlayConfig {
            probe_interval_us: u64::MAX / 2,
            ..config(1)
        },
    );
    net.publish(1);
    net.subscribe_all();
    assert_eq!(net.nodes[1].parent(&T), Some(0));
    assert_eq!(net.nodes[2].parent(&T), Some(1));
    let measured = |rtt_us| Event::LinkMeasured {
        peer: 0,
        rtt_us: Some(rtt_us),
        queued_bytes: 0,
        delivery_rate: 0.0,
        lost: 0,
    };
    for _ in 0..25 {
        net.event(1, measured(5_000));
        net.publish(1);
        net.tick(100_000);
    }
    for _ in 0..6 {
        net.event(1, measured(200_000));
    }
    let reattaches = net.nodes[1].stats().reattaches;
    for _ in 0..10 {
        net.publish(1);
        net.tick(100_000);
    }
    assert_eq!(
        net.nodes[1].stats().reattaches,
        reattaches + 1,
        "it re-attached once"
    );
    assert_eq!(net.nodes[1].parent(&T), Some(0), "back under the root");
    assert_eq!(net.nodes[2].parent(&T), Some(1), "its subtree stayed");
    // The root's congestion clears: no more joins.
    for _ in 0..30 {
        net.event(1, measured(5_000));
    }
    for _ in 0..30 {
        net.publish(1);
        net.tick(100_000);
    }
    assert_eq!(net.nodes[1].parent(&T), Some(0));
    assert_eq!(net.nodes[1].stats().reattaches, reattaches + 1, "and stays");
    net.publish(5);
    for i in 1..4u32 {
        let got = &net.delivered[&i];
        let mut sorted = got.clone();
        sorted.dedup();
        assert_eq!(&sorted, got, "node {i}: no frame twice");
        assert_eq!(
            got.last(),
            Some(&(net.published - 1)),
            "node {i} is current"
        );
    }
}

/// RTT inflation that a node sees towards its children as much as towards its parent is the
/// node's own (a busy CPU, a loaded access link): it stays. Towards the parent alone, it leaves.
#[test]
fn a_delay_seen_on_every_link_is_not_blamed_on_the_parent() {
    let run = |children_inflated: bool| {
        let mut net = Net::new(
            4,
            OverlayConfig {
                probe_interval_us: u64::MAX / 2,
                ..config(1)
            },
        );
        net.publish(1);
        net.subscribe_all();
        assert_eq!(net.nodes[2].parent(&T), Some(1));
        let measured = swap::rtt_to;
        for _ in 0..25 {
            net.event(1, measured(0, 5_000));
            net.event(1, measured(2, 5_000));
            net.publish(1);
            net.tick(100_000);
        }
        let before = net.nodes[1].stats().reattaches;
        for _ in 0..6 {
            net.event(1, measured(0, 200_000));
            if children_inflated {
                net.event(1, measured(2, 200_000));
            }
        }
        for _ in 0..10 {
            net.publish(1);
            net.tick(100_000);
        }
        net.nodes[1].stats().reattaches - before
    };
    assert_eq!(run(true), 0, "its own delay: it stays");
    assert_eq!(run(false), 1, "the parent's delay: it re-attaches");
}

/// A node whose own ticks run late (a busy event loop) excuses its parent's RTT inflation up
/// to twice its lag: it would see any parent that late. On time, the same inflation is the
/// parent's, and it leaves.
#[test]
fn a_node_running_late_does_not_blame_its_parent_for_its_own_lag() {
    let run = |tick_late_us: u64| {
        let mut net = Net::new(
            4,
            OverlayConfig {
                probe_interval_us: u64::MAX / 2,
                ..config(1)
            },
        );
        net.publish(1);
        net.subscribe_all();
        assert_eq!(net.nodes[2].parent(&T), Some(1));
        let measured = swap::rtt_to;
        for _ in 0..25 {
            net.event(1, measured(0, 5_000));
            net.publish(1);
            net.tick(100_000);
        }
        let before = net.nodes[1].stats().left_congested;
        for _ in 0..6 {
            net.event(1, measured(0, 200_000));
        }
        for _ in 0..10 {
            net.publish(1);
            net.tick(100_000 + tick_late_us);
        }
        net.nodes[1].stats().left_congested - before
    };
    assert_eq!(run(150_000), 0, "150 ms late: stays");
    assert_eq!(run(0), 1, "on time: the parent's delay, it leaves");
}

#[test]
fn invalid_frames_are_neither_delivered_nor_relayed() {
    let mut net = Net::new(5, config(1));
    net.publish(1);
    net.subscribe_all();
    net.publish(1);
    net.event(
        0,
        Event::Command(Command::Publish {
            topic: T,
            seq: 2,
            payload: P {
                len: 10,
                valid: false,
            },
        }),
    );
    net.run();
    let first = net.nodes[0].children(&T)[0];
    assert_eq!(net.nodes[first as usize].stats().invalid, 1);
    assert_eq!(
        net.nodes[first as usize].stats().frames_relayed,
        1,
        "only the valid frame"
    );
}

#[test]
fn a_full_child_link_loses_frames_not_the_stream() {
    let mut net = Net::new(3, config(2));
    net.publish(1);
    net.subscribe_all();
    let child = net.nodes[0].children(&T)[0];
    net.event(
        0,
        Event::LinkMeasured {
            peer: child,
            rtt_us: None,
            queued_bytes: 10 << 20,
            delivery_rate: 1e6,
            lost: 0,
        },
    );
    net.publish(3);
    assert_eq!(net.nodes[0].stats().dropped_congested, 3);
}

#[test]
fn repair_cache_and_dedup_are_bounded() {
    let mut net = Net::new(
        2,
        OverlayConfig {
            repair_cache: 8,
            dedup_cache: 4,
            ..config(2)
        },
    );
    net.publish(1);
    net.subscribe_all();
    net.publish(100);
    // Ask the root for everything: only what its bounded cache holds comes back.
    net.event(
        0,
        Event::Received {
            from: 1,
            message: Message::Repair {
                topic: T,
                from: 0,
                to: 200,
            },
        },
    );
    assert_eq!(net.nodes[0].stats().repairs_sent, 8);

    // The byte bound: 1,000 B frames and 3,500 B of cache keep the newest three.
    let mut net = Net::new(
        2,
        OverlayConfig {
            repair_cache_bytes: 3_500,
            ..config(2)
        },
    );
    net.publish(1);
    net.subscribe_all();
    net.publish(100);
    net.event(
        0,
        Event::Received {
            from: 1,
            message: Message::Repair {
                topic: T,
                from: 0,
                to: 200,
            },
        },
    );
    assert_eq!(net.nodes[0].stats().repairs_sent, 3);
}

#[test]
fn direct_messages_cross_a_line_and_learn_routes() {
    // Line 0 - 1 - 2 - 3 - 4: each knows only its neighbours.
    let mut net = Net::new(5, config(2));
    for i in 0..4u32 {
        net.event(i, Event::LinkUp(i + 1));
        net.event(i + 1, Event::LinkUp(i));
    }
    net.run();
    // Restrict sends to the line: a node only forwards to peers it has links with.
    net.event(
        0,
        Event::Command(Command::SendDirect {
            dest: 4,
            id: 1,
            payload: P {
                len: 10,
                valid: true,
            },
        }),
    );
    net.run();
    assert_eq!(net.direct[&4], vec![0]);
    // The reply goes back along the learned reverse route: no flooding.
    let before: u64 = net.nodes.iter().map(|n| n.stats().direct_forwarded).sum();
    net.event(
        4,
        Event::Command(Command::SendDirect {
            dest: 0,
            id: 1,
            payload: P {
                len: 10,
                valid: true,
            },
        }),
    );
    net.run();
    let after: u64 = net.nodes.iter().map(|n| n.stats().direct_forwarded).sum();
    assert_eq!(net.direct[&0], vec![4]);
    assert_eq!(after - before, 4, "one send per hop");
    // A duplicate is dropped; an unsigned message is not relayed.
    net.event(
        0,
        Event::Command(Command::SendDirect {
            dest: 4,
            id: 2,
            payload: P {
                len: 10,
                valid: false,
            },
        }),
    );
    net.run();
    assert_eq!(net.direct[&4].len(), 1);
    assert!(net.nodes[1].stats().invalid >= 1);
}

#[test]
fn hop_limit_stops_messages() {
    let mut net = Net::new(
        6,
        OverlayConfig {
            hop_limit: 2,
            ..config(2)
        },
    );
    for i in 0..5u32 {
        net.event(i, Event::LinkUp(i + 1));
        net.event(i + 1, Event::LinkUp(i));
    }
    net.run();
    net.event(
        0,
        Event::Command(Command::SendDirect {
            dest: 5,
            id: 9,
            payload: P {
                len: 1,
                valid: true,
            },
        }),
    );
    net.run();
    assert!(!net.direct.contains_key(&5));
}

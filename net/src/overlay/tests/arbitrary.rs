//! The core fed arbitrary event sequences — messages with extreme field values from a handful
//! of peers, ticks, measurements, commands, time jumps — never panics (tests run with
//! overflow checks), and its tables stay within their bounds.

use proptest::prelude::*;

use super::*;

/// Values that break arithmetic, mixed with ordinary ones.
fn wild_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::MAX / 2),
        0..1_000_000u64,
        any::<u64>(),
    ]
}

fn peer() -> impl Strategy<Value = u32> {
    0..6u32
}

fn topic() -> impl Strategy<Value = Topic> {
    (0..3u8).prop_map(|t| Topic([t; 32]))
}

fn payload() -> impl Strategy<Value = P> {
    (0..5_000usize, any::<bool>()).prop_map(|(len, valid)| P { len, valid })
}

fn message() -> impl Strategy<Value = Message<u32, P>> {
    let candidates = prop::collection::vec(
        (peer(), wild_u64()).prop_map(|(peer, delay_us)| Candidate { peer, delay_us }),
        0..4,
    );
    prop_oneof![
        (topic(), peer(), wild_u64()).prop_map(|(topic, root, rtt_us)| Message::Join {
            topic,
            root,
            rtt_us
        }),
        (
            topic(),
            prop::collection::vec(peer(), 0..5),
            wild_u64(),
            wild_u64(),
            wild_u64(),
            any::<bool>()
        )
            .prop_map(|(topic, path, next_seq, rate, delay_us, adoption)| {
                Message::Accept {
                    topic,
                    path,
                    next_seq,
                    rate,
                    delay_us,
                    adoption,
                }
            }),
        (topic(), candidates, wild_u64()).prop_map(|(topic, candidates, next_seq)| {
            Message::Redirect {
                topic,
                candidates,
                next_seq,
            }
        }),
        topic().prop_map(|topic| Message::Leave { topic }),
        (topic(), any::<u32>(), wild_u64()).prop_map(|(topic, descendants, root_rtt_us)| {
            Message::Report {
                topic,
                descendants,
                root_rtt_us,
            }
        }),
        (topic(), peer()).prop_map(|(topic, to)| Message::Handover { topic, to }),
        (topic(), wild_u64(), payload()).prop_map(|(topic, seq, payload)| Message::Frame {
            topic,
            seq,
            payload
        }),
        (topic(), wild_u64(), wild_u64()).prop_map(|(topic, from, to)| Message::Repair {
            topic,
            from,
            to
        }),
        wild_u64().prop_map(|nonce| Message::Probe { nonce }),
        wild_u64().prop_map(|nonce| Message::ProbeAck { nonce }),
        (
            peer(),
            peer(),
            wild_u64(),
            any::<u8>(),
            wild_u64(),
            payload()
        )
            .prop_map(
                |(origin, dest, id, hops_left, cost, payload)| Message::Direct {
                    origin,
                    dest,
                    id,
                    hops_left,
                    cost,
                    payload,
                }
            ),
    ]
}

fn event() -> impl Strategy<Value = Event<u32, P>> {
    prop_oneof![
        6 => (peer(), message()).prop_map(|(from, message)| Event::Received { from, message }),
        1 => Just(Event::Tick),
        1 => (peer(), prop::option::of(wild_u64()), wild_u64(), 0.0..1e9f64, wild_u64()).prop_map(
            |(peer, rtt_us, queued_bytes, delivery_rate, lost)| Event::LinkMeasured {
                peer,
                rtt_us,
                queued_bytes,
                delivery_rate,
                lost,
            }
        ),
        1 => peer().prop_map(Event::LinkUp),
        1 => (peer(), 0..3u64).prop_map(|(peer, network)| Event::LinkNetwork { peer, network }),
        1 => peer().prop_map(Event::LinkDown),
        1 => (topic(), peer()).prop_map(|(topic, root)| Event::Command(Command::Subscribe {
            topic,
            root
        })),
        1 => topic().prop_map(|topic| Event::Command(Command::Unsubscribe { topic })),
        1 => (topic(), wild_u64(), payload()).prop_map(|(topic, seq, payload)| {
            Event::Command(Command::Publish {
                topic,
                seq,
                payload,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_event_sequences_never_panic(
        me in peer(),
        steps in prop::collection::vec((event(), prop_oneof![0..200_000u64, Just(10_000_000u64)]), 1..120),
    ) {
        let mut node = Overlay::new(me, config(3), Check, u64::from(me));
        let mut now = 1_000_000u64;
        let mut out = Vec::new();
        for (event, dt) in steps {
            now = now.saturating_add(dt);
            node.handle(now, event, &mut out);
            out.clear();
        }
        for t in 0..3u8 {
            prop_assert!(node.children(&Topic([t; 32])).len() <= 3 + 3, "children bounded");
        }
    }
}

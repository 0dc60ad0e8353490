//! The subscriber's rules, as a sans-IO state machine (time is an input): where a late joiner
//! starts, how a gap or a slow application skips to the next keyframe, and how many frames each
//! skip cost. The subscription task feeds it and delivers what it plays.

use std::collections::{BTreeMap, VecDeque};

use starling_net::entry::session;

use super::record::{MAX_CATCHUP_FRAMES, Record};

/// A frame in the stream with its record parsed.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) seq: u64,
    pub(crate) published_us: u64,
    pub(crate) record: Record,
}

/// What the playout asks of its task.
#[derive(Debug)]
// Items travel by value (their entry parsed once); boxing would allocate per frame.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// Deliver `item`; `skipped` frames before it were not delivered; `prev` is the frame played
    /// before it (what [`Playout::overflow`] goes back to if the delivery fails).
    Play {
        item: Item,
        skipped: u64,
        prev: Option<u64>,
    },
    /// Ask the publisher for `from..=to` (the frames since the latest keyframe).
    RequestCatchUp { from: u64, to: u64 },
}

/// Settings of a [`Playout`].
#[derive(Clone, Debug)]
pub(crate) struct PlayoutConfig {
    /// Fetch the frames since the latest keyframe when joining mid-group (else wait for the
    /// next keyframe).
    pub(crate) catch_up: bool,
    /// Give up on a catch-up after this long.
    pub(crate) catch_up_timeout_us: u64,
    /// Live frames held while catching up; more gives up.
    pub(crate) max_pending: usize,
}

#[derive(Debug)]
enum State {
    /// Nothing received yet.
    Waiting,
    /// Joined mid-group: holding live frames until `from..=to` arrive.
    CatchingUp {
        from: u64,
        to: u64,
        deadline: u64,
        got: BTreeMap<u64, Item>,
        live: VecDeque<Item>,
    },
    /// Delivering in order.
    Playing,
    /// Dropping until the next keyframe.
    Skipping,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Playout {
    state: State,
    last_played: Option<u64>,
    /// Frames dropped before the first one played.
    dropped: u64,
    config: PlayoutConfig,
}

impl Playout {
    pub(crate) fn new(config: PlayoutConfig) -> Playout {
        Playout {
            state: State::Waiting,
            last_played: None,
            dropped: 0,
            config,
        }
    }

    /// A frame from the tree (in order, possibly with gaps).
    pub(crate) fn live(&mut self, item: Item, now: u64, out: &mut Vec<Output>) {
        match &mut self.state {
            State::Waiting => {
                let meta = item.record.meta;
                let behind = item.seq.saturating_sub(meta.keyframe_seq);
                if meta.keyframe {
                    self.state = State::Playing;
                    self.play(item, out);
                } else if self.config.catch_up && behind > 0 && behind <= MAX_CATCHUP_FRAMES {
                    let (from, to) = (meta.keyframe_seq, item.seq - 1);
                    self.state = State::CatchingUp {
                        from,
                        to,
                        deadline: now + self.config.catch_up_timeout_us,
                        got: BTreeMap::new(),
                        live: VecDeque::from([item]),
                    };
                    out.push(Output::RequestCatchUp { from, to });
                } else {
                    self.state = State::Skipping;
                    self.dropped += 1;
                }
            }
            State::CatchingUp { live, .. } => {
                live.push_back(item);
                if live.len() > self.config.max_pending {
                    self.give_up(out);
                }
            }
            State::Playing | State::Skipping => self.play(item, out),
        }
    }

    /// Records from the publisher's window.
    pub(crate) fn catch_up(&mut self, items: Vec<Item>, out: &mut Vec<Output>) {
        let State::CatchingUp { from, to, got, .. } = &mut self.state else {
            return;
        };
        for item in items {
            if (*from..=*to).contains(&item.seq) {
                got.insert(item.seq, item);
            }
        }
        if got.len() as u64 == *to - *from + 1 {
            self.finish_catch_up(State::Playing, out);
        }
    }

    /// Time passes: a catch-up past its deadline gives up.
    pub(crate) fn tick(&mut self, now: u64, out: &mut Vec<Output>) {
        if let State::CatchingUp { deadline, .. } = &self.state
            && now >= *deadline
        {
            self.give_up(out);
        }
    }

    /// The application could not take a played frame (its buffer is full): drop until the next
    /// keyframe rather than queue without bound. `prev` and `skipped` are the failed
    /// [`Output::Play`]'s; every later play of the same batch is [`discarded`](Self::discarded).
    pub(crate) fn overflow(&mut self, prev: Option<u64>, skipped: u64) {
        self.state = State::Skipping;
        self.last_played = prev;
        if prev.is_none() {
            self.dropped = skipped + 1;
        }
    }

    /// A played frame dropped after an overflow in the same batch.
    pub(crate) fn discarded(&mut self) {
        if self.last_played.is_none() {
            self.dropped += 1;
        }
    }

    /// Delivers whatever was gathered that starts at a keyframe; the rest is skipped.
    fn give_up(&mut self, out: &mut Vec<Output>) {
        self.finish_catch_up(State::Skipping, out);
    }

    fn finish_catch_up(&mut self, next: State, out: &mut Vec<Output>) {
        if let State::CatchingUp { got, live, .. } = std::mem::replace(&mut self.state, next) {
            for item in got.into_values().chain(live) {
                self.play(item, out);
            }
        }
    }

    fn play(&mut self, item: Item, out: &mut Vec<Output>) {
        let expected = self.last_played.map(|l| l + 1);
        if expected.is_some_and(|e| item.seq < e) {
            return; // a duplicate or a frame already skipped
        }
        let in_order = expected.is_none_or(|e| item.seq == e);
        match self.state {
            State::Playing if in_order => {}
            _ if item.record.meta.keyframe => self.state = State::Playing,
            _ => {
                self.state = State::Skipping;
                if self.last_played.is_none() {
                    self.dropped += 1;
                }
                return;
            }
        }
        let prev = self.last_played;
        let skipped = match prev {
            Some(l) => session::missed_between(l, item.seq),
            None => std::mem::take(&mut self.dropped),
        };
        self.last_played = Some(item.seq);
        out.push(Output::Play {
            item,
            skipped,
            prev,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::record::RecordMeta;
    use bytes::Bytes;
    use starling_net::entry::{EntryFields, EntrySigner, LogId};
    use starling_net::{KeyType, Keypair};

    thread_local! {
        static SIGNER: std::cell::RefCell<EntrySigner> =
            std::cell::RefCell::new(EntrySigner::new(Keypair::generate(KeyType::Ed25519)));
    }

    /// A stream entry's record (the playout reads only the stream fields).
    fn item(seq: u64, keyframe_seq: u64) -> Item {
        let meta = RecordMeta {
            keyframe: seq == keyframe_seq,
            media_ts_us: seq * 33_333,
            keyframe_seq,
        }
        .encode();
        let entry = SIGNER.with(|s| {
            s.borrow_mut()
                .sign_one(&EntryFields {
                    meta: &meta,
                    ..EntryFields::new(LogId([0; 32]), seq, seq, Bytes::from(vec![seq as u8; 4]))
                })
                .unwrap()
        });
        Item {
            seq,
            published_us: seq,
            record: Record::from_entry(entry, &LogId([0; 32]), None).unwrap(),
        }
    }

    /// Frames `from..to` of a stream with a keyframe every `gop`.
    fn stream(from: u64, to: u64, gop: u64) -> Vec<Item> {
        (from..to).map(|s| item(s, s - s % gop)).collect()
    }

    fn config() -> PlayoutConfig {
        PlayoutConfig {
            catch_up: true,
            catch_up_timeout_us: 1_000,
            max_pending: 8,
        }
    }

    fn played(out: &[Output]) -> Vec<(u64, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Play { item, skipped, .. } => Some((item.seq, *skipped)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn joining_at_a_keyframe_plays_at_once() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(10, 14, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(10, 0), (11, 0), (12, 0), (13, 0)]);
    }

    #[test]
    fn late_joiner_starts_at_the_latest_keyframe() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        let mut live = stream(13, 16, 10).into_iter();
        p.live(live.next().unwrap(), 0, &mut out);
        assert!(matches!(
            out[..],
            [Output::RequestCatchUp { from: 10, to: 12 }]
        ));
        out.clear();
        for i in live {
            p.live(i, 10, &mut out);
        }
        assert!(out.is_empty(), "live frames wait for the catch-up");
        p.catch_up(stream(10, 12, 10), &mut out);
        assert!(out.is_empty(), "partial catch-up waits");
        p.catch_up(stream(12, 13, 10), &mut out);
        assert_eq!(played(&out), (10..16).map(|s| (s, 0)).collect::<Vec<_>>());
    }

    #[test]
    fn catch_up_timeout_skips_to_the_next_keyframe() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(13, 20, 10) {
            p.live(i, 0, &mut out);
        }
        out.clear();
        p.tick(999, &mut out);
        assert!(out.is_empty());
        p.tick(1_000, &mut out);
        assert!(out.is_empty(), "no keyframe held: nothing to play yet");
        for i in stream(20, 22, 10) {
            p.live(i, 1_100, &mut out);
        }
        assert_eq!(played(&out), vec![(20, 7), (21, 0)]);
    }

    #[test]
    fn catch_up_holds_a_bounded_number_of_frames() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(1, 30, 10) {
            p.live(i, 0, &mut out);
        }
        // Gave up after 9 held frames; played from the keyframe at 10.
        let got = played(&out);
        assert_eq!(got.first(), Some(&(10, 9)));
        assert_eq!(got.last(), Some(&(29, 0)));
    }

    #[test]
    fn a_gap_skips_to_the_next_keyframe_and_counts() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        let mut frames = stream(0, 30, 10);
        frames.retain(|i| i.seq != 4 && i.seq != 5);
        for i in frames {
            p.live(i, 0, &mut out);
        }
        let got = played(&out);
        assert_eq!(&got[..4], &[(0, 0), (1, 0), (2, 0), (3, 0)]);
        assert_eq!(got[4], (10, 6), "4..=9 skipped: two lost, four undecodable");
        assert_eq!(got.len(), 4 + 20);
    }

    /// A publisher that lost its log starts a new session: play goes on at its keyframe, the
    /// frames counted as skipped are the new session's before it (not the seq distance), and
    /// an old session's frame after that is a duplicate.
    #[test]
    fn a_new_session_plays_from_its_keyframe_and_counts_only_its_frames() {
        // Frames `from..to` of session `s`, a keyframe every 10 counted from its start.
        let frames = |s: u64, from: u64, to: u64| {
            let first = session::first_seq(s);
            (from..to).map(move |i| item(first + i, first + i - i % 10))
        };
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in frames(700, 0, 5).chain(frames(701, 0, 3)) {
            p.live(i, 0, &mut out);
        }
        let new = session::first_seq(701);
        assert_eq!(played(&out)[5..], [(new, 0), (new + 1, 0), (new + 2, 0)]);
        // Joining the next session at its frame 10 (a keyframe): 10 missed. An old session's
        // frame after that is not played.
        for i in frames(702, 10, 11).chain(frames(701, 3, 4)) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out)[8..], [(session::first_seq(702) + 10, 10)]);
    }

    /// A replayed catch-up reply from an earlier session (same indexes, validly signed) fills
    /// nothing: only the requested seqs of this session count.
    #[test]
    fn an_old_sessions_catch_up_reply_fills_nothing() {
        let (old, new) = (session::first_seq(800), session::first_seq(801));
        let frames = |first: u64, from: u64, to: u64| {
            (from..to)
                .map(|i| item(first + i, first + i - i % 10))
                .collect::<Vec<_>>()
        };
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        p.live(frames(new, 13, 14).remove(0), 0, &mut out);
        assert!(matches!(out[..], [Output::RequestCatchUp { .. }]));
        p.catch_up(frames(old, 10, 13), &mut out);
        assert!(played(&out).is_empty(), "{out:?}");
        p.catch_up(frames(new, 10, 13), &mut out);
        assert_eq!(
            played(&out),
            (10..14).map(|i| (new + i, 0)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn overflow_skips_to_the_next_keyframe() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(0, 5, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out).len(), 5);
        p.overflow(Some(2), 0); // the app took 0..=2 only
        out.clear();
        for i in stream(5, 12, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(10, 7), (11, 0)]);
        // The keyframe does not fit either: back to 2, and the next keyframe counts from there.
        p.overflow(Some(2), 7);
        out.clear();
        for i in stream(12, 21, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(20, 17)]);
    }

    #[test]
    fn overflow_before_anything_was_taken_counts_from_the_start() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(0, 3, 10) {
            p.live(i, 0, &mut out);
        }
        p.overflow(None, 0);
        p.discarded();
        p.discarded();
        out.clear();
        for i in stream(3, 11, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(10, 10)]);
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut p = Playout::new(config());
        let mut out = Vec::new();
        for i in stream(0, 3, 10).into_iter().chain(stream(1, 4, 10)) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(0, 0), (1, 0), (2, 0), (3, 0)]);
    }

    #[test]
    fn without_catch_up_a_late_joiner_waits_for_a_keyframe() {
        let mut p = Playout::new(PlayoutConfig {
            catch_up: false,
            ..config()
        });
        let mut out = Vec::new();
        for i in stream(13, 21, 10) {
            p.live(i, 0, &mut out);
        }
        assert_eq!(played(&out), vec![(20, 7)]);
    }
}

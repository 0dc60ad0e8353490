//! The driver's signature checks through the core's `Verifier` seam.

use std::collections::HashMap;

use super::super::{Topic, Verifier};
use crate::entry::{Entry, EntryVerifier, LogId, unix_time_us};
use crate::identity::{PeerId, PublicKey};

/// Who may write a topic's entries, as its program decides (default: only the tree's root).
/// A program may accept more keys, e.g. those a trust graph delegates. Asked with the signer's
/// key and the entry's signed clock (Unix µs), so a rule can answer "trusted then".
pub type WriterRule = std::sync::Arc<dyn Fn(&PublicKey, u64) -> bool + Send + Sync>;

/// Most writer rules and root keys remembered (one per subscribed topic in practice).
const MAX_RULES: usize = 1024;

/// Real signature checks through the core's `Verifier` seam: an entry must belong to the
/// topic, carry the expected seq, verify (its batch root checked once, cached), and be written
/// by a key the topic's rule accepts (its root's by default; a direct message: its origin's).
#[derive(Default)]
pub struct FrameVerifier {
    entries: EntryVerifier,
    rules: HashMap<Topic, WriterRule>,
    roots: HashMap<PeerId, PublicKey>,
}

impl std::fmt::Debug for FrameVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameVerifier")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl FrameVerifier {
    /// Checks the batch signatures of `frames` at once (one Ed25519 batch equation over every
    /// root not yet cached, ~2.4× cheaper per signature than one by one here), so the core's
    /// per-frame checks that follow find their roots cached. Bad frames are simply not cached.
    pub(super) fn verify_batch<'a>(&mut self, frames: impl Iterator<Item = &'a Entry> + Clone) {
        // One frame (the usual case at video rates) is verified by the core as it comes.
        if frames.clone().nth(1).is_some() {
            let _ = self.entries.verify_many(frames);
        }
    }

    pub(super) fn set_rule(&mut self, topic: Topic, rule: Option<WriterRule>) {
        match rule {
            Some(r) if self.rules.len() < MAX_RULES || self.rules.contains_key(&topic) => {
                self.rules.insert(topic, r);
            }
            Some(_) => tracing::warn!("too many writer rules; topic keeps the root-only rule"),
            None => {
                self.rules.remove(&topic);
            }
        }
    }

    fn is_key_of(&mut self, peer: &PeerId, key: &PublicKey) -> bool {
        if let Some(k) = self.roots.get(peer) {
            return k == key;
        }
        let Ok(k) = PublicKey::from_peer_id(peer) else {
            return key.peer_id() == *peer;
        };
        if self.roots.len() >= MAX_RULES {
            self.roots.clear();
        }
        self.roots.insert(*peer, k);
        k == *key
    }
}

impl Verifier<PeerId, Entry> for FrameVerifier {
    fn verify_frame(&mut self, topic: &Topic, root: &PeerId, seq: u64, e: &Entry) -> bool {
        if Topic::from(e.log_id()) != *topic || e.seq() != seq {
            return false;
        }
        let Ok(key) = self.entries.verify(e) else {
            return false;
        };
        match self.rules.get(topic) {
            Some(rule) => rule(&key, e.wall_us()),
            None => self.is_key_of(root, &key),
        }
    }

    fn verify_direct(&mut self, origin: &PeerId, dest: &PeerId, id: u64, e: &Entry) -> bool {
        // The routing fields a relay sees are the signed ones: the id is the entry's seq, the
        // destination its group, and the entry's clock bounds how long it may be replayed.
        let age = unix_time_us().abs_diff(e.wall_us());
        if e.log_id() != DIRECT_LOG
            || e.seq() != id
            || e.group() != direct_group(dest)
            || age > DIRECT_MAX_AGE_US
        {
            return false;
        }
        match self.entries.verify(e) {
            Ok(key) => self.is_key_of(origin, &key),
            Err(_) => false,
        }
    }
}

/// How far a direct message's signed clock may be from ours (either way): older ones are
/// replays, newer ones from a clock too far off to judge.
pub(super) const DIRECT_MAX_AGE_US: u64 = 60_000_000;

/// The group a direct message to `dest` is signed under: its destination, bound.
pub(super) fn direct_group(dest: &PeerId) -> [u8; 32] {
    *blake3::hash(&dest.to_bytes()).as_bytes()
}

/// The log id direct messages are signed under (never a stream's: those are BLAKE3 outputs).
pub(super) const DIRECT_LOG: LogId = LogId([0; 32]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryFields, EntrySigner};
    use crate::identity::{KeyType, Keypair};
    use bytes::Bytes;

    fn frame(signer: &mut EntrySigner, seq: u64) -> Entry {
        signer
            .sign_one(&EntryFields::new(
                LogId([1; 32]),
                seq,
                0,
                Bytes::from(vec![seq as u8; 100]),
            ))
            .unwrap()
    }

    #[test]
    fn batch_verified_frames_still_need_the_right_root_topic_and_seq() {
        let root = Keypair::generate(KeyType::Ed25519);
        let mut rs = EntrySigner::new(root.clone());
        let mut os = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
        let good = frame(&mut rs, 0);
        let foreign = frame(&mut os, 1);
        let mut v = FrameVerifier::default();
        v.verify_batch([&good, &foreign].into_iter());
        let r = root.peer_id();
        assert!(v.verify_frame(&Topic([1; 32]), &r, 0, &good));
        assert!(
            !v.verify_frame(&Topic([1; 32]), &r, 1, &foreign),
            "signed, not by the root"
        );
        assert!(
            !v.verify_frame(&Topic([2; 32]), &r, 0, &good),
            "wrong topic"
        );
        assert!(!v.verify_frame(&Topic([1; 32]), &r, 5, &good), "wrong seq");
        assert!(
            !v.verify_direct(&r, &r, 0, &good),
            "a stream entry is not a direct message"
        );
    }

    /// A direct message counts only for the destination and id it was signed for, and only
    /// while its signed clock is recent: a relay can neither redirect nor replay it.
    #[test]
    fn a_direct_message_is_bound_to_its_destination_id_and_time() {
        let origin = Keypair::generate(KeyType::Ed25519);
        let (dest, other) = (
            Keypair::generate(KeyType::Ed25519).peer_id(),
            Keypair::generate(KeyType::Ed25519).peer_id(),
        );
        let mut signer = EntrySigner::new(origin.clone());
        let mut sign = |id: u64, wall_us: u64| {
            signer
                .sign_one(&EntryFields {
                    group: direct_group(&dest),
                    ..EntryFields::new(DIRECT_LOG, id, wall_us, Bytes::from_static(b"hi"))
                })
                .unwrap()
        };
        let now = unix_time_us();
        let (fresh, old) = (sign(7, now), sign(8, now - DIRECT_MAX_AGE_US - 1_000_000));
        let o = origin.peer_id();
        let mut v = FrameVerifier::default();
        assert!(v.verify_direct(&o, &dest, 7, &fresh));
        assert!(
            !v.verify_direct(&o, &other, 7, &fresh),
            "turned to another peer"
        );
        assert!(!v.verify_direct(&o, &dest, 9, &fresh), "under another id");
        assert!(!v.verify_direct(&other, &dest, 7, &fresh), "not its origin");
        assert!(!v.verify_direct(&o, &dest, 8, &old), "too old: a replay");
    }

    #[test]
    fn a_program_rule_decides_whose_entries_count() {
        let root = Keypair::generate(KeyType::Ed25519);
        let delegate = Keypair::generate(KeyType::Secp256k1);
        let mut ds = EntrySigner::new(delegate.clone());
        let e = frame(&mut ds, 0);
        let mut v = FrameVerifier::default();
        let r = root.peer_id();
        assert!(!v.verify_frame(&Topic([1; 32]), &r, 0, &e));
        let allowed = *delegate.public();
        v.set_rule(
            Topic([1; 32]),
            Some(std::sync::Arc::new(move |k, _| *k == allowed)),
        );
        assert!(v.verify_frame(&Topic([1; 32]), &r, 0, &e));
        v.set_rule(Topic([1; 32]), None);
        assert!(!v.verify_frame(&Topic([1; 32]), &r, 0, &e));
    }

    #[test]
    fn a_forged_frame_in_a_batch_is_refused_and_the_rest_pass() {
        let root = Keypair::generate(KeyType::Ed25519);
        let mut rs = EntrySigner::new(root.clone());
        let frames: Vec<Entry> = (0..4).map(|s| frame(&mut rs, s)).collect();
        // Frame 2 with its signature's last byte flipped.
        let mut b = frames[2].to_bytes().to_vec();
        let at = frames[2].header().len() - 1;
        b[at] ^= 1;
        let forged = Entry::from_bytes(b.into()).unwrap();
        let batch = [&frames[0], &frames[1], &forged, &frames[3]];
        let mut v = FrameVerifier::default();
        v.verify_batch(batch.into_iter());
        let r = root.peer_id();
        assert!(v.verify_frame(&Topic([1; 32]), &r, 0, &frames[0]));
        assert!(v.verify_frame(&Topic([1; 32]), &r, 1, &frames[1]));
        assert!(!v.verify_frame(&Topic([1; 32]), &r, 2, &forged));
        assert!(v.verify_frame(&Topic([1; 32]), &r, 3, &frames[3]));
    }
}

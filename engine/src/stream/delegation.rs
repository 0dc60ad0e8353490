//! Streams published by an owner's delegated devices: whose frames count, judged from the
//! owner's trust graph.
//!
//! A stream stays `live/<owner>/<name>` whichever device publishes it. A device the owner's
//! graph trusts publishes under its own key and is the root of the stream's tree; subscribers
//! that follow the graph accept its frames while it is trusted at each frame's signed clock, so
//! a revoked device's later frames are refused everywhere and its earlier ones stay valid.

use std::sync::Arc;

use starling_net::PublicKey;
use starling_net::entry::unix_time_us;
use starling_net::overlay::WriterRule;

use crate::documents::TrustHook;
use crate::log::{AccessCheck, Entry};
use crate::trust::Verdict;

/// How far back a frame's signed clock is believed when its signer is judged. Clocks are the
/// signer's word: without a bound, a revoked device could date new frames before its
/// revocation. A live frame older than this is judged as if signed this long ago (a stream's
/// catch-up window spans seconds, not minutes).
pub const BACKDATE_LIMIT_US: u64 = 60_000_000;

/// Whose signatures count for one stream: its owner's, and (with the owner's graph) those of
/// the keys the graph trusts.
#[derive(Clone)]
pub(crate) struct StreamWriters {
    owner: PublicKey,
    /// The owner's graph's answer to "trusted at t?" ([`crate::trust::Trust::hook`]).
    delegates: Option<TrustHook>,
}

impl std::fmt::Debug for StreamWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriters")
            .field("owner", &self.owner.peer_id())
            .field("delegates", &self.delegates.is_some())
            .finish()
    }
}

impl StreamWriters {
    pub(crate) fn new(owner: PublicKey, delegates: Option<TrustHook>) -> StreamWriters {
        StreamWriters { owner, delegates }
    }

    /// Whether `key` may sign a frame whose clock says `signed_us`, judged at `now_us`.
    /// A graph still catching up refuses (the frame is dropped, not stored).
    pub(crate) fn allows(&self, key: &PublicKey, signed_us: u64, now_us: u64) -> bool {
        if *key == self.owner {
            return true;
        }
        let Some(trusted) = &self.delegates else {
            return false;
        };
        let at = signed_us.max(now_us.saturating_sub(BACKDATE_LIMIT_US));
        matches!(trusted(key, at), Verdict::Trusted { .. })
    }

    /// The overlay's rule for the stream's topic.
    pub(crate) fn rule(&self) -> WriterRule {
        let this = self.clone();
        Arc::new(move |key, signed_us| this.allows(key, signed_us, unix_time_us()))
    }

    /// The access check of the subscriber's own copy of the log.
    pub(crate) fn entry_check(&self) -> AccessCheck {
        let this = self.clone();
        let owner = (self.owner.key_type(), self.owner.to_raw_bytes());
        Arc::new(move |entry: &Entry| {
            let (kt, raw) = entry.signer_key();
            // The owner's own frames (the usual case) without decoding the key.
            (kt, raw) == (owner.0, owner.1.as_slice())
                || PublicKey::from_raw_bytes(kt, raw)
                    .is_ok_and(|key| this.allows(&key, entry.wall_us(), unix_time_us()))
        })
    }

    /// Whether a catch-up reply from `origin` counts (it carries the publisher's records).
    pub(crate) fn allows_peer(&self, origin: &starling_net::PeerId) -> bool {
        let now = unix_time_us();
        PublicKey::from_peer_id(origin).is_ok_and(|key| self.allows(&key, now, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Statement, TrustGraph};
    use starling_net::{KeyType, Keypair};

    /// Owner O delegates D at t=100 s and revokes it at t=200 s (Unix µs below).
    fn writers() -> (StreamWriters, PublicKey, PublicKey) {
        let owner = *Keypair::generate(KeyType::Ed25519).public();
        let device = *Keypair::generate(KeyType::Ed25519).public();
        let mut graph = TrustGraph::new(owner);
        let subject = device.encode_protobuf();
        let delegate = Statement::Delegate {
            subject: subject.clone(),
            scopes: Vec::new(),
            expires_us: None,
            may_delegate: false,
        };
        graph.insert(owner, (100_000_000, 0, [1; 32]), delegate);
        graph.insert(
            owner,
            (200_000_000, 0, [2; 32]),
            Statement::Revoke { subject },
        );
        let hook: TrustHook = Arc::new(move |k, at| graph.verdict(k, at, None, true));
        (StreamWriters::new(owner, Some(hook)), owner, device)
    }

    #[test]
    fn a_device_counts_while_delegated_and_the_owner_always() {
        let (w, owner, device) = writers();
        let stranger = *Keypair::generate(KeyType::Secp256k1).public();
        let now = 150_000_000;
        assert!(w.allows(&owner, 1, now));
        assert!(w.allows(&device, now, now));
        assert!(!w.allows(&device, 50_000_000, now), "before its delegation");
        assert!(!w.allows(&stranger, now, now));
        let alone = StreamWriters::new(owner, None);
        assert!(alone.allows(&owner, now, now));
        assert!(!alone.allows(&device, now, now), "no graph: the owner only");
    }

    /// After its revocation a device cannot pass new frames off as old: a clock more than
    /// [`BACKDATE_LIMIT_US`] behind is judged as that old.
    #[test]
    fn a_revoked_device_cannot_backdate_past_the_limit() {
        let (w, _, device) = writers();
        let after = 250_000_000;
        assert!(!w.allows(&device, after, after));
        assert!(
            w.allows(&device, 190_000_000, after),
            "within the limit: a frame signed before the revocation still counts"
        );
        let later = 200_000_000 + BACKDATE_LIMIT_US + 1;
        assert!(
            !w.allows(&device, 190_000_000, later),
            "claims to predate the revocation by more than the limit allows"
        );
    }
}

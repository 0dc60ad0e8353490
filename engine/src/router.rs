//! Direct messages by protocol: each program (stream catch-up today; documents, trust later)
//! registers a [`Protocol`] tag and gets the messages that carry it, so programs add protocols
//! without touching one another.
//!
//! A message's body starts with its tag (u16, big-endian); the program's own format follows.
//! Encoders write the tag first ([`Protocol::message`]), so routing neither copies nor
//! re-encodes a body: a program receives a slice of the verified payload. Each program's inbox
//! is bounded: a program that does not keep up loses its own messages (counted), never anyone
//! else's. Messages with a tag nobody registered, or too short to carry one, are counted and
//! dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use starling_net::PeerId;
use starling_net::overlay::DirectMessage;
use tokio::sync::mpsc;

/// A program's tag on the direct messages it sends and receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u16);

impl Protocol {
    /// Live streams' catch-up (requests and replies).
    pub const STREAM_CATCH_UP: Protocol = Protocol(1);
    /// Program definitions fetched by address.
    pub const PROGRAMS: Protocol = Protocol(2);
    /// Document stores: hellos, entries, reconciliation, queries
    /// (`documents::replica::wire`).
    pub const DOCUMENTS: Protocol = Protocol(3);

    /// A buffer for one message of this protocol with the tag written, `capacity` bytes of body
    /// to come.
    pub fn message(self, capacity: usize) -> BytesMut {
        let mut out = BytesMut::with_capacity(TAG_LEN + capacity);
        out.put_u16(self.0);
        out
    }
}

/// Bytes of the tag.
const TAG_LEN: usize = 2;
/// Messages waiting per program before new ones are dropped.
pub const PROTOCOL_INBOX: usize = 256;

/// A message for a program: who wrote it (verified) and its body past the tag.
#[derive(Clone, Debug)]
pub struct Routed {
    /// Who wrote it.
    pub origin: PeerId,
    /// The body, past the tag.
    pub body: Bytes,
    /// An app frame's receive credit (see `DirectMessage::credit`): held until the program
    /// drops the message.
    pub credit: Option<Arc<starling_net::transport::Credit>>,
}

/// What the router dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Messages with a tag no program registered, or too short to carry one.
    pub unknown: u64,
    /// Messages dropped because their program's inbox was full.
    pub overflowed: u64,
}

/// The tag → inbox table, shared by the routing task and the `Peer` that registers programs.
#[derive(Debug, Default)]
pub(crate) struct Router {
    routes: Mutex<HashMap<Protocol, mpsc::Sender<Routed>>>,
    unknown: AtomicU64,
    overflowed: AtomicU64,
}

/// A tag that is already registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("protocol {0:?} is already registered")]
pub struct ProtocolTaken(pub Protocol);

impl Router {
    /// Registers `protocol`; its messages arrive on the returned inbox until it is dropped.
    pub(crate) fn register(
        &self,
        protocol: Protocol,
    ) -> Result<mpsc::Receiver<Routed>, ProtocolTaken> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if routes.get(&protocol).is_some_and(|tx| !tx.is_closed()) {
            return Err(ProtocolTaken(protocol));
        }
        let (tx, rx) = mpsc::channel(PROTOCOL_INBOX);
        routes.insert(protocol, tx);
        Ok(rx)
    }

    pub(crate) fn stats(&self) -> RouterStats {
        RouterStats {
            unknown: self.unknown.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }

    /// The program inbox `msg` is for, and the message as it gets it.
    fn program(&self, msg: DirectMessage) -> Option<(mpsc::Sender<Routed>, Routed)> {
        let Some(tag) = msg.payload.get(..TAG_LEN) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let protocol = Protocol(u16::from_be_bytes([tag[0], tag[1]]));
        let tx = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&protocol)
            .cloned();
        let Some(tx) = tx else {
            tracing::debug!(origin = %msg.origin, ?protocol, "direct message for no program");
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let routed = Routed {
            origin: msg.origin,
            body: msg.payload.slice(TAG_LEN..),
            credit: msg.credit,
        };
        Some((tx, routed))
    }

    /// Hands a (lossy) direct message to its program; dropped when the program is behind.
    fn route(&self, msg: DirectMessage) {
        let Some((tx, routed)) = self.program(msg) else {
            return;
        };
        match tx.try_send(routed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Routes every direct message the node receives until the node stops.
    pub(crate) async fn run(self: Arc<Self>, mut direct: mpsc::Receiver<DirectMessage>) {
        while let Some(msg) = direct.recv().await {
            self.route(msg);
        }
    }

    /// Routes every app frame the node receives until the node stops, waiting while a
    /// program's inbox is full: the links stop being read and senders wait, nothing is lost.
    /// (So a program that stalls holds back the other programs' app frames too; their bytes
    /// stay within the transport's receive budget.)
    pub(crate) async fn run_reliable(self: Arc<Self>, mut app: mpsc::Receiver<DirectMessage>) {
        while let Some(msg) = app.recv().await {
            if let Some((tx, routed)) = self.program(msg) {
                let _ = tx.send(routed).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_net::{KeyType, Keypair};

    fn message(origin: PeerId, payload: &[u8]) -> DirectMessage {
        DirectMessage {
            origin,
            payload: Bytes::copy_from_slice(payload),
            credit: None,
        }
    }

    #[test]
    fn each_program_gets_its_own_messages_and_nothing_else() {
        let router = Router::default();
        let me = Keypair::generate(KeyType::Ed25519).peer_id();
        let mut one = router.register(Protocol(1)).unwrap();
        let mut two = router.register(Protocol(2)).unwrap();
        assert_eq!(
            router.register(Protocol(1)).unwrap_err(),
            ProtocolTaken(Protocol(1))
        );
        let mut m = Protocol(2).message(3);
        m.put_slice(b"abc");
        router.route(DirectMessage {
            origin: me,
            payload: m.freeze(),
            credit: None,
        });
        router.route(message(me, &[0, 1, b'x']));
        router.route(message(me, &[0, 9, b'y']));
        router.route(message(me, &[0]));
        assert_eq!(&two.try_recv().unwrap().body[..], b"abc");
        assert_eq!(&one.try_recv().unwrap().body[..], b"x");
        assert!(one.try_recv().is_err() && two.try_recv().is_err());
        assert_eq!(
            router.stats().unknown,
            2,
            "an unknown tag and a short message"
        );
    }

    #[test]
    fn a_program_that_does_not_keep_up_loses_only_its_own_messages() {
        let router = Router::default();
        let me = Keypair::generate(KeyType::Ed25519).peer_id();
        let _slow = router.register(Protocol(1)).unwrap();
        let mut other = router.register(Protocol(2)).unwrap();
        for _ in 0..PROTOCOL_INBOX + 10 {
            router.route(message(me, &[0, 1]));
        }
        router.route(message(me, &[0, 2, 7]));
        assert_eq!(router.stats().overflowed, 10);
        assert_eq!(&other.try_recv().unwrap().body[..], &[7]);
        // A dropped inbox frees its tag.
        drop(_slow);
        assert!(router.register(Protocol(1)).is_ok());
    }
}

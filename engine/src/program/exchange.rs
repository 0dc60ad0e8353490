//! Fetching definitions by address ([`Protocol::PROGRAMS`]): a peer that wants a program asks
//! its neighbours for the definition; one that has it answers; the asker takes the first
//! answer that hashes to the address. Nothing unasked-for is taken (an answer for an address no
//! one here is waiting for changes nothing), and answers draw on a node-wide byte budget (a
//! 36-byte question can buy a 64 KiB answer).
//!
//! Wire (after the protocol tag): version 1, kind (1 get, 2 found), address (32 bytes), and for
//! `found` the definition's encoding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes};
use starling_net::PeerId;
use starling_net::overlay::{OverlayNode, TokenBucket};
use tokio::sync::{mpsc, oneshot};

use super::{ProgramAddress, ProgramDefinition, ProgramError};
use crate::router::{Protocol, Routed};

const VERSION: u8 = 1;
const KIND_GET: u8 = 1;
const KIND_FOUND: u8 = 2;
/// Most callers waiting for definitions at once (each is a local `fetch`).
const MAX_WAITING: usize = 1024;

/// A decoded exchange message.
#[derive(Debug, PartialEq, Eq)]
pub enum Exchange {
    /// "Send me the definition at this address."
    Get(ProgramAddress),
    /// A definition's encoding, for an address (checked by whoever takes it).
    Found(ProgramAddress, Bytes),
}

impl Exchange {
    /// Encodes the message as a direct message (protocol tag first).
    pub fn encode(&self) -> Bytes {
        let (kind, address, definition) = match self {
            Exchange::Get(a) => (KIND_GET, a, None),
            Exchange::Found(a, d) => (KIND_FOUND, a, Some(d)),
        };
        let len = definition.map_or(0, Bytes::len);
        let mut out = Protocol::PROGRAMS.message(34 + len);
        out.put_u8(VERSION);
        out.put_u8(kind);
        out.put_slice(&address.0);
        if let Some(d) = definition {
            out.put_slice(d);
        }
        out.freeze()
    }

    /// Decodes a message's body (past the protocol tag).
    pub fn decode(body: &Bytes) -> Result<Exchange, ProgramError> {
        if body.len() < 34 {
            return Err(ProgramError::Truncated {
                need: 34,
                have: body.len(),
            });
        }
        let mut b = body.clone();
        let version = b.get_u8();
        if version != VERSION {
            return Err(ProgramError::UnsupportedVersion(version));
        }
        let kind = b.get_u8();
        let mut address = ProgramAddress([0; 32]);
        b.copy_to_slice(&mut address.0);
        match kind {
            KIND_GET if b.is_empty() => Ok(Exchange::Get(address)),
            KIND_GET => Err(ProgramError::TrailingBytes(b.len())),
            KIND_FOUND => Ok(Exchange::Found(address, b)),
            other => Err(ProgramError::BadAddress(format!(
                "unknown message kind {other}"
            ))),
        }
    }
}

/// The definitions this peer has (it defined or fetched them) and the local callers waiting
/// for one.
#[derive(Debug, Default)]
pub(crate) struct Definitions {
    known: Mutex<HashMap<ProgramAddress, ProgramDefinition>>,
    waiting: Mutex<HashMap<ProgramAddress, Vec<oneshot::Sender<ProgramDefinition>>>>,
}

impl Definitions {
    /// Keeps `definition` (and serves it); its address.
    pub(crate) fn insert(&self, definition: ProgramDefinition) -> ProgramAddress {
        let address = definition.address();
        if let Some(waiters) = lock(&self.waiting).remove(&address) {
            for w in waiters {
                let _ = w.send(definition.clone());
            }
        }
        lock(&self.known).insert(address, definition);
        address
    }

    pub(crate) fn get(&self, address: &ProgramAddress) -> Option<ProgramDefinition> {
        lock(&self.known).get(address).cloned()
    }

    /// A receiver for `address`'s definition, once someone answers (`None` when too many
    /// callers wait already).
    pub(crate) fn wait(
        &self,
        address: ProgramAddress,
    ) -> Option<oneshot::Receiver<ProgramDefinition>> {
        let mut waiting = lock(&self.waiting);
        waiting.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        if waiting.values().map(Vec::len).sum::<usize>() >= MAX_WAITING {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiting.entry(address).or_default().push(tx);
        Some(rx)
    }

    /// An answer for `address`: taken only if someone here waits for it and it hashes to it
    /// (whether it was taken).
    fn take_answer(&self, address: &ProgramAddress, bytes: &Bytes) -> Result<bool, ProgramError> {
        if !self.is_waiting_for(address) {
            return Ok(false);
        }
        let definition = ProgramDefinition::decode_for(address, bytes)?;
        self.insert(definition);
        Ok(true)
    }

    fn is_waiting_for(&self, address: &ProgramAddress) -> bool {
        lock(&self.waiting).contains_key(address)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers definition requests and takes the answers this peer waits for.
pub(crate) async fn serve(
    mut inbox: mpsc::Receiver<Routed>,
    node: OverlayNode,
    definitions: Arc<Definitions>,
    answer_bytes_per_s: u64,
) {
    let start = Instant::now();
    let mut budget = TokenBucket::new(answer_bytes_per_s, answer_bytes_per_s);
    while let Some(msg) = inbox.recv().await {
        match Exchange::decode(&msg.body) {
            Ok(Exchange::Get(address)) => {
                let Some(definition) = definitions.get(&address) else {
                    continue;
                };
                let answer = Exchange::Found(address, definition.encode()).encode();
                let now_us = start.elapsed().as_micros() as u64;
                if !budget.try_take(answer.len() as u64, now_us) {
                    tracing::debug!(origin = %msg.origin, "definition request over the budget");
                    continue;
                }
                node.send(msg.origin, answer);
            }
            Ok(Exchange::Found(address, bytes)) => {
                if let Err(e) = definitions.take_answer(&address, &bytes) {
                    tracing::debug!(origin = %msg.origin, "bad definition: {e}");
                }
            }
            Err(e) => tracing::debug!(origin = %msg.origin, "bad program message: {e}"),
        }
    }
}

/// Asks `peers` for `address`'s definition.
pub(crate) fn ask(node: &OverlayNode, peers: &[PeerId], address: ProgramAddress) {
    let get = Exchange::Get(address).encode();
    for p in peers {
        node.send(*p, get.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(m: &Bytes) -> Bytes {
        assert_eq!(m[..2], Protocol::PROGRAMS.0.to_be_bytes());
        m.slice(2..)
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_typed_errors() {
        let a = ProgramAddress([7; 32]);
        let get = Exchange::Get(a);
        assert_eq!(Exchange::decode(&body(&get.encode())).unwrap(), get);
        let found = Exchange::Found(a, Bytes::from_static(b"def"));
        assert_eq!(Exchange::decode(&body(&found.encode())).unwrap(), found);
        let short = body(&get.encode()).slice(..20);
        assert!(matches!(
            Exchange::decode(&short),
            Err(ProgramError::Truncated { .. })
        ));
        let mut v = body(&get.encode()).to_vec();
        v[0] = 9;
        assert_eq!(
            Exchange::decode(&Bytes::from(v)),
            Err(ProgramError::UnsupportedVersion(9))
        );
        let mut v = body(&get.encode()).to_vec();
        v.push(1);
        assert_eq!(
            Exchange::decode(&Bytes::from(v)),
            Err(ProgramError::TrailingBytes(1))
        );
    }

    /// Answers are verified before anything changes: one nobody asked for, or one that does
    /// not hash to its address, is not kept (a forged definition would otherwise be served on).
    #[test]
    fn only_an_asked_for_answer_that_hashes_to_its_address_is_taken() {
        let defs = Definitions::default();
        let real = ProgramDefinition::new("documents/v1", "posts", Bytes::new()).unwrap();
        let forged =
            ProgramDefinition::new("documents/v1", "posts", Bytes::from_static(b"x")).unwrap();
        let a = real.address();
        assert_eq!(
            defs.take_answer(&a, &real.encode()),
            Ok(false),
            "not asked for"
        );
        assert!(defs.get(&a).is_none());
        let mut waiting = defs.wait(a).unwrap();
        assert!(matches!(
            defs.take_answer(&a, &forged.encode()),
            Err(ProgramError::WrongDefinition { .. })
        ));
        assert!(defs.get(&a).is_none() && waiting.try_recv().is_err());
        assert_eq!(defs.take_answer(&a, &real.encode()), Ok(true));
        assert_eq!(waiting.try_recv().unwrap(), real);
    }

    #[test]
    fn a_definition_reaches_every_waiter_and_waiting_is_bounded() {
        let defs = Definitions::default();
        let d = ProgramDefinition::new("documents/v1", "posts", Bytes::new()).unwrap();
        let a = d.address();
        let mut r1 = defs.wait(a).unwrap();
        let mut r2 = defs.wait(a).unwrap();
        assert!(defs.is_waiting_for(&a));
        defs.insert(d.clone());
        assert_eq!(r1.try_recv().unwrap(), d);
        assert_eq!(r2.try_recv().unwrap(), d);
        assert!(!defs.is_waiting_for(&a));
        let held: Vec<_> = (0..MAX_WAITING)
            .map(|i| defs.wait(ProgramAddress([i as u8; 32])).unwrap())
            .collect();
        assert!(defs.wait(a).is_none(), "bounded");
        drop(held);
        assert!(
            defs.wait(a).is_some(),
            "callers that gave up free their places"
        );
    }
}

//! Where peers are: a bounded address book that trusts what it verified over what it was told.
//!
//! Control messages name peers with addresses (redirect candidates, lookups). Those are
//! hearsay: any peer may send them, and identities are free. So the book holds at most
//! `MAX_KNOWN_ADDRESSES` addresses; an address an authenticated connection came from (the handshake
//! proved the PeerId there) or that the application configured always wins over hearsay and
//! is evicted last; hearsay never overwrites either, and a heard address that failed a dial
//! is dropped, so the next one heard can replace it (a planted address once made a stream's
//! owner unreachable for good).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::identity::PeerId;

/// Addresses kept at most (~100 bytes each).
pub const MAX_KNOWN_ADDRESSES: usize = 4_096;

/// How an address was learned, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// Named in a peer's message.
    Heard,
    /// Given by the application (a stream owner's address).
    Configured,
    /// An authenticated connection came from it.
    Verified,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: SocketAddr,
    source: Source,
    /// When it was last learned or used (a counter, not a clock: eviction order only).
    used: u64,
}

/// PeerId → address, bounded.
#[derive(Debug, Default)]
pub(super) struct AddressBook {
    entries: HashMap<PeerId, Entry>,
    clock: u64,
}

impl AddressBook {
    pub(super) fn new() -> Self {
        AddressBook::default()
    }

    /// The address to dial `peer` at, if known.
    pub(super) fn get(&mut self, peer: &PeerId) -> Option<SocketAddr> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(peer).map(|e| {
            e.used = clock;
            e.addr
        })
    }

    /// The address of `peer`, if known, without marking it used.
    pub(super) fn peek(&self, peer: &PeerId) -> Option<SocketAddr> {
        self.entries.get(peer).map(|e| e.addr)
    }

    /// An authenticated connection with `peer` came from `addr`.
    pub(super) fn verified(&mut self, peer: PeerId, addr: SocketAddr) {
        self.learn(peer, addr, Source::Verified);
    }

    /// The application says `peer` is at `addr`.
    pub(super) fn configured(&mut self, peer: PeerId, addr: SocketAddr) {
        self.learn(peer, addr, Source::Configured);
    }

    /// A peer's message says `peer` is at `addr`: taken only if nothing better is known.
    pub(super) fn heard(&mut self, peer: PeerId, addr: SocketAddr) {
        self.learn(peer, addr, Source::Heard);
    }

    /// A dial to `peer` failed: a heard address is forgotten (the next one heard may be
    /// right); a verified or configured one is kept (the peer may be back).
    pub(super) fn dial_failed(&mut self, peer: &PeerId) {
        if self
            .entries
            .get(peer)
            .is_some_and(|e| e.source == Source::Heard)
        {
            self.entries.remove(peer);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn learn(&mut self, peer: PeerId, addr: SocketAddr, source: Source) {
        self.clock += 1;
        let used = self.clock;
        if let Some(e) = self.entries.get_mut(&peer) {
            // Hearsay overwrites nothing (the first heard stands until a dial to it fails);
            // a verified or configured address replaces anything no stronger.
            if source != Source::Heard && source >= e.source {
                *e = Entry { addr, source, used };
            }
            return;
        }
        if self.entries.len() >= MAX_KNOWN_ADDRESSES && !self.evict_for(source) {
            return;
        }
        self.entries.insert(peer, Entry { addr, source, used });
    }

    /// Makes room for an entry learned from `source`: drops the weakest, least recently used
    /// entry no stronger than it. False if every entry is stronger (hearsay cannot push out
    /// verified addresses).
    fn evict_for(&mut self, source: Source) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.source <= source)
            .min_by_key(|(_, e)| (e.source, e.used))
            .map(|(p, _)| *p);
        match victim {
            Some(p) => {
                self.entries.remove(&p);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeyType, Keypair};

    fn peer() -> PeerId {
        Keypair::generate(KeyType::Ed25519).peer_id()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn hearsay_does_not_overwrite_a_verified_or_configured_address() {
        let mut book = AddressBook::new();
        let (a, b) = (peer(), peer());
        book.verified(a, addr(1));
        book.heard(a, addr(2));
        assert_eq!(book.get(&a), Some(addr(1)));
        book.configured(b, addr(3));
        book.heard(b, addr(4));
        assert_eq!(book.get(&b), Some(addr(3)));
        book.verified(b, addr(5));
        assert_eq!(book.get(&b), Some(addr(5)), "a verified address wins");
    }

    #[test]
    fn a_planted_address_goes_after_a_failed_dial() {
        let mut book = AddressBook::new();
        let owner = peer();
        book.heard(owner, addr(666));
        book.heard(owner, addr(7));
        assert_eq!(book.get(&owner), Some(addr(666)), "first heard stands…");
        book.dial_failed(&owner);
        book.heard(owner, addr(7));
        assert_eq!(book.get(&owner), Some(addr(7)), "…until a dial to it fails");
        book.verified(owner, addr(7));
        book.dial_failed(&owner);
        assert_eq!(book.get(&owner), Some(addr(7)), "a verified address stays");
    }

    #[test]
    fn a_flood_of_hearsay_is_bounded_and_pushes_out_no_verified_address() {
        let mut book = AddressBook::new();
        let friends: Vec<PeerId> = (0..10).map(|_| peer()).collect();
        for (i, f) in friends.iter().enumerate() {
            book.verified(*f, addr(i as u16));
        }
        for i in 0..(2 * MAX_KNOWN_ADDRESSES) {
            book.heard(peer(), addr(i as u16));
        }
        assert_eq!(book.len(), MAX_KNOWN_ADDRESSES);
        for (i, f) in friends.iter().enumerate() {
            assert_eq!(book.get(f), Some(addr(i as u16)));
        }
    }
}

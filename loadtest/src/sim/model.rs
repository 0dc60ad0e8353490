//! What the simulator plugs into the overlay core: payloads that carry their publish time, and a
//! verifier that charges time instead of doing cryptography.

use starling_net::overlay::{Payload, Topic, Verifier};

/// A simulated frame: its size and when it was published (µs of virtual time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SimFrame {
    pub(crate) bytes: u32,
    pub(crate) published_at: u64,
    pub(crate) publisher: u32,
}

impl Payload for SimFrame {
    fn wire_len(&self) -> usize {
        self.bytes as usize
    }
}

/// Accepts every frame from its topic's root; the cost of a real Ed25519 batch verification is
/// charged as processing delay by the world (`VERIFY_US`), so 100,000 nodes fit on one machine.
#[derive(Debug, Default)]
pub(crate) struct ModelVerifier {
    pub(crate) checks: u64,
}

/// Measured cost of one batched Ed25519 verification on the development machine.
pub(crate) const VERIFY_US: u64 = 25;

impl Verifier<u32, SimFrame> for ModelVerifier {
    fn verify_frame(&mut self, _topic: &Topic, root: &u32, _seq: u64, f: &SimFrame) -> bool {
        self.checks += 1;
        f.publisher == *root
    }

    fn verify_direct(&mut self, _origin: &u32, _dest: &u32, _id: u64, _f: &SimFrame) -> bool {
        self.checks += 1;
        true
    }
}

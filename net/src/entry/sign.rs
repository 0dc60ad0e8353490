//! Signing entries, alone or in batches under one signature over a Merkle root.

use bytes::{BufMut, BytesMut};

use super::format::{ENTRY_FRAME_KIND, EntryFields, MAX_BATCH, Unsigned, batch_message};
use super::{Entry, EntryError, merkle};
use crate::identity::{Keypair, SIGNATURE_LEN};
use crate::wire::{put_varint, varint_len};

/// A writer's key, prepared for entries (its raw public key encoded once).
///
/// Headers are carved out of 64 KiB arenas (`BytesMut::split`), so a steady writer allocates
/// once per few hundred entries, not once per entry; a retained header keeps its arena block
/// alive, which bounded windows make harmless.
#[derive(Debug)]
pub struct EntrySigner {
    key: Keypair,
    raw: Vec<u8>,
    scratch: BytesMut,
    arena: BytesMut,
}

impl EntrySigner {
    /// A signer for `key`.
    pub fn new(key: Keypair) -> EntrySigner {
        EntrySigner {
            raw: key.public().to_raw_bytes(),
            key,
            scratch: BytesMut::new(),
            arena: BytesMut::new(),
        }
    }

    /// The key.
    pub fn keypair(&self) -> &Keypair {
        &self.key
    }

    /// The writer id (BLAKE3 of the raw public key) the entries' clocks carry.
    pub fn writer_id(&self) -> [u8; 32] {
        super::clock::writer_id(&self.raw)
    }

    /// Encodes and hashes an entry's signed part; sign it with [`EntrySigner::sign`].
    pub fn seal(&mut self, fields: &EntryFields<'_>) -> Result<Unsigned, EntryError> {
        fields.seal(self.key.key_type(), &self.raw, &mut self.scratch)
    }

    /// Signs one entry alone.
    pub fn sign_one(&mut self, fields: &EntryFields<'_>) -> Result<Entry, EntryError> {
        let sealed = self.seal(fields)?;
        let mut out = self.sign(vec![sealed])?;
        out.pop().ok_or(EntryError::BatchSize(0))
    }

    /// Signs 1..=[`MAX_BATCH`] sealed entries with one signature over their Merkle root; each
    /// entry gets its inclusion proof and stays verifiable on its own. Ready to send: every
    /// header is framed for the wire.
    pub fn sign(&mut self, batch: Vec<Unsigned>) -> Result<Vec<Entry>, EntryError> {
        let size = batch.len();
        if size == 0 || size > MAX_BATCH {
            return Err(EntryError::BatchSize(size));
        }
        let leaves: Vec<merkle::Node> = batch.iter().map(|u| u.hash.0).collect();
        let (root, proofs) = merkle::proofs(&leaves);
        let size16 = size as u16;
        let signature = self.key.sign(&batch_message(size16, &root)).to_bytes();
        let mut out = Vec::with_capacity(size);
        for (index, (u, proof)) in batch.into_iter().zip(proofs).enumerate() {
            let header_len = u.signed.len() + 4 + 32 * proof.len() + SIGNATURE_LEN;
            let body = 1 + header_len + u.payload.len();
            let prefix = varint_len(body as u64) + 1;
            let need = prefix + header_len;
            if self.arena.capacity() - self.arena.len() < need {
                self.arena.reserve((64 * 1024).max(need));
            }
            put_varint(&mut self.arena, body as u64);
            self.arena.put_u8(ENTRY_FRAME_KIND);
            self.arena.put_slice(&u.signed);
            self.arena.put_u16(size16);
            self.arena.put_u16(index as u16);
            for p in &proof {
                self.arena.put_slice(p);
            }
            self.arena.put_slice(&signature);
            let head = self.arena.split().freeze();
            out.push(Entry::signed(head, prefix, u.payload, u.hash)?);
        }
        Ok(out)
    }
}

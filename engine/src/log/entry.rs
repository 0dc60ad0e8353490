//! The entry format and its signatures.
//!
//! Header layout, version 1 (all integers big-endian):
//!
//! ```text
//! 0        version = 1            1       flags (bit 0 LZ4, bit 1 encrypted)
//! 2..34    log id                 34..42  clock wall µs    42..46 clock logical
//! 46..78   clock writer           78      n = number of next hashes (≤ 64)
//! 79..     n × 32-byte next hashes
//! p..p+4   stored payload length  p+4..p+8 raw (decompressed) length
//! p+8..+40 BLAKE3(stored payload) s       number of signatures (1..=8)
//! then per signature: key type (1 ed25519, 2 secp256k1), public key (32 / 33), signature (64)
//! ```
//!
//! Signatures cover bytes `0..s` (everything but the signature block); the entry hash is BLAKE3
//! over the whole header, signatures included, so any flipped stored byte changes the hash. The
//! first byte (version 1) differs from a wire data frame's first signed byte (kind 0x03), so an
//! entry signature can never be replayed as a frame signature or the reverse.

use bytes::{BufMut, Bytes, BytesMut};
use starling_net::identity::{
    KeyType, Keypair, SIGNATURE_LEN, Signature, VerifyItem, verify_batch,
};
use starling_net::wire::KeyCache;
use starling_net::{IdentityError, PublicKey};

use super::{Clock, EntryError, EntryHash};

const VERSION: u8 = 1;
/// Flag bit: the payload is LZ4 block-compressed.
pub(super) const FLAG_LZ4: u8 = 1;
/// Flag bit: the payload is encrypted (reserved for end-to-end envelopes).
pub(super) const FLAG_ENCRYPTED: u8 = 2;
/// Most `next` hashes per entry.
pub const MAX_NEXT: usize = 64;
/// Most signatures per entry.
pub const MAX_SIGNATURES: usize = 8;
/// Largest payload (stored or decompressed): 64 MiB.
pub const MAX_PAYLOAD_LEN: u64 = 64 << 20;
const FIXED: usize = 79;

/// A decoded entry: header and payload as shared `Bytes` (never copied), fields parsed once.
#[derive(Clone, Debug)]
pub struct Entry {
    header: Bytes,
    payload: Bytes,
    hash: EntryHash,
    log_id: [u8; 32],
    clock: Clock,
    next: Vec<EntryHash>,
    flags: u8,
    raw_len: u32,
    signed_len: usize,
}

fn key_len(kt: u8) -> Result<(KeyType, usize), EntryError> {
    match kt {
        1 => Ok((KeyType::Ed25519, 32)),
        2 => Ok((KeyType::Secp256k1, 33)),
        other => Err(EntryError::UnknownKeyType(other)),
    }
}

/// The writer id of a key: BLAKE3 of its raw public key.
pub(super) fn writer_id(key: &PublicKey) -> [u8; 32] {
    *blake3::hash(&key.to_raw_bytes()).as_bytes()
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The `next` hashes of an encoded header, read without decoding the rest (trimming needs only
/// these). A header too short for what it declares yields what fits.
pub(super) fn next_hashes(header: &[u8]) -> Vec<[u8; 32]> {
    let n = header.get(FIXED - 1).map_or(0, |n| usize::from(*n));
    header
        .get(FIXED..)
        .unwrap_or_default()
        .chunks_exact(32)
        .take(n)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect()
}

impl Entry {
    /// Encodes and signs a new entry (`payload` in stored form, `raw_len` its decompressed size).
    pub(super) fn create(
        signers: &[&Keypair],
        log_id: [u8; 32],
        clock: Clock,
        next: &[EntryHash],
        payload: Bytes,
        flags: u8,
        raw_len: u32,
    ) -> Entry {
        let mut h = BytesMut::with_capacity(FIXED + 32 * next.len() + 41 + 98 * signers.len());
        h.put_u8(VERSION);
        h.put_u8(flags);
        h.put_slice(&log_id);
        h.put_u64(clock.wall_us);
        h.put_u32(clock.logical);
        h.put_slice(&clock.writer);
        h.put_u8(next.len() as u8);
        for n in next {
            h.put_slice(&n.0);
        }
        h.put_u32(payload.len() as u32);
        h.put_u32(raw_len);
        h.put_slice(blake3::hash(&payload).as_bytes());
        let signed_len = h.len();
        let signatures: Vec<_> = signers.iter().map(|k| (k, k.sign(&h[..]))).collect();
        h.put_u8(signers.len() as u8);
        for (key, sig) in signatures {
            h.put_u8(key.key_type().protobuf_number() as u8);
            h.put_slice(&key.public().to_raw_bytes());
            h.put_slice(&sig.to_bytes());
        }
        let header = h.freeze();
        Entry {
            hash: EntryHash::of(&header),
            header,
            payload,
            log_id,
            clock,
            next: next.to_vec(),
            flags,
            raw_len,
            signed_len,
        }
    }

    /// Decodes a header and its stored payload: checks the layout, every length (before any
    /// allocation sized by them) and the payload hash. Signatures are checked by [`verify`].
    ///
    /// [`verify`]: Entry::verify
    pub fn decode(header: Bytes, payload: Bytes) -> Result<Entry, EntryError> {
        let h = &header[..];
        let need = |n: usize| {
            if h.len() < n {
                Err(EntryError::Truncated {
                    need: n,
                    have: h.len(),
                })
            } else {
                Ok(())
            }
        };
        need(FIXED)?;
        if h[0] != VERSION {
            return Err(EntryError::UnsupportedVersion(h[0]));
        }
        let flags = h[1];
        if flags & !(FLAG_LZ4 | FLAG_ENCRYPTED) != 0 {
            return Err(EntryError::UnknownFlags(flags));
        }
        let mut log_id = [0u8; 32];
        log_id.copy_from_slice(&h[2..34]);
        let mut writer = [0u8; 32];
        writer.copy_from_slice(&h[46..78]);
        let clock = Clock {
            wall_us: be_u64(&h[34..42]),
            logical: be_u32(&h[42..46]),
            writer,
        };
        let n = usize::from(h[78]);
        if n > MAX_NEXT {
            return Err(EntryError::TooManyNext(n));
        }
        let p = FIXED + 32 * n;
        need(p + 41)?;
        let next = h[FIXED..p]
            .chunks_exact(32)
            .map(|c| {
                let mut a = [0u8; 32];
                a.copy_from_slice(c);
                EntryHash(a)
            })
            .collect();
        let stored_len = be_u32(&h[p..]);
        let raw_len = be_u32(&h[p + 4..]);
        if u64::from(raw_len) > MAX_PAYLOAD_LEN || u64::from(stored_len) > MAX_PAYLOAD_LEN {
            return Err(EntryError::PayloadTooLarge(u64::from(
                raw_len.max(stored_len),
            )));
        }
        if payload.len() != stored_len as usize {
            return Err(EntryError::PayloadLength {
                expected: stored_len,
                actual: payload.len(),
            });
        }
        if flags & FLAG_LZ4 == 0 && raw_len != stored_len {
            return Err(EntryError::PayloadLength {
                expected: raw_len,
                actual: payload.len(),
            });
        }
        if blake3::hash(&payload).as_bytes()[..] != h[p + 8..p + 40] {
            return Err(EntryError::PayloadHashMismatch);
        }
        let signed_len = p + 40;
        let count = usize::from(h[signed_len]);
        if count == 0 || count > MAX_SIGNATURES {
            return Err(EntryError::SignatureCount(count));
        }
        let mut at = signed_len + 1;
        for _ in 0..count {
            need(at + 1)?;
            let (_, k) = key_len(h[at])?;
            at += 1 + k + SIGNATURE_LEN;
            need(at)?;
        }
        if at != h.len() {
            return Err(EntryError::TrailingBytes(h.len() - at));
        }
        Ok(Entry {
            hash: EntryHash::of(h),
            header,
            payload,
            log_id,
            clock,
            next,
            flags,
            raw_len,
            signed_len,
        })
    }

    /// Decodes bytes read back from storage under `expected`: a flipped byte anywhere in the
    /// header (signatures included) or the payload is a typed error, never data.
    pub fn decode_stored(
        expected: EntryHash,
        header: Bytes,
        payload: Bytes,
    ) -> Result<Entry, EntryError> {
        let actual = EntryHash::of(&header);
        if actual != expected {
            return Err(EntryError::HashMismatch { expected, actual });
        }
        Entry::decode(header, payload)
    }

    /// The signatures: (key type, raw key bytes, signature bytes).
    fn signature_fields(&self) -> impl Iterator<Item = (KeyType, &[u8], &[u8])> {
        let h = &self.header[..];
        let count = usize::from(h[self.signed_len]);
        let mut at = self.signed_len + 1;
        (0..count).filter_map(move |_| {
            // decode() checked every key type and length.
            let (kt, k) = key_len(h[at]).ok()?;
            let key = &h[at + 1..at + 1 + k];
            let sig = &h[at + 1 + k..at + 1 + k + SIGNATURE_LEN];
            at += 1 + k + SIGNATURE_LEN;
            Some((kt, key, sig))
        })
    }

    fn signatures(&self, keys: &mut KeyCache) -> Result<Vec<(PublicKey, Signature)>, EntryError> {
        let mut out = Vec::with_capacity(1);
        for (kt, key, sig) in self.signature_fields() {
            let key = keys.get(kt, key).map_err(|e| match e {
                starling_net::wire::WireError::Signature(e) => EntryError::Signature(e),
                other => EntryError::Signature(IdentityError::MalformedKey(other.to_string())),
            })?;
            out.push((key, Signature::from_bytes(kt, sig)?));
        }
        if out.first().map(|(k, _)| writer_id(k)) != Some(self.clock.writer) {
            return Err(EntryError::WriterMismatch);
        }
        Ok(out)
    }

    /// Checks every signature (and that the clock's writer is the first signer).
    pub fn verify(&self) -> Result<(), EntryError> {
        verify_entries(std::slice::from_ref(self), &mut KeyCache::default()).map_err(|(_, e)| e)
    }

    /// The signers' public keys, first signer first.
    pub fn signers(&self) -> Result<Vec<PublicKey>, EntryError> {
        Ok(self
            .signatures(&mut KeyCache::default())?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// The entry's hash (its id).
    pub fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The log it belongs to.
    pub fn log_id(&self) -> &[u8; 32] {
        &self.log_id
    }

    /// Its clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The entries it follows.
    pub fn next(&self) -> &[EntryHash] {
        &self.next
    }

    /// The encoded header (what travels and is stored, with the payload).
    pub fn header(&self) -> &Bytes {
        &self.header
    }

    /// The payload as stored (LZ4-compressed if [`Entry::is_compressed`]).
    pub fn stored_payload(&self) -> &Bytes {
        &self.payload
    }

    /// Whether the stored payload is LZ4-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_LZ4 != 0
    }

    /// Whether the payload is marked encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// The application's payload: the stored `Bytes` themselves unless compressed.
    pub fn payload(&self) -> Result<Bytes, EntryError> {
        if !self.is_compressed() {
            return Ok(self.payload.clone());
        }
        let raw = lz4_flex::block::decompress(&self.payload, self.raw_len as usize)
            .map_err(|e| EntryError::Decompress(e.to_string()))?;
        if raw.len() != self.raw_len as usize {
            return Err(EntryError::Decompress(
                "length differs from the header".into(),
            ));
        }
        Ok(Bytes::from(raw))
    }

    /// Bytes this entry occupies (header + stored payload).
    pub fn size(&self) -> usize {
        self.header.len() + self.payload.len()
    }
}

/// Verifies the signatures of many entries at once (Ed25519 batch verification); on failure,
/// the index of the first bad entry.
pub fn verify_entries(entries: &[Entry], keys: &mut KeyCache) -> Result<(), (usize, EntryError)> {
    let mut sigs = Vec::with_capacity(entries.len());
    let mut owner = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        for s in e.signatures(keys).map_err(|err| (i, err))? {
            sigs.push(s);
            owner.push(i);
        }
    }
    let items: Vec<VerifyItem<'_>> = sigs
        .iter()
        .zip(&owner)
        .map(|((key, signature), &i)| VerifyItem {
            key,
            message: &entries[i].header[..entries[i].signed_len],
            signature,
        })
        .collect();
    verify_batch(&items).map_err(|e| match e {
        IdentityError::BatchFailed { index } => (
            owner.get(index).copied().unwrap_or(0),
            EntryError::Signature(IdentityError::BadSignature),
        ),
        other => (0, EntryError::Signature(other)),
    })
}

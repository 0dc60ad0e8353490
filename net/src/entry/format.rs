//! Entry format v2: the one signed envelope that a writer makes and every reader checks.
//!
//! Header layout (all integers big-endian):
//!
//! ```text
//! 0        version = 2                1        flags (bit 0 LZ4, bit 1 encrypted; others 0)
//! 2..34    log id                     34..42   seq u64: the writer's position in the log
//! 42..50   clock wall µs              50..54   clock logical u32
//! 54..86   group id [32]              86       replicas u8 (0: the store's default)
//! 87       key type (1 ed25519, 2 secp256k1)   88..88+K  writer public key (K = 32 / 33)
//! m        meta length u8, meta bytes (program fields signed with the entry, ≤ 255)
//! x        n = number of next hashes u8 (≤ 64), n × 32-byte next hashes
//! p        stored payload length u32, raw (decompressed) length u32, BLAKE3(stored payload)
//! s        ── end of the signed part: the entry hash is BLAKE3(header[0..s]) ──
//! s        batch size u16 (1..=256), index u16 (< size)
//! s+4      inclusion proof: proof_len(index, size) × 32 (none for a lone entry)
//!          signature [64] by the writer over "starling/batch/v2" ‖ size u16 ‖ Merkle root
//! ```
//!
//! The payload follows the header, on the wire (`varint(len) 0x03 header payload`) and in the
//! store (its own keyspace). Group id and replica count stay public even when the payload is
//! encrypted: placement needs them. A lone entry is a batch of one whose root is its own hash.
//! Version 1 (hash over the signatures, up to 8 signers, no batches, no seq) is refused with
//! [`EntryError::RetiredVersion`].

use bytes::{BufMut, Bytes, BytesMut};

use super::clock::{Clock, writer_id};
use super::{EntryError, EntryHash, LogId, merkle};
use crate::identity::{KeyCache, KeyType, PublicKey, SIGNATURE_LEN, Signature};
use crate::wire::{put_varint, varint_len};

/// The header version this build writes and reads.
pub const VERSION: u8 = 2;
/// Flag bit: the payload is LZ4 block-compressed.
pub const FLAG_LZ4: u8 = 1;
/// Flag bit: the payload is encrypted (reserved for end-to-end envelopes).
pub const FLAG_ENCRYPTED: u8 = 2;
/// Most `next` hashes per entry.
pub const MAX_NEXT: usize = 64;
/// Most meta bytes per entry.
pub const MAX_META: usize = 255;
/// Most entries under one batch signature.
pub const MAX_BATCH: usize = 256;
/// Largest payload (stored or decompressed): 64 MiB.
pub const MAX_PAYLOAD_LEN: u64 = 64 << 20;
/// The wire frame kind of an entry.
pub(crate) const ENTRY_FRAME_KIND: u8 = 0x03;
/// Version through key type.
const FIXED: usize = 88;
/// The domain of a batch signature's message.
const BATCH_DOMAIN: &[u8] = b"starling/batch/v2";

/// The message a batch signature covers.
pub(super) fn batch_message(size: u16, root: &merkle::Node) -> [u8; 51] {
    let mut m = [0u8; 51];
    m[..17].copy_from_slice(BATCH_DOMAIN);
    m[17..19].copy_from_slice(&size.to_be_bytes());
    m[19..].copy_from_slice(root);
    m
}

pub(super) fn key_len(kt: u8) -> Result<(KeyType, usize), EntryError> {
    match kt {
        1 => Ok((KeyType::Ed25519, 32)),
        2 => Ok((KeyType::Secp256k1, 33)),
        other => Err(EntryError::UnknownKeyType(other)),
    }
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Where the parts of a header are, found by [`Layout::parse`] (every length checked before it
/// is used; nothing allocated).
#[derive(Clone, Copy, Debug)]
struct Layout {
    key_type: KeyType,
    key_len: usize,
    meta_at: usize,
    meta_len: usize,
    next_at: usize,
    next_n: usize,
    stored_len: u32,
    raw_len: u32,
    signed_len: usize,
    batch_size: u16,
    batch_index: u16,
    /// End of the signature block: the header's whole length.
    len: usize,
}

impl Layout {
    /// Parses the header at the start of `h` (which may continue with the payload).
    fn parse(h: &[u8]) -> Result<Layout, EntryError> {
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
        need(1)?;
        match h[0] {
            VERSION => {}
            1 => return Err(EntryError::RetiredVersion),
            v => return Err(EntryError::UnsupportedVersion(v)),
        }
        need(FIXED)?;
        if h[1] & !(FLAG_LZ4 | FLAG_ENCRYPTED) != 0 {
            return Err(EntryError::UnknownFlags(h[1]));
        }
        let (key_type, key_len) = key_len(h[87])?;
        let meta_len_at = FIXED + key_len;
        need(meta_len_at + 1)?;
        let meta_len = usize::from(h[meta_len_at]);
        let n_at = meta_len_at + 1 + meta_len;
        need(n_at + 1)?;
        let next_n = usize::from(h[n_at]);
        if next_n > MAX_NEXT {
            return Err(EntryError::TooManyNext(next_n));
        }
        let p = n_at + 1 + 32 * next_n;
        let signed_len = p + 40;
        need(signed_len + 4)?;
        let stored_len = be_u32(&h[p..]);
        let raw_len = be_u32(&h[p + 4..]);
        if u64::from(raw_len) > MAX_PAYLOAD_LEN || u64::from(stored_len) > MAX_PAYLOAD_LEN {
            return Err(EntryError::PayloadTooLarge(u64::from(
                raw_len.max(stored_len),
            )));
        }
        // An encrypted payload is an envelope around the (perhaps compressed) raw bytes.
        if h[1] & (FLAG_LZ4 | FLAG_ENCRYPTED) == 0 && raw_len != stored_len {
            return Err(EntryError::PayloadLength {
                expected: raw_len,
                actual: stored_len as usize,
            });
        }
        let batch_size = be_u16(&h[signed_len..]);
        let batch_index = be_u16(&h[signed_len + 2..]);
        if batch_size == 0 || usize::from(batch_size) > MAX_BATCH || batch_index >= batch_size {
            return Err(EntryError::BadBatchPosition {
                index: batch_index,
                size: batch_size,
            });
        }
        let proof = 32 * merkle::proof_len(usize::from(batch_index), usize::from(batch_size));
        let len = signed_len + 4 + proof + SIGNATURE_LEN;
        need(len)?;
        Ok(Layout {
            key_type,
            key_len,
            meta_at: meta_len_at + 1,
            meta_len,
            next_at: n_at + 1,
            next_n,
            stored_len,
            raw_len,
            signed_len,
            batch_size,
            batch_index,
            len,
        })
    }
}

/// A decoded entry: header and payload as shared `Bytes` (never copied), fields parsed once.
///
/// The header is kept behind its wire frame prefix when it has one (made by a signer or
/// received), so sending it is two `Bytes` handed to quinn: the head, then the payload.
#[derive(Clone)]
pub struct Entry {
    /// `varint(len) 0x03 header` when framed, else the bare header.
    head: Bytes,
    /// Where the header starts in `head` (0: no frame prefix).
    header_at: usize,
    payload: Bytes,
    hash: EntryHash,
    /// Parsed on first use: its writer id is a hash of the key, which relays never need.
    clock: std::sync::OnceLock<Clock>,
    layout: Layout,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("hash", &self.hash)
            .field("seq", &self.seq())
            .field("batch", &(self.layout.batch_index, self.layout.batch_size))
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Entry {
    /// Same signed content and same signature block (the payload is bound by its hash).
    fn eq(&self, other: &Entry) -> bool {
        self.header_bytes() == other.header_bytes()
    }
}

impl Entry {
    /// Builds an entry from a header at the start of `head[header_at..]` and its payload,
    /// checking the layout, the payload's length and its hash. `exact`: the header must end
    /// where `head` ends (a stored header has no trailing bytes).
    fn build(
        head: Bytes,
        header_at: usize,
        payload: Bytes,
        check_payload: bool,
        hash: Option<EntryHash>,
    ) -> Result<Entry, EntryError> {
        let h = &head[header_at..];
        let layout = Layout::parse(h)?;
        if h.len() != layout.len {
            return Err(EntryError::TrailingBytes(h.len() - layout.len));
        }
        if payload.len() != layout.stored_len as usize {
            return Err(EntryError::PayloadLength {
                expected: layout.stored_len,
                actual: payload.len(),
            });
        }
        let p = layout.signed_len - 32;
        if check_payload && blake3::hash(&payload).as_bytes()[..] != h[p..layout.signed_len] {
            return Err(EntryError::PayloadHashMismatch);
        }
        Ok(Entry {
            hash: hash.unwrap_or_else(|| EntryHash::of(&h[..layout.signed_len])),
            head,
            header_at,
            payload,
            clock: std::sync::OnceLock::new(),
            layout,
        })
    }

    /// A header the signer just wrote (payload and entry hash computed by the signer itself).
    pub(super) fn signed(
        head: Bytes,
        header_at: usize,
        payload: Bytes,
        hash: EntryHash,
    ) -> Result<Entry, EntryError> {
        Entry::build(head, header_at, payload, false, Some(hash))
    }

    /// Decodes a stored header and its stored payload: checks the layout, every length (before
    /// any allocation sized by them) and the payload hash. Signatures are checked by an
    /// [`EntryVerifier`](super::EntryVerifier).
    pub fn decode(header: Bytes, payload: Bytes) -> Result<Entry, EntryError> {
        Entry::build(header, 0, payload, true, None)
    }

    /// Decodes an entry frame as the wire delivers it (length prefix included; `kind_at` is the
    /// prefix length): header and payload stay slices of `frame`.
    pub fn decode_frame(frame: Bytes, kind_at: usize) -> Result<Entry, EntryError> {
        let header_at = kind_at + 1;
        let h = frame.get(header_at..).unwrap_or_default();
        let layout = Layout::parse(h)?;
        let head_end = header_at + layout.len;
        let payload = frame.slice(head_end..);
        Entry::build(frame.slice(..head_end), header_at, payload, true, None)
    }

    /// Decodes bytes read back from storage under `expected`: a flipped byte in the signed part
    /// or the payload is a typed error, never data (the signature block is checked by
    /// verification).
    pub fn decode_stored(
        expected: EntryHash,
        header: Bytes,
        payload: Bytes,
    ) -> Result<Entry, EntryError> {
        let e = Entry::decode(header, payload)?;
        if e.hash != expected {
            return Err(EntryError::HashMismatch {
                expected,
                actual: e.hash,
            });
        }
        Ok(e)
    }

    /// The entry as one buffer, `header ‖ payload` (fixtures, catch-up replies).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.header_bytes().len() + self.payload.len());
        out.put_slice(self.header_bytes());
        out.put_slice(&self.payload);
        out.freeze()
    }

    /// Decodes [`Entry::to_bytes`].
    pub fn from_bytes(bytes: Bytes) -> Result<Entry, EntryError> {
        let layout = Layout::parse(&bytes)?;
        let payload = bytes.slice(layout.len..);
        Entry::decode(bytes.slice(..layout.len), payload)
    }

    /// What goes on the wire, in order: `varint(len) 0x03 header`, then the payload. Entries
    /// that were signed here or received are sent as they are; one read back from storage gets
    /// its frame prefix here (one small copy of the header).
    pub fn wire_parts(&self) -> [Bytes; 2] {
        if self.header_at > 0 {
            return [self.head.clone(), self.payload.clone()];
        }
        let header = &self.head[..];
        let body = 1 + header.len() + self.payload.len();
        let mut head = BytesMut::with_capacity(varint_len(body as u64) + 1 + header.len());
        put_varint(&mut head, body as u64);
        head.put_u8(ENTRY_FRAME_KIND);
        head.put_slice(header);
        [head.freeze(), self.payload.clone()]
    }

    /// Bytes on the wire, frame prefix included.
    pub fn wire_len(&self) -> usize {
        let body = 1 + self.header_bytes().len() + self.payload.len();
        varint_len(body as u64) + body
    }

    /// The address of the head bytes: identifies this entry's buffer while it is alive.
    pub fn head_addr(&self) -> usize {
        self.head.as_ptr() as usize
    }

    fn header_bytes(&self) -> &[u8] {
        &self.head[self.header_at..]
    }

    /// The encoded header (what is stored beside the payload).
    pub fn header(&self) -> Bytes {
        self.head.slice(self.header_at..)
    }

    /// The bytes the entry hash covers (and the Merkle leaf commits to).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.header_bytes()[..self.layout.signed_len]
    }

    /// The entry's hash (its id).
    pub fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The log it belongs to.
    pub fn log_id(&self) -> LogId {
        let mut id = [0u8; 32];
        id.copy_from_slice(&self.header_bytes()[2..34]);
        LogId(id)
    }

    /// The writer's sequence number in the log (a stream's frame number).
    pub fn seq(&self) -> u64 {
        be_u64(&self.header_bytes()[34..])
    }

    /// Its clock (the writer id computed on first use).
    pub fn clock(&self) -> &Clock {
        self.clock.get_or_init(|| {
            let h = self.header_bytes();
            Clock {
                wall_us: self.wall_us(),
                logical: be_u32(&h[50..]),
                writer: writer_id(self.signer_key().1),
            }
        })
    }

    /// Its clock's wall time, µs since the epoch (the publish time of a stream frame).
    pub fn wall_us(&self) -> u64 {
        be_u64(&self.header_bytes()[42..])
    }

    /// The group it is placed by (a document's whole history shares one).
    pub fn group(&self) -> [u8; 32] {
        let mut g = [0u8; 32];
        g.copy_from_slice(&self.header_bytes()[54..86]);
        g
    }

    /// How many replicas the writer asks for (0: the store's default).
    pub fn replicas(&self) -> u8 {
        self.header_bytes()[86]
    }

    /// The writer's key type and raw public key bytes.
    pub fn signer_key(&self) -> (KeyType, &[u8]) {
        (
            self.layout.key_type,
            &self.header_bytes()[FIXED..FIXED + self.layout.key_len],
        )
    }

    /// The writer's public key (decoded through `keys`).
    pub fn signer(&self, keys: &mut KeyCache) -> Result<PublicKey, EntryError> {
        let (kt, raw) = self.signer_key();
        Ok(keys.get(kt, raw)?)
    }

    /// Program fields signed with the entry (a stream's keyframe flag and media time).
    pub fn meta(&self) -> &[u8] {
        let l = &self.layout;
        &self.header_bytes()[l.meta_at..l.meta_at + l.meta_len]
    }

    /// The entries it follows.
    pub fn next(&self) -> impl ExactSizeIterator<Item = EntryHash> + '_ {
        let l = &self.layout;
        self.header_bytes()[l.next_at..l.next_at + 32 * l.next_n]
            .chunks_exact(32)
            .map(|c| {
                let mut a = [0u8; 32];
                a.copy_from_slice(c);
                EntryHash(a)
            })
    }

    /// Position in its batch: (index, size).
    pub fn batch_position(&self) -> (u16, u16) {
        (self.layout.batch_index, self.layout.batch_size)
    }

    /// The inclusion proof's hashes.
    pub(super) fn proof(&self) -> impl Iterator<Item = merkle::Node> + '_ {
        let at = self.layout.signed_len + 4;
        let end = self.layout.len - SIGNATURE_LEN;
        self.header_bytes()[at..end].chunks_exact(32).map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            a
        })
    }

    /// The batch signature's bytes.
    pub(super) fn signature_bytes(&self) -> &[u8] {
        &self.header_bytes()[self.layout.len - SIGNATURE_LEN..self.layout.len]
    }

    /// The batch signature.
    pub(super) fn signature(&self) -> Result<Signature, EntryError> {
        Ok(Signature::from_bytes(
            self.layout.key_type,
            self.signature_bytes(),
        )?)
    }

    /// The Merkle root this entry's proof leads to (its own hash when alone).
    pub fn batch_root(&self) -> Result<merkle::Node, EntryError> {
        let mut proof = [[0u8; 32]; 8];
        let mut n = 0;
        for p in self.proof() {
            // proof_len ≤ log2(MAX_BATCH) = 8, checked by the layout.
            if let Some(slot) = proof.get_mut(n) {
                *slot = p;
                n += 1;
            }
        }
        merkle::root_from_proof(
            &self.hash.0,
            usize::from(self.layout.batch_index),
            usize::from(self.layout.batch_size),
            &proof[..n],
        )
        .ok_or(EntryError::BadBatchProof)
    }

    /// The payload as stored (LZ4-compressed if [`Entry::is_compressed`]).
    pub fn stored_payload(&self) -> &Bytes {
        &self.payload
    }

    /// The application's payload: the stored `Bytes` themselves unless compressed. An
    /// encrypted payload is [`EntryError::Encrypted`]: read it with [`Entry::open_payload`].
    pub fn payload(&self) -> Result<Bytes, EntryError> {
        if self.is_encrypted() {
            return Err(EntryError::Encrypted);
        }
        if !self.is_compressed() {
            return Ok(self.payload.clone());
        }
        self.decompress(&self.payload)
    }

    /// An encrypted entry's payload, opened with a receiver's key (then decompressed when the
    /// writer compressed before sealing); a plain entry's payload as [`Entry::payload`].
    pub fn open_payload(&self, opener: &crate::crypto::Opener) -> Result<Bytes, EntryError> {
        if !self.is_encrypted() {
            return self.payload();
        }
        let plain = opener.open(&self.payload)?;
        if self.is_compressed() {
            return self.decompress(&plain);
        }
        if plain.len() != self.layout.raw_len as usize {
            return Err(EntryError::PayloadLength {
                expected: self.layout.raw_len,
                actual: plain.len(),
            });
        }
        Ok(Bytes::from(plain))
    }

    fn decompress(&self, stored: &[u8]) -> Result<Bytes, EntryError> {
        let raw = lz4_flex::block::decompress(stored, self.layout.raw_len as usize)
            .map_err(|e| EntryError::Decompress(e.to_string()))?;
        if raw.len() != self.layout.raw_len as usize {
            return Err(EntryError::Decompress(
                "length differs from the header".into(),
            ));
        }
        Ok(Bytes::from(raw))
    }

    /// Whether the stored payload is LZ4-compressed.
    pub fn is_compressed(&self) -> bool {
        self.header_bytes()[1] & FLAG_LZ4 != 0
    }

    /// Whether the payload is marked encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.header_bytes()[1] & FLAG_ENCRYPTED != 0
    }

    /// The decompressed payload length.
    pub fn raw_len(&self) -> u32 {
        self.layout.raw_len
    }

    /// Bytes this entry occupies (header + stored payload).
    pub fn size(&self) -> usize {
        self.header_bytes().len() + self.payload.len()
    }
}

/// The `next` hashes of an encoded header, read without decoding the rest (trimming needs only
/// these). A header that does not parse yields none.
pub fn next_hashes(header: &[u8]) -> Vec<[u8; 32]> {
    let Ok(l) = Layout::parse(header) else {
        return Vec::new();
    };
    header[l.next_at..l.next_at + 32 * l.next_n]
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect()
}

/// What a writer chooses for a new entry.
#[derive(Clone, Debug)]
pub struct EntryFields<'a> {
    /// The log.
    pub log_id: LogId,
    /// The writer's sequence number in the log.
    pub seq: u64,
    /// The clock (its writer is the signer's; not encoded).
    pub wall_us: u64,
    /// The clock's logical part.
    pub logical: u32,
    /// The placement group (zero when the program has none).
    pub group: [u8; 32],
    /// Replicas asked for (0: the store's default).
    pub replicas: u8,
    /// Program fields (≤ [`MAX_META`] bytes).
    pub meta: &'a [u8],
    /// The entries this one follows (≤ [`MAX_NEXT`]).
    pub next: &'a [EntryHash],
    /// The payload in stored form.
    pub payload: Bytes,
    /// Its decompressed length (= `payload.len()` unless LZ4).
    pub raw_len: u32,
    /// [`FLAG_LZ4`], [`FLAG_ENCRYPTED`].
    pub flags: u8,
}

impl<'a> EntryFields<'a> {
    /// `payload` (stored as given) at `seq` of `log_id`: no links, no meta, group zero, the
    /// store's default replicas, logical clock 0. Set the other fields with struct update syntax.
    pub fn new(log_id: LogId, seq: u64, wall_us: u64, payload: Bytes) -> EntryFields<'a> {
        EntryFields {
            log_id,
            seq,
            wall_us,
            logical: 0,
            group: [0; 32],
            replicas: 0,
            meta: &[],
            next: &[],
            raw_len: payload.len() as u32,
            payload,
            flags: 0,
        }
    }
}

/// An entry's signed part, encoded and hashed, waiting for its batch signature.
#[derive(Debug)]
pub struct Unsigned {
    pub(super) signed: BytesMut,
    pub(super) payload: Bytes,
    pub(super) hash: EntryHash,
}

impl Unsigned {
    /// The hash the entry will have (so the next entry of a batch can follow it).
    pub fn hash(&self) -> EntryHash {
        self.hash
    }
}

impl EntryFields<'_> {
    /// Encodes and hashes the signed part for the writer `key_type`/`raw_key`, into `arena`.
    pub(super) fn seal(
        &self,
        key_type: KeyType,
        raw_key: &[u8],
        arena: &mut BytesMut,
    ) -> Result<Unsigned, EntryError> {
        if self.meta.len() > MAX_META {
            return Err(EntryError::MetaTooLong(self.meta.len()));
        }
        if self.next.len() > MAX_NEXT {
            return Err(EntryError::TooManyNext(self.next.len()));
        }
        if self.payload.len() as u64 > MAX_PAYLOAD_LEN || u64::from(self.raw_len) > MAX_PAYLOAD_LEN
        {
            return Err(EntryError::PayloadTooLarge(self.payload.len() as u64));
        }
        if self.flags & !(FLAG_LZ4 | FLAG_ENCRYPTED) != 0 {
            return Err(EntryError::UnknownFlags(self.flags));
        }
        let len = FIXED + raw_key.len() + 2 + self.meta.len() + 32 * self.next.len() + 40;
        if arena.capacity() - arena.len() < len {
            arena.reserve((64 * 1024).max(len));
        }
        arena.put_u8(VERSION);
        arena.put_u8(self.flags);
        arena.put_slice(self.log_id.as_bytes());
        arena.put_u64(self.seq);
        arena.put_u64(self.wall_us);
        arena.put_u32(self.logical);
        arena.put_slice(&self.group);
        arena.put_u8(self.replicas);
        arena.put_u8(key_type.protobuf_number() as u8);
        arena.put_slice(raw_key);
        arena.put_u8(self.meta.len() as u8);
        arena.put_slice(self.meta);
        arena.put_u8(self.next.len() as u8);
        for n in self.next {
            arena.put_slice(&n.0);
        }
        arena.put_u32(self.payload.len() as u32);
        arena.put_u32(self.raw_len);
        arena.put_slice(blake3::hash(&self.payload).as_bytes());
        let signed = arena.split();
        Ok(Unsigned {
            hash: EntryHash::of(&signed),
            signed,
            payload: self.payload.clone(),
        })
    }
}

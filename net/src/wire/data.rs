//! Signed data frames: a fixed header signed by the origin, the payload bound by its BLAKE3 hash.
//!
//! Layout after the length prefix (offsets from the kind byte):
//!
//! ```text
//! 0      kind = 0x03          1  version = 1      2  key type (1 ed25519, 2 secp256k1)
//! 3..35  topic [32]           35..43 seq u64 BE   43..51 publish time, µs since the epoch, u64 BE
//! 51..83 BLAKE3(payload)      83..83+K origin public key (K = 32 or 33)
//! then   signature [64] over bytes 0..83+K        then the payload, to the end of the frame
//! ```
//!
//! The signature covers the kind byte, so it cannot be replayed as another kind of frame. Relays
//! forward `head` and `payload` as they are: no re-encoding, no re-signing, no copy.

use bytes::{BufMut, Bytes, BytesMut};

use super::WireError;
use super::frame::{FrameKind, put_varint, varint_len};
use crate::identity::{
    KeyType, Keypair, PeerId, PublicKey, SIGNATURE_LEN, Signature, VerifyItem, verify_batch,
};

/// Bytes of a topic id.
pub const TOPIC_LEN: usize = 32;
const DATA_V1: u8 = 1;
/// Kind byte through payload hash.
const FIXED: usize = 83;

/// The fields a publisher chooses for a frame.
#[derive(Clone, Debug)]
pub struct DataFrameFields {
    /// Topic (stream) the frame belongs to.
    pub topic: [u8; TOPIC_LEN],
    /// Sequence number within the topic.
    pub seq: u64,
    /// Publish time in microseconds since the Unix epoch (for latency measurement).
    pub timestamp_us: u64,
    /// The payload.
    pub payload: Bytes,
}

/// A signed data frame: `head` (length prefix through signature) and `payload`, both shared
/// `Bytes` so that decoding, relaying and delivering never copy the payload.
#[derive(Clone, Debug)]
pub struct DataFrame {
    head: Bytes,
    payload: Bytes,
    /// Offset of the kind byte in `head` (the length prefix is 1 to 5 bytes).
    kind_at: usize,
}

fn key_len(key_type_byte: u8) -> Result<(KeyType, usize), WireError> {
    match key_type_byte {
        1 => Ok((KeyType::Ed25519, 32)),
        2 => Ok((KeyType::Secp256k1, 33)),
        other => Err(WireError::UnknownKeyType(other)),
    }
}

impl DataFrame {
    /// Hashes, signs and frames `fields`. The head is carved out of `arena`, so a steady stream of
    /// frames allocates once per ~300 heads rather than once per frame (a retained head keeps its
    /// arena block alive, which bounded caches make harmless).
    pub fn sign(key: &Keypair, fields: DataFrameFields, arena: &mut BytesMut) -> DataFrame {
        let public = key.public().to_raw_bytes();
        let signed_len = FIXED + public.len();
        let body_len = signed_len + SIGNATURE_LEN + fields.payload.len();
        let prefix = varint_len(body_len as u64);
        let head_len = prefix + signed_len + SIGNATURE_LEN;
        if arena.capacity() - arena.len() < head_len {
            arena.reserve((64 * 1024).max(head_len));
        }
        put_varint(arena, body_len as u64);
        arena.put_u8(FrameKind::Data as u8);
        arena.put_u8(DATA_V1);
        arena.put_u8(key.key_type().protobuf_number() as u8);
        arena.put_slice(&fields.topic);
        arena.put_u64(fields.seq);
        arena.put_u64(fields.timestamp_us);
        arena.put_slice(blake3::hash(&fields.payload).as_bytes());
        arena.put_slice(&public);
        let signature = key.sign(&arena[prefix..]);
        arena.put_slice(&signature.to_bytes());
        DataFrame {
            head: arena.split().freeze(),
            payload: fields.payload,
            kind_at: prefix,
        }
    }

    /// Splits a whole frame (length prefix included; `kind_at` is the prefix length) into head and
    /// payload, checking the layout but not the signature.
    pub(super) fn decode(frame: Bytes, kind_at: usize) -> Result<DataFrame, WireError> {
        let body = &frame[kind_at..];
        let too_short = |expected| WireError::BadBodyLength {
            kind: "data",
            expected,
            actual: body.len(),
        };
        if body.len() < 3 {
            return Err(too_short(FIXED + 32 + SIGNATURE_LEN));
        }
        if body[1] != DATA_V1 {
            return Err(WireError::UnsupportedVersion {
                kind: "data",
                version: body[1],
            });
        }
        let (_, k) = key_len(body[2])?;
        let head_len = kind_at + FIXED + k + SIGNATURE_LEN;
        if frame.len() < head_len {
            return Err(too_short(FIXED + k + SIGNATURE_LEN));
        }
        Ok(DataFrame {
            payload: frame.slice(head_len..),
            head: frame.slice(..head_len),
            kind_at,
        })
    }

    fn at(&self, from: usize, len: usize) -> &[u8] {
        &self.head[self.kind_at + from..self.kind_at + from + len]
    }

    fn u64_at(&self, from: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.at(from, 8));
        u64::from_be_bytes(b)
    }

    /// Topic id.
    pub fn topic(&self) -> [u8; TOPIC_LEN] {
        let mut t = [0u8; TOPIC_LEN];
        t.copy_from_slice(self.at(3, TOPIC_LEN));
        t
    }

    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.u64_at(35)
    }

    /// Publish time, µs since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        self.u64_at(43)
    }

    /// The signed BLAKE3 hash of the payload.
    pub fn payload_hash(&self) -> &[u8] {
        self.at(51, 32)
    }

    fn key_type_and_len(&self) -> (KeyType, usize) {
        // decode() and sign() both guarantee a known key type byte.
        key_len(self.at(2, 1)[0]).unwrap_or((KeyType::Ed25519, 32))
    }

    /// The origin's raw public key bytes.
    pub fn origin_key(&self) -> &[u8] {
        let (_, k) = self.key_type_and_len();
        self.at(FIXED, k)
    }

    /// The payload (a slice of the received chunk, never a copy).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// What goes on the wire, in order: the head, then the payload.
    pub fn wire_parts(&self) -> [Bytes; 2] {
        [self.head.clone(), self.payload.clone()]
    }

    /// The address of the head bytes: identifies this frame while it is alive (clones share it).
    pub fn head_addr(&self) -> usize {
        self.head.as_ptr() as usize
    }

    /// Bytes on the wire, length prefix included.
    pub fn wire_len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    fn signed_bytes(&self) -> &[u8] {
        let (_, k) = self.key_type_and_len();
        &self.head[self.kind_at..self.kind_at + FIXED + k]
    }

    fn signature(&self) -> Result<Signature, WireError> {
        let (kt, k) = self.key_type_and_len();
        Ok(Signature::from_bytes(
            kt,
            self.at(FIXED + k, SIGNATURE_LEN),
        )?)
    }

    fn check_payload_hash(&self) -> Result<(), WireError> {
        if blake3::hash(&self.payload).as_bytes() == self.payload_hash() {
            Ok(())
        } else {
            Err(WireError::PayloadHashMismatch)
        }
    }

    /// Checks the payload hash and the origin's signature; returns the origin's key.
    pub fn verify(&self, keys: &mut KeyCache) -> Result<PublicKey, WireError> {
        self.check_payload_hash()?;
        let (kt, _) = self.key_type_and_len();
        let key = keys.get(kt, self.origin_key())?;
        key.verify(self.signed_bytes(), &self.signature()?)?;
        Ok(key)
    }

    /// The origin's PeerId (decodes its key through `keys`).
    pub fn origin(&self, keys: &mut KeyCache) -> Result<PeerId, WireError> {
        let (kt, _) = self.key_type_and_len();
        Ok(keys.get(kt, self.origin_key())?.peer_id())
    }
}

/// Verifies many frames at once (one Ed25519 batch equation); on failure returns the index of
/// the first bad frame so the caller can deliver the good ones.
pub fn verify_data_frames(
    frames: &[DataFrame],
    keys: &mut KeyCache,
) -> Result<(), (usize, WireError)> {
    let mut parts = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        f.check_payload_hash().map_err(|e| (i, e))?;
        let (kt, _) = f.key_type_and_len();
        let key = keys.get(kt, f.origin_key()).map_err(|e| (i, e))?;
        parts.push((key, f.signature().map_err(|e| (i, e))?));
    }
    let items: Vec<VerifyItem<'_>> = frames
        .iter()
        .zip(&parts)
        .map(|(f, (key, signature))| VerifyItem {
            key,
            message: f.signed_bytes(),
            signature,
        })
        .collect();
    verify_batch(&items).map_err(|e| match e {
        crate::identity::IdentityError::BatchFailed { index } => (
            index,
            WireError::Signature(crate::IdentityError::BadSignature),
        ),
        other => (0, WireError::Signature(other)),
    })
}

/// Decoded origin keys, most recent first. Decompressing an Ed25519 point costs about as much as
/// a verification, and a link carries frames of few origins, so a small cache saves most of it.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Vec<([u8; 33], PublicKey)>,
}

/// Keys remembered; a linear scan of this many is cheaper than hashing.
const KEY_CACHE_LEN: usize = 32;

impl KeyCache {
    /// The decoded key for `raw`, decoding (and remembering) it on a miss.
    pub fn get(&mut self, key_type: KeyType, raw: &[u8]) -> Result<PublicKey, WireError> {
        let mut padded = [0u8; 33];
        padded[..raw.len()].copy_from_slice(raw);
        if let Some(pos) = self
            .entries
            .iter()
            .position(|(k, pk)| *k == padded && pk.key_type() == key_type)
        {
            let hit = self.entries[pos].1;
            if pos > 0 {
                self.entries.swap(0, pos);
            }
            return Ok(hit);
        }
        let key = PublicKey::from_raw_bytes(key_type, raw)?;
        if self.entries.len() == KEY_CACHE_LEN {
            self.entries.pop();
        }
        self.entries.insert(0, (padded, key));
        Ok(key)
    }
}

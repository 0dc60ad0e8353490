//! Sealing where the payload lies: a [`SealBuf`] is written behind room for the envelope's
//! header, with capacity for its tag, so sealing is the one encryption pass and no copy.
//! ring seals in place only; without this, sealing copies the payload into a new envelope,
//! which cost a 64 KiB append more than the AES pass itself (README, `crypto`).

use bytes::{Buf, Bytes, BytesMut};
use rand::RngCore;

use super::{ContentKey, MAX_PLAINTEXT, Receivers, seal_under};
use crate::crypto::CryptoError;
use crate::crypto::aead::{Suite, TAG_LEN};

/// The widest nonce of any suite (XChaCha20's).
const MAX_NONCE: usize = 24;

/// A payload written behind `room` bytes kept for an envelope's header and nonce, with
/// capacity for the tag after it. Sealed where it lies when the room suffices (see
/// [`Receivers::envelope_room`]), else copied as any payload is; a plain log takes its
/// payload as it is ([`SealBuf::into_payload`]).
#[derive(Clone, Debug, Default)]
pub struct SealBuf {
    buf: BytesMut,
    room: usize,
}

impl SealBuf {
    /// An empty payload behind `room` bytes, with capacity for `capacity` payload bytes and
    /// a tag (writing more still works: the buffer grows, once).
    pub fn with_room(room: usize, capacity: usize) -> SealBuf {
        let mut buf = BytesMut::with_capacity(room + capacity + TAG_LEN);
        buf.resize(room, 0);
        SealBuf { buf, room }
    }

    /// Appends `data` to the payload.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The payload written so far.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.room..]
    }

    /// The payload, to write in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.room..]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.buf.len() - self.room
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as bytes (no copy: the room stays unused in front of it).
    pub fn into_payload(mut self) -> Bytes {
        self.buf.split_off(self.room).freeze()
    }
}

impl Receivers {
    /// The room in front of a payload that any envelope for this set needs: a wrapped
    /// header (its widest, both ephemeral keys as the set needs them) and the widest nonce.
    pub fn envelope_room(&self) -> usize {
        use crate::identity::KeyType;
        let has = |kt: KeyType| self.keys.iter().any(|k| k.key_type() == kt);
        let ephemerals = if has(KeyType::Ed25519) { 32 } else { 0 }
            + if has(KeyType::Secp256k1) { 33 } else { 0 };
        let listed: usize = self
            .listed
            .iter()
            .map(|l| l.len() + super::WRAPPED_LEN)
            .sum();
        super::FIXED + 1 + ephemerals + 2 + listed + MAX_NONCE
    }
}

/// Seals `buf`'s payload under `key` behind `header` (see [`seal_under`]): in place when its
/// room holds the header and nonce, else by copying.
pub fn seal_buf_under(header: &[u8], key: &ContentKey, buf: SealBuf) -> Result<Bytes, CryptoError> {
    if buf.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge(buf.len()));
    }
    let suite = Suite::of(*header.get(2).ok_or(CryptoError::Truncated {
        need: super::FIXED,
        have: header.len(),
    })?)?;
    let need = header.len() + suite.nonce_len();
    if need > buf.room {
        return seal_under(header, key, buf.payload());
    }
    let SealBuf { mut buf, room } = buf;
    buf.advance(room - need);
    let mut nonce = [0u8; MAX_NONCE];
    let nonce = &mut nonce[..suite.nonce_len()];
    rand::thread_rng().fill_bytes(nonce);
    let (front, body) = buf.split_at_mut(need);
    front[..header.len()].copy_from_slice(header);
    front[header.len()..].copy_from_slice(nonce);
    let tag = suite.seal(&key.key, nonce, header, body)?;
    buf.extend_from_slice(&tag);
    Ok(buf.freeze())
}

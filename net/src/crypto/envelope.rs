//! The envelope's layout, its receivers, sealing and opening.
//!
//! ```text
//! 0    version = 1
//! 1    kind: 1 wrapped (the content key is wrapped for each receiver), 2 keyed (named only);
//!      bit 7 set: a public section follows the kind-specific part
//! 2    suite: 1 XChaCha20-Poly1305, 2 AES-256-GCM (see `aead.rs`)
//! 3    key id [16]: BLAKE3 derive_key("starling envelope v1 key id", content key)[..16]
//! wrapped only:
//! 19   ephemerals u8: bit 0 an X25519 key [32] follows (for Ed25519 receivers), bit 1 a
//!      secp256k1 key [33, SEC1 compressed] (for secp256k1 receivers); at least one
//!      receivers u16 BE (1..=MAX_RECEIVERS), then per receiver in ascending byte order:
//!      key type u8 (1 Ed25519, 2 secp256k1) | key [32 / 33] | wrapped content key [48]
//! public section only:
//!      length u32 BE (1..=MAX_PUBLIC) | bytes anyone reads (the writer's choice, e.g. a
//!      document's index projection)
//! both:
//!      nonce [24 XChaCha20 / 12 AES-GCM] | ciphertext | tag [16]
//! ```
//!
//! The content is sealed under the content key with everything before the nonce as
//! associated data, so the receiver list, key id and public section cannot be altered without
//! the tag failing (and entries sign the whole envelope besides). A wrapped key is ChaCha20-Poly1305 under `agreement::kek` with a zero
//! nonce (each key-encryption key is used once: the ephemeral key is fresh per content key)
//! and the key id as associated data.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::CryptoError;
use super::aead::{self, Suite, TAG_LEN};
use super::agreement::{AgreementSecret, kek};
use crate::identity::{KeyType, Keypair, PublicKey};

/// The layout version this build writes and reads.
pub const VERSION: u8 = 1;
const KIND_WRAPPED: u8 = 1;
const KIND_KEYED: u8 = 2;
/// Kind bit: a public section follows.
const KIND_PUBLIC: u8 = 0x80;
/// Largest public section.
pub const MAX_PUBLIC: usize = 1 << 20;
/// Bytes of a content key's id.
pub const KEY_ID_LEN: usize = 16;
/// Most receivers one envelope lists (a wrapped header of ~83 KiB).
pub const MAX_RECEIVERS: usize = 1024;
/// Bytes before the kind-specific part: version, kind, suite, key id.
const FIXED: usize = 3 + KEY_ID_LEN;
/// Largest payload sealed (the AEAD allows far more; entries carry less).
const MAX_PLAINTEXT: usize = 1 << 30;
const WRAPPED_LEN: usize = 32 + TAG_LEN;
const EPH_X25519: u8 = 1;
const EPH_SECP256K1: u8 = 2;
const KEY_ID_CONTEXT: &str = "starling envelope v1 key id";

fn key_type_code(kt: KeyType) -> u8 {
    match kt {
        KeyType::Ed25519 => 1,
        KeyType::Secp256k1 => 2,
    }
}

fn key_type_of(code: u8) -> Result<(KeyType, usize), CryptoError> {
    match code {
        1 => Ok((KeyType::Ed25519, 32)),
        2 => Ok((KeyType::Secp256k1, 33)),
        other => Err(CryptoError::UnknownKeyType(other)),
    }
}

/// A receiver as the envelope lists it: key type ‖ key bytes.
fn listed(key: &PublicKey) -> Vec<u8> {
    let mut v = vec![key_type_code(key.key_type())];
    v.extend_from_slice(&key.to_raw_bytes());
    v
}

/// A random 256-bit key that encrypts contents; zeroed on drop.
#[derive(Clone)]
pub struct ContentKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey({})", hex::encode(self.id))
    }
}

impl ContentKey {
    /// A fresh key from the OS RNG.
    pub fn generate() -> ContentKey {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        ContentKey::from_bytes(key)
    }

    fn from_bytes(key: Zeroizing<[u8; 32]>) -> ContentKey {
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&blake3::derive_key(KEY_ID_CONTEXT, &key[..])[..KEY_ID_LEN]);
        ContentKey { key, id }
    }

    /// Its id: what a keyed envelope names (a hash; reveals nothing of the key).
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }
}

/// Who may read an envelope: identity keys in canonical order, the writer always among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receivers {
    keys: Vec<PublicKey>,
    /// Each key as listed (type ‖ bytes), in the same order.
    listed: Vec<Vec<u8>>,
    digest: [u8; 32],
}

impl Receivers {
    /// `writer` and `others`, deduplicated and sorted; 1..=[`MAX_RECEIVERS`] of them.
    pub fn new(
        writer: &PublicKey,
        others: impl IntoIterator<Item = PublicKey>,
    ) -> Result<Receivers, CryptoError> {
        let mut all: Vec<(Vec<u8>, PublicKey)> = std::iter::once(*writer)
            .chain(others)
            .map(|k| (listed(&k), k))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        if all.len() > MAX_RECEIVERS {
            return Err(CryptoError::ReceiverCount(all.len()));
        }
        let mut h = blake3::Hasher::new();
        for (l, _) in &all {
            h.update(l);
        }
        let (listed, keys) = all.into_iter().unzip();
        Ok(Receivers {
            keys,
            listed,
            digest: *h.finalize().as_bytes(),
        })
    }

    /// The keys, in canonical order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never: the writer is always one.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `key` is one.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.listed.binary_search(&listed(key)).is_ok()
    }

    /// A hash naming this set (two equal sets have one digest).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// The header of a wrapped envelope for `receivers` (everything before the nonce): a fresh
/// ephemeral key per key type present, and `key` wrapped for each receiver. Costs one key
/// agreement per receiver; reuse it for many payloads with [`seal_under`].
pub fn wrapped_header(
    key: &ContentKey,
    receivers: &Receivers,
    suite: Suite,
) -> Result<Vec<u8>, CryptoError> {
    let has = |kt: KeyType| receivers.keys.iter().any(|k| k.key_type() == kt);
    let x = has(KeyType::Ed25519).then(|| AgreementSecret::ephemeral(KeyType::Ed25519));
    let s = has(KeyType::Secp256k1).then(|| AgreementSecret::ephemeral(KeyType::Secp256k1));
    let x_pub = x.as_ref().map(AgreementSecret::public_bytes);
    let s_pub = s.as_ref().map(AgreementSecret::public_bytes);
    let mut out = Vec::with_capacity(FIXED + 1 + 65 + 2 + receivers.len() * (34 + WRAPPED_LEN));
    out.extend_from_slice(&[VERSION, KIND_WRAPPED, suite.code()]);
    out.extend_from_slice(&key.id);
    out.push(
        if x.is_some() { EPH_X25519 } else { 0 } | if s.is_some() { EPH_SECP256K1 } else { 0 },
    );
    out.extend_from_slice(x_pub.as_deref().unwrap_or_default());
    out.extend_from_slice(s_pub.as_deref().unwrap_or_default());
    out.extend_from_slice(&(receivers.len() as u16).to_be_bytes());
    for (k, l) in receivers.keys.iter().zip(&receivers.listed) {
        let (eph, eph_pub) = match k.key_type() {
            KeyType::Ed25519 => (x.as_ref(), x_pub.as_deref()),
            KeyType::Secp256k1 => (s.as_ref(), s_pub.as_deref()),
        };
        let (Some(eph), Some(eph_pub)) = (eph, eph_pub) else {
            return Err(CryptoError::MissingEphemeral(k.key_type()));
        };
        let shared = eph.agree_with_identity(k)?;
        let kek = kek(&shared, eph_pub, l);
        let mut wrapped = Zeroizing::new(*key.key);
        let tag = aead::wrap(&kek, &key.id, &mut wrapped)?;
        out.extend_from_slice(l);
        out.extend_from_slice(&wrapped[..]);
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// The header of a keyed envelope: it names `key` and wraps nothing.
fn keyed_header(key: &ContentKey, suite: Suite) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED);
    out.extend_from_slice(&[VERSION, KIND_KEYED, suite.code()]);
    out.extend_from_slice(&key.id);
    out
}

/// `header` (from [`wrapped_header`] or a keyed one) with a public section appended.
pub fn with_public(header: &[u8], public: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if public.is_empty() || public.len() > MAX_PUBLIC {
        return Err(CryptoError::PublicTooLarge(public.len()));
    }
    if header.len() < FIXED || header[1] & KIND_PUBLIC != 0 {
        return Err(CryptoError::UnknownKind(
            header.get(1).copied().unwrap_or(0),
        ));
    }
    let mut out = Vec::with_capacity(header.len() + 4 + public.len());
    out.extend_from_slice(header);
    out[1] |= KIND_PUBLIC;
    out.extend_from_slice(&(public.len() as u32).to_be_bytes());
    out.extend_from_slice(public);
    Ok(out)
}

/// Seals `plaintext` behind `header` (from [`wrapped_header`] for `key`, or a keyed one): one
/// allocation, one encryption pass.
pub fn seal_under(header: &[u8], key: &ContentKey, plaintext: &[u8]) -> Result<Bytes, CryptoError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge(plaintext.len()));
    }
    let suite = Suite::of(*header.get(2).ok_or(CryptoError::Truncated {
        need: FIXED,
        have: header.len(),
    })?)?;
    let mut nonce = [0u8; 24];
    let nonce = &mut nonce[..suite.nonce_len()];
    rand::thread_rng().fill_bytes(nonce);
    let mut out = BytesMut::with_capacity(header.len() + nonce.len() + plaintext.len() + TAG_LEN);
    out.put_slice(header);
    out.put_slice(nonce);
    let body_at = out.len();
    out.put_slice(plaintext);
    let tag = suite.seal(&key.key, nonce, header, &mut out[body_at..])?;
    out.put_slice(&tag);
    Ok(out.freeze())
}

/// Seals `plaintext` for `receivers` under a fresh content key with the preferred suite (one
/// key agreement per receiver; a [`Sealer`] reuses the wrapped key for the same set).
pub fn seal(receivers: &Receivers, plaintext: &[u8]) -> Result<Bytes, CryptoError> {
    let key = ContentKey::generate();
    seal_under(
        &wrapped_header(&key, receivers, Suite::preferred())?,
        &key,
        plaintext,
    )
}

/// Seals `plaintext` under `key` with `suite`, naming the key only: readers must have learnt
/// it from a wrapped envelope before ([`Opener::open`] remembers the keys it unwraps).
pub fn seal_keyed(key: &ContentKey, suite: Suite, plaintext: &[u8]) -> Result<Bytes, CryptoError> {
    seal_under(&keyed_header(key, suite), key, plaintext)
}

/// Seals payloads for receiver sets, reusing one content key and its wrapped header per set
/// for up to `max_uses` payloads (each with its own random nonce), so a writer pays the key
/// agreements once per set rather than per payload. A new set, or [`Sealer::rotate`], starts
/// a new key.
#[derive(Debug)]
pub struct Sealer {
    current: Option<Current>,
    uses: u32,
    max_uses: u32,
    suite: Suite,
}

/// A sealer's current key: the set it is for, and both headers naming it.
#[derive(Debug)]
struct Current {
    key: ContentKey,
    set: [u8; 32],
    wrapped: Vec<u8>,
    keyed: Vec<u8>,
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer::new(4096)
    }
}

impl Sealer {
    /// A sealer that changes key at least every `max_uses` payloads (default 4,096), with
    /// [`Suite::preferred`].
    pub fn new(max_uses: u32) -> Sealer {
        Sealer::with_suite(Suite::preferred(), max_uses)
    }

    /// A sealer of `suite`.
    pub fn with_suite(suite: Suite, max_uses: u32) -> Sealer {
        Sealer {
            current: None,
            uses: 0,
            max_uses: max_uses.max(1),
            suite,
        }
    }

    /// Seals `plaintext` for `receivers` (a wrapped envelope: it opens on its own).
    pub fn seal(&mut self, receivers: &Receivers, plaintext: &[u8]) -> Result<Bytes, CryptoError> {
        self.seal_as(receivers, plaintext, true)
    }

    /// Seals `plaintext` for `receivers`, wrapped when `wrap` or when the key is new (its
    /// first envelope always carries it), else keyed: readers must have opened a wrapped
    /// envelope of this key before (a stream's frames between its keyframes).
    pub fn seal_as(
        &mut self,
        receivers: &Receivers,
        plaintext: &[u8],
        wrap: bool,
    ) -> Result<Bytes, CryptoError> {
        self.seal_with_public(receivers, plaintext, wrap, &[])
    }

    /// [`Sealer::seal_as`] with a `public` section anyone reads ([`Envelope::public`]; none
    /// when empty), authenticated with the content.
    pub fn seal_with_public(
        &mut self,
        receivers: &Receivers,
        plaintext: &[u8],
        wrap: bool,
        public: &[u8],
    ) -> Result<Bytes, CryptoError> {
        let (header, key) = self.key_for(receivers, wrap)?;
        if public.is_empty() {
            return seal_under(header, key, plaintext);
        }
        seal_under(&with_public(header, public)?, key, plaintext)
    }

    /// [`Sealer::seal_as`] of a payload written behind room for the envelope: sealed where
    /// it lies when the room suffices ([`Receivers::envelope_room`]), else copied.
    pub fn seal_buf(
        &mut self,
        receivers: &Receivers,
        buf: SealBuf,
        wrap: bool,
    ) -> Result<Bytes, CryptoError> {
        let (header, key) = self.key_for(receivers, wrap)?;
        seal_buf_under(header, key, buf)
    }

    /// The header and content key of the next payload for `receivers` (a new key when the
    /// set changed or the key is used up; wrapped when `wrap` or the key is new).
    fn key_for(
        &mut self,
        receivers: &Receivers,
        wrap: bool,
    ) -> Result<(&[u8], &ContentKey), CryptoError> {
        let fresh = match &self.current {
            Some(c) => c.set != receivers.digest || self.uses >= self.max_uses,
            None => true,
        };
        if fresh {
            let key = ContentKey::generate();
            let wrapped = wrapped_header(&key, receivers, self.suite)?;
            let keyed = keyed_header(&key, self.suite);
            self.current = Some(Current {
                key,
                set: receivers.digest,
                wrapped,
                keyed,
            });
            self.uses = 0;
        }
        let first = self.uses == 0;
        self.uses += 1;
        let Some(c) = &self.current else {
            return Err(CryptoError::ReceiverCount(0));
        };
        let header = if wrap || first { &c.wrapped } else { &c.keyed };
        Ok((header, &c.key))
    }

    /// Forgets the current key: the next payload gets a fresh one.
    pub fn rotate(&mut self) {
        self.current = None;
    }
}

/// A parsed envelope: slices of the bytes given, nothing decrypted.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    bytes: &'a [u8],
    suite: Suite,
    key_id: [u8; KEY_ID_LEN],
    wrapped: Option<Wrapped<'a>>,
    /// The public section (empty when there is none).
    public: &'a [u8],
    /// Where the nonce starts (the end of the associated data).
    nonce_at: usize,
}

#[derive(Clone, Copy, Debug)]
struct Wrapped<'a> {
    x25519: Option<&'a [u8]>,
    secp256k1: Option<&'a [u8]>,
    /// The receiver list: entries of type ‖ key ‖ wrapped key.
    list: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses the layout (lengths checked before use, receivers in canonical order); keys are
    /// not decoded until used.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, CryptoError> {
        let need = |n: usize| {
            if bytes.len() < n {
                Err(CryptoError::Truncated {
                    need: n,
                    have: bytes.len(),
                })
            } else {
                Ok(())
            }
        };
        need(FIXED)?;
        if bytes[0] != VERSION {
            return Err(CryptoError::UnsupportedVersion(bytes[0]));
        }
        let suite = Suite::of(bytes[2])?;
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[3..FIXED]);
        let mut at = FIXED;
        let wrapped = match bytes[1] & !KIND_PUBLIC {
            KIND_KEYED => None,
            KIND_WRAPPED => {
                need(at + 1)?;
                let flags = bytes[at];
                at += 1;
                if flags == 0 || flags & !(EPH_X25519 | EPH_SECP256K1) != 0 {
                    return Err(CryptoError::BadEphemerals(flags));
                }
                let mut take = |present: bool, len: usize| {
                    if !present {
                        return Ok(None);
                    }
                    need(at + len)?;
                    at += len;
                    Ok::<_, CryptoError>(Some(&bytes[at - len..at]))
                };
                let x25519 = take(flags & EPH_X25519 != 0, 32)?;
                let secp256k1 = take(flags & EPH_SECP256K1 != 0, 33)?;
                need(at + 2)?;
                let n = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
                at += 2;
                if n == 0 || n > MAX_RECEIVERS {
                    return Err(CryptoError::ReceiverCount(n));
                }
                let start = at;
                let mut previous: Option<&[u8]> = None;
                for _ in 0..n {
                    need(at + 1)?;
                    let (kt, len) = key_type_of(bytes[at])?;
                    need(at + 1 + len + WRAPPED_LEN)?;
                    let this = &bytes[at..at + 1 + len];
                    if previous.is_some_and(|p| p >= this) {
                        return Err(CryptoError::NotCanonical);
                    }
                    let has_eph = match kt {
                        KeyType::Ed25519 => x25519.is_some(),
                        KeyType::Secp256k1 => secp256k1.is_some(),
                    };
                    if !has_eph {
                        return Err(CryptoError::MissingEphemeral(kt));
                    }
                    previous = Some(this);
                    at += 1 + len + WRAPPED_LEN;
                }
                Some(Wrapped {
                    x25519,
                    secp256k1,
                    list: &bytes[start..at],
                })
            }
            _ => return Err(CryptoError::UnknownKind(bytes[1])),
        };
        let public = if bytes[1] & KIND_PUBLIC != 0 {
            need(at + 4)?;
            let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            let len = len as usize;
            if len == 0 || len > MAX_PUBLIC {
                return Err(CryptoError::PublicTooLarge(len));
            }
            at += 4;
            need(at + len)?;
            at += len;
            &bytes[at - len..at]
        } else {
            &[]
        };
        need(at + suite.nonce_len() + TAG_LEN)?;
        Ok(Envelope {
            bytes,
            suite,
            key_id,
            wrapped,
            public,
            nonce_at: at,
        })
    }

    /// The content key's id.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }

    /// The public section anyone reads (empty when the writer gave none), authenticated with
    /// the ciphertext: a receiver's open fails if it was altered.
    pub fn public(&self) -> &'a [u8] {
        self.public
    }

    /// Whether the content key is wrapped here (else only named).
    pub fn is_wrapped(&self) -> bool {
        self.wrapped.is_some()
    }

    /// Bytes of the plaintext inside.
    pub fn plaintext_len(&self) -> usize {
        self.bytes.len() - self.nonce_at - self.suite.nonce_len() - TAG_LEN
    }

    /// The content's cipher.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The receivers listed (none for a keyed envelope), each decoded.
    pub fn receivers(&self) -> impl Iterator<Item = Result<PublicKey, CryptoError>> + 'a {
        self.entries().map(|(listed, _)| {
            let (kt, _) = key_type_of(listed[0])?;
            PublicKey::from_raw_bytes(kt, &listed[1..]).map_err(|_| CryptoError::BadKey(kt))
        })
    }

    /// Whether `key` is a listed receiver, compared as listed bytes (no key is decoded), as
    /// an [`Opener`] finds its wrapped key: a key listed under a non-canonical encoding is
    /// listed for no one.
    pub fn lists(&self, key: &PublicKey) -> bool {
        let wanted = listed(key);
        self.entries().any(|(l, _)| l == &wanted[..])
    }

    /// (type ‖ key, wrapped key) per receiver.
    fn entries(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut list = self.wrapped.map(|w| w.list).unwrap_or_default();
        std::iter::from_fn(move || {
            let (_, len) = key_type_of(*list.first()?).ok()?;
            let (listed, rest) = list.split_at(1 + len);
            let (wrapped, rest) = rest.split_at(WRAPPED_LEN);
            list = rest;
            Some((listed, wrapped))
        })
    }
}

/// A fixed-size piece of a parsed envelope (its length was checked by the parse).
fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], CryptoError> {
    bytes.try_into().map_err(|_| CryptoError::Truncated {
        need: N,
        have: bytes.len(),
    })
}

/// Content keys an [`Opener`] remembers (oldest forgotten first).
const KNOWN_KEYS: usize = 1024;

/// A receiver's side: its agreement key and the content keys it has unwrapped (at most
/// 1,024, so a stream's keyed frames and a writer's reused keys cost no agreement).
#[derive(Debug)]
pub struct Opener {
    me: Vec<u8>,
    secret: AgreementSecret,
    /// Shared readers (a store's queries) open through `&self`.
    known: Mutex<KnownKeys>,
}

#[derive(Debug, Default)]
struct KnownKeys {
    keys: HashMap<[u8; KEY_ID_LEN], ContentKey>,
    order: VecDeque<[u8; KEY_ID_LEN]>,
}

impl Opener {
    /// An opener for `key`'s envelopes.
    pub fn new(key: &Keypair) -> Opener {
        Opener {
            me: listed(key.public()),
            secret: AgreementSecret::of(key),
            known: Mutex::default(),
        }
    }

    /// Whether this key can open `envelope` without trying: it is listed, or its key is known.
    pub fn can_open(&self, envelope: &Envelope<'_>) -> bool {
        self.known_key(&envelope.key_id).is_some() || self.wrapped_for_me(envelope).is_some()
    }

    fn wrapped_for_me<'a>(&self, envelope: &Envelope<'a>) -> Option<&'a [u8]> {
        envelope
            .entries()
            .find(|(listed, _)| *listed == &self.me[..])
            .map(|(_, wrapped)| wrapped)
    }

    /// The plaintext of `envelope`; learns its content key on the way.
    pub fn open(&self, envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let env = Envelope::parse(envelope)?;
        let key = match self.known_key(&env.key_id) {
            Some(k) => k,
            None => {
                let key = self.unwrap_key(&env)?;
                self.learn(key.clone());
                key
            }
        };
        let (aad, rest) = envelope.split_at(env.nonce_at);
        let (nonce, rest) = rest.split_at(env.suite.nonce_len());
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = ciphertext.to_vec();
        env.suite
            .open(&key.key, nonce, aad, &mut plain, &array(tag)?)?;
        Ok(plain)
    }

    /// Unwraps the content key listed for this reader.
    fn unwrap_key(&self, env: &Envelope<'_>) -> Result<ContentKey, CryptoError> {
        let Some(w) = env.wrapped else {
            return Err(CryptoError::UnknownKey(hex::encode(env.key_id)));
        };
        let wrapped = self.wrapped_for_me(env).ok_or(CryptoError::NotAReceiver)?;
        let eph = match key_type_of(self.me[0])?.0 {
            KeyType::Ed25519 => w.x25519,
            KeyType::Secp256k1 => w.secp256k1,
        }
        .ok_or(CryptoError::MissingEphemeral(key_type_of(self.me[0])?.0))?;
        let shared = self.secret.agree_with_ephemeral(eph)?;
        let kek = kek(&shared, eph, &self.me);
        let (sealed, tag) = wrapped.split_at(32);
        let mut key = Zeroizing::new(array::<32>(sealed)?);
        aead::unwrap(&kek, &env.key_id, &mut key, &array(tag)?)?;
        let key = ContentKey::from_bytes(key);
        if key.id != env.key_id {
            return Err(CryptoError::WrongKeyId);
        }
        Ok(key)
    }

    /// Remembers `key` (a stream's group key handed over some other way, or one unwrapped).
    pub fn learn(&self, key: ContentKey) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.keys.insert(key.id, key.clone()).is_none() {
            known.order.push_back(key.id);
            while known.order.len() > KNOWN_KEYS {
                if let Some(old) = known.order.pop_front() {
                    known.keys.remove(&old);
                }
            }
        }
    }

    fn known_key(&self, id: &[u8; KEY_ID_LEN]) -> Option<ContentKey> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.keys.get(id).cloned()
    }
}

mod seal_buf;

pub use seal_buf::{SealBuf, seal_buf_under};

#[cfg(test)]
mod tests;

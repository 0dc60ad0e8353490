//! A program's definition and its address.
//!
//! Encoding (all integers big-endian), the one form that is hashed:
//!
//! ```text
//! 0        version = 1
//! 1        kind length u8 (1..=64), kind (ASCII a-z 0-9 - . /, e.g. "documents/v1")
//! k        name length u16 (≤ 1024), name (UTF-8)
//! n        params length u32 (≤ 64 KiB), params (the program's own encoding)
//! ```
//!
//! Nothing may follow. The address is BLAKE3("starling-program-v1\0" ‖ encoding).

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use starling_net::entry::EntryHash;

/// The encoding this build writes and reads.
const VERSION: u8 = 1;
/// Longest kind.
pub const MAX_KIND_LEN: usize = 64;
/// Longest name (bytes).
pub const MAX_NAME_LEN: usize = 1024;
/// Largest parameters.
pub const MAX_PARAMS_LEN: usize = 64 << 10;
/// Domain of the address hash (never an entry's or a log's).
const ADDRESS_DOMAIN: &[u8] = b"starling-program-v1\0";

/// What can be wrong with a definition or an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgramError {
    /// Fewer bytes than the encoding says.
    #[error("definition truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// A version this build does not read.
    #[error("definition version {0} is not supported")]
    UnsupportedVersion(u8),
    /// A kind that is empty, too long or has characters outside a-z 0-9 - . /.
    #[error("bad program kind {0:?}")]
    BadKind(String),
    /// A name past [`MAX_NAME_LEN`] bytes or not UTF-8.
    #[error("bad program name: {0}")]
    BadName(String),
    /// Parameters past [`MAX_PARAMS_LEN`].
    #[error("program parameters of {0} bytes exceed the limit")]
    ParamsTooLarge(usize),
    /// Bytes after the parameters.
    #[error("{0} bytes past the end of the definition")]
    TrailingBytes(usize),
    /// Text that is not a program address.
    #[error("bad program address: {0}")]
    BadAddress(String),
    /// A definition of another kind than the one being opened.
    #[error("program is a {found:?}, not a {expected:?}")]
    WrongKind {
        /// The kind being opened.
        expected: &'static str,
        /// The definition's kind.
        found: String,
    },
    /// Parameters that do not parse as the kind's.
    #[error("bad program parameters: {0}")]
    BadParams(String),
    /// A definition that does not hash to the address it was fetched for.
    #[error("definition hashes to {got}, not to {expected}")]
    WrongDefinition {
        /// The address asked for.
        expected: ProgramAddress,
        /// What the definition hashes to.
        got: ProgramAddress,
    },
}

/// What a program is: its kind (which code runs it), its name, and its parameters (access
/// rules, index spec, replication settings — in the program's own encoding). Two peers with
/// the same definition have the same [`ProgramAddress`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramDefinition {
    kind: String,
    name: String,
    params: Bytes,
}

impl ProgramDefinition {
    /// A definition, checked.
    pub fn new(
        kind: impl Into<String>,
        name: impl Into<String>,
        params: Bytes,
    ) -> Result<Self, ProgramError> {
        let (kind, name) = (kind.into(), name.into());
        check_kind(&kind)?;
        if name.len() > MAX_NAME_LEN {
            return Err(ProgramError::BadName(format!("{} bytes", name.len())));
        }
        if params.len() > MAX_PARAMS_LEN {
            return Err(ProgramError::ParamsTooLarge(params.len()));
        }
        Ok(ProgramDefinition { kind, name, params })
    }

    /// A definition of `kind` whose parameters are `params` in postcard (how document stores
    /// and trust graphs write theirs).
    pub fn with_params<P: serde::Serialize>(
        kind: &str,
        name: &str,
        params: &P,
    ) -> Result<Self, ProgramError> {
        let encoded = postcard::to_stdvec(params)
            .map_err(|e| ProgramError::BadParams(format!("encoding: {e}")))?;
        ProgramDefinition::new(kind, name, Bytes::from(encoded))
    }

    /// The postcard parameters of a definition that must be of `kind`.
    pub fn params_as<P: serde::de::DeserializeOwned>(
        &self,
        kind: &'static str,
    ) -> Result<P, ProgramError> {
        if self.kind != kind {
            return Err(ProgramError::WrongKind {
                expected: kind,
                found: self.kind.clone(),
            });
        }
        postcard::from_bytes(&self.params).map_err(|e| ProgramError::BadParams(e.to_string()))
    }

    /// Which code runs it (`"documents/v1"`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its parameters, in the program's own encoding.
    pub fn params(&self) -> &Bytes {
        &self.params
    }

    /// The canonical encoding (what is hashed and what peers send).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            1 + 1 + self.kind.len() + 2 + self.name.len() + 4 + self.params.len(),
        );
        out.put_u8(VERSION);
        out.put_u8(self.kind.len() as u8);
        out.put_slice(self.kind.as_bytes());
        out.put_u16(self.name.len() as u16);
        out.put_slice(self.name.as_bytes());
        out.put_u32(self.params.len() as u32);
        out.put_slice(&self.params);
        out.freeze()
    }

    /// Decodes a definition (lengths checked before anything is taken; `params` is a slice of
    /// `bytes`).
    pub fn decode(bytes: &Bytes) -> Result<Self, ProgramError> {
        let mut b = bytes.clone();
        let need = |b: &Bytes, n: usize| {
            if b.remaining() < n {
                Err(ProgramError::Truncated {
                    need: n,
                    have: b.remaining(),
                })
            } else {
                Ok(())
            }
        };
        need(&b, 2)?;
        let version = b.get_u8();
        if version != VERSION {
            return Err(ProgramError::UnsupportedVersion(version));
        }
        let kind_len = usize::from(b.get_u8());
        need(&b, kind_len)?;
        let kind = String::from_utf8(b.split_to(kind_len).to_vec())
            .map_err(|e| ProgramError::BadKind(String::from_utf8_lossy(e.as_bytes()).into()))?;
        need(&b, 2)?;
        let name_len = usize::from(b.get_u16());
        need(&b, name_len)?;
        let name = String::from_utf8(b.split_to(name_len).to_vec())
            .map_err(|e| ProgramError::BadName(e.to_string()))?;
        need(&b, 4)?;
        let params_len = b.get_u32() as usize;
        if params_len > MAX_PARAMS_LEN {
            return Err(ProgramError::ParamsTooLarge(params_len));
        }
        need(&b, params_len)?;
        let params = b.split_to(params_len);
        if b.has_remaining() {
            return Err(ProgramError::TrailingBytes(b.remaining()));
        }
        ProgramDefinition::new(kind, name, params)
    }

    /// Its address.
    pub fn address(&self) -> ProgramAddress {
        let mut h = blake3::Hasher::new();
        h.update(ADDRESS_DOMAIN);
        h.update(&self.encode());
        ProgramAddress(*h.finalize().as_bytes())
    }

    /// Decodes `bytes` sent for `address`, and checks that they are its definition.
    pub fn decode_for(address: &ProgramAddress, bytes: &Bytes) -> Result<Self, ProgramError> {
        let definition = ProgramDefinition::decode(bytes)?;
        let got = definition.address();
        if got != *address {
            return Err(ProgramError::WrongDefinition {
                expected: *address,
                got,
            });
        }
        Ok(definition)
    }
}

fn check_kind(kind: &str) -> Result<(), ProgramError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-./".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ProgramError::BadKind(
            kind.chars().take(MAX_KIND_LEN).collect(),
        ))
    }
}

/// A program's address: BLAKE3 of its definition, printed as a CIDv1 (`bafkr4i…`, codec raw,
/// multihash blake3 — the form entry hashes take).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramAddress(pub [u8; 32]);

impl fmt::Display for ProgramAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&EntryHash(self.0), f)
    }
}

impl fmt::Debug for ProgramAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "ProgramAddress({}…)", &s[..s.len().min(16)])
    }
}

impl FromStr for ProgramAddress {
    type Err = ProgramError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<EntryHash>()
            .map(|h| ProgramAddress(h.0))
            .map_err(|e| ProgramError::BadAddress(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn posts() -> ProgramDefinition {
        ProgramDefinition::new("documents/v1", "posts", Bytes::from_static(b"\x01anyone")).unwrap()
    }

    #[test]
    fn the_same_definition_has_the_same_address_and_prints_as_a_cid() {
        let a = posts().address();
        assert_eq!(a, posts().address());
        let text = a.to_string();
        assert!(text.starts_with("bafkr4i"), "{text}");
        assert_eq!(text.parse::<ProgramAddress>().unwrap(), a);
        let other = ProgramDefinition::new("documents/v1", "posts2", Bytes::new()).unwrap();
        assert_ne!(other.address(), a);
        assert_eq!(
            ProgramDefinition::decode_for(&a, &posts().encode()).unwrap(),
            posts()
        );
        assert!(matches!(
            ProgramDefinition::decode_for(&a, &other.encode()),
            Err(ProgramError::WrongDefinition { .. })
        ));
    }

    #[test]
    fn bad_definitions_and_addresses_are_typed_errors() {
        assert!(matches!(
            ProgramDefinition::new("Documents", "x", Bytes::new()),
            Err(ProgramError::BadKind(_))
        ));
        assert!(matches!(
            ProgramDefinition::new("", "x", Bytes::new()),
            Err(ProgramError::BadKind(_))
        ));
        assert!(matches!(
            ProgramDefinition::new("k", "x".repeat(MAX_NAME_LEN + 1), Bytes::new()),
            Err(ProgramError::BadName(_))
        ));
        assert!(matches!(
            ProgramDefinition::new("k", "x", Bytes::from(vec![0; MAX_PARAMS_LEN + 1])),
            Err(ProgramError::ParamsTooLarge(_))
        ));
        let good = posts().encode();
        let mut v = good.to_vec();
        v[0] = 2;
        assert_eq!(
            ProgramDefinition::decode(&Bytes::from(v)),
            Err(ProgramError::UnsupportedVersion(2))
        );
        let mut v = good.to_vec();
        v.push(0);
        assert_eq!(
            ProgramDefinition::decode(&Bytes::from(v)),
            Err(ProgramError::TrailingBytes(1))
        );
        // A params length of 4 GiB in a short message: refused before anything is taken.
        let mut v = good[..good.len() - posts().params().len() - 4].to_vec();
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            ProgramDefinition::decode(&Bytes::from(v)),
            Err(ProgramError::ParamsTooLarge(u32::MAX as usize))
        );
        assert!(matches!(
            "bafkr4inotanaddress".parse::<ProgramAddress>(),
            Err(ProgramError::BadAddress(_))
        ));
    }

    proptest! {
        #[test]
        fn definitions_round_trip(
            kind in "[a-z0-9./-]{1,64}",
            name in "\\PC{0,40}",
            params in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let d = ProgramDefinition::new(kind, name, Bytes::from(params)).unwrap();
            let back = ProgramDefinition::decode(&d.encode()).unwrap();
            prop_assert_eq!(back.address(), d.address());
            prop_assert_eq!(back, d);
        }

        #[test]
        fn the_decoder_never_panics_and_any_cut_is_an_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..100,
        ) {
            let _ = ProgramDefinition::decode(&Bytes::from(bytes));
            let good = posts().encode();
            let cut = cut.min(good.len() - 1);
            prop_assert!(ProgramDefinition::decode(&good.slice(..cut)).is_err());
        }
    }
}

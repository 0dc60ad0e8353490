//! Documents as bytes: one seam ([`Codec`]) between the application's type and what entries
//! carry, and document ids with the keys and group ids derived from them.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, IndexValue};

/// What can go wrong turning documents into bytes and back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The document could not be encoded.
    #[error("encoding a document: {0}")]
    Encode(String),
    /// The bytes are not a document of this type.
    #[error("decoding a document: {0}")]
    Decode(String),
}

/// How documents of type `T` become bytes and back.
pub trait Codec<T>: Send + Sync + 'static {
    /// `doc`'s bytes.
    fn encode(&self, doc: &T) -> Result<Bytes, CodecError>;
    /// The document in `bytes` (from any peer: must not panic on any input).
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// serde + postcard: compact, deterministic, no schema in the bytes. The default codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, doc: &T) -> Result<Bytes, CodecError> {
        postcard::to_stdvec(doc)
            .map(Bytes::from)
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        postcard::from_bytes(bytes).map_err(|e| CodecError::Decode(e.to_string()))
    }
}

/// A document's id: an integer, a string or bytes. Ids order as their values do (the
/// tie-break of sorted queries), integers before strings before bytes — the order of their
/// keys, which the variant order here matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    /// An integer id.
    Int(i64),
    /// A string id.
    Str(String),
    /// A bytes id.
    Bytes(Bytes),
}

impl DocId {
    /// The id as an index value (its key is `keys::encode` of it: ordered, self-delimiting).
    pub fn value(&self) -> IndexValue {
        match self {
            DocId::Str(s) => IndexValue::Str(s.clone()),
            DocId::Int(i) => IndexValue::Int(*i),
            DocId::Bytes(b) => IndexValue::Bytes(b.clone()),
        }
    }

    /// Appends the id's key to `out`.
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        keys::encode(&self.value(), out);
    }

    /// The id whose key starts `key`, and the rest.
    pub fn decode_key(key: &[u8]) -> Result<(DocId, &[u8]), keys::KeyError> {
        let (value, rest) = keys::decode(key)?;
        let id = match value {
            IndexValue::Str(s) => DocId::Str(s),
            IndexValue::Int(i) => DocId::Int(i),
            IndexValue::Bytes(b) => DocId::Bytes(b),
            _ => {
                return Err(keys::KeyError::UnknownTag(
                    key.first().copied().unwrap_or(0),
                ));
            }
        };
        Ok((id, rest))
    }

    /// The group id of the document's entries: BLAKE3 over a domain tag and the id's key, so
    /// every version of one document — whoever writes it — lands in one group (and, with
    /// sharding, on the same replicas).
    pub fn group(&self) -> [u8; 32] {
        let mut key = Vec::new();
        self.encode_key(&mut key);
        let mut h = blake3::Hasher::new();
        h.update(b"starling-doc-v1\0");
        h.update(&key);
        *h.finalize().as_bytes()
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Str(s) => write!(f, "{s:?}"),
            DocId::Int(i) => write!(f, "{i}"),
            DocId::Bytes(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
        }
    }
}

impl From<&str> for DocId {
    fn from(s: &str) -> Self {
        DocId::Str(s.to_owned())
    }
}

impl From<String> for DocId {
    fn from(s: String) -> Self {
        DocId::Str(s)
    }
}

impl From<i64> for DocId {
    fn from(i: i64) -> Self {
        DocId::Int(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Post {
        id: String,
        title: String,
        likes: i64,
        tags: Vec<String>,
        score: Option<f64>,
    }

    fn id() -> impl Strategy<Value = DocId> {
        prop_oneof![
            "\\PC{0,10}".prop_map(DocId::Str),
            any::<i64>().prop_map(DocId::Int),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|v| DocId::Bytes(v.into())),
        ]
    }

    proptest! {
        #[test]
        fn documents_round_trip_through_postcard(
            title in "\\PC{0,20}",
            likes in any::<i64>(),
            tags in proptest::collection::vec("[a-z]{0,5}", 0..4),
            score in proptest::option::of(-1e9f64..1e9),
        ) {
            let post = Post { id: "p".into(), title, likes, tags, score };
            let bytes = Codec::<Post>::encode(&Postcard, &post).unwrap();
            prop_assert_eq!(Codec::<Post>::decode(&Postcard, &bytes).unwrap(), post);
        }

        #[test]
        fn decoding_any_bytes_is_an_error_or_a_document(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Codec::<Post>::decode(&Postcard, &bytes);
        }

        /// Ids order by their keys as by their values (sorted queries break ties by id through
        /// the key), and a key decodes back with whatever follows it.
        #[test]
        fn id_keys_order_and_decode_back(a in id(), b in id(), rest in proptest::collection::vec(any::<u8>(), 0..4)) {
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            a.encode_key(&mut ka);
            b.encode_key(&mut kb);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            ka.extend_from_slice(&rest);
            let (back, tail) = DocId::decode_key(&ka).unwrap();
            prop_assert_eq!(back, a);
            prop_assert_eq!(tail, &rest[..]);
        }
    }

    #[test]
    fn one_id_one_group_whoever_computes_it() {
        assert_eq!(DocId::from("a").group(), DocId::from("a").group());
        assert_ne!(DocId::from("a").group(), DocId::from("b").group());
        assert_ne!(DocId::from("1").group(), DocId::from(1).group());
        assert!(matches!(
            Codec::<Post>::decode(&Postcard, &[0xff; 3]),
            Err(CodecError::Decode(_))
        ));
        assert!(DocId::decode_key(&[0xFF]).is_err(), "null is no id");
    }
}

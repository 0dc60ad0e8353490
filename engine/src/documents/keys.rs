//! Index keys: a field value encoded so that comparing the bytes compares the values, and so
//! that no encoding is a prefix of a different one (a document id can follow it). Values of
//! different types sort by type: bool < int < float < string < bytes < null, so a missing
//! value sorts after every present one (the planner puts missing values last in descending
//! order too, by scanning them separately).
//!
//! ```text
//! bool    0x01, 0 or 1
//! int     0x02, i64 big-endian with the sign bit flipped
//! float   0x03, f64 bits: negative → all bits flipped, else sign bit set (NaN: one NaN, last)
//! string  0x04, UTF-8 with 0x00 written 0x00 0xFF, ended by 0x00 0x00
//! bytes   0x05, the same escaping
//! null    0xFF
//! ```
//!
//! Escaping keeps order ("a" < "a\0" < "ab": 0x61 0x00 0x00 < 0x61 0x00 0xFF 0x00 0x00 <
//! 0x61 0x62 0x00 0x00) and makes every encoding self-delimiting. A string's prefix query scans
//! from the escaped prefix without its terminator ([`string_prefix`]).

use bytes::Bytes;

const BOOL: u8 = 0x01;
const INT: u8 = 0x02;
const FLOAT: u8 = 0x03;
const STRING: u8 = 0x04;
const BYTES: u8 = 0x05;
const NULL: u8 = 0xFF;

/// A value an index holds.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A float (every NaN is the same NaN here, sorted after +∞).
    Float(f64),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Bytes),
    /// No value (missing or null).
    Null,
}

/// A key that is not an encoding of index values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// It ends inside a value.
    #[error("index key truncated")]
    Truncated,
    /// An unknown type tag.
    #[error("unknown index value tag {0:#04x}")]
    UnknownTag(u8),
    /// An escape byte other than 0x00 or 0xFF after 0x00.
    #[error("bad escape in an index key")]
    BadEscape,
    /// A string value that is not UTF-8.
    #[error("index string is not UTF-8")]
    NotUtf8,
    /// A published projection's field name that is not a string.
    #[error("a published index field name is not a string")]
    FieldName,
}

/// Appends `value`'s encoding to `out`.
pub fn encode(value: &IndexValue, out: &mut Vec<u8>) {
    match value {
        IndexValue::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
        IndexValue::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        IndexValue::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&float_key(*f).to_be_bytes());
        }
        IndexValue::Str(s) => {
            out.push(STRING);
            escape(s.as_bytes(), out);
            out.extend_from_slice(&[0, 0]);
        }
        IndexValue::Bytes(b) => {
            out.push(BYTES);
            escape(b, out);
            out.extend_from_slice(&[0, 0]);
        }
        IndexValue::Null => out.push(NULL),
    }
}

/// The first byte of every key of `value`'s type: keys of one type lie in
/// `[type_tag(v)] .. [type_tag(v) + 1]`.
pub fn type_tag(value: &IndexValue) -> u8 {
    match value {
        IndexValue::Bool(_) => BOOL,
        IndexValue::Int(_) => INT,
        IndexValue::Float(_) => FLOAT,
        IndexValue::Str(_) => STRING,
        IndexValue::Bytes(_) => BYTES,
        IndexValue::Null => NULL,
    }
}

/// The scan start for strings beginning with `prefix`: every such string's key starts with
/// these bytes, and no other key does.
pub fn string_prefix(prefix: &str) -> Vec<u8> {
    let mut out = vec![STRING];
    escape(prefix.as_bytes(), &mut out);
    out
}

/// A document's index values as an envelope's public section carries them: per pair, the
/// field's name and the value, each as an index key ([`encode`]). Empty for none.
pub fn encode_published(values: &[(String, IndexValue)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in values {
        encode(&IndexValue::Str(field.clone()), &mut out);
        encode(value, &mut out);
    }
    out
}

/// [`encode_published`]'s pairs back; a field name that is not a string is
/// [`KeyError::FieldName`].
pub fn decode_published(mut bytes: &[u8]) -> Result<Vec<(String, IndexValue)>, KeyError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (IndexValue::Str(field), rest) = decode(bytes)? else {
            return Err(KeyError::FieldName);
        };
        let (value, rest) = decode(rest)?;
        out.push((field, value));
        bytes = rest;
    }
    Ok(out)
}

/// Decodes the value at the start of `key`; the value and the rest of the key.
pub fn decode(key: &[u8]) -> Result<(IndexValue, &[u8]), KeyError> {
    let (&tag, rest) = key.split_first().ok_or(KeyError::Truncated)?;
    match tag {
        BOOL => {
            let (&b, rest) = rest.split_first().ok_or(KeyError::Truncated)?;
            Ok((IndexValue::Bool(b != 0), rest))
        }
        INT | FLOAT => {
            let (word, rest) = rest.split_first_chunk::<8>().ok_or(KeyError::Truncated)?;
            let bits = u64::from_be_bytes(*word);
            let value = if tag == INT {
                IndexValue::Int((bits ^ (1 << 63)) as i64)
            } else {
                IndexValue::Float(float_from_key(bits))
            };
            Ok((value, rest))
        }
        STRING | BYTES => {
            let (raw, rest) = unescape(rest)?;
            let value = if tag == STRING {
                IndexValue::Str(String::from_utf8(raw).map_err(|_| KeyError::NotUtf8)?)
            } else {
                IndexValue::Bytes(Bytes::from(raw))
            };
            Ok((value, rest))
        }
        NULL => Ok((IndexValue::Null, rest)),
        other => Err(KeyError::UnknownTag(other)),
    }
}

/// The canonical NaN's key: above +∞'s.
const NAN_KEY: u64 = u64::MAX;

fn float_key(f: f64) -> u64 {
    if f.is_nan() {
        return NAN_KEY;
    }
    // -0.0 and 0.0 are one value.
    let bits = if f == 0.0 { 0 } else { f.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn float_from_key(key: u64) -> f64 {
    if key == NAN_KEY {
        return f64::NAN;
    }
    let bits = if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    };
    f64::from_bits(bits)
}

fn escape(raw: &[u8], out: &mut Vec<u8>) {
    for &b in raw {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

fn unescape(key: &[u8]) -> Result<(Vec<u8>, &[u8]), KeyError> {
    let mut raw = Vec::new();
    let mut i = 0;
    loop {
        match key.get(i) {
            None => return Err(KeyError::Truncated),
            Some(0) => match key.get(i + 1) {
                Some(0) => return Ok((raw, &key[i + 2..])),
                Some(0xFF) => {
                    raw.push(0);
                    i += 2;
                }
                Some(_) => return Err(KeyError::BadEscape),
                None => return Err(KeyError::Truncated),
            },
            Some(&b) => {
                raw.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    /// The naive order the encoding must agree with.
    fn naive(a: &IndexValue, b: &IndexValue) -> Ordering {
        use IndexValue::*;
        let rank = |v: &IndexValue| match v {
            Bool(_) => 0,
            Int(_) => 1,
            Float(_) => 2,
            Str(_) => 3,
            Bytes(_) => 4,
            Null => 5,
        };
        match (a, b) {
            (Bool(x), Bool(y)) => x.cmp(y),
            (Int(x), Int(y)) => x.cmp(y),
            (Float(x), Float(y)) => match (x.is_nan(), y.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => x.partial_cmp(y).unwrap_or(Ordering::Equal),
            },
            (Str(x), Str(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Bytes(x), Bytes(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        }
    }

    fn key(v: &IndexValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    fn value() -> impl Strategy<Value = IndexValue> {
        prop_oneof![
            any::<bool>().prop_map(IndexValue::Bool),
            any::<i64>().prop_map(IndexValue::Int),
            prop_oneof![
                any::<f64>(),
                Just(0.0),
                Just(-0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(f64::NAN)
            ]
            .prop_map(IndexValue::Float),
            "[a\\x00b]{0,6}".prop_map(IndexValue::Str),
            "\\PC{0,12}".prop_map(IndexValue::Str),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(0xFF), any::<u8>()], 0..8)
                .prop_map(|v| IndexValue::Bytes(Bytes::from(v))),
            Just(IndexValue::Null),
        ]
    }

    fn same(a: &IndexValue, b: &IndexValue) -> bool {
        naive(a, b) == Ordering::Equal
    }

    proptest! {
        #[test]
        fn byte_order_is_value_order(a in value(), b in value()) {
            prop_assert_eq!(key(&a).cmp(&key(&b)), naive(&a, &b));
        }

        /// A document id follows the value in a key: order holds with any suffix, and the
        /// value decodes back, leaving the suffix.
        #[test]
        fn keys_are_self_delimiting_and_decode_back(
            a in value(),
            b in value(),
            sa in proptest::collection::vec(any::<u8>(), 0..6),
            sb in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let (mut ka, mut kb) = (key(&a), key(&b));
            ka.extend_from_slice(&sa);
            kb.extend_from_slice(&sb);
            if !same(&a, &b) {
                prop_assert_eq!(ka.cmp(&kb), naive(&a, &b));
            }
            let (back, rest) = decode(&ka).unwrap();
            prop_assert!(same(&back, &a));
            prop_assert_eq!(rest, &sa[..]);
        }

        #[test]
        fn a_prefix_scan_finds_exactly_the_strings_with_that_prefix(
            s in "[a\\x00b]{0,6}",
            p in "[a\\x00b]{0,3}",
        ) {
            let k = key(&IndexValue::Str(s.clone()));
            prop_assert_eq!(k.starts_with(&string_prefix(&p)), s.starts_with(&p));
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(decode(&[]), Err(KeyError::Truncated));
        assert_eq!(decode(&[0x09]), Err(KeyError::UnknownTag(9)));
        assert_eq!(decode(&[INT, 1, 2]), Err(KeyError::Truncated));
        assert_eq!(decode(&[STRING, b'a', 0, 7]), Err(KeyError::BadEscape));
        assert_eq!(decode(&[STRING, b'a']), Err(KeyError::Truncated));
        assert_eq!(decode(&[STRING, 0xC3, 0, 0]), Err(KeyError::NotUtf8));
        assert_eq!(key(&IndexValue::Float(-0.0)), key(&IndexValue::Float(0.0)));
    }
}

//! Which fields of a document type are indexed, and how each is read.
//!
//! Two kinds, which combine: named fields, each read by its own function (one value per
//! document, [`IndexValue::Null`] when missing, and indexed then too), and a projection that
//! yields any number of `(field, value)` pairs per document — every field it names is indexed,
//! a field may have several values (an array's elements), and a missing field has no row (JSON
//! documents, whose fields are not known in advance).

use super::keys::IndexValue;

type Extractor<T> = Box<dyn Fn(&T) -> IndexValue + Send + Sync>;
type Projection<T> = Box<dyn Fn(&T, &mut Vec<(String, IndexValue)>) + Send + Sync>;

/// Who can read an encrypted document's index values (its projection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexVisibility {
    /// Everyone (the default): the values ride in the envelope's public section, so peers
    /// that cannot read the document still index it, answer queries on it and learn them.
    #[default]
    Public,
    /// Only the receivers: the values are sealed with the document, and it stays out of
    /// every other peer's index.
    Sealed,
}

/// Which fields of `T` are indexed, and how each is read.
pub struct IndexSpec<T> {
    pub(super) fields: Vec<(String, Extractor<T>)>,
    projection: Option<(String, Projection<T>)>,
}

impl<T> Default for IndexSpec<T> {
    fn default() -> Self {
        IndexSpec {
            fields: Vec::new(),
            projection: None,
        }
    }
}

impl<T> std::fmt::Debug for IndexSpec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("IndexSpec")
            .field("fields", &names)
            .field("projection", &self.projection.as_ref().map(|(n, _)| n))
            .finish()
    }
}

impl<T> IndexSpec<T> {
    /// No indexed fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes `name` as `read` gives it.
    pub fn field(
        mut self,
        name: impl Into<String>,
        read: impl Fn(&T) -> IndexValue + Send + Sync + 'static,
    ) -> Self {
        self.fields.push((name.into(), Box::new(read)));
        self
    }

    /// Indexes every `(field, value)` pair `project` appends for a document. `version` names
    /// the projection: a store indexed by another one is rebuilt on open.
    pub fn projection(
        mut self,
        version: impl Into<String>,
        project: impl Fn(&T, &mut Vec<(String, IndexValue)>) + Send + Sync + 'static,
    ) -> Self {
        self.projection = Some((version.into(), Box::new(project)));
        self
    }

    /// `doc`'s indexed values, named fields first (in order), then the projection's.
    pub(super) fn values(&self, doc: &T) -> Vec<(String, IndexValue)> {
        let mut out: Vec<(String, IndexValue)> = self
            .fields
            .iter()
            .map(|(n, read)| (n.clone(), read(doc)))
            .collect();
        if let Some((_, project)) = &self.projection {
            project(doc, &mut out);
        }
        out
    }

    /// The values a writer published for a document this key cannot read
    /// ([`super::keys::decode_published`]), kept to what this spec indexes and shaped as [`IndexSpec::values`]
    /// shapes them: each named field once (its first value, else null), then the projection's
    /// fields. A writer's lie can hide its own document from queries, nothing else.
    pub(super) fn published(
        &self,
        mut pairs: Vec<(String, IndexValue)>,
    ) -> Vec<(String, IndexValue)> {
        let mut out: Vec<(String, IndexValue)> = self
            .fields
            .iter()
            .map(|(name, _)| {
                let value = pairs
                    .iter()
                    .position(|(n, _)| n == name)
                    .map_or(IndexValue::Null, |i| pairs[i].1.clone());
                (name.clone(), value)
            })
            .collect();
        if self.projection.is_some() {
            pairs.retain(|(n, _)| !self.fields.iter().any(|(f, _)| f == n));
            out.append(&mut pairs);
        }
        out
    }

    /// `doc`'s values of one field (none when it has none).
    pub(super) fn values_of(&self, doc: &T, field: &str) -> Vec<IndexValue> {
        if let Some((_, read)) = self.fields.iter().find(|(n, _)| n == field) {
            return vec![read(doc)];
        }
        match &self.projection {
            Some((_, project)) => {
                let mut all = Vec::new();
                project(doc, &mut all);
                all.into_iter()
                    .filter(|(n, _)| n == field)
                    .map(|(_, v)| v)
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// Whether `field` has index rows.
    pub(super) fn is_indexed(&self, field: &str) -> bool {
        self.projection.is_some() || self.fields.iter().any(|(n, _)| n == field)
    }

    /// Whether `field` has exactly one value (and one index row) per document.
    pub(super) fn is_single_valued(&self, field: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == field)
    }

    /// Whether every document has a row for every indexed field (missing ones as null), so
    /// an is-null query can use the index.
    pub(super) fn nulls_indexed(&self) -> bool {
        self.projection.is_none()
    }

    /// What the index's rows depend on: the field names and the projection's version.
    pub(super) fn digest(&self) -> [u8; 16] {
        let mut h = blake3::Hasher::new();
        for (name, _) in &self.fields {
            h.update(name.as_bytes());
            h.update(&[0]);
        }
        if let Some((version, _)) = &self.projection {
            h.update(&[1]);
            h.update(version.as_bytes());
        }
        let mut out = [0; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::keys::{self, KeyError, decode_published, encode_published};

    fn named() -> IndexSpec<(i64, String)> {
        IndexSpec::new()
            .field("n", |d: &(i64, String)| IndexValue::Int(d.0))
            .field("s", |d: &(i64, String)| IndexValue::Str(d.1.clone()))
    }

    #[test]
    fn published_values_round_trip() {
        let values = vec![
            ("n".to_string(), IndexValue::Int(-3)),
            ("s\0x".to_string(), IndexValue::Str("a\0b".into())),
            ("f".to_string(), IndexValue::Float(1.5)),
            (
                "b".to_string(),
                IndexValue::Bytes(bytes::Bytes::from_static(&[0, 255])),
            ),
            ("z".to_string(), IndexValue::Null),
        ];
        let bytes = encode_published(&values);
        assert_eq!(decode_published(&bytes).unwrap(), values);
        assert!(encode_published(&[]).is_empty());
        for cut in 1..bytes.len() {
            // Every cut inside a value is an error, never a panic; cuts between pairs decode
            // the pairs before them.
            if let Ok(pairs) = decode_published(&bytes[..cut]) {
                assert!(values.starts_with(&pairs));
            }
        }
        let mut not_a_name = Vec::new();
        keys::encode(&IndexValue::Int(1), &mut not_a_name);
        keys::encode(&IndexValue::Int(2), &mut not_a_name);
        assert_eq!(decode_published(&not_a_name), Err(KeyError::FieldName));
    }

    #[test]
    fn published_values_are_shaped_like_the_specs_own() {
        let spec = named();
        let doc = (7, "x".to_string());
        assert_eq!(spec.published(spec.values(&doc)), spec.values(&doc));
        // Unknown fields dropped, a missing field null, a repeated one counted once.
        let lie = vec![
            ("other".to_string(), IndexValue::Int(1)),
            ("n".to_string(), IndexValue::Int(1)),
            ("n".to_string(), IndexValue::Int(2)),
        ];
        assert_eq!(
            spec.published(lie),
            vec![
                ("n".to_string(), IndexValue::Int(1)),
                ("s".to_string(), IndexValue::Null)
            ]
        );
        // A projection keeps every field it does not name already.
        let projected = named().projection("v1", |_, _| {});
        let pairs = vec![
            ("a".to_string(), IndexValue::Int(1)),
            ("a".to_string(), IndexValue::Int(2)),
        ];
        let got = projected.published(pairs.clone());
        assert_eq!(&got[2..], &pairs[..]);
    }
}

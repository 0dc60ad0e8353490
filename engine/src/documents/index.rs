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

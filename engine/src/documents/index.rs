//! Which fields of a document type are indexed, and how each is read.

use super::keys::IndexValue;

type Extractor<T> = Box<dyn Fn(&T) -> IndexValue + Send + Sync>;

/// Which fields of `T` are indexed, and how each is read.
pub struct IndexSpec<T> {
    pub(super) fields: Vec<(String, Extractor<T>)>,
}

impl<T> Default for IndexSpec<T> {
    fn default() -> Self {
        IndexSpec { fields: Vec::new() }
    }
}

impl<T> std::fmt::Debug for IndexSpec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("IndexSpec").field("fields", &names).finish()
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

    /// `doc`'s value of every indexed field, in field order.
    pub(super) fn values(&self, doc: &T) -> Vec<IndexValue> {
        self.fields.iter().map(|(_, read)| read(doc)).collect()
    }

    pub(super) fn position(&self, name: &str) -> Option<u8> {
        self.fields
            .iter()
            .position(|(n, _)| n == name)
            .and_then(|i| u8::try_from(i).ok())
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// fjall reported an error (I/O, corruption detected by its checksums, …).
    #[error("storage: {0}")]
    Fjall(#[from] fjall::Error),
    /// A stored key or value does not have the layout this version writes.
    #[error("corrupt index row in {keyspace}: {reason}")]
    CorruptRow {
        /// Which keyspace.
        keyspace: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full: the write was refused. fjall then takes no more writes from this
    /// handle ([`StoreError::Failed`] from then on).
    #[error("storage full: {0}")]
    Full(fjall::Error),
    /// An earlier write failed (a full disk, an I/O error), so the database takes no more
    /// writes: it cannot promise what is on disk until it is opened again (restart the
    /// process; reads still work). A write that failed may still be durable after reopening:
    /// its journal record may have reached the disk before the failure was seen.
    #[error("storage refuses writes after an earlier failure: open the store again")]
    Failed,
    /// fjall reported another error (I/O, corruption detected by its checksums, …).
    #[error("storage: {0}")]
    Fjall(fjall::Error),
    /// Another process (or another open store in this one) holds the directory.
    #[error("{0} is in use by another running node (its lock is held)")]
    Locked(std::path::PathBuf),
    /// The directory or its lock file could not be opened.
    #[error("cannot open {path}: {source}")]
    Io {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored key or value does not have the layout this version writes.
    #[error("corrupt index row in {keyspace}: {reason}")]
    CorruptRow {
        /// Which keyspace.
        keyspace: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// Whether writes fail because of the disk (full, or refused since a failure) rather than
    /// because of what was written: a cache may go on without the store.
    pub fn is_disk_failure(&self) -> bool {
        matches!(self, StoreError::Full(_) | StoreError::Failed)
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        if matches!(e, fjall::Error::Poisoned) {
            StoreError::Failed
        } else if is_disk_full(&e) {
            StoreError::Full(e)
        } else {
            StoreError::Fjall(e)
        }
    }
}

/// Whether an I/O error somewhere in `e`'s chain says "no space left on device".
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(ENOSPC))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Linux's "no space left on device".
const ENOSPC: i32 = 28;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_cause() {
        let full = fjall::Error::Io(std::io::Error::from_raw_os_error(ENOSPC));
        assert!(matches!(StoreError::from(full), StoreError::Full(_)));
        let nested = fjall::Error::Storage(lsm_io(std::io::ErrorKind::StorageFull));
        assert!(matches!(StoreError::from(nested), StoreError::Full(_)));
        assert!(matches!(
            StoreError::from(fjall::Error::Poisoned),
            StoreError::Failed
        ));
        let other = fjall::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let other = StoreError::from(other);
        assert!(matches!(other, StoreError::Fjall(_)));
        assert!(!other.is_disk_failure());
        assert!(StoreError::Failed.is_disk_failure());
    }

    fn lsm_io(kind: std::io::ErrorKind) -> fjall::LsmError {
        fjall::LsmError::Io(std::io::Error::from(kind))
    }
}

//! Key files: libp2p's protobuf private-key encoding, owner-only permissions, atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{IdentityError, Keypair};

/// A protobuf private key is under 100 bytes; anything this large is not a key file.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Writes `key` to `path` with mode 0600: a temp file in the same directory, fsynced, then
/// renamed over `path`, so a crash leaves either the old file or the whole new one.
pub fn save_key_file(path: &Path, key: &Keypair) -> Result<(), IdentityError> {
    let io = |source| IdentityError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        file_name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&key.to_protobuf())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Loads a key file written by [`save_key_file`] (or by any libp2p implementation).
///
/// Refuses files that other users can read, as ssh does: a leaked key is a stolen identity.
pub fn load_key_file(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    let malformed = |reason: String| IdentityError::KeyFileMalformed {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyFileTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(malformed(format!("{} bytes is too large", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_KEY_FILE_LEN)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.is_empty() {
        return Err(malformed("the file is empty".into()));
    }
    Keypair::from_protobuf(&bytes).map_err(|e| malformed(e.to_string()))
}

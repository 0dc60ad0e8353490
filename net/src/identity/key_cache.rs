//! A small cache of decoded public keys.

use super::{IdentityError, KeyType, PublicKey};

/// Decoded signer keys, most recent first. Decompressing an Ed25519 point costs about as much as
/// a verification, and a link carries entries of few writers, so a small cache saves most of it.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Vec<([u8; 33], PublicKey)>,
}

/// Keys remembered; a linear scan of this many is cheaper than hashing.
const KEY_CACHE_LEN: usize = 32;

impl KeyCache {
    /// The decoded key for `raw`, decoding (and remembering) it on a miss.
    pub fn get(&mut self, key_type: KeyType, raw: &[u8]) -> Result<PublicKey, IdentityError> {
        let mut padded = [0u8; 33];
        let n = raw.len().min(33);
        padded[..n].copy_from_slice(&raw[..n]);
        if let Some(pos) = self
            .entries
            .iter()
            .position(|(k, pk)| *k == padded && pk.key_type() == key_type)
        {
            let hit = self.entries[pos].1;
            if pos > 0 {
                self.entries.swap(0, pos);
            }
            return Ok(hit);
        }
        let key = PublicKey::from_raw_bytes(key_type, raw)?;
        if self.entries.len() == KEY_CACHE_LEN {
            self.entries.pop();
        }
        self.entries.insert(0, (padded, key));
        Ok(key)
    }
}

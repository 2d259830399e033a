//! The on-disk cache of compiled components.
//!
//! Compiling a policy component with Cranelift takes tens to hundreds of
//! milliseconds; loading its compiled artifact takes about one. The cache
//! makes a restart, and a revert to a version seen before, cost the latter.
//!
//! An entry is keyed by the component's SHA-256 and the engine's
//! compatibility hash, which covers the wasmtime version and every setting
//! that changes compiled code (fuel and epoch metering among them), so an
//! artifact is only ever loaded into an engine that could have produced it.
//!
//! Only versions that passed validation are stored, and the cache keeps to
//! a quota: past it, the least recently used entries (by modification time,
//! which a hit refreshes) are evicted.
//!
//! Entries are never trusted blindly. Each file carries a SHA-256 of its
//! payload, checked before wasmtime sees a byte, and wasmtime checks its own
//! header; an entry failing either is deleted and recompiled. Writers go
//! through a temporary file and an atomic rename, so concurrent writers and
//! crashes leave either a whole entry or none.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::files::{FileError, read_regular};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a file as a Handoff artifact, format version 1.
const MAGIC: &[u8; 16] = b"handoff-cwasm-1\n";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    quota: u64,
}

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use artifact cache directory {dir}: {source}")]
pub struct CacheError {
    /// The directory.
    pub dir: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// What a lookup found.
pub enum Lookup {
    /// A verified artifact, deserialized.
    Hit(Component),
    /// No entry for this key.
    Miss,
    /// An entry that failed verification; it has been removed.
    Corrupt(String),
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir` for artifacts of
    /// `engine`, holding at most `quota` bytes.
    pub fn open(dir: &Path, engine: &Engine, quota: u64) -> Result<Self, CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError {
            dir: dir.display().to_string(),
            source,
        })?;
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine),
            quota,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of the component with SHA-256 `wasm_sha256` lives.
    pub fn entry_path(&self, wasm_sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(wasm_sha256),
            self.engine_key
        ))
    }

    /// Loads the artifact for `wasm_sha256`, verifying it first.
    pub fn lookup(&self, engine: &Engine, wasm_sha256: &[u8; 32]) -> Lookup {
        let path = self.entry_path(wasm_sha256);
        let cap = usize::try_from(self.quota).unwrap_or(usize::MAX);
        let bytes = match read_regular(&path, cap) {
            Ok(bytes) => bytes,
            Err(FileError::NotFound) => return Lookup::Miss,
            Err(e) => return self.discard(&path, e.to_string()),
        };
        let payload = match verify(&bytes) {
            Ok(payload) => payload,
            Err(reason) => return self.discard(&path, reason),
        };
        // SAFETY: `Component::deserialize` trusts its input to be an artifact
        // this wasmtime produced. The payload is byte-for-byte what
        // `store` wrote for this engine's compatibility hash: its SHA-256,
        // written alongside, matches. The cache directory is the operator's,
        // as trusted as the binary itself. The bytes are copied into fresh
        // executable memory, so later changes to the file cannot affect them.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(component) => {
                // Recently used: the last to be evicted.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Lookup::Hit(component)
            }
            Err(e) => self.discard(&path, format!("wasmtime refused the artifact: {e}")),
        }
    }

    /// Writes the artifact of `component` for `wasm_sha256`, then evicts
    /// the least recently used entries past the quota. Failing to cache is
    /// never fatal: the caller has the compiled component.
    pub fn store(&self, wasm_sha256: &[u8; 32], component: &Component) {
        if let Err(error) = self.try_store(wasm_sha256, component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write to the artifact cache");
        }
        if let Err(error) = self.evict() {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot evict from the artifact cache");
        }
    }

    /// The entries and their total size, in bytes.
    pub fn usage(&self) -> std::io::Result<u64> {
        Ok(self.entries()?.iter().map(|(_, size, _)| size).sum())
    }

    fn entries(&self) -> std::io::Result<Vec<(PathBuf, u64, std::time::SystemTime)>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "cwasm") {
                continue;
            }
            let metadata = entry.metadata()?;
            if metadata.is_file() {
                let used = metadata.modified().unwrap_or(std::time::UNIX_EPOCH);
                entries.push((path, metadata.len(), used));
            }
        }
        Ok(entries)
    }

    /// Removes the least recently used entries until the cache fits its
    /// quota.
    fn evict(&self) -> std::io::Result<()> {
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        entries.sort_by_key(|(_, _, used)| *used);
        for (path, size, _) in entries {
            if total <= self.quota {
                break;
            }
            tracing::info!(entry = %path.display(), size, "evicting from the artifact cache");
            std::fs::remove_file(&path)?;
            total -= size;
        }
        Ok(())
    }

    fn try_store(&self, wasm_sha256: &[u8; 32], component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize()?;
        if payload.len() as u64 + HEADER_LEN as u64 > self.quota {
            anyhow::bail!(
                "the artifact alone ({} bytes) is over the cache quota",
                payload.len()
            );
        }
        let mut file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        // Atomic: a reader sees the old entry, no entry, or this whole one.
        file.persist(self.entry_path(wasm_sha256))?;
        Ok(())
    }

    fn discard(&self, path: &Path, reason: String) -> Lookup {
        tracing::warn!(entry = %path.display(), reason, "corrupt artifact cache entry; recompiling");
        let _ = std::fs::remove_file(path);
        Lookup::Corrupt(reason)
    }
}

/// The payload of a cache file, if its header and checksum hold.
fn verify(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Handoff artifact (bad header)".into());
    }
    let (checksum, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != checksum {
        return Err("checksum mismatch: the entry is truncated or altered".into());
    }
    Ok(payload)
}

/// A stable, file-name-safe digest of the engine's compatibility hash.
fn engine_key(engine: &Engine) -> String {
    use std::hash::Hash;
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// Feeds `Hash` output into SHA-256, which, unlike `DefaultHasher`, is the
/// same across Rust releases, so a toolchain update does not empty the cache.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 state is used.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_refuses_bad_headers_and_checksums() {
        assert!(verify(b"short").is_err());
        let payload = b"compiled code".to_vec();
        let mut good = MAGIC.to_vec();
        good.extend_from_slice(&Sha256::digest(&payload));
        good.extend_from_slice(&payload);
        assert_eq!(verify(&good), Ok(&payload[..]));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(verify(&flipped).unwrap_err().contains("checksum"));
        let truncated = &good[..good.len() - 3];
        assert!(verify(truncated).unwrap_err().contains("checksum"));
        let mut wrong_magic = good;
        wrong_magic[0] = b'X';
        assert!(verify(&wrong_magic).unwrap_err().contains("header"));
    }
}

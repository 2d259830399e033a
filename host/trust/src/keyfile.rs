//! Key files: the audit trail's masking and checkpoint keys, and the keys
//! policy authors and reviewers sign with. A secret is 32 bytes in a file
//! only its owner can read, refused when anyone else can; every read is
//! bounded, since a key file is a line of text and anything longer is not
//! one.

use std::io::{Read, Write};
use std::path::Path;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key of the expected form.
    #[error("key file {file} does not hold {expected}")]
    Invalid {
        /// The file.
        file: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// Others can read the key, so it no longer proves anything.
    #[error(
        "key file {file} can be read by users other than its owner (mode {mode:o}); \
         `chmod 600` it, and replace the key if others may have read it"
    )]
    Exposed {
        /// The file.
        file: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// Key files are a line of hex or base64: anything longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The 32-byte secret in `file`, written with `encode` and read back with
/// `decode`; when there is no such file, 32 random bytes are generated and
/// stored in a new owner-only file.
pub fn read_or_create(
    file: &Path,
    expected: &'static str,
    encode: impl FnOnce(&[u8; 32]) -> String,
    decode: impl FnOnce(&str) -> Option<[u8; 32]>,
) -> Result<[u8; 32], KeyFileError> {
    match read_private(file) {
        Ok(text) => decode(&text).ok_or_else(|| KeyFileError::Invalid {
            file: file.display().to_string(),
            expected,
        }),
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| KeyFileError::Random(e.to_string()))?;
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io(file))?;
            }
            write_new(file, encode(&key).as_bytes(), true).map_err(io(file))?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Reads a secret key file, refusing one others can read.
pub fn read_private(file: &Path) -> Result<String, KeyFileError> {
    let opened = std::fs::File::open(file).map_err(io(file))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = opened.metadata().map_err(io(file))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed {
                file: file.display().to_string(),
                mode: mode & 0o777,
            });
        }
    }
    read_bounded(opened, file)
}

/// Reads a public key file (or any short text file).
pub fn read_public(file: &Path) -> Result<String, KeyFileError> {
    let opened = std::fs::File::open(file).map_err(io(file))?;
    read_bounded(opened, file)
}

fn read_bounded(opened: std::fs::File, file: &Path) -> Result<String, KeyFileError> {
    let mut text = String::new();
    opened
        .take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(io(file))?;
    Ok(text.trim().to_string())
}

/// Writes `contents` to a file that must not exist yet, owner-only when
/// `private`, and syncs it.
pub fn write_new(file: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut out = options.open(file)?;
    out.write_all(contents)?;
    out.sync_all()
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        file: file.display().to_string(),
        source,
    }
}

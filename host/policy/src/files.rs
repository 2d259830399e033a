//! Reading a file the host does not control (a policy component, a
//! manifest, a cache entry): only a regular file, and never more than a cap.
//!
//! The file is opened without blocking (a FIFO would otherwise hang the
//! open) and checked on the open handle, so a file swapped between a check
//! and the read cannot get past it; a symlink to a regular file is fine, a
//! symlink to `/dev/zero` is not. At most `cap + 1` bytes are ever read.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// There is no such file.
    #[error("no such file")]
    NotFound,
    /// A directory, device, FIFO or socket.
    #[error("not a regular file (it is {0}); only regular files are read")]
    NotRegular(&'static str),
    /// Larger than the cap.
    #[error("over the limit of {cap} bytes")]
    TooLarge {
        /// The cap.
        cap: usize,
    },
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads `path` if it is a regular file of at most `cap` bytes.
pub fn read_regular(path: &Path, cap: usize) -> Result<Vec<u8>, FileError> {
    let file = open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FileError::NotFound,
        _ => FileError::Io(e),
    })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(FileError::NotRegular(kind_of(&metadata.file_type())));
    }
    let mut bytes = Vec::with_capacity(metadata.len().min(cap as u64) as usize);
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(FileError::TooLarge { cap });
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_up_to_the_cap_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"12345").unwrap();
        assert_eq!(read_regular(&small, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular(&small, 4),
            Err(FileError::TooLarge { cap: 4 })
        ));
        assert!(matches!(
            read_regular(&dir.path().join("missing"), 5),
            Err(FileError::NotFound)
        ));
        assert!(matches!(
            read_regular(dir.path(), 5),
            Err(FileError::NotRegular(_))
        ));
        #[cfg(unix)]
        {
            let zero = dir.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            assert!(matches!(
                read_regular(&zero, 5),
                Err(FileError::NotRegular("a device"))
            ));
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid, NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            assert!(matches!(
                read_regular(&fifo, 5),
                Err(FileError::NotRegular("a FIFO"))
            ));
        }
    }
}

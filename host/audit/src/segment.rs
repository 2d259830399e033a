//! The log's files on disk: their names, how they are opened for
//! appending, and where the chain ends in them (repairing a torn last line
//! at open).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::log::AuditError;
use super::record::{GENESIS, decode};

/// `audit-000001.jsonl`, ...: names that sort in chain order.
pub(crate) fn file_name(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("audit-{index:06}.jsonl"))
}

/// The log files in `dir`, in chain order.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| file_index(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

/// The index in a log file's name: 1 for `audit-000001.jsonl`.
pub(crate) fn file_index(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Opens `path` for appending, creating it if needed.
pub(crate) fn open_for_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))
}

/// Makes a new directory entry in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        file: path.display().to_string(),
        source,
    }
}

/// Where the chain stands at the end of the existing files.
pub(crate) struct Tail {
    pub next_seq: u64,
    pub prev: String,
    pub file_index: u32,
    pub file_bytes: u64,
    /// The hash of the first record: the log's identity, which checkpoints
    /// name so that one log's checkpoint cannot vouch for another.
    pub genesis: Option<String>,
    /// `(bytes cut, preview of what was cut)` when a torn tail was repaired.
    pub cut: Option<(u64, String)>,
}

/// Finds where the chain ends, repairing a torn last line of the last file.
pub(crate) fn read_tail(dir: &Path) -> Result<Tail, AuditError> {
    let files = log_files(dir)?;
    let Some(last) = files.last() else {
        return Ok(Tail {
            next_seq: 1,
            prev: GENESIS.to_string(),
            file_index: 1,
            file_bytes: 0,
            genesis: None,
            cut: None,
        });
    };
    let file_index = file_index(last).unwrap_or(1);
    let scan = scan_file(last, true)?;
    if let Some((good_bytes, _)) = &scan.cut {
        let file = OpenOptions::new()
            .write(true)
            .open(last)
            .map_err(io_error(last))?;
        file.set_len(*good_bytes).map_err(io_error(last))?;
        file.sync_all().map_err(io_error(last))?;
    }
    let cut = scan
        .cut
        .map(|(good_bytes, preview)| (scan.total_bytes - good_bytes, preview));
    let file_bytes = scan.good_bytes;
    // An empty last file (just rotated) continues the chain of the one
    // before it.
    let mut end = scan.last;
    for earlier in files.iter().rev().skip(1) {
        if end.is_some() {
            break;
        }
        end = scan_file(earlier, false)?.last;
    }
    let genesis = match (files.len(), &scan.first) {
        (1, Some((_, hash))) => Some(hash.clone()),
        _ => first_record_hash(&files[0])?,
    };
    let (next_seq, prev) = match end {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    Ok(Tail {
        next_seq,
        prev,
        file_index,
        file_bytes,
        genesis,
        cut,
    })
}

/// The hash of the first record in `path`, when it has a sound one.
fn first_record_hash(path: &Path) -> Result<Option<String>, AuditError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut line = Vec::new();
    // A record is far smaller than this; a longer first line is not one.
    BufReader::new(file)
        .take(16 << 20)
        .read_until(b'\n', &mut line)
        .map_err(io_error(path))?;
    Ok(std::str::from_utf8(&line)
        .ok()
        .and_then(|text| decode(text.trim_end_matches('\n')).ok())
        .map(|record| record.hash))
}

struct Scan {
    /// `(seq, hash)` of the first sound record.
    first: Option<(u64, String)>,
    /// `(seq, hash)` of the last sound record.
    last: Option<(u64, String)>,
    /// Bytes up to the end of the last sound line.
    good_bytes: u64,
    total_bytes: u64,
    /// `(good_bytes, preview of what follows)` when the tail is torn.
    cut: Option<(u64, String)>,
}

/// Reads a log file. Only one kind of bad line is repaired: a last line
/// with no newline, in the last file (`repairable`), which is what a crash
/// mid-write leaves. A complete line that does not verify is an edit, or
/// damage, wherever it is, and is never cut away.
fn scan_file(path: &Path, repairable: bool) -> Result<Scan, AuditError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let total_bytes = file.seek(SeekFrom::End(0)).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
    let mut reader = BufReader::new(file);
    let mut scan = Scan {
        first: None,
        last: None,
        good_bytes: 0,
        total_bytes,
        cut: None,
    };
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?;
        if read == 0 {
            return Ok(scan);
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        if !complete && repairable {
            let preview = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
            scan.cut = Some((scan.good_bytes, preview));
            return Ok(scan);
        }
        let verdict = match std::str::from_utf8(&line).map(|t| t.trim_end_matches('\n')) {
            Ok(_) if !complete => Err("the line has no newline: a write was cut short".into()),
            Ok(text) => decode(text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        match verdict {
            Ok(record) => {
                if scan.first.is_none() {
                    scan.first = Some((record.seq, record.hash.clone()));
                }
                scan.last = Some((record.seq, record.hash));
                scan.good_bytes += read as u64;
            }
            Err(reason) => {
                let reason = if scan.good_bytes + read as u64 == total_bytes {
                    format!(
                        "{reason}; it is the last line but a complete one, so it was \
                         changed after it was written, not torn by a crash"
                    )
                } else {
                    reason
                };
                return Err(AuditError::Damaged {
                    file: path.display().to_string(),
                    line: number,
                    reason,
                });
            }
        }
    }
}

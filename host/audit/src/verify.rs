//! Checking the chain: every record's own hash, its link to the one before,
//! and that sequence numbers run without gaps across every file.

use std::path::{Path, PathBuf};

use super::record::{GENESIS, LineError, Record, decode};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Files checked.
    pub files: usize,
    /// Sequence number of the first record; 1 unless verification started
    /// at a later rotated file, whose first `prev` is then taken on trust.
    pub first_seq: Option<u64>,
    /// Sequence number of the last record.
    pub last_seq: Option<u64>,
}

/// How the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum BreakKind {
    /// A record's content was changed.
    Edited,
    /// One or more records are missing.
    Deleted,
    /// Records are out of order.
    Reordered,
    /// The last record was cut off mid-line.
    Truncated,
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at seq {seq} ({file} line {line}): {detail}")]
pub struct Break {
    /// The sequence number of the first record that is not what the chain
    /// requires: the edited one, the first missing one, the first out of
    /// place, or the torn one.
    pub seq: u64,
    /// What happened to it.
    pub kind: BreakKind,
    /// The file where the break shows.
    pub file: String,
    /// The line in that file, from 1.
    pub line: usize,
    /// The specifics.
    pub detail: String,
}

/// Why verification could not complete.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The chain is broken.
    #[error(transparent)]
    Broken(#[from] Break),
}

struct Line {
    file: String,
    number: usize,
    text: String,
    complete: bool,
}

/// Verifies `files`, in order, as one chain.
pub fn verify(files: &[PathBuf]) -> Result<Verified, VerifyError> {
    let lines = read_lines(files)?;
    let mut verified = Verified {
        records: 0,
        files: files.len(),
        first_seq: None,
        last_seq: None,
    };
    let mut prev: Option<(u64, String)> = None;
    for (index, line) in lines.iter().enumerate() {
        let expected = prev.as_ref().map(|(seq, _)| seq + 1);
        let broken = |seq: u64, kind, detail: String| Break {
            seq,
            kind,
            file: line.file.clone(),
            line: line.number,
            detail,
        };
        if !line.complete {
            let seq = expected.unwrap_or(1);
            return Err(broken(
                seq,
                BreakKind::Truncated,
                "the record is cut off mid-line".into(),
            )
            .into());
        }
        let record = match decode(&line.text) {
            Ok(record) => record,
            Err(LineError::HashMismatch { seq }) => {
                return Err(broken(
                    expected.unwrap_or(seq),
                    BreakKind::Edited,
                    "its content no longer matches its hash".into(),
                )
                .into());
            }
            Err(LineError::Malformed(reason)) => {
                return Err(broken(
                    expected.unwrap_or(1),
                    BreakKind::Edited,
                    format!("the line is not a record: {reason}"),
                )
                .into());
            }
        };
        match &prev {
            None => {
                if record.seq == 1 && record.prev != GENESIS {
                    return Err(broken(
                        1,
                        BreakKind::Edited,
                        "the first record does not start the chain".into(),
                    )
                    .into());
                }
                verified.first_seq = Some(record.seq);
            }
            Some((prev_seq, prev_hash)) => {
                let expected = prev_seq + 1;
                if record.seq != expected {
                    return Err(
                        out_of_sequence(&lines[index + 1..], &record, expected, broken).into(),
                    );
                }
                if record.prev != *prev_hash {
                    return Err(broken(
                        expected - 1,
                        BreakKind::Edited,
                        format!(
                            "record {expected} does not chain to record {}: that record was rewritten",
                            expected - 1
                        ),
                    )
                    .into());
                }
            }
        }
        verified.records += 1;
        verified.last_seq = Some(record.seq);
        prev = Some((record.seq, record.hash));
    }
    Ok(verified)
}

/// Tells a deletion from a reordering: if the expected record turns up
/// later, records were moved; otherwise they are gone.
fn out_of_sequence(
    rest: &[Line],
    record: &Record,
    expected: u64,
    broken: impl Fn(u64, BreakKind, String) -> Break,
) -> Break {
    let appears_later = rest
        .iter()
        .filter_map(|line| decode(&line.text).ok())
        .any(|later| later.seq == expected);
    if record.seq < expected || appears_later {
        broken(
            expected,
            BreakKind::Reordered,
            format!(
                "record {expected} was expected here, found record {}",
                record.seq
            ),
        )
    } else {
        let missing = if record.seq - expected == 1 {
            format!("record {expected} is missing")
        } else {
            format!("records {expected} to {} are missing", record.seq - 1)
        };
        broken(expected, BreakKind::Deleted, missing)
    }
}

fn read_lines(files: &[PathBuf]) -> Result<Vec<Line>, VerifyError> {
    let mut lines = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| VerifyError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let file = display(path);
        let mut rest = &bytes[..];
        let mut number = 0;
        while !rest.is_empty() {
            number += 1;
            let (line, complete, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(end) => (&rest[..end], true, &rest[end + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            lines.push(Line {
                file: file.clone(),
                number,
                text: String::from_utf8_lossy(line).into_owned(),
                complete,
            });
            rest = next;
        }
    }
    Ok(lines)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

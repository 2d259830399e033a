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
    /// Sequence number of the first record; 1 unless a segment was verified
    /// ([`verify_segment`]), whose first `prev` is then taken on trust.
    pub first_seq: Option<u64>,
    /// Sequence number of the last record.
    pub last_seq: Option<u64>,
    /// The last record a signed checkpoint vouches for, when checkpoints
    /// were given: records after it are unanchored (a forger with write
    /// access could have rewritten or cut them).
    pub anchored_through: Option<u64>,
    /// The hash of record 1, when the chain starts there: the log's
    /// identity, which checkpoints name.
    pub genesis: Option<String>,
}

/// A position a signed checkpoint vouches for: the record at `seq` has
/// `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The record's sequence number.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
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

/// Verifies `files`, in order, as the whole chain: it must start with the
/// genesis record (seq 1, in the first file), and files named
/// `audit-NNNNNN.jsonl` must run from 1 with no gap, so that deleting the
/// head of the log, or a whole file, is a break.
pub fn verify(files: &[PathBuf]) -> Result<Verified, VerifyError> {
    verify_with(files, true, &[])
}

/// Verifies `files` as the whole chain, as [`verify`] does, and checks that
/// every record an anchor names is there with the anchor's hash: records up
/// to the last anchor cannot have been rewritten, re-hashed or cut off.
pub fn verify_anchored(files: &[PathBuf], anchors: &[Anchor]) -> Result<Verified, VerifyError> {
    verify_with(files, true, anchors)
}

/// Verifies `files` as a segment of a chain: the first record's link to
/// whatever came before it is taken on trust. For archived logs whose head
/// lives elsewhere; prefer [`verify`].
pub fn verify_segment(files: &[PathBuf]) -> Result<Verified, VerifyError> {
    verify_with(files, false, &[])
}

/// Verifies one fleet node's chain as the shared store holds it: `lines`
/// in sequence order from record 1, every one naming `node`, and reaching
/// `head`, the record the store's head row says is last (so records cut
/// off the end are a break). `source` names where the lines came from, as
/// a break reports it.
pub fn verify_node_chain(
    source: &str,
    node: &str,
    lines: &[String],
    head: &Anchor,
) -> Result<Verified, VerifyError> {
    let lines: Vec<Line> = lines
        .iter()
        .enumerate()
        .map(|(index, text)| Line {
            file: source.to_string(),
            number: index + 1,
            text: text.clone(),
            complete: true,
        })
        .collect();
    let anchors = [head.clone()];
    let verified = verify_lines(&lines, &[], true, &anchors)?;
    for line in &lines {
        // Each record's own hash covers its node: checked, so read again.
        if let Ok(record) = decode(&line.text)
            && record.node.as_deref() != Some(node)
        {
            return Err(Break {
                seq: record.seq,
                kind: BreakKind::Edited,
                file: line.file.clone(),
                line: line.number,
                detail: format!(
                    "the record names node {:?}, but it is in node {node:?}'s chain",
                    record.node.unwrap_or_default()
                ),
            }
            .into());
        }
    }
    Ok(Verified {
        files: 0,
        ..verified
    })
}

fn verify_with(
    files: &[PathBuf],
    from_genesis: bool,
    anchors: &[Anchor],
) -> Result<Verified, VerifyError> {
    let lines = read_lines(files)?;
    verify_lines(&lines, files, from_genesis, anchors)
}

fn verify_lines(
    lines: &[Line],
    files: &[PathBuf],
    from_genesis: bool,
    anchors: &[Anchor],
) -> Result<Verified, VerifyError> {
    let mut anchors: Vec<&Anchor> = anchors.iter().collect();
    anchors.sort_by_key(|a| a.seq);
    let mut pending_anchors = anchors.iter().peekable();
    let mut verified = Verified {
        records: 0,
        files: files.len(),
        first_seq: None,
        last_seq: None,
        anchored_through: None,
        genesis: None,
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
                if from_genesis && record.seq != 1 {
                    let missing = if record.seq == 2 {
                        "record 1 is missing from the head of the log".to_string()
                    } else {
                        format!(
                            "records 1 to {} are missing from the head of the log",
                            record.seq.saturating_sub(1)
                        )
                    };
                    return Err(broken(1, BreakKind::Deleted, missing).into());
                }
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
        while let Some(anchor) = pending_anchors.peek() {
            if anchor.seq < record.seq {
                // Only reachable when verification started past it.
                pending_anchors.next();
                continue;
            }
            if anchor.seq == record.seq {
                if anchor.hash != record.hash {
                    return Err(broken(
                        record.seq,
                        BreakKind::Edited,
                        "its hash is not the one a signed checkpoint vouches for: the log \
                         was rewritten and re-hashed"
                            .into(),
                    )
                    .into());
                }
                verified.anchored_through = Some(record.seq);
                pending_anchors.next();
            }
            break;
        }
        if record.seq == 1 {
            verified.genesis = Some(record.hash.clone());
        }
        verified.records += 1;
        verified.last_seq = Some(record.seq);
        prev = Some((record.seq, record.hash));
    }
    if let Some(anchor) = pending_anchors.next() {
        let last = verified.last_seq.unwrap_or(0);
        return Err(Break {
            seq: last + 1,
            kind: BreakKind::Truncated,
            file: files
                .last()
                .map(|f| display(f))
                .or_else(|| lines.last().map(|l| l.file.clone()))
                .unwrap_or_default(),
            line: lines.last().map_or(0, |l| l.number),
            detail: format!(
                "the log ends at record {last}, but a signed checkpoint vouches for record {}: \
                 records were cut off the end",
                anchor.seq
            ),
        }
        .into());
    }
    if from_genesis {
        check_file_sequence(files)?;
    }
    Ok(verified)
}

/// Log files (named `audit-NNNNNN.jsonl`) must run 1, 2, 3, ...: a missing
/// number is a deleted file, even one whose records the chain does not miss
/// (an empty file, or one renamed to hide a gap). Files named otherwise are
/// taken as given.
fn check_file_sequence(files: &[PathBuf]) -> Result<(), Break> {
    let indexes: Vec<(u32, &PathBuf)> = files
        .iter()
        .filter_map(|f| Some((crate::segment::file_index(f)?, f)))
        .collect();
    if indexes.len() != files.len() {
        return Ok(());
    }
    for (expected, (index, file)) in (1..).zip(&indexes) {
        if *index != expected {
            return Err(Break {
                seq: 0,
                kind: BreakKind::Deleted,
                file: display(file),
                line: 0,
                detail: format!(
                    "audit-{expected:06}.jsonl is missing: the files must run from \
                     audit-000001.jsonl with no gap"
                ),
            });
        }
    }
    Ok(())
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

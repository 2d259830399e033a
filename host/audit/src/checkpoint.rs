//! Signed checkpoints: what makes the chain a forger cannot rewrite.
//!
//! The hash chain alone shows that records were changed only to someone
//! who does not recompute it: whoever can write the log can rewrite a
//! record and re-hash everything after it, or cut records off the end.
//! A checkpoint is an Ed25519 signature over the log's identity (the hash
//! of its first record), the head's sequence number and the head's hash,
//! written to a witness apart from the log. A verifier holding the public
//! key then knows that every record up to the last checkpoint is exactly
//! what was written: changing, reordering, removing or re-hashing any of
//! them changes the hash the checkpoint vouches for, and forging a new
//! checkpoint needs the private key. Records after the last checkpoint
//! are reported as unanchored.
//!
//! One checkpoint is one JSON line:
//!
//! ```text
//! {"v":1,"log":"<64 hex>","seq":1200,"hash":"<64 hex>","ts":"2026-11-30T03:00:00.000000Z","key":"ed25519:<base64>","sig":"<base64>"}
//! ```
//!
//! The signature covers the text [`Checkpoint::message`] builds from
//! `log`, `seq`, `hash` and `ts`, so a verifier needs no JSON
//! canonicalisation.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::verify::Anchor;
use handoff_trust::keyfile::{self, KeyFileError};

const PRIVATE_PREFIX: &str = "ed25519-private:";

/// The key that signs checkpoints. Keep it where whoever can write the log
/// cannot read it, if the deployment allows: a forger holding it can sign
/// a rewritten log's head.
pub struct CheckpointKey {
    signing: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "CheckpointKey({})", self.public())
    }
}

impl CheckpointKey {
    /// The key in `file`, or a new one generated into it (owner-only) when
    /// there is none. The public key is written beside it, as `<file>.pub`,
    /// for verifiers to copy and pin.
    pub fn load_or_create(file: &Path) -> Result<CheckpointKey, KeyFileError> {
        let seed = keyfile::read_or_create(
            file,
            "an Ed25519 checkpoint key (`ed25519-private:<base64 of 32 bytes>`)",
            |seed| format!("{PRIVATE_PREFIX}{}\n", BASE64.encode(seed)),
            |text| decode_32(text.strip_prefix(PRIVATE_PREFIX)?),
        )?;
        let key = CheckpointKey {
            signing: SigningKey::from_bytes(&seed),
        };
        let public = public_key_file(file);
        if !public.exists() {
            keyfile::write_new(&public, format!("{}\n", key.public()).as_bytes(), false).map_err(
                |source| KeyFileError::Io {
                    file: public.display().to_string(),
                    source,
                },
            )?;
        }
        Ok(key)
    }

    /// The key verifiers need.
    pub fn public(&self) -> PublicKey {
        PublicKey::from(self.signing.verifying_key())
    }

    /// Signs the head of log `log` (the hash of its first record): record
    /// `seq` has hash `hash`.
    pub fn sign(&self, log: &str, seq: u64, hash: &str, ts: DateTime<Utc>) -> Checkpoint {
        let ts = ts.to_rfc3339_opts(SecondsFormat::Micros, true);
        let message = Checkpoint::message(log, seq, hash, &ts);
        let signature = self.signing.sign(message.as_bytes());
        Checkpoint {
            v: 1,
            log: log.to_string(),
            seq,
            hash: hash.to_string(),
            ts,
            key: self.public().to_string(),
            sig: BASE64.encode(signature.to_bytes()),
        }
    }
}

/// Where the public key of the key in `file` is written: `<file>.pub`.
pub fn public_key_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// A checkpoint verifier's key, written `ed25519:<base64>`: the same key
/// type, and text, as the keys that sign policies.
pub use handoff_trust::PublicKey;

fn decode_32(text: &str) -> Option<[u8; 32]> {
    BASE64.decode(text.trim()).ok()?.try_into().ok()
}

/// One signed statement: in log `log`, record `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The format version, 1.
    pub v: u32,
    /// The log: the hash of its first record.
    pub log: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
    /// When it was signed, RFC 3339 with microseconds.
    pub ts: String,
    /// The signer's public key.
    pub key: String,
    /// The Ed25519 signature over [`Checkpoint::message`], base64.
    pub sig: String,
}

impl Checkpoint {
    /// The exact text that is signed.
    pub fn message(log: &str, seq: u64, hash: &str, ts: &str) -> String {
        format!("handoff audit checkpoint v1\nlog {log}\nseq {seq}\nhash {hash}\nts {ts}\n")
    }

    /// Whether `key` signed this checkpoint.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        if self.v != 1 {
            return Err(CheckpointError::Version(self.v));
        }
        if self.key != key.to_string() {
            return Err(CheckpointError::OtherKey {
                signer: self.key.clone(),
            });
        }
        let message = Self::message(&self.log, self.seq, &self.hash, &self.ts);
        if key.verifies(message.as_bytes(), &self.sig) {
            Ok(())
        } else {
            Err(CheckpointError::BadSignature)
        }
    }

    /// The JSON line.
    pub fn to_line(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why checkpoints cannot be read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] handoff_trust::KeyError),
    /// The checkpoint file could not be read.
    #[error("cannot read checkpoints from {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a checkpoint.
    #[error("{file} line {line} is not a checkpoint: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An unknown format version.
    #[error("checkpoint format version {0} is not one this build reads (1)")]
    Version(u32),
    /// Signed with a key other than the pinned one.
    #[error("it is signed by {signer}, not by the key given")]
    OtherKey {
        /// The key it names.
        signer: String,
    },
    /// The signature does not verify.
    #[error("its signature does not verify: it was forged or altered")]
    BadSignature,
    /// A checkpoint that does not hold: named with where it came from.
    #[error("checkpoint {source_name} (seq {seq}): {reason}")]
    Untrusted {
        /// The file and line.
        source_name: String,
        /// The sequence number it claims.
        seq: u64,
        /// Why it is not trusted.
        #[source]
        reason: Box<CheckpointError>,
    },
    /// A checkpoint of another log.
    #[error(
        "checkpoint {source_name} vouches for the log whose first record has hash {theirs}, \
         but this log's first record has hash {ours}: the log was replaced from its first \
         record on, or these are another log's checkpoints"
    )]
    OtherLog {
        /// The file and line.
        source_name: String,
        /// The log it names.
        theirs: String,
        /// This log.
        ours: String,
    },
}

/// The longest checkpoint line read; real ones are about 300 bytes.
const MAX_LINE_BYTES: u64 = 4096;

/// A checkpoint as read back, with where it was read.
#[derive(Debug, Clone)]
pub struct Witnessed {
    /// `file:line`, for messages.
    pub source_name: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

/// Reads every checkpoint in a witness file. Lines are bounded, and a line
/// that is not a checkpoint is an error: a witness is written by the host
/// alone.
pub fn read_witness(file: &Path) -> Result<Vec<Witnessed>, CheckpointError> {
    let io = |source| CheckpointError::Io {
        file: file.display().to_string(),
        source,
    };
    let mut reader = BufReader::new(std::fs::File::open(file).map_err(io)?);
    let mut found = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if read == 0 {
            break;
        }
        let malformed = |reason: String| CheckpointError::Malformed {
            file: file.display().to_string(),
            line: number,
            reason,
        };
        if read as u64 > MAX_LINE_BYTES {
            return Err(malformed(format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&line).map_err(|e| malformed(e.to_string()))?;
        if text.trim().is_empty() {
            continue;
        }
        let checkpoint: Checkpoint =
            serde_json::from_str(text.trim_end()).map_err(|e| malformed(e.to_string()))?;
        found.push(Witnessed {
            source_name: format!("{}:{number}", file.display()),
            checkpoint,
        });
    }
    Ok(found)
}

/// The anchors the checkpoints give for the log whose first record has
/// hash `log`: each must be signed by `key` and name this log. One that is
/// not is an error, never skipped: a forged checkpoint is itself evidence.
pub fn anchors(
    witnessed: &[Witnessed],
    key: &PublicKey,
    log: &str,
) -> Result<Vec<Anchor>, CheckpointError> {
    witnessed
        .iter()
        .map(|w| {
            w.checkpoint
                .verify(key)
                .map_err(|reason| CheckpointError::Untrusted {
                    source_name: w.source_name.clone(),
                    seq: w.checkpoint.seq,
                    reason: Box::new(reason),
                })?;
            if w.checkpoint.log != log {
                return Err(CheckpointError::OtherLog {
                    source_name: w.source_name.clone(),
                    theirs: w.checkpoint.log.clone(),
                    ours: log.to_string(),
                });
            }
            Ok(Anchor {
                seq: w.checkpoint.seq,
                hash: w.checkpoint.hash.clone(),
            })
        })
        .collect()
}

/// Somewhere besides the witness file that keeps checkpoints (the handoff
/// store): called after each is written, off the append path.
pub type CheckpointObserver = Arc<dyn Fn(&Checkpoint) + Send + Sync>;

/// When and where the log writes checkpoints.
#[derive(Clone)]
pub struct CheckpointOptions {
    /// The signing key.
    pub key: Arc<CheckpointKey>,
    /// The witness file checkpoints are appended to: apart from the log
    /// directory, so that whoever rewrites the log must find it too.
    pub witness: PathBuf,
    /// A checkpoint after this many new records...
    pub every_records: u64,
    /// ...or this long after the first record not yet checkpointed.
    pub every: Duration,
    /// Told of every checkpoint written.
    pub observer: Option<CheckpointObserver>,
}

impl std::fmt::Debug for CheckpointOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointOptions")
            .field("key", &self.key)
            .field("witness", &self.witness)
            .field("every_records", &self.every_records)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl CheckpointOptions {
    /// Checkpoints signed by `key` into `witness`, every 10,000 records or
    /// 30 seconds, whichever comes first.
    pub fn new(key: Arc<CheckpointKey>, witness: PathBuf) -> Self {
        CheckpointOptions {
            key,
            witness,
            every_records: 10_000,
            every: Duration::from_secs(30),
            observer: None,
        }
    }
}

/// Appends `checkpoint` to the witness file and syncs it.
pub(crate) fn append_to_witness(file: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let mut line = checkpoint.to_line();
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CheckpointKey {
        CheckpointKey {
            signing: SigningKey::from_bytes(&[7; 32]),
        }
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_any_edit_breaks_it() {
        let key = key();
        let checkpoint = key.sign(&"a".repeat(64), 12, &"b".repeat(64), Utc::now());
        checkpoint.verify(&key.public()).unwrap();

        let other = CheckpointKey {
            signing: SigningKey::from_bytes(&[8; 32]),
        };
        assert!(matches!(
            checkpoint.verify(&other.public()),
            Err(CheckpointError::OtherKey { .. })
        ));
        for edit in [
            Checkpoint {
                seq: 13,
                ..checkpoint.clone()
            },
            Checkpoint {
                hash: "c".repeat(64),
                ..checkpoint.clone()
            },
            Checkpoint {
                log: "d".repeat(64),
                ..checkpoint.clone()
            },
            Checkpoint {
                ts: "2020-01-01T00:00:00.000000Z".into(),
                ..checkpoint.clone()
            },
        ] {
            assert!(
                matches!(
                    edit.verify(&key.public()),
                    Err(CheckpointError::BadSignature)
                ),
                "{edit:?}"
            );
        }
    }

    #[test]
    fn public_keys_round_trip_through_text() {
        let public = key().public();
        let parsed: PublicKey = public.to_string().parse().unwrap();
        assert_eq!(parsed, public);
        assert!("ed25519:abc".parse::<PublicKey>().is_err());
        assert!(!format!("{:?}", key()).contains("private"));
    }
}

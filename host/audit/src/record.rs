//! The audit record and its line format.
//!
//! One record is one JSON line:
//!
//! ```text
//! {"seq":7,"ts":"2026-11-24T15:00:00.123456Z","prev":"<64 hex>","type":"decision",...,"hash":"<64 hex>"}
//! ```
//!
//! `hash` is the SHA-256 of the line's exact bytes up to (not including)
//! `,"hash":`, with the closing `}` in its place: everything else in the
//! record, `prev` included. Because `prev` is the previous record's `hash`,
//! the records form a chain: editing, deleting, reordering or truncating
//! any of them breaks it at a point `audit verify` can name. Hashing the
//! bytes as written, rather than a re-serialisation, means a verifier needs
//! no canonical JSON form, only this one rule.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use handoff_model::{Decision, HandoffEvent, LifecycleEvent, Tier, WorkItem};

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_FIELD: &str = ",\"hash\":\"";

/// What a record is about. Serialized flat into the record, tagged `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Body {
    /// One decision, with everything needed to explain and replay it.
    Decision(Box<DecisionRecord>),
    /// A change to the live policy set, or a plugin fault.
    Lifecycle {
        /// The event.
        event: LifecycleEvent,
    },
    /// A handoff changed: a human acted, or an SLA clock did.
    Handoff {
        /// What happened, by whom, when.
        event: HandoffEvent,
    },
    /// The log was repaired at open after a crash.
    Recovery {
        /// The file that was repaired.
        file: String,
        /// Bytes cut from its end.
        cut_bytes: u64,
        /// The start of what was cut, for the record.
        cut_preview: String,
    },
    /// Appends were refused for a while (a full disk, a read-only
    /// directory) and have resumed: nothing was recorded, and nothing was
    /// decided, in between.
    Outage {
        /// The first refused append.
        since: DateTime<Utc>,
        /// When appends resumed.
        until: DateTime<Utc>,
        /// The write error that stopped the log.
        reason: String,
        /// Appends refused meanwhile.
        refused: u64,
    },
}

/// The decision part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The policy generation that decided.
    pub generation: u64,
    /// The digest of every plugin involved, by name.
    pub digests: BTreeMap<String, String>,
    /// Who submitted the item, when the submitter was authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The work item as submitted, with masked fields replaced by keyed
    /// hashes.
    pub item: serde_json::Value,
    /// Which fields of `item` were masked (`text`, `attributes.NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
    /// False when masking removed information a replay needs: such a
    /// record is never replayed as if it were the original.
    pub replayable: bool,
    /// The decision, with every plugin's verdict and metering.
    pub decision: Decision,
}

/// The same record as [`DecisionRecord`], borrowed: how the writer
/// serializes a decision without cloning it. Reads back as
/// `Body::Decision`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "decision")]
pub(crate) struct DecisionRecordRef<'a> {
    pub generation: u64,
    pub digests: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<&'a str>,
    pub item: ItemRef<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub masked: &'a [String],
    pub replayable: bool,
    pub decision: &'a Decision,
}

/// The item as submitted, or as masking rewrote it.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ItemRef<'a> {
    Submitted(&'a WorkItem),
    Masked(serde_json::Value),
}

/// A record as read back from a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1, continuing across rotated files.
    pub seq: u64,
    /// When it was appended.
    pub ts: DateTime<Utc>,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev: String,
    /// The fleet node whose chain this is: present in every record a
    /// node of a fleet chains in the shared store, absent on a single
    /// host, whose log is the only chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What it records.
    #[serde(flatten)]
    pub body: Body,
    /// This record's hash.
    pub hash: String,
}

impl Record {
    /// The tier, when this records a decision.
    pub fn tier(&self) -> Option<Tier> {
        match &self.body {
            Body::Decision(d) => Some(d.decision.tier()),
            _ => None,
        }
    }
}

/// Formats one record line (without the newline) and returns it with its
/// hash. `body` must serialize to a JSON object.
pub fn encode(seq: u64, ts: DateTime<Utc>, prev: &str, body: &str) -> (String, String) {
    encode_as(None, seq, ts, prev, body)
}

/// [`encode`], naming the fleet node whose chain the record is in.
pub fn encode_as(
    node: Option<&str>,
    seq: u64,
    ts: DateTime<Utc>,
    prev: &str,
    body: &str,
) -> (String, String) {
    let ts = ts.to_rfc3339_opts(SecondsFormat::Micros, true);
    let rest = body.strip_prefix('{').unwrap_or(body);
    let separator = if rest.starts_with('}') { "" } else { "," };
    let mut line = String::with_capacity(body.len() + 256);
    line.push_str(&format!(
        "{{\"seq\":{seq},\"ts\":\"{ts}\",\"prev\":\"{prev}\""
    ));
    if let Some(node) = node {
        // A JSON string, escaped as any other field is.
        line.push_str(",\"node\":");
        line.push_str(&serde_json::Value::from(node).to_string());
    }
    line.push_str(separator);
    line.push_str(rest);
    let hash = hex::encode(Sha256::digest(line.as_bytes()));
    line.pop(); // the closing brace, replaced by the hash field
    line.push_str(HASH_FIELD);
    line.push_str(&hash);
    line.push_str("\"}");
    (line, hash)
}

/// Why a line is not a sound record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or not a record's shape.
    #[error("not a record: {0}")]
    Malformed(String),
    /// Well-formed, but its hash does not match its content.
    #[error("its content does not match its hash")]
    HashMismatch {
        /// The record's sequence number, as it claims.
        seq: u64,
    },
}

/// Parses a line and checks its own hash (not its link to the previous
/// record, which needs the chain).
pub fn decode(line: &str) -> Result<Record, LineError> {
    let record: Record =
        serde_json::from_str(line).map_err(|e| LineError::Malformed(e.to_string()))?;
    let Some(at) = line.rfind(HASH_FIELD) else {
        return Err(LineError::Malformed("no hash field".into()));
    };
    let expected = format!("{HASH_FIELD}{}\"}}", record.hash);
    if line[at..] != expected || record.hash.len() != 64 {
        return Err(LineError::Malformed("the hash field is not last".into()));
    }
    let mut hashed = String::with_capacity(at + 1);
    hashed.push_str(&line[..at]);
    hashed.push('}');
    if hex::encode(Sha256::digest(hashed.as_bytes())) != record.hash {
        return Err(LineError::HashMismatch { seq: record.seq });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle() -> String {
        serde_json::to_string(&Body::Lifecycle {
            event: LifecycleEvent::Unloaded {
                plugin: "p".into(),
                digest: "sha256:00".into(),
                generation: 2,
            },
        })
        .unwrap()
    }

    #[test]
    fn the_borrowed_decision_form_reads_back_as_the_owned_one() {
        let item = WorkItem::from_json(
            r#"{"id":"x-1","kind":"reply","agent":"a","text":"hi","confidence":0.9}"#,
        )
        .unwrap();
        let decision: Decision = serde_json::from_value(serde_json::json!({
            "id": "x-1", "tier": "none", "level": 0, "reason_code": "proceed",
            "reason": "ok", "driver": null, "role": null, "ack_sla_secs": null,
            "resolve_sla_secs": null, "guidance": null, "trigger": null,
            "generation": 3, "verdicts": [],
            "metering": {"elapsed_us": 12.5, "plugins": []}
        }))
        .unwrap_or_else(|e| panic!("a minimal decision: {e}"));
        let borrowed = DecisionRecordRef {
            generation: 3,
            digests: BTreeMap::from([("p", "sha256:00")]),
            principal: Some("agent-7"),
            item: ItemRef::Submitted(&item),
            masked: &[],
            replayable: true,
            decision: &decision,
        };
        let (line, _) = encode(
            1,
            Utc::now(),
            GENESIS,
            &serde_json::to_string(&borrowed).unwrap(),
        );
        let Body::Decision(read) = decode(&line).unwrap().body else {
            panic!("not a decision: {line}")
        };
        assert_eq!(read.generation, 3);
        assert_eq!(read.digests["p"], "sha256:00");
        assert_eq!(read.principal.as_deref(), Some("agent-7"));
        assert_eq!(read.item, serde_json::to_value(&item).unwrap());
        assert!(read.masked.is_empty() && read.replayable);
        assert_eq!(read.decision, decision);
    }

    #[test]
    fn encoded_lines_decode_and_any_edit_is_caught() {
        let (line, hash) = encode(1, Utc::now(), GENESIS, &lifecycle());
        let record = decode(&line).unwrap();
        assert_eq!(record.seq, 1);
        assert_eq!(record.prev, GENESIS);
        assert_eq!(record.hash, hash);
        assert!(matches!(record.body, Body::Lifecycle { .. }));

        let edited = line.replace("\"plugin\":\"p\"", "\"plugin\":\"q\"");
        assert_ne!(edited, line);
        assert_eq!(decode(&edited), Err(LineError::HashMismatch { seq: 1 }));
        let torn = &line[..line.len() - 10];
        assert!(matches!(decode(torn), Err(LineError::Malformed(_))));
    }

    #[test]
    fn a_node_name_is_in_what_the_hash_covers() {
        let (line, _) = encode_as(Some("node \"a\""), 1, Utc::now(), GENESIS, &lifecycle());
        let record = decode(&line).unwrap();
        assert_eq!(record.node.as_deref(), Some("node \"a\""));
        assert!(matches!(record.body, Body::Lifecycle { .. }));
        let moved = line.replace("node \\\"a\\\"", "node \\\"b\\\"");
        assert_ne!(moved, line);
        assert_eq!(decode(&moved), Err(LineError::HashMismatch { seq: 1 }));
        // A single host's records name no node.
        let (line, _) = encode(1, Utc::now(), GENESIS, &lifecycle());
        assert!(!line.contains("\"node\""));
        assert_eq!(decode(&line).unwrap().node, None);
    }
}

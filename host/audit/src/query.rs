//! Reading records back: `audit show` and `replay` read through here.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::record::{Body, Record, decode};
use handoff_model::Tier;

/// Which records to show. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Decisions of this tier.
    pub tier: Option<Tier>,
    /// Decisions this plugin drove, and lifecycle events about it.
    pub plugin: Option<String>,
    /// Decisions with this reason code, or one under it: `auth-limit`
    /// matches `auth-limit.exceeded`.
    pub reason_code: Option<String>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Records before this time.
    pub until: Option<DateTime<Utc>>,
    /// Decisions about this item id, and fault events about it.
    pub item: Option<String>,
}

impl Filter {
    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        if self.since.is_some_and(|since| record.ts < since)
            || self.until.is_some_and(|until| record.ts >= until)
        {
            return false;
        }
        match &record.body {
            Body::Decision(d) => {
                let decision = &d.decision;
                self.tier.is_none_or(|t| t == decision.tier())
                    && self
                        .plugin
                        .as_ref()
                        .is_none_or(|p| decision.driver.as_ref() == Some(p))
                    && self
                        .reason_code
                        .as_ref()
                        .is_none_or(|code| code_matches(code, decision.reason_code()))
                    && self.item.as_ref().is_none_or(|id| *id == decision.id)
            }
            Body::Lifecycle { event } => {
                self.tier.is_none()
                    && self.reason_code.is_none()
                    && self.plugin.as_ref().is_none_or(|p| event.concerns(p))
                    && self.item.as_ref().is_none_or(|id| event.item() == Some(id))
            }
            Body::Handoff { event } => {
                self.tier.is_none()
                    && self.plugin.is_none()
                    && self.reason_code.is_none()
                    && self.item.as_ref().is_none_or(|id| *id == event.item)
            }
            Body::Recovery { .. } | Body::Outage { .. } => {
                self.tier.is_none()
                    && self.plugin.is_none()
                    && self.reason_code.is_none()
                    && self.item.is_none()
            }
        }
    }
}

fn code_matches(wanted: &str, code: &str) -> bool {
    code == wanted
        || code
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// One record as read, with its line exactly as stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The parsed record.
    pub record: Record,
    /// The line as stored, for printing without re-serialising.
    pub line: String,
}

/// Why records could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read audit log {file}: {source}")]
pub struct ReadError {
    /// The file.
    pub file: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Reads every sound record of `files`, in order. Lines that are not sound
/// records are skipped with a warning: `audit verify` is the tool that
/// reports them.
pub fn read(files: &[PathBuf]) -> Result<Vec<Entry>, ReadError> {
    let mut entries = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| ReadError {
            file: path.display().to_string(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            match decode(line) {
                Ok(record) => entries.push(Entry {
                    record,
                    line: line.to_string(),
                }),
                Err(error) => tracing::warn!(
                    file = %path.display(),
                    line = index + 1,
                    %error,
                    "skipping an unsound audit line; run `handoff audit verify`"
                ),
            }
        }
    }
    Ok(entries)
}

/// The store position of the newest handoff event in the log, reading
/// files newest first and stopping at the first that holds one: where a
/// host resumes forwarding the store's events after a crash, so that none
/// is recorded twice.
pub fn last_handoff_event(files: &[PathBuf]) -> Result<Option<i64>, ReadError> {
    for file in files.iter().rev() {
        let newest = read(std::slice::from_ref(file))?
            .into_iter()
            .filter_map(|entry| match entry.record.body {
                Body::Handoff { event } => Some(event.store_seq),
                _ => None,
            })
            .max();
        if newest.is_some() {
            return Ok(newest);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_match_exactly_or_by_prefix_segment() {
        assert!(code_matches("auth-limit", "auth-limit.exceeded"));
        assert!(code_matches("auth-limit.exceeded", "auth-limit.exceeded"));
        assert!(!code_matches("auth", "auth-limit.exceeded"));
        assert!(!code_matches(
            "auth-limit.exceeded.x",
            "auth-limit.exceeded"
        ));
    }
}

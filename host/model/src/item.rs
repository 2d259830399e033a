//! Work items: what an agent submits for a decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Money at stake, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Amount in the currency's minor units (cents for USD).
    pub minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

/// One unit of agent work. Unknown fields are refused, so a misspelt
/// `confidnce` is an error rather than a silently missing signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkItem {
    /// The caller's identifier; resubmissions reuse it.
    pub id: String,
    /// What the agent is about to do: `refund`, `reply`, `tool-call`, ...
    pub kind: String,
    /// Which agent produced the work.
    pub agent: String,
    /// The text policies inspect.
    pub text: String,
    /// The agent's own confidence, in [0, 1].
    pub confidence: f64,
    /// Money at stake, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Customer segment, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Self-corrections already made for this id.
    #[serde(default)]
    pub attempts: u32,
    /// Free-form attributes, kept sorted so evaluation is deterministic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Why a work item was refused before any policy saw it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not JSON, or JSON of the wrong shape; serde's message names the field
    /// and the column.
    #[error("invalid work item: {0}")]
    Json(#[from] serde_json::Error),
    /// Well-formed JSON with a value out of its domain.
    #[error("invalid work item: field `{field}` {reason}")]
    Invalid {
        /// The offending field, dotted (`amount.currency`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl WorkItem {
    /// Parses and validates one item from JSON.
    pub fn from_json(text: &str) -> Result<Self, InputError> {
        let item: WorkItem = serde_json::from_str(text)?;
        item.validate()?;
        Ok(item)
    }

    /// Checks the values serde cannot: ranges and formats.
    pub fn validate(&self) -> Result<(), InputError> {
        let invalid = |field, reason: &str| {
            Err(InputError::Invalid {
                field,
                reason: reason.to_string(),
            })
        };
        if self.id.trim().is_empty() {
            return invalid("id", "must not be empty");
        }
        // Names people see in queues, tables and logs: one line, no escape
        // sequences. The text and attribute values may hold anything.
        for (field, value) in [
            ("id", Some(&self.id)),
            ("kind", Some(&self.kind)),
            ("agent", Some(&self.agent)),
            ("segment", self.segment.as_ref()),
        ] {
            if value.is_some_and(|v| has_control(v)) {
                return invalid(field, "must not contain control characters");
            }
        }
        if self.attributes.keys().any(|k| has_control(k)) {
            return invalid("attributes", "keys must not contain control characters");
        }
        if self.kind.trim().is_empty() {
            return invalid("kind", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(InputError::Invalid {
                field: "confidence",
                reason: format!("must be between 0 and 1, got {}", self.confidence),
            });
        }
        if let Some(amount) = &self.amount
            && (amount.currency.len() != 3
                || !amount.currency.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(InputError::Invalid {
                field: "amount.currency",
                reason: format!(
                    "must be a three-letter upper-case ISO 4217 code, got {:?}",
                    amount.currency
                ),
            });
        }
        Ok(())
    }
}

/// Whether `text` holds a control character. Every item is checked before
/// it is decided, so plain text is cleared in one pass over its bytes; only
/// text with a byte that could start one (C0, DEL, or the 0xC2 that leads
/// the C1 controls) is decoded.
fn has_control(text: &str) -> bool {
    let suspect = text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    suspect && text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"r-1","kind":"refund","agent":"bot","text":"hi","confidence":0.8,"amount":{"minor":100,"currency":"USD"}}"#;

    #[test]
    fn parses_optional_fields_with_defaults() {
        let item = WorkItem::from_json(GOOD).unwrap();
        assert_eq!(item.attempts, 0);
        assert!(item.attributes.is_empty());
        assert_eq!(item.amount.unwrap().minor, 100);
    }

    #[test]
    fn errors_name_the_field() {
        let missing = WorkItem::from_json(r#"{"id":"x","kind":"reply","agent":"a","text":"t"}"#);
        assert!(missing.unwrap_err().to_string().contains("confidence"));
        let unknown = WorkItem::from_json(&GOOD.replace("\"text\"", "\"txt\""));
        assert!(unknown.unwrap_err().to_string().contains("txt"));
        let range = WorkItem::from_json(&GOOD.replace("0.8", "1.5")).unwrap_err();
        assert!(range.to_string().contains("`confidence`"), "{range}");
        let escape = WorkItem::from_json(&GOOD.replace("r-1", "r-1\\u001b[2J")).unwrap_err();
        assert!(escape.to_string().contains("`id`"), "{escape}");
        let currency = WorkItem::from_json(&GOOD.replace("USD", "usd")).unwrap_err();
        assert!(
            currency.to_string().contains("`amount.currency`"),
            "{currency}"
        );
    }
}

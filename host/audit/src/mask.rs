//! Masking: fields of the item that must not be stored in the clear are
//! replaced by a keyed hash before the record is written.
//!
//! A keyed hash (HMAC-SHA256) rather than a plain one, so that a short or
//! guessable value (an account number, a name) cannot be recovered by
//! hashing candidates; the same value still masks to the same string under
//! one key, so records about the same customer can be correlated. Masking
//! edits the field instead of dropping it (what OPA users ask for,
//! opa#2379), and the record lists what was masked and is marked not
//! replayable, so nothing pretends a masked item is the original.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use handoff_model::WorkItem;
use handoff_trust::keyfile::{self, KeyFileError};

/// Which fields to mask, and the key.
#[derive(Clone)]
pub struct Masking {
    /// Mask the item's `text`.
    pub text: bool,
    /// Mask these attributes, by name.
    pub attributes: Vec<String>,
    key: [u8; 32],
}

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Masking")
            .field("text", &self.text)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl Masking {
    /// Masking with an explicit key.
    pub fn new(text: bool, attributes: Vec<String>, key: [u8; 32]) -> Self {
        Masking {
            text,
            attributes,
            key,
        }
    }

    /// Masking with the key kept in `file` (64 hex digits): read if it
    /// exists, otherwise generated and written with owner-only permissions.
    /// A key file others can read is refused.
    pub fn with_key_file(
        text: bool,
        attributes: Vec<String>,
        file: &Path,
    ) -> Result<Self, KeyFileError> {
        let key = keyfile::read_or_create(
            file,
            "a masking key: 64 hex digits (32 bytes)",
            |key| hex::encode(key),
            |text| hex::decode(text).ok()?.try_into().ok(),
        )?;
        Ok(Masking::new(text, attributes, key))
    }

    /// Whether anything is masked at all.
    pub fn is_active(&self) -> bool {
        self.text || !self.attributes.is_empty()
    }

    /// The item as JSON with masked fields replaced, and the list of what
    /// was masked (only fields actually present).
    pub fn apply(&self, item: &WorkItem) -> (serde_json::Value, Vec<String>) {
        let mut masked = Vec::new();
        let mut value = serde_json::to_value(item).unwrap_or(serde_json::Value::Null);
        if self.text
            && let Some(text) = value.get_mut("text")
        {
            *text = self.hash(&item.text).into();
            masked.push("text".to_string());
        }
        if let Some(attributes) = value.get_mut("attributes").and_then(|a| a.as_object_mut()) {
            for name in &self.attributes {
                if let Some(original) = item.attributes.get(name) {
                    attributes.insert(name.clone(), self.hash(original).into());
                    masked.push(format!("attributes.{name}"));
                }
            }
        }
        (value, masked)
    }

    /// `hmac-sha256:<hex>` of `value` under the key.
    pub fn hash(&self, value: &str) -> String {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_text_and_named_attributes_with_a_keyed_hash() {
        let item: WorkItem = serde_json::from_value(serde_json::json!({
            "id": "1", "kind": "reply", "agent": "a", "text": "my card is 4111",
            "confidence": 0.9, "attributes": {"account": "AC-1", "channel": "chat"}
        }))
        .unwrap();
        let masking = Masking::new(true, vec!["account".into(), "absent".into()], [7; 32]);
        let (value, masked) = masking.apply(&item);
        assert_eq!(masked, vec!["text", "attributes.account"]);
        assert_eq!(value["text"], masking.hash("my card is 4111"));
        assert_eq!(value["attributes"]["channel"], "chat");
        assert!(!value.to_string().contains("4111"));
        let other_key = Masking::new(true, vec![], [8; 32]);
        assert_ne!(other_key.hash("AC-1"), masking.hash("AC-1"));
    }
}

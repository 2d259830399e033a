//! `NAME.sig`: the signatures of unit `NAME`, kept beside `NAME.wasm` and
//! `NAME.toml` so that a policy directory (or a published generation)
//! carries them wherever it goes. JSON, one entry per signature, each
//! naming what it was made over, so a refusal can say which file changed
//! since it was signed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::SignerKey;
use crate::statement::{Role, UnitDigests, message};

/// The most a signature file is read: a few signatures need far less.
pub const MAX_SIGNATURE_FILE_BYTES: usize = 64 * 1024;

/// The most signatures one file may hold.
const MAX_SIGNATURES: usize = 32;

/// Why a signature file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SignatureFileError {
    /// It is not a signature file.
    #[error("not a signature file: {0}")]
    Malformed(String),
    /// A version of the format this host does not know.
    #[error("signature file format {0} is not known here (expected 1)")]
    Version(u32),
    /// More signatures than any review needs.
    #[error("holds {0} signatures, more than the {MAX_SIGNATURES} allowed")]
    TooMany(usize),
}

/// Every signature of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The format version, 1.
    pub v: u32,
    /// The signatures, in the order they were added.
    pub signatures: Vec<Signature>,
}

impl Default for SignatureFile {
    fn default() -> Self {
        SignatureFile {
            v: 1,
            signatures: Vec::new(),
        }
    }
}

/// One signer's statement about one version of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signature {
    /// The signing key's id.
    pub key: String,
    /// The role the key signed in.
    pub role: Role,
    /// The component digest signed.
    pub component: String,
    /// The manifest digest signed; absent for a unit without a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// When it was signed, RFC 3339: as the signer's clock said, and
    /// covered by the signature.
    pub signed_at: String,
    /// The Ed25519 signature, base64.
    pub sig: String,
}

impl Signature {
    /// `key`'s signature of `digests` in `role`, made at `now`.
    pub fn sign(key: &SignerKey, digests: &UnitDigests, role: Role, now: DateTime<Utc>) -> Self {
        let signed_at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let sig = key.sign(message(digests, role, &signed_at).as_bytes());
        Signature {
            key: key.public().id().to_string(),
            role,
            component: digests.component.clone(),
            manifest: digests.manifest.clone(),
            signed_at,
            sig,
        }
    }

    /// The digests this signature was made over, as it claims them.
    pub fn digests(&self) -> UnitDigests {
        UnitDigests {
            component: self.component.clone(),
            manifest: self.manifest.clone(),
        }
    }

    /// The exact bytes this signature claims to cover.
    pub(crate) fn message(&self) -> String {
        message(&self.digests(), self.role, &self.signed_at)
    }
}

impl SignatureFile {
    /// Reads a signature file's text.
    pub fn parse(text: &str) -> Result<SignatureFile, SignatureFileError> {
        let file: SignatureFile =
            serde_json::from_str(text).map_err(|e| SignatureFileError::Malformed(e.to_string()))?;
        if file.v != 1 {
            return Err(SignatureFileError::Version(file.v));
        }
        if file.signatures.len() > MAX_SIGNATURES {
            return Err(SignatureFileError::TooMany(file.signatures.len()));
        }
        Ok(file)
    }

    /// Adds `signature`, replacing any earlier one by the same key in the
    /// same role (a re-signature of a new version).
    pub fn add(&mut self, signature: Signature) {
        self.signatures
            .retain(|s| !(s.key == signature.key && s.role == signature.role));
        self.signatures.push(signature);
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        // Strings and integers only: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_re_signature_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (key, ..) = SignerKey::generate(&dir.path().join("k")).unwrap();
        let v1 = UnitDigests::of(b"one", None);
        let v2 = UnitDigests::of(b"two", Some("x = 1"));
        let mut file = SignatureFile::default();
        file.add(Signature::sign(&key, &v1, Role::Author, Utc::now()));
        file.add(Signature::sign(&key, &v1, Role::Reviewer, Utc::now()));
        file.add(Signature::sign(&key, &v2, Role::Author, Utc::now()));
        assert_eq!(file.signatures.len(), 2);
        assert_eq!(file.signatures[1].digests(), v2);
        let back = SignatureFile::parse(&file.to_text()).unwrap();
        assert_eq!(back, file);
        assert!(key.public().verifies(
            back.signatures[1].message().as_bytes(),
            &back.signatures[1].sig
        ));
    }

    #[test]
    fn malformed_unknown_and_oversized_files_are_refused() {
        assert!(matches!(
            SignatureFile::parse("{"),
            Err(SignatureFileError::Malformed(_))
        ));
        assert!(matches!(
            SignatureFile::parse(r#"{"v":2,"signatures":[]}"#),
            Err(SignatureFileError::Version(2))
        ));
        assert!(matches!(
            SignatureFile::parse(r#"{"v":1,"signatures":[],"extra":1}"#),
            Err(SignatureFileError::Malformed(_))
        ));
        let one = r#"{"key":"k","role":"author","component":"c","signed-at":"t","sig":"s"}"#;
        let many = format!(r#"{{"v":1,"signatures":[{}]}}"#, vec![one; 40].join(","));
        assert!(matches!(
            SignatureFile::parse(&many),
            Err(SignatureFileError::TooMany(40))
        ));
    }
}

//! Signing keys and how a public key is known: Ed25519, written
//! `ed25519-private:<base64>` (owner-only) and `ed25519:<base64>`, the same
//! forms as the audit trail's checkpoint key, and a short key id that
//! signatures, the trust store and the audit trail name a key by.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{
    Signature as EdSignature, Signer as _, SigningKey, Verifier as _, VerifyingKey,
};
use sha2::{Digest, Sha256};

use crate::keyfile::{self, KeyFileError};

const PUBLIC_PREFIX: &str = "ed25519:";
const PRIVATE_PREFIX: &str = "ed25519-private:";

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read or written.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The text is not an Ed25519 public key.
    #[error("{what} is not an Ed25519 public key (`ed25519:<base64 of 32 bytes>`)")]
    NotPublic {
        /// Where the text came from.
        what: String,
    },
    /// A new key would overwrite an existing file.
    #[error("{file} already exists: a key is never overwritten; choose another name")]
    Exists {
        /// The file.
        file: String,
    },
}

/// A private key an author or reviewer signs policies with. Never printed.
pub struct SignerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({})", self.public().id())
    }
}

impl SignerKey {
    /// A new key, written to `stem.key` (owner-only) with its public key in
    /// `stem.pub`; refuses to overwrite either. Returns the key and the two
    /// files.
    pub fn generate(stem: &Path) -> Result<(SignerKey, PathBuf, PathBuf), KeyError> {
        let private = with_extension(stem, "key");
        let public = with_extension(stem, "pub");
        for file in [&private, &public] {
            if file.symlink_metadata().is_ok() {
                return Err(KeyError::Exists {
                    file: file.display().to_string(),
                });
            }
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
        let key = SignerKey {
            signing: SigningKey::from_bytes(&seed),
        };
        let io = |file: &Path| {
            let file = file.display().to_string();
            move |source| KeyFileError::Io { file, source }
        };
        if let Some(parent) = private.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let secret = format!("{PRIVATE_PREFIX}{}\n", BASE64.encode(seed));
        keyfile::write_new(&private, secret.as_bytes(), true).map_err(io(&private))?;
        let text = format!("{}\n", key.public());
        keyfile::write_new(&public, text.as_bytes(), false).map_err(io(&public))?;
        Ok((key, private, public))
    }

    /// The key in `file`, which only its owner may be able to read.
    pub fn from_file(file: &Path) -> Result<SignerKey, KeyError> {
        let text = keyfile::read_private(file)?;
        let seed = text
            .strip_prefix(PRIVATE_PREFIX)
            .and_then(decode_32)
            .ok_or_else(|| KeyFileError::Invalid {
                file: file.display().to_string(),
                expected: "an Ed25519 signing key (`ed25519-private:<base64 of 32 bytes>`)",
            })?;
        Ok(SignerKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The key verifiers list in their trust store.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// The base64 Ed25519 signature of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.signing.sign(message).to_bytes())
    }
}

fn with_extension(stem: &Path, extension: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// A public key, written `ed25519:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key's id: the first 16 hex digits of the SHA-256 of its 32
    /// bytes. Derived, never chosen, so a signature cannot claim another
    /// key's id and still verify.
    pub fn id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyId(hex::encode(&digest[..8]))
    }

    /// Reads a public key file, as `handoff keygen` writes `NAME.pub`.
    pub fn from_file(file: &Path) -> Result<PublicKey, KeyError> {
        let text = keyfile::read_public(file)?;
        parse_public(&text, || file.display().to_string())
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(signature) = BASE64
            .decode(signature.trim())
            .ok()
            .and_then(|bytes| EdSignature::from_slice(&bytes).ok())
        else {
            return false;
        };
        self.0.verify(message, &signature).is_ok()
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        PublicKey(key)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", BASE64.encode(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_public(text, || "the text".to_string())
    }
}

fn parse_public(text: &str, what: impl FnOnce() -> String) -> Result<PublicKey, KeyError> {
    text.trim()
        .strip_prefix(PUBLIC_PREFIX)
        .and_then(decode_32)
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .map(PublicKey)
        .ok_or_else(|| KeyError::NotPublic { what: what() })
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    BASE64.decode(text.trim()).ok()?.try_into().ok()
}

/// How a key is named in signatures, the trust store and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("alice");
        let (key, private, public) = SignerKey::generate(&stem).unwrap();
        assert_eq!(private, dir.path().join("alice.key"));
        let again = SignerKey::from_file(&private).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(PublicKey::from_file(&public).unwrap(), key.public());
        assert_eq!(key.public().id().as_str().len(), 16);
        assert!(matches!(
            SignerKey::generate(&stem),
            Err(KeyError::Exists { .. })
        ));
        assert!(!format!("{key:?}").contains("private"));
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, ..) = SignerKey::generate(&dir.path().join("a")).unwrap();
        let (bob, ..) = SignerKey::generate(&dir.path().join("b")).unwrap();
        let signature = alice.sign(b"statement");
        assert!(alice.public().verifies(b"statement", &signature));
        assert!(!alice.public().verifies(b"statement!", &signature));
        assert!(!bob.public().verifies(b"statement", &signature));
        assert!(!alice.public().verifies(b"statement", "not base64"));
        assert!("ed25519:abc".parse::<PublicKey>().is_err());
    }
}

//! The deployment's trust configuration, one TOML file an operator passes
//! with `--trust`: how strict activation is, which keys it trusts, what each
//! may sign, until when, and the lock file, if versions are pinned.
//!
//! ```toml
//! activation = "two-person"          # off | signed | two-person
//! lock = "policies.lock"             # optional, relative to this file
//!
//! [keys.alice]
//! public-key = "ed25519:…"
//! roles = ["author"]
//! expires = "2027-06-30T00:00:00Z"   # optional
//!
//! [keys.bob]
//! public-key = "ed25519:…"
//! roles = ["reviewer"]
//! revoked = true                     # optional: never counts again
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::keys::{KeyId, PublicKey};
use crate::statement::Role;

/// The largest trust configuration read.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// How much a version must prove before it may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// Anything that passes validation serves: local development, and the
    /// embedded default.
    #[default]
    Off,
    /// Every version needs a valid signature from a trusted author key.
    Signed,
    /// Every version needs an author signature and a reviewer signature,
    /// from two different trusted keys.
    TwoPerson,
}

impl Activation {
    /// The policy's name, as configured.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Off => "off",
            Activation::Signed => "signed",
            Activation::TwoPerson => "two-person",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a trust configuration cannot be used. The host refuses to start on
/// one: serving under a policy other than the one written would be worse.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read trust configuration {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is over the size any trust configuration needs.
    #[error("trust configuration {file} is over {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The file.
        file: String,
    },
    /// The file is not a valid trust configuration.
    #[error("trust configuration {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The lock file it names cannot be used.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    activation: Activation,
    lock: Option<PathBuf>,
    #[serde(default)]
    keys: BTreeMap<String, KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KeyEntry {
    public_key: String,
    roles: Vec<Role>,
    expires: Option<DateTime<Utc>>,
    #[serde(default)]
    revoked: bool,
}

/// A key the deployment trusts, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Who holds it, as the configuration names them.
    pub name: String,
    /// The public key.
    pub public: PublicKey,
    /// Its id, derived from the key.
    pub id: KeyId,
    /// The roles it may sign in.
    pub roles: BTreeSet<Role>,
    /// When it stops counting, if ever.
    pub expires: Option<DateTime<Utc>>,
    /// Revoked: its signatures never count again.
    pub revoked: bool,
}

impl TrustedKey {
    /// Why this key's signature in `role` does not count at `now`, if it
    /// does not.
    pub fn refuses(&self, role: Role, now: DateTime<Utc>) -> Option<String> {
        if self.revoked {
            Some(format!("key {} ({}) is revoked", self.id, self.name))
        } else if let Some(expires) = self.expires.filter(|at| *at <= now) {
            Some(format!(
                "key {} ({}) expired at {}",
                self.id,
                self.name,
                expires.to_rfc3339()
            ))
        } else if !self.roles.contains(&role) {
            Some(format!(
                "key {} ({}) may not sign as {role}: the trust store lets it sign as {}",
                self.id,
                self.name,
                self.roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
        } else {
            None
        }
    }
}

/// The activation policy and the keys it trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustConfig {
    /// How much a version must prove.
    pub activation: Activation,
    /// The lock file pinning what may serve, resolved against the
    /// configuration's directory.
    pub lock: Option<PathBuf>,
    /// The trusted keys.
    pub keys: Vec<TrustedKey>,
}

impl TrustConfig {
    /// Reads and checks the configuration in `file`.
    pub fn from_file(file: &Path) -> Result<TrustConfig, TrustError> {
        use std::io::Read;
        let name = file.display().to_string();
        let io = |source| TrustError::Io {
            file: name.clone(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(file)
            .map_err(io)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(TrustError::TooLarge { file: name });
        }
        let mut config = TrustConfig::parse(&text).map_err(|reason| TrustError::Invalid {
            file: name.clone(),
            reason,
        })?;
        if let Some(lock) = &mut config.lock
            && lock.is_relative()
        {
            let base = file.parent().unwrap_or(Path::new(""));
            *lock = base.join(&*lock);
        }
        Ok(config)
    }

    /// Reads configuration text; the error says what to fix.
    pub fn parse(text: &str) -> Result<TrustConfig, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(file.keys.len());
        for (name, entry) in file.keys {
            let public: PublicKey = entry
                .public_key
                .parse()
                .map_err(|_| format!("keys.{name}.public-key: not an Ed25519 public key (`ed25519:<base64 of 32 bytes>`, as `handoff keygen` writes NAME.pub)"))?;
            if entry.roles.is_empty() {
                return Err(format!(
                    "keys.{name}.roles: empty; a key signs as `author`, `reviewer` or both"
                ));
            }
            if let Some(twin) = keys.iter().find(|k| k.public == public) {
                return Err(format!(
                    "keys.{name}: the same public key as keys.{}; one key, one holder",
                    twin.name
                ));
            }
            keys.push(TrustedKey {
                id: public.id(),
                name,
                public,
                roles: entry.roles.into_iter().collect(),
                expires: entry.expires,
                revoked: entry.revoked,
            });
        }
        let config = TrustConfig {
            activation: file.activation,
            lock: file.lock,
            keys,
        };
        config.check_satisfiable()?;
        Ok(config)
    }

    /// A policy no key could ever meet is a mistake, not a lockdown: say
    /// so at start rather than refuse every version.
    fn check_satisfiable(&self) -> Result<(), String> {
        let usable = |role| {
            self.keys
                .iter()
                .filter(|k| !k.revoked && k.roles.contains(&role))
                .count()
        };
        let authors = usable(Role::Author);
        match self.activation {
            Activation::Off => Ok(()),
            Activation::Signed if authors == 0 => Err(
                "activation `signed` needs a key that may sign as `author`, and none is listed"
                    .into(),
            ),
            Activation::TwoPerson => {
                let reviewers = usable(Role::Reviewer);
                let distinct = self
                    .keys
                    .iter()
                    .filter(|k| !k.revoked && !k.roles.is_empty())
                    .count();
                if authors == 0 || reviewers == 0 || distinct < 2 {
                    Err("activation `two-person` needs at least two unrevoked keys, one that may sign as `author` and another that may sign as `reviewer`".into())
                } else {
                    Ok(())
                }
            }
            Activation::Signed => Ok(()),
        }
    }

    /// The trusted key with id `id`.
    pub fn key(&self, id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.id.as_str() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SignerKey;

    fn public(dir: &Path, name: &str) -> String {
        let (key, ..) = SignerKey::generate(&dir.join(name)).unwrap();
        key.public().to_string()
    }

    #[test]
    fn a_configuration_reads_with_its_keys_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (public(dir.path(), "a"), public(dir.path(), "b"));
        let text = format!(
            "activation = \"two-person\"\nlock = \"p.lock\"\n[keys.alice]\npublic-key = \"{a}\"\nroles = [\"author\"]\nexpires = \"2030-01-01T00:00:00Z\"\n[keys.bob]\npublic-key = \"{b}\"\nroles = [\"reviewer\", \"author\"]\n"
        );
        let file = dir.path().join("trust.toml");
        std::fs::write(&file, text).unwrap();
        let config = TrustConfig::from_file(&file).unwrap();
        assert_eq!(config.activation, Activation::TwoPerson);
        assert_eq!(config.lock, Some(dir.path().join("p.lock")));
        let alice = config.keys.iter().find(|k| k.name == "alice").unwrap();
        assert!(config.key(alice.id.as_str()).is_some());
        let now = Utc::now();
        assert_eq!(alice.refuses(Role::Author, now), None);
        assert!(
            alice
                .refuses(Role::Reviewer, now)
                .unwrap()
                .contains("may not sign as reviewer")
        );
        let later = "2031-01-01T00:00:00Z".parse().unwrap();
        assert!(
            alice
                .refuses(Role::Author, later)
                .unwrap()
                .contains("expired")
        );
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = public(dir.path(), "a");
        let err = |text: &str| TrustConfig::parse(text).unwrap_err();
        assert!(err("activation = \"strict\"").contains("unknown variant"));
        assert!(err("activation = \"signed\"").contains("needs a key that may sign as `author`"));
        assert!(err(&format!("activation = \"two-person\"\n[keys.a]\npublic-key = \"{a}\"\nroles = [\"author\", \"reviewer\"]\n")).contains("two unrevoked keys"));
        assert!(
            err("[keys.a]\npublic-key = \"ed25519:nope\"\nroles = [\"author\"]\n")
                .contains("keys.a.public-key")
        );
        assert!(
            err(&format!("[keys.a]\npublic-key = \"{a}\"\nroles = []\n")).contains("keys.a.roles")
        );
        assert!(err(&format!("[keys.a]\npublic-key = \"{a}\"\nroles = [\"author\"]\n[keys.b]\npublic-key = \"{a}\"\nroles = [\"author\"]\n")).contains("same public key"));
        assert!(err("activaton = \"off\"").contains("unknown field"));
    }
}

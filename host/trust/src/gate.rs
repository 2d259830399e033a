//! The gate every version passes before it is compiled: its signatures
//! checked against the trust store, the activation policy applied, and the
//! lock file consulted. One function answers for every way a version can
//! reach a host (start, reload, promotion, replay and shadow candidates, a
//! fleet's generations), so no path can skip it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lock::LockFile;
use crate::signatures::{Signature, SignatureFile};
use crate::statement::{Role, UnitDigests};
use crate::store::{Activation, TrustConfig, TrustError};

/// The deployment's activation policy, trusted keys and lock, ready to
/// judge versions.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    config: TrustConfig,
    lock: Option<LockFile>,
}

/// A signature that counts: who vouched for a version, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The key's id.
    pub key: String,
    /// Who holds the key, as the trust store names them.
    pub holder: String,
    /// The role it signed in.
    pub role: Role,
}

/// One signature of a version, and whether it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// The key id the signature names.
    pub key: String,
    /// Who holds that key, when the trust store lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The role it was made in.
    pub role: Role,
    /// When the signer says it was made.
    pub signed_at: String,
    /// Whether it counts towards the activation policy.
    pub counts: bool,
    /// Why it does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Everything the gate found about one version: what `handoff inspect` and
/// `GET /v1/policies` show a compliance reviewer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Examination {
    /// The policy applied.
    pub activation: Activation,
    /// Every signature, in file order.
    pub signatures: Vec<SignatureCheck>,
    /// Why the signature file could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_file: Option<String>,
    /// Whether the lock file pins this exact version; absent without a
    /// lock file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// Whether the version may serve.
    pub met: bool,
    /// Why not, naming what is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmet: Option<String>,
}

impl Examination {
    /// The signatures that count.
    pub fn signers(&self) -> Vec<Signer> {
        self.signatures
            .iter()
            .filter(|check| check.counts)
            .map(|check| Signer {
                key: check.key.clone(),
                holder: check.holder.clone().unwrap_or_default(),
                role: check.role,
            })
            .collect()
    }
}

/// A version the gate refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The file at fault: `NAME.sig` for a signature, `NAME.wasm` for a
    /// version the lock does not pin.
    pub file: String,
    /// What is missing or wrong.
    pub reason: String,
}

impl Trust {
    /// No activation policy and no lock: everything that validates serves.
    pub fn off() -> Trust {
        Trust::default()
    }

    /// The policy `config` describes, its lock file read now.
    pub fn new(config: TrustConfig) -> Result<Trust, TrustError> {
        let lock = match &config.lock {
            Some(file) => Some(LockFile::from_file(file)?),
            None => None,
        };
        Ok(Trust { config, lock })
    }

    /// The trust configuration in `file`, and the lock file it names.
    pub fn from_file(file: &std::path::Path) -> Result<Trust, TrustError> {
        Trust::new(TrustConfig::from_file(file)?)
    }

    /// The activation policy.
    pub fn activation(&self) -> Activation {
        self.config.activation
    }

    /// The configuration.
    pub fn config(&self) -> &TrustConfig {
        &self.config
    }

    /// The lock, when versions are pinned.
    pub fn lock(&self) -> Option<&LockFile> {
        self.lock.as_ref()
    }

    /// Admits unit `name` with `digests` and the signature file text
    /// `signatures` now, with what was found (the signers that count among
    /// it); or refuses it, saying what is missing.
    pub fn admit(
        &self,
        name: &str,
        digests: &UnitDigests,
        signatures: Option<&str>,
    ) -> Result<Examination, Refusal> {
        let examination = self.examine(name, digests, signatures, Utc::now());
        match examination.unmet.clone() {
            None => Ok(examination),
            Some(reason) => Err(Refusal {
                file: if examination.pinned == Some(false) {
                    format!("{name}.wasm")
                } else {
                    format!("{name}.sig")
                },
                reason,
            }),
        }
    }

    /// Everything the gate finds about unit `name` at `now`.
    pub fn examine(
        &self,
        name: &str,
        digests: &UnitDigests,
        signatures: Option<&str>,
        now: DateTime<Utc>,
    ) -> Examination {
        let (file, signature_file) = match signatures.map(SignatureFile::parse) {
            None => (SignatureFile::default(), None),
            Some(Ok(file)) => (file, None),
            Some(Err(error)) => (
                SignatureFile::default(),
                Some(format!("{name}.sig: {error}")),
            ),
        };
        let checks: Vec<SignatureCheck> = file
            .signatures
            .iter()
            .map(|signature| self.check(name, digests, signature, now))
            .collect();
        let pinned = self.lock.as_ref().map(|lock| lock.refuses(name, digests));
        let unmet = match &pinned {
            Some(Some(reason)) => Some(format!("not pinned: {reason}")),
            _ => self.missing(name, &checks).map(|missing| {
                explain(
                    name,
                    missing,
                    &checks,
                    signatures.is_some(),
                    &signature_file,
                )
            }),
        };
        Examination {
            activation: self.config.activation,
            signatures: checks,
            signature_file,
            pinned: pinned.map(|refused| refused.is_none()),
            met: unmet.is_none(),
            unmet,
        }
    }

    /// One signature, checked: by a listed key, over these very files,
    /// genuine, and by a key that may sign so now.
    fn check(
        &self,
        name: &str,
        digests: &UnitDigests,
        signature: &Signature,
        now: DateTime<Utc>,
    ) -> SignatureCheck {
        let key = self.config.key(&signature.key);
        let problem = if key.is_none() {
            Some(format!(
                "key {} is not in the trust store",
                shown(&signature.key)
            ))
        } else if signature.component != digests.component {
            Some(format!(
                "it was made over component {}, but {name}.wasm is {}: the component changed after it was signed",
                shown(&signature.component),
                digests.component
            ))
        } else if signature.manifest != digests.manifest {
            Some(format!(
                "it was made over manifest {}, but {name}.toml is {}: the manifest changed after it was signed",
                shown(signature.manifest.as_deref().unwrap_or("none")),
                digests.manifest_text()
            ))
        } else {
            key.and_then(|key| {
                if key.public.verifies(signature.message().as_bytes(), &signature.sig) {
                    key.refuses(signature.role, now)
                } else {
                    Some(format!(
                        "it does not verify with key {} ({}): it was not made by that key, or a field was edited after signing",
                        key.id, key.name
                    ))
                }
            })
        };
        SignatureCheck {
            key: shown(&signature.key),
            holder: key.map(|k| k.name.clone()),
            role: signature.role,
            signed_at: shown(&signature.signed_at),
            counts: problem.is_none(),
            problem,
        }
    }

    /// What the activation policy still needs, given the signatures that
    /// count; `None` when it is met.
    fn missing(&self, name: &str, checks: &[SignatureCheck]) -> Option<String> {
        let counting = |role: Role| {
            checks
                .iter()
                .filter(move |c| c.counts && c.role == role)
                .collect::<Vec<_>>()
        };
        let authors = counting(Role::Author);
        match self.config.activation {
            Activation::Off => None,
            Activation::Signed if authors.is_empty() => Some(format!(
                "activation `signed` needs an author signature from a trusted key, and {name} has none that counts"
            )),
            Activation::Signed => None,
            Activation::TwoPerson => {
                let reviewers = counting(Role::Reviewer);
                let pair = authors
                    .iter()
                    .any(|a| reviewers.iter().any(|r| r.key != a.key));
                match (authors.first(), reviewers.first()) {
                    _ if pair => None,
                    (None, None) => Some(format!(
                        "activation `two-person` needs an author signature and a reviewer signature from two different trusted keys, and {name} has no signature that counts"
                    )),
                    (Some(author), None) => Some(format!(
                        "activation `two-person` needs a reviewer signature from a second trusted key; {name} has only the author signature of key {}{}",
                        author.key,
                        holder(author)
                    )),
                    (None, Some(reviewer)) => Some(format!(
                        "activation `two-person` needs an author signature from a trusted key; {name} has only the reviewer signature of key {}{}",
                        reviewer.key,
                        holder(reviewer)
                    )),
                    (Some(author), Some(_)) => Some(format!(
                        "activation `two-person` needs two different keys, but key {}{} signed {name} as both author and reviewer",
                        author.key,
                        holder(author)
                    )),
                }
            }
        }
    }
}

/// The whole reason: what is missing, then why each signature that is
/// there does not count.
fn explain(
    name: &str,
    missing: String,
    checks: &[SignatureCheck],
    has_file: bool,
    file_problem: &Option<String>,
) -> String {
    let mut reason = missing;
    if let Some(problem) = file_problem {
        reason.push_str("; ");
        reason.push_str(problem);
    } else if !has_file {
        reason.push_str(&format!(
            " (there is no {name}.sig: sign it with `handoff sign`)"
        ));
    }
    for check in checks.iter().filter(|c| !c.counts) {
        reason.push_str(&format!(
            "; the {} signature of key {}{} does not count: {}",
            check.role,
            check.key,
            holder(check),
            check.problem.as_deref().unwrap_or_default()
        ));
    }
    reason
}

fn holder(check: &SignatureCheck) -> String {
    check
        .holder
        .as_ref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
}

/// Text from a signature file, as messages show it: printable, and short.
fn shown(text: &str) -> String {
    const MAX: usize = 80;
    let mut shown: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SignerKey;
    use crate::store::TrustedKey;

    struct Keys {
        _dir: tempfile::TempDir,
        alice: SignerKey,
        bob: SignerKey,
    }

    fn keys() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let (alice, ..) = SignerKey::generate(&dir.path().join("alice")).unwrap();
        let (bob, ..) = SignerKey::generate(&dir.path().join("bob")).unwrap();
        Keys {
            _dir: dir,
            alice,
            bob,
        }
    }

    fn trusted(name: &str, key: &SignerKey, roles: &[Role]) -> TrustedKey {
        TrustedKey {
            name: name.into(),
            public: key.public(),
            id: key.public().id(),
            roles: roles.iter().copied().collect(),
            expires: None,
            revoked: false,
        }
    }

    fn trust(activation: Activation, keys: &Keys) -> Trust {
        Trust::new(TrustConfig {
            activation,
            lock: None,
            keys: vec![
                trusted("alice", &keys.alice, &[Role::Author, Role::Reviewer]),
                trusted("bob", &keys.bob, &[Role::Reviewer]),
            ],
        })
        .unwrap()
    }

    fn signed(digests: &UnitDigests, by: &[(&SignerKey, Role)]) -> String {
        let mut file = SignatureFile::default();
        for (key, role) in by {
            file.add(Signature::sign(key, digests, *role, Utc::now()));
        }
        file.to_text()
    }

    #[test]
    fn two_person_needs_an_author_and_a_reviewer_on_two_keys() {
        let k = keys();
        let gate = trust(Activation::TwoPerson, &k);
        let unit = UnitDigests::of(b"wasm", Some("m"));
        let refused = gate.admit("gate", &unit, None).unwrap_err();
        assert_eq!(refused.file, "gate.sig");
        assert!(
            refused.reason.contains("has no signature that counts"),
            "{}",
            refused.reason
        );
        assert!(refused.reason.contains("there is no gate.sig"));

        let author_only = signed(&unit, &[(&k.alice, Role::Author)]);
        let reason = gate
            .admit("gate", &unit, Some(&author_only))
            .unwrap_err()
            .reason;
        assert!(reason.contains("needs a reviewer signature"), "{reason}");

        let twice = signed(
            &unit,
            &[(&k.alice, Role::Author), (&k.alice, Role::Reviewer)],
        );
        let reason = gate.admit("gate", &unit, Some(&twice)).unwrap_err().reason;
        assert!(
            reason.contains("signed gate as both author and reviewer"),
            "{reason}"
        );

        let both = signed(&unit, &[(&k.alice, Role::Author), (&k.bob, Role::Reviewer)]);
        let signers = gate.admit("gate", &unit, Some(&both)).unwrap().signers();
        assert_eq!(signers.len(), 2);
        assert_eq!(signers[0].holder, "alice");
        assert_eq!(signers[1].key, k.bob.public().id().to_string());
    }

    #[test]
    fn a_changed_file_a_forged_field_and_a_role_not_granted_do_not_count() {
        let k = keys();
        let gate = trust(Activation::Signed, &k);
        let unit = UnitDigests::of(b"wasm", Some("m"));
        let text = signed(&unit, &[(&k.alice, Role::Author)]);

        let rebuilt = UnitDigests::of(b"wasm2", Some("m"));
        let reason = gate
            .admit("gate", &rebuilt, Some(&text))
            .unwrap_err()
            .reason;
        assert!(
            reason.contains("the component changed after it was signed"),
            "{reason}"
        );

        let edited = UnitDigests::of(b"wasm", Some("m2"));
        let reason = gate.admit("gate", &edited, Some(&text)).unwrap_err().reason;
        assert!(
            reason.contains("the manifest changed after it was signed"),
            "{reason}"
        );

        let relabelled = text.replace("\"author\"", "\"reviewer\"");
        let mut file = SignatureFile::parse(&text).unwrap();
        file.signatures[0].signed_at = "1999-01-01T00:00:00Z".into();
        let reason = gate
            .admit("gate", &unit, Some(&file.to_text()))
            .unwrap_err()
            .reason;
        assert!(reason.contains("does not verify with key"), "{reason}");
        let checks = gate.examine("gate", &unit, Some(&relabelled), Utc::now());
        assert!(!checks.signatures[0].counts);

        let by_bob = signed(&unit, &[(&k.bob, Role::Author)]);
        let reason = gate.admit("gate", &unit, Some(&by_bob)).unwrap_err().reason;
        assert!(reason.contains("may not sign as author"), "{reason}");

        let garbage = gate
            .admit("gate", &unit, Some("{not json"))
            .unwrap_err()
            .reason;
        assert!(
            garbage.contains("gate.sig: not a signature file"),
            "{garbage}"
        );
    }

    #[test]
    fn unknown_expired_and_revoked_keys_do_not_count() {
        let k = keys();
        let unit = UnitDigests::of(b"wasm", None);
        let text = signed(&unit, &[(&k.alice, Role::Author)]);
        let mut gate = trust(Activation::Signed, &k);
        assert!(gate.admit("gate", &unit, Some(&text)).is_ok());

        gate.config.keys[0].expires = Some(Utc::now() - chrono::Duration::seconds(1));
        let reason = gate.admit("gate", &unit, Some(&text)).unwrap_err().reason;
        assert!(reason.contains("expired at"), "{reason}");

        gate.config.keys[0].expires = None;
        gate.config.keys[0].revoked = true;
        let reason = gate.admit("gate", &unit, Some(&text)).unwrap_err().reason;
        assert!(reason.contains("is revoked"), "{reason}");

        gate.config.keys.remove(0);
        let reason = gate.admit("gate", &unit, Some(&text)).unwrap_err().reason;
        assert!(reason.contains("is not in the trust store"), "{reason}");
    }

    #[test]
    fn off_admits_everything_and_still_names_valid_signers() {
        let k = keys();
        let gate = trust(Activation::Off, &k);
        let unit = UnitDigests::of(b"wasm", None);
        assert_eq!(gate.admit("gate", &unit, None).unwrap().signers(), []);
        let garbage = gate.admit("gate", &unit, Some("garbage")).unwrap();
        assert_eq!(garbage.signers(), []);
        assert!(
            garbage.signature_file.is_some(),
            "the unreadable file is reported"
        );
        let text = signed(&unit, &[(&k.bob, Role::Reviewer)]);
        let signers = gate.admit("gate", &unit, Some(&text)).unwrap().signers();
        assert_eq!(signers[0].holder, "bob");
    }

    #[test]
    fn a_lock_refuses_what_it_does_not_pin_whatever_the_signatures() {
        let k = keys();
        let unit = UnitDigests::of(b"wasm", None);
        let mut gate = trust(Activation::Off, &k);
        gate.lock = Some(LockFile::of([("gate".to_string(), unit.clone())]));
        assert!(gate.admit("gate", &unit, None).is_ok());
        let other = UnitDigests::of(b"other", None);
        let refused = gate.admit("gate", &other, None).unwrap_err();
        assert_eq!(refused.file, "gate.wasm");
        assert!(
            refused.reason.starts_with("not pinned: gate.wasm is"),
            "{}",
            refused.reason
        );
        assert!(gate.examine("gate", &unit, None, Utc::now()).pinned == Some(true));
    }

    #[test]
    fn hostile_text_is_shown_short_and_printable() {
        assert_eq!(shown("a\u{1b}[31mb"), "a?[31mb");
        assert_eq!(shown(&"x".repeat(200)).chars().count(), 81);
    }
}

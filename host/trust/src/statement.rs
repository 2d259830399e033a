//! What a signature says: "this component, with this manifest (or none),
//! is signed by me in this role". Both digests are covered, so editing the
//! manifest (a threshold, a failure mode, `enabled`) voids the signatures
//! as surely as changing the code; the role is covered, so an author's
//! signature cannot be relabelled a review.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a signer vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Wrote the version (or built it from reviewed source).
    Author,
    /// Reviewed it and approves it to serve.
    Reviewer,
}

impl Role {
    /// The role's name, as written in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Author => "author",
            Role::Reviewer => "reviewer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "author" => Ok(Role::Author),
            "reviewer" => Ok(Role::Reviewer),
            other => Err(format!(
                "`{other}` is not a role: expected `author` or `reviewer`"
            )),
        }
    }
}

/// The identity of one version of a unit: its component's and its
/// manifest's SHA-256, as `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitDigests {
    /// The component's digest: the identity every decision records.
    pub component: String,
    /// The manifest's digest; `None` when the unit has no manifest, which
    /// is signed as such (adding one later voids the signatures).
    pub manifest: Option<String>,
}

impl UnitDigests {
    /// The digests of a component and its manifest text.
    pub fn of(wasm: &[u8], manifest: Option<&str>) -> UnitDigests {
        UnitDigests {
            component: digest(wasm),
            manifest: manifest.map(|text| digest(text.as_bytes())),
        }
    }

    /// The manifest's digest, or `none`.
    pub fn manifest_text(&self) -> &str {
        self.manifest.as_deref().unwrap_or("none")
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The exact bytes an Ed25519 signature covers.
pub(crate) fn message(digests: &UnitDigests, role: Role, signed_at: &str) -> String {
    format!(
        "handoff policy signature v1\ncomponent {}\nmanifest {}\nrole {role}\nsigned-at {signed_at}\n",
        digests.component,
        digests.manifest_text()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_both_digests_and_the_role() {
        let with = UnitDigests::of(b"wasm", Some("enabled = true\n"));
        let without = UnitDigests::of(b"wasm", None);
        assert_eq!(with.component, without.component);
        assert!(with.component.starts_with("sha256:"));
        let a = message(&with, Role::Author, "t");
        assert_ne!(a, message(&without, Role::Author, "t"));
        assert_ne!(a, message(&with, Role::Reviewer, "t"));
        assert!(message(&without, Role::Author, "t").contains("manifest none\n"));
        assert_eq!("reviewer".parse::<Role>(), Ok(Role::Reviewer));
        assert!("admin".parse::<Role>().is_err());
    }
}

//! JWTs from an identity provider, verified offline against a key set file
//! (a JWKS document): the signature with the key the token's `kid` names,
//! then issuer, audience, expiry and not-before. The principal's name is a
//! claim (`sub` unless configured), its roles another (`roles`).
//!
//! Only asymmetric keys are accepted (EdDSA, RS256/384/512, ES256/384):
//! with a shared secret, anyone able to verify a token could mint one.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::auth::{Principal, Role, valid_name};

/// The `[jwt]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JwtConfig {
    /// The key set, a JWKS JSON document.
    pub jwks_file: PathBuf,
    /// The only accepted `iss`.
    pub issuer: String,
    /// The accepted `aud`.
    pub audience: String,
    /// The claim that names the principal.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The claim that lists the principal's roles: an array of strings, or
    /// one space-separated string.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_name_claim() -> String {
    "sub".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_leeway() -> u64 {
    30
}

/// The largest key set file read.
const MAX_JWKS_BYTES: u64 = 256 * 1024;

/// The longest token looked at; real ones are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why the key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read the JWT key set {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large to be a key set.
    #[error("the JWT key set {file} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge {
        /// The file.
        file: String,
    },
    /// The file is not a JWKS document.
    #[error("the JWT key set {file} is not a JWKS document: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A key that cannot verify tokens.
    #[error("the JWT key set {file}: key {kid}: {reason}")]
    Key {
        /// The file.
        file: String,
        /// The key's `kid`, or its position.
        kid: String,
        /// What is wrong.
        reason: String,
    },
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// Verifies bearer JWTs.
pub struct JwtVerifier {
    keys: Vec<Key>,
    config: JwtConfig,
}

impl JwtVerifier {
    /// Reads the key set the configuration names.
    pub fn load(config: JwtConfig) -> Result<JwtVerifier, JwksError> {
        let file = config.jwks_file.display().to_string();
        let text = read_bounded(&config.jwks_file).map_err(|source| {
            if source.kind() == std::io::ErrorKind::FileTooLarge {
                JwksError::TooLarge { file: file.clone() }
            } else {
                JwksError::Read {
                    file: file.clone(),
                    source,
                }
            }
        })?;
        let set: JwkSet = serde_json::from_slice(&text).map_err(|e| JwksError::Parse {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        if set.keys.is_empty() {
            return Err(JwksError::Parse {
                file,
                reason: "it holds no keys".into(),
            });
        }
        let mut keys = Vec::with_capacity(set.keys.len());
        for (index, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .unwrap_or_else(|| format!("#{}", index + 1));
            let key_error = |reason: String| JwksError::Key {
                file: file.clone(),
                kid: kid.clone(),
                reason,
            };
            let algorithm = algorithm_of(jwk).map_err(key_error)?;
            let decoding =
                DecodingKey::from_jwk(jwk).map_err(|e| key_error(format!("unusable: {e}")))?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                decoding,
            });
        }
        Ok(JwtVerifier { keys, config })
    }

    /// The principal a token names, once its signature and claims check
    /// out. The error says what failed, never the token.
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!("longer than {MAX_TOKEN_BYTES} bytes"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("unreadable header: {e}"))?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| "its `kid` names no key in the key set".to_string())?,
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err("it has no `kid`, and the key set holds several keys".into()),
        };
        if header.alg != key.algorithm {
            return Err(format!(
                "it is signed with {:?}, but its key is for {:?}",
                header.alg, key.algorithm
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .map_err(|e| e.to_string())?;
        let claims = data.claims;
        let name = claims
            .get(&self.config.name_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("it has no string `{}` claim", self.config.name_claim))?;
        if !valid_name(name) {
            return Err(format!(
                "its `{}` claim is not a usable name (1 to 128 printable characters)",
                self.config.name_claim
            ));
        }
        Ok(Principal {
            name: name.to_string(),
            roles: roles_in(claims.get(&self.config.roles_claim)),
        })
    }
}

/// The known roles a claim lists; unknown ones are ignored, so that an
/// identity provider can carry roles of other systems in the same claim.
fn roles_in(claim: Option<&serde_json::Value>) -> Vec<Role> {
    let names: Vec<&str> = match claim {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter_map(|name| name.parse::<Role>().ok())
        .filter(|role| seen.insert(*role))
        .collect()
}

/// The one algorithm a key verifies: the JWK's own `alg` if it states one
/// that fits its type, or the usual one for its type.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, String> {
    let stated = jwk.common.key_algorithm.map(|a| a.to_string());
    let (fits, default): (&[&str], Algorithm) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(_) => (&["EdDSA"], Algorithm::EdDSA),
        AlgorithmParameters::RSA(_) => (&["RS256", "RS384", "RS512"], Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => (&["ES256"], Algorithm::ES256),
            EllipticCurve::P384 => (&["ES384"], Algorithm::ES384),
            _ => return Err("only the P-256 and P-384 curves are accepted".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric (`oct`) keys are refused: whoever can verify with one can sign".into(),
            );
        }
        _ => return Err("an unknown key type".into()),
    };
    match stated {
        None => Ok(default),
        Some(alg) if fits.contains(&alg.as_str()) => alg
            .parse::<Algorithm>()
            .map_err(|e| format!("its `alg` {alg}: {e}")),
        Some(alg) => Err(format!("its `alg` {alg} does not fit its key type")),
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_JWKS_BYTES {
        return Err(std::io::ErrorKind::FileTooLarge.into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_an_array_or_a_string_and_unknown_ones_are_dropped() {
        let array = serde_json::json!(["operator", "billing-admin", "operator", "compliance"]);
        assert_eq!(
            roles_in(Some(&array)),
            vec![Role::Operator, Role::Compliance]
        );
        let text = serde_json::json!("agent other");
        assert_eq!(roles_in(Some(&text)), vec![Role::Agent]);
        assert!(roles_in(None).is_empty());
    }

    #[test]
    fn a_symmetric_key_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(
            &file,
            r#"{"keys":[{"kty":"oct","kid":"shared","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}"#,
        )
        .unwrap();
        let config = JwtConfig {
            jwks_file: file,
            issuer: "i".into(),
            audience: "a".into(),
            name_claim: default_name_claim(),
            roles_claim: default_roles_claim(),
            leeway_secs: 0,
        };
        let error = JwtVerifier::load(config).err().unwrap().to_string();
        assert!(
            error.contains("shared") && error.contains("symmetric"),
            "{error}"
        );
    }
}

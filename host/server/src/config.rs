//! The server's configuration file (TOML) and the environment.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! body-limit-bytes = 1048576
//! candidate-limit-bytes = 75497472
//! max-batch = 1000
//! max-wait-secs = 60
//! poll-interval-ms = 250  # long polls: how often the store is looked at
//! evaluators = 2          # default: the number of CPUs
//! header-timeout-secs = 10
//! body-timeout-secs = 30
//! idle-timeout-secs = 60
//! max-connections = 1024  # lowered to fit the open-file limit
//! shutdown-timeout-secs = 10
//!
//! # Named people and agents, each with roles and tokens given as SHA-256
//! # digests (`printf %s "$TOKEN" | sha256sum`).
//! [[principals]]
//! name = "alice"
//! roles = ["operator"]
//! token-sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
//!
//! # JWTs from an identity provider, verified offline.
//! [jwt]
//! jwks-file = "/etc/handoff/jwks.json"
//! issuer = "https://id.example.com"
//! audience = "handoff"
//!
//! # Unnamed tokens per role, in clear (each is its own principal,
//! # `ROLE-token-<first 8 hex of its digest>`).
//! [tokens]
//! agent = ["..."]
//! operator = ["..."]
//! compliance = ["..."]
//! ```
//!
//! Role tokens can also come from `HANDOFF_AGENT_TOKENS`,
//! `HANDOFF_OPERATOR_TOKENS` and `HANDOFF_COMPLIANCE_TOKENS`
//! (comma-separated), which keeps them out of files under version control.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use handoff_model::Named;
use strum::VariantArray;

use super::auth::{Identities, Principal, Role, token_digest, valid_name};
use super::connections::{ConnectionLimits, fit_to_descriptor_limit};
use super::jwt::{JwksError, JwtConfig, JwtVerifier};

/// What the config file may say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    /// Where to listen, unless `--listen` says.
    pub listen: Option<SocketAddr>,
    /// The largest request body, except candidate uploads.
    pub body_limit_bytes: usize,
    /// The largest candidate component `POST /v1/replay` accepts.
    pub candidate_limit_bytes: usize,
    /// The most items one evaluate request may carry.
    pub max_batch: usize,
    /// The longest long-poll a caller may ask for.
    pub max_wait_secs: u64,
    /// How often a long poll looks at the store for a change no wake-up
    /// announced: one made by `handoff queue` beside an embedded store, or
    /// one whose notification a PostgreSQL store lost while its listener
    /// reconnected. This server's own changes, and with PostgreSQL every
    /// node's, wake long polls at once.
    pub poll_interval_ms: u64,
    /// Requests evaluating at once; the rest wait their turn. Each holds
    /// warm instances of every plugin, and the instance pool is finite, so
    /// this bounds memory and keeps a burst of requests from running the
    /// pool dry (which would fail items to humans). Default: the number of
    /// CPUs.
    pub evaluators: Option<usize>,
    /// From when a connection waits for a request (it opened, or the last
    /// response ended) to the end of the request's headers. Closes
    /// slowloris clients and idle keep-alive connections.
    pub header_timeout_secs: u64,
    /// From the end of a request's headers to the end of its body.
    pub body_timeout_secs: u64,
    /// A connection that moves no byte this long while no handler works
    /// for it is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once; lowered at start to fit the process's
    /// open-file limit.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight before closing what is
    /// left.
    pub shutdown_timeout_secs: u64,
    /// Named principals with token digests.
    pub principals: Vec<PrincipalConfig>,
    /// JWT verification, if any.
    pub jwt: Option<JwtConfig>,
    /// Unnamed bearer tokens by role.
    pub tokens: TokenLists,
}

/// One `[[principals]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrincipalConfig {
    name: String,
    roles: Vec<Role>,
    token_sha256: Vec<String>,
}

impl std::fmt::Debug for PrincipalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalConfig")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Tokens as written in the file.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLists {
    #[serde(default)]
    agent: Vec<String>,
    #[serde(default)]
    operator: Vec<String>,
    #[serde(default)]
    compliance: Vec<String>,
    #[serde(default)]
    approver: Vec<String>,
}

impl std::fmt::Debug for TokenLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenLists { .. }")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            body_limit_bytes: 1 << 20,
            // A Python component is about 19 MiB; the loader takes up to 64.
            candidate_limit_bytes: 72 << 20,
            max_batch: 1000,
            max_wait_secs: 60,
            poll_interval_ms: 250,
            evaluators: None,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
            shutdown_timeout_secs: 10,
            principals: Vec::new(),
            jwt: None,
            tokens: TokenLists::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
    /// A limit that would make the server useless.
    #[error("config: `{key}` must be at least {min}")]
    TooSmall {
        /// The key.
        key: &'static str,
        /// Its minimum.
        min: u64,
    },
    /// A limit past what the host can honour.
    #[error("config: `{key}` must be at most {max}")]
    TooLarge {
        /// The key.
        key: &'static str,
        /// Its maximum.
        max: u64,
    },
    /// A principal entry that cannot be used.
    #[error("config: principal {name:?}: {reason}")]
    Principal {
        /// The principal's name as written.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The JWT key set cannot be used.
    #[error("config: [jwt]: {0}")]
    Jwks(#[from] JwksError),
    /// An open server on a reachable address.
    #[error(
        "refusing to listen on {0} with no tokens configured: anyone who can reach it could \
         decide, resolve handoffs and read the audit trail. Configure tokens ([tokens] in \
         the config file, or HANDOFF_AGENT_TOKENS / HANDOFF_OPERATOR_TOKENS / \
         HANDOFF_COMPLIANCE_TOKENS), or listen on a loopback address"
    )]
    OpenOnNetwork(SocketAddr),
}

/// The most evaluators a server runs: with a few plugins each, well inside
/// the instance pool (`handoff_policy::engine::POOL_INSTANCES`), leaving
/// room for the trial instances a reload or a replay needs.
pub const MAX_EVALUATORS: usize = 32;

impl ServerConfig {
    /// Requests evaluating at once.
    pub fn evaluator_count(&self) -> usize {
        self.evaluators.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, usize::from)
                .min(MAX_EVALUATORS)
        })
    }

    /// Reads `path`, or the defaults without one.
    pub fn load(path: Option<&Path>) -> Result<ServerConfig, ConfigError> {
        let config: ServerConfig = match path {
            None => ServerConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.message().to_string(),
                })?
            }
        };
        for (key, value, min) in [
            ("body-limit-bytes", config.body_limit_bytes as u64, 1024),
            (
                "candidate-limit-bytes",
                config.candidate_limit_bytes as u64,
                1024,
            ),
            ("max-batch", config.max_batch as u64, 1),
            ("poll-interval-ms", config.poll_interval_ms, 10),
            ("evaluators", config.evaluators.unwrap_or(1) as u64, 1),
            ("header-timeout-secs", config.header_timeout_secs, 1),
            ("body-timeout-secs", config.body_timeout_secs, 1),
            ("idle-timeout-secs", config.idle_timeout_secs, 1),
            ("max-connections", config.max_connections as u64, 1),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall { key, min });
            }
        }
        for (key, value, max) in [
            (
                "evaluators",
                config.evaluators.unwrap_or(1) as u64,
                MAX_EVALUATORS as u64,
            ),
            ("poll-interval-ms", config.poll_interval_ms, 3_600_000),
            ("header-timeout-secs", config.header_timeout_secs, 3600),
            ("body-timeout-secs", config.body_timeout_secs, 3600),
            ("idle-timeout-secs", config.idle_timeout_secs, 86_400),
            ("shutdown-timeout-secs", config.shutdown_timeout_secs, 3600),
            ("max-connections", config.max_connections as u64, 1 << 20),
        ] {
            if value > max {
                return Err(ConfigError::TooLarge { key, max });
            }
        }
        Ok(config)
    }

    /// How often a long poll looks at the store unprompted.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The connection limits and timeouts, the connection limit fitted to
    /// the process's open-file limit.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: fit_to_descriptor_limit(self.max_connections),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// Every credential the server accepts: the named principals, the JWT
    /// key set, and the role tokens from the file and from `env` (a lookup,
    /// so tests need not touch the process environment).
    pub fn identities(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Identities, ConfigError> {
        let mut identities = Identities::default();
        let mut names = BTreeMap::new();
        let mut digests = BTreeMap::new();
        for entry in &self.principals {
            let refuse = |reason: String| ConfigError::Principal {
                name: entry.name.clone(),
                reason,
            };
            if !valid_name(&entry.name) {
                return Err(refuse(
                    "a name is 1 to 128 printable characters, with no leading or trailing space"
                        .into(),
                ));
            }
            if names.insert(entry.name.clone(), ()).is_some() {
                return Err(refuse("the name is listed twice".into()));
            }
            if entry.roles.is_empty() {
                return Err(refuse("it has no roles".into()));
            }
            if entry.token_sha256.is_empty() {
                return Err(refuse("it has no `token-sha256`".into()));
            }
            let principal = Arc::new(Principal {
                name: entry.name.clone(),
                roles: entry.roles.clone(),
            });
            for hex_digest in &entry.token_sha256 {
                let digest = parse_digest(hex_digest).ok_or_else(|| {
                    refuse("`token-sha256` entries are 64 hex digits (a SHA-256 digest)".into())
                })?;
                if let Some(other) = digests.insert(digest, entry.name.clone()) {
                    return Err(refuse(format!("a token digest is also {other}'s")));
                }
                identities.add_token_digest(digest, principal.clone());
            }
        }
        for (digest, principal) in self.role_tokens(env) {
            if let Some(other) = digests.get(&digest) {
                return Err(ConfigError::Principal {
                    name: principal.name.clone(),
                    reason: format!("the same token is also {other}'s"),
                });
            }
            identities.add_token_digest(digest, principal);
        }
        if let Some(jwt) = &self.jwt {
            identities.set_jwt(JwtVerifier::load(jwt.clone())?);
        }
        Ok(identities)
    }

    /// The unnamed role tokens: one principal per distinct token, named by
    /// its role and the start of its digest, holding every role it is
    /// listed for.
    fn role_tokens(&self, env: impl Fn(&str) -> Option<String>) -> Vec<([u8; 32], Arc<Principal>)> {
        let mut by_digest: BTreeMap<[u8; 32], Vec<Role>> = BTreeMap::new();
        for &role in Role::VARIANTS {
            let listed = match role {
                Role::Agent => &self.tokens.agent,
                Role::Operator => &self.tokens.operator,
                Role::Compliance => &self.tokens.compliance,
                Role::Approver => &self.tokens.approver,
            };
            let variable = format!("HANDOFF_{}_TOKENS", role.as_str().to_uppercase());
            let from_env = env(&variable).unwrap_or_default();
            let from_env = from_env.split(',').map(str::trim).map(str::to_string);
            for token in listed.iter().cloned().chain(from_env) {
                if !token.is_empty() {
                    let roles = by_digest.entry(token_digest(&token)).or_default();
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
            }
        }
        by_digest
            .into_iter()
            .map(|(digest, roles)| {
                let name = format!("{}-token-{}", roles[0].as_str(), hex8(&digest));
                (digest, Arc::new(Principal { name, roles }))
            })
            .collect()
    }
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

fn hex8(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses an unauthenticated server anywhere but loopback.
pub fn check_exposure(listen: SocketAddr, identities: &Identities) -> Result<(), ConfigError> {
    if identities.is_empty() && !listen.ip().is_loopback() {
        return Err(ConfigError::OpenOnNetwork(listen));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(identities: &Identities, token: &str) -> Option<String> {
        identities.authenticate(token).ok().map(|p| p.name.clone())
    }

    #[test]
    fn tokens_come_from_the_file_and_the_environment() {
        let config: ServerConfig = toml::from_str("[tokens]\nagent = [\"a1\"]").unwrap();
        let identities = config
            .identities(|name| (name == "HANDOFF_OPERATOR_TOKENS").then(|| "o1, o2".to_string()))
            .unwrap();
        let a1 = identities.authenticate("a1").unwrap();
        assert_eq!(a1.roles, vec![Role::Agent]);
        assert!(a1.name.starts_with("agent-token-"), "{}", a1.name);
        assert_eq!(
            identities.authenticate("o2").unwrap().roles,
            vec![Role::Operator]
        );
        assert_ne!(name_of(&identities, "o1"), name_of(&identities, "o2"));
        assert!(identities.authenticate("").is_err());
    }

    #[test]
    fn principals_are_named_by_their_token_digests() {
        let digest = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let config: ServerConfig = toml::from_str(&format!(
            "[[principals]]\nname = \"alice\"\nroles = [\"operator\", \"compliance\"]\ntoken-sha256 = [\"{digest}\"]\n"
        ))
        .unwrap();
        let identities = config.identities(|_| None).unwrap();
        let alice = identities.authenticate("secret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.roles, vec![Role::Operator, Role::Compliance]);

        for (entry, needle) in [
            (
                "name = \"a\\nb\"\nroles = [\"agent\"]\ntoken-sha256 = [\"{d}\"]",
                "printable",
            ),
            (
                "name = \"b\"\nroles = []\ntoken-sha256 = [\"{d}\"]",
                "no roles",
            ),
            (
                "name = \"c\"\nroles = [\"agent\"]\ntoken-sha256 = [\"abc\"]",
                "64 hex",
            ),
        ] {
            let text = format!("[[principals]]\n{}\n", entry.replace("{d}", digest));
            let config: ServerConfig = toml::from_str(&text).unwrap();
            let error = config.identities(|_| None).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
        let twice = format!(
            "[[principals]]\nname = \"a\"\nroles = [\"agent\"]\ntoken-sha256 = [\"{digest}\"]\n\
             [[principals]]\nname = \"b\"\nroles = [\"agent\"]\ntoken-sha256 = [\"{digest}\"]\n"
        );
        let config: ServerConfig = toml::from_str(&twice).unwrap();
        let error = config.identities(|_| None).unwrap_err().to_string();
        assert!(error.contains("also a's"), "{error}");
    }

    #[test]
    fn an_open_server_stays_on_loopback() {
        let open = Identities::default();
        assert!(check_exposure("127.0.0.1:80".parse().unwrap(), &open).is_ok());
        assert!(check_exposure("[::1]:80".parse().unwrap(), &open).is_ok());
        let error = check_exposure("0.0.0.0:80".parse().unwrap(), &open).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:80"));
        let config: ServerConfig = toml::from_str("[tokens]\nagent = [\"t\"]").unwrap();
        let closed = config.identities(|_| None).unwrap();
        assert!(check_exposure("0.0.0.0:80".parse().unwrap(), &closed).is_ok());
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "max-batchh = 3\n").unwrap();
        let error = ServerConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("max-batchh"), "{error}");
    }
}

//! The server's configuration file (TOML) and the environment.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! body-limit-bytes = 1048576
//! candidate-limit-bytes = 16777216
//! max-batch = 1000
//! max-wait-secs = 60
//! evaluators = 2          # default: the number of CPUs
//!
//! [tokens]
//! agent = ["..."]
//! operator = ["..."]
//! compliance = ["..."]
//! ```
//!
//! Tokens can also come from `HANDOFF_AGENT_TOKENS`,
//! `HANDOFF_OPERATOR_TOKENS` and `HANDOFF_COMPLIANCE_TOKENS`
//! (comma-separated), which keeps them out of files under version control.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use handoff_model::Named;
use strum::VariantArray;

use super::auth::{Role, Tokens};

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
    /// Requests evaluating at once; the rest wait their turn. Each holds
    /// warm instances of every plugin, and the instance pool is finite, so
    /// this bounds memory and keeps a burst of requests from running the
    /// pool dry (which would fail items to humans). Default: the number of
    /// CPUs.
    pub evaluators: Option<usize>,
    /// Bearer tokens by role.
    pub tokens: TokenLists,
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
            candidate_limit_bytes: 16 << 20,
            max_batch: 1000,
            max_wait_secs: 60,
            evaluators: None,
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
            ("evaluators", config.evaluators.unwrap_or(1) as u64, 1),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall { key, min });
            }
        }
        if config.evaluators.is_some_and(|n| n > MAX_EVALUATORS) {
            return Err(ConfigError::TooLarge {
                key: "evaluators",
                max: MAX_EVALUATORS as u64,
            });
        }
        Ok(config)
    }

    /// The tokens from the file and from `env` (a lookup, so tests need not
    /// touch the process environment).
    pub fn tokens(&self, env: impl Fn(&str) -> Option<String>) -> Tokens {
        let mut tokens = Tokens::default();
        for &role in Role::VARIANTS {
            let listed = match role {
                Role::Agent => &self.tokens.agent,
                Role::Operator => &self.tokens.operator,
                Role::Compliance => &self.tokens.compliance,
            };
            let variable = format!("HANDOFF_{}_TOKENS", role.as_str().to_uppercase());
            let from_env = env(&variable).unwrap_or_default();
            let from_env = from_env.split(',').map(str::trim).map(str::to_string);
            for token in listed.iter().cloned().chain(from_env) {
                if !token.is_empty() {
                    tokens.add(role, &token);
                }
            }
        }
        tokens
    }
}

/// Refuses an unauthenticated server anywhere but loopback.
pub fn check_exposure(listen: SocketAddr, tokens: &Tokens) -> Result<(), ConfigError> {
    if tokens.is_empty() && !listen.ip().is_loopback() {
        return Err(ConfigError::OpenOnNetwork(listen));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_file_and_the_environment() {
        let config: ServerConfig = toml::from_str("[tokens]\nagent = [\"a1\"]").unwrap();
        let tokens =
            config.tokens(|name| (name == "HANDOFF_OPERATOR_TOKENS").then(|| "o1, o2".to_string()));
        assert_eq!(tokens.role_of("a1"), Some(Role::Agent));
        assert_eq!(tokens.role_of("o2"), Some(Role::Operator));
        assert_eq!(tokens.role_of(""), None);
    }

    #[test]
    fn an_open_server_stays_on_loopback() {
        let open = Tokens::default();
        assert!(check_exposure("127.0.0.1:80".parse().unwrap(), &open).is_ok());
        assert!(check_exposure("[::1]:80".parse().unwrap(), &open).is_ok());
        let error = check_exposure("0.0.0.0:80".parse().unwrap(), &open).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:80"));
        let mut closed = Tokens::default();
        closed.add(Role::Agent, "t");
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

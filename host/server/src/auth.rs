//! Who is calling, and what they may do. Every credential belongs to a
//! named principal with one or more roles: a bearer token configured as its
//! SHA-256 digest, or a JWT verified against a configured key set. Agents
//! decide, operators work the queue, compliance reads policies, the audit
//! trail and the report; a credential opens only its roles' routes.
//!
//! The principal is what the audit trail and the handoff events record,
//! and the acting person on the queue: a request body cannot name someone
//! else. Tokens are kept only as digests and compared in constant time, and
//! no type here prints one: a token cannot reach a log by accident.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use handoff_model::Named;

use super::error::ApiError;
use super::jwt::JwtVerifier;

handoff_model::named_enum! {
    /// What a caller does.
    pub enum Role ("role") {
        /// An AI agent asking for decisions and their outcomes.
        Agent,
        /// A human working the handoff queue.
        Operator,
        /// A reviewer of policies, the audit trail and the report.
        Compliance,
        /// The second person on a policy change: approves calibration
        /// proposals (never their own) and promotes piloted versions.
        Approver,
    }
}

/// Someone (or some agent) the server knows by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name recorded for everything they do.
    pub name: String,
    /// What they may do.
    pub roles: Vec<Role>,
}

/// The authenticated caller of a request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

/// The longest principal name: it is stored with every record.
pub const MAX_NAME_CHARS: usize = 128;

/// Whether `name` can name a principal: 1 to 128 characters, none of them
/// a control character or whitespace other than a plain space inside, so
/// that a name is safe in a log line and a terminal table.
pub fn valid_name(name: &str) -> bool {
    let trimmed = name.trim();
    !trimmed.is_empty()
        && trimmed == name
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace()))
}

/// Every credential the server accepts.
#[derive(Default)]
pub struct Identities {
    tokens: Vec<([u8; 32], Arc<Principal>)>,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Identities {
    /// Names and counts only: never a token or its digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(_, p)| p.name.as_str()).collect();
        f.debug_struct("Identities")
            .field("token_principals", &names)
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

/// Why a credential was not accepted. The messages are safe to return: they
/// never echo the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, or not a bearer one.
    #[error("this route needs `Authorization: Bearer <token>`")]
    Missing,
    /// A token that matches no principal and is not a JWT.
    #[error("the bearer token is not valid")]
    UnknownToken,
    /// A JWT that does not verify, or whose claims are not acceptable.
    #[error("the bearer JWT is not accepted: {0}")]
    Jwt(String),
}

impl Identities {
    /// Accepts the token whose SHA-256 digest is `digest` as `principal`.
    pub fn add_token_digest(&mut self, digest: [u8; 32], principal: Arc<Principal>) {
        self.tokens.push((digest, principal));
    }

    /// Accepts JWTs that `verifier` verifies.
    pub fn set_jwt(&mut self, verifier: JwtVerifier) {
        self.jwt = Some(verifier);
    }

    /// Whether no credential is configured: the server is then open, and
    /// only allowed on a loopback address.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.jwt.is_none()
    }

    /// The principal a presented bearer credential belongs to. Every digest
    /// is compared, so the time taken says nothing about which one matched.
    pub fn authenticate(&self, presented: &str) -> Result<Arc<Principal>, AuthError> {
        let digest = token_digest(presented);
        let mut found = None;
        for (known, principal) in &self.tokens {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(principal.clone());
            }
        }
        if let Some(principal) = found {
            return Ok(principal);
        }
        match &self.jwt {
            Some(verifier) if looks_like_jwt(presented) => verifier
                .verify(presented)
                .map(Arc::new)
                .map_err(AuthError::Jwt),
            _ => Err(AuthError::UnknownToken),
        }
    }
}

/// A JWT is three base64url parts separated by dots.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The SHA-256 digest a token is configured and compared as.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The credential in an `Authorization` header value: the scheme is
/// case-insensitive (RFC 7235), the token follows one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// What one route requires.
#[derive(Clone)]
pub struct Guard {
    /// The configured credentials.
    pub identities: Arc<Identities>,
    /// The roles the route admits; empty means anyone.
    pub roles: &'static [Role],
}

/// Middleware: 401 without a valid credential, 403 with a valid credential
/// of no role the route admits; otherwise the request carries its
/// [`Caller`].
pub async fn require(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    if guard.identities.is_empty() || guard.roles.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    let Some(presented) = presented else {
        return unauthorized(&AuthError::Missing);
    };
    let principal = match guard.identities.authenticate(presented) {
        Ok(principal) => principal,
        Err(error) => return unauthorized(&error),
    };
    if !principal.roles.iter().any(|r| guard.roles.contains(r)) {
        let admitted: Vec<&str> = guard.roles.iter().map(|r| r.as_str()).collect();
        let held: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
        let held = if held.is_empty() {
            "no role".to_string()
        } else {
            held.join(", ")
        };
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a credential with {held} cannot use this route; it needs one of: {}",
                admitted.join(", ")
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(Caller(principal));
    next.run(request).await
}

fn unauthorized(error: &AuthError) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, roles: &[Role]) -> Arc<Principal> {
        Arc::new(Principal {
            name: name.into(),
            roles: roles.to_vec(),
        })
    }

    #[test]
    fn a_token_maps_to_its_principal_only() {
        let mut identities = Identities::default();
        identities.add_token_digest(token_digest("a-secret"), principal("bot", &[Role::Agent]));
        identities.add_token_digest(
            token_digest("o-secret"),
            principal("alice", &[Role::Operator]),
        );
        assert_eq!(identities.authenticate("a-secret").unwrap().name, "bot");
        assert_eq!(identities.authenticate("o-secret").unwrap().name, "alice");
        assert_eq!(
            identities.authenticate("a-secre"),
            Err(AuthError::UnknownToken)
        );
        assert!(!format!("{identities:?}").contains("secret"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn names_are_printable_and_bounded() {
        assert!(valid_name("alice"));
        assert!(valid_name("Alice Smith"));
        assert!(valid_name("svc@agents.example"));
        for bad in ["", " alice", "al\nice", "a\u{1b}[31m", "tab\there"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(MAX_NAME_CHARS + 1)));
    }
}

//! Bearer tokens per role. Agents decide, operators work the queue,
//! compliance reads policies, the audit trail and the report; a token of
//! one role opens no other role's routes.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time,
//! and no type here prints one: a token cannot reach a log by accident.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use handoff_model::Named;

use super::error::ApiError;

handoff_model::named_enum! {
    /// Who is calling.
    pub enum Role ("role") {
        /// An AI agent asking for decisions and their outcomes.
        Agent,
        /// A human working the handoff queue.
        Operator,
        /// A reviewer of policies, the audit trail and the report.
        Compliance,
    }
}

/// The accepted tokens, as digests.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<([u8; 32], Role)>,
}

impl std::fmt::Debug for Tokens {
    /// Counts only: never the tokens or their digests.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |role| self.digests.iter().filter(|(_, r)| *r == role).count();
        write!(
            f,
            "Tokens {{ agent: {}, operator: {}, compliance: {} }}",
            count(Role::Agent),
            count(Role::Operator),
            count(Role::Compliance)
        )
    }
}

impl Tokens {
    /// Accepts `token` for `role`.
    pub fn add(&mut self, role: Role, token: &str) {
        self.digests.push((digest(token), role));
    }

    /// Whether no token is configured: the server is then open, and only
    /// allowed on a loopback address.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The role `presented` belongs to. Every digest is compared, so the
    /// time taken says nothing about which one matched.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let presented = digest(presented);
        let mut found = None;
        for (digest, role) in &self.digests {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(*role);
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What one route requires.
#[derive(Clone)]
pub struct Guard {
    /// The configured tokens.
    pub tokens: Arc<Tokens>,
    /// The roles the route admits; empty means anyone.
    pub roles: &'static [Role],
}

/// Middleware: 401 without a valid token, 403 with a valid token of a role
/// the route does not admit.
pub async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.tokens.is_empty() || guard.roles.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(presented) = presented else {
        return unauthorized("this route needs `Authorization: Bearer <token>`");
    };
    match guard.tokens.role_of(presented.trim()) {
        None => unauthorized("the bearer token is not valid"),
        Some(role) if guard.roles.contains(&role) => next.run(request).await,
        Some(role) => {
            let admitted: Vec<&str> = guard.roles.iter().map(|r| r.as_str()).collect();
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "a {} token cannot use this route; it needs one of: {}",
                    role.as_str(),
                    admitted.join(", ")
                ),
            )
            .into_response()
        }
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_maps_to_its_role_only() {
        let mut tokens = Tokens::default();
        tokens.add(Role::Agent, "a-secret");
        tokens.add(Role::Operator, "o-secret");
        assert_eq!(tokens.role_of("a-secret"), Some(Role::Agent));
        assert_eq!(tokens.role_of("o-secret"), Some(Role::Operator));
        assert_eq!(tokens.role_of("a-secre"), None);
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}

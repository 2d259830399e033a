//! Signed-in people. A person presents their API token once; the browser
//! then holds only a random session id, in an `HttpOnly`, `SameSite=Strict`
//! cookie that scripts cannot read and other sites cannot send. The server
//! keeps the id's digest, never the id, with the principal, a per-session
//! anti-forgery token, and an absolute expiry; the table is bounded, the
//! oldest session giving way to the newest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Principal;

/// The cookie that carries the session id.
pub const COOKIE: &str = "handoff_session";

/// How long a session lasts from sign-in, whatever it does meanwhile: a
/// working day, after which the person presents their token again.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in person, as a request sees them.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who they are and what they may do.
    pub principal: Arc<Principal>,
    /// The token every form they send must carry.
    pub csrf: String,
}

struct Held {
    session: Session,
    expires: Instant,
}

/// Every live session, by the digest of its id.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<[u8; 32], Held>>,
}

impl std::fmt::Debug for Sessions {
    /// A count only: ids and tokens never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.held.lock().map_or(0, |held| held.len());
        f.debug_struct("Sessions").field("count", &count).finish()
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("the system's random source failed: {0}")]
pub struct NoRandomness(getrandom::Error);

impl Sessions {
    /// Opens a session for `principal`; answers the id for the cookie.
    pub fn open(&self, principal: Arc<Principal>) -> Result<(String, Session), NoRandomness> {
        let id = random_token()?;
        let session = Session {
            principal,
            csrf: random_token()?,
        };
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, h| h.expires > now);
        if held.len() >= MAX_SESSIONS
            && let Some(oldest) = held.iter().min_by_key(|(_, h)| h.expires).map(|(k, _)| *k)
        {
            held.remove(&oldest);
        }
        held.insert(
            digest(&id),
            Held {
                session: session.clone(),
                expires: now + LIFETIME,
            },
        );
        Ok((id, session))
    }

    /// The session whose id is `id`, if it is live.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.get(&key) {
            Some(h) if h.expires > Instant::now() => Some(h.session.clone()),
            Some(_) => {
                held.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session whose id is `id`.
    pub fn close(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest(id));
    }
}

impl Session {
    /// Whether `presented` is this session's anti-forgery token, compared
    /// in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The `Set-Cookie` value that hands the browser its session.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id in a `Cookie` header, if there is one.
pub fn id_in(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn random_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(NoRandomness)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn alice() -> Arc<Principal> {
        Arc::new(Principal {
            name: "alice".into(),
            roles: vec![Role::Operator],
        })
    }

    #[test]
    fn a_session_is_found_by_its_id_only_until_closed() {
        let sessions = Sessions::default();
        let (id, session) = sessions.open(alice()).unwrap();
        assert_eq!(sessions.get(&id).unwrap().principal.name, "alice");
        assert!(sessions.get(&format!("{id}x")).is_none());
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches(&id));
        assert!(!session.csrf_matches(""));
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        assert!(!format!("{sessions:?}").contains(&id));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let cookie = set_cookie("abc");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert_eq!(id_in("a=1; handoff_session=abc; b=2"), Some("abc"));
        assert_eq!(id_in("handoff_session="), None);
        assert_eq!(id_in("other=abc"), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open(alice()).unwrap().0;
        for _ in 0..MAX_SESSIONS {
            sessions.open(alice()).unwrap();
        }
        assert!(sessions.get(&first).is_none(), "the oldest gave way");
        assert_eq!(sessions.held.lock().unwrap().len(), MAX_SESSIONS);
    }
}

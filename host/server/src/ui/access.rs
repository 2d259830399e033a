//! Who may open which page. Every page borrows the access rule of the API
//! operation that serves the same data (the queue page `listQueue`, a
//! resolve form `resolveHandoff`), so a person sees in the browser exactly
//! what their token opens over the API, and the two cannot drift apart.
//!
//! The guard also stops cross-site forgery: a state-changing request must
//! come from this origin (`Origin`, else `Sec-Fetch-Site`) and carry its
//! session's anti-forgery token as the form field `csrf`.

use handoff_model::Named;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::layout::Problem;
use super::session::{self, Session};
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::routes::ROUTES;

/// One page or form target of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct UiRoute {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    /// The API operation whose roles it admits; `None` for what anyone may
    /// load (the sign-in page, the style sheet and script).
    pub borrows: Option<&'static str>,
}

const fn ui(method: &'static str, path: &'static str, borrows: Option<&'static str>) -> UiRoute {
    UiRoute {
        method,
        path,
        borrows,
    }
}

/// Every route of the dashboard.
pub const UI_ROUTES: &[UiRoute] = &[
    ui("GET", "/", None),
    ui("GET", "/ui", None),
    ui("GET", "/ui/login", None),
    ui("POST", "/ui/login", None),
    ui("POST", "/ui/logout", None),
    ui("GET", "/ui/assets/{name}", None),
    ui("GET", "/ui/queue", Some("listQueue")),
    ui("GET", "/ui/queue/rows", Some("listQueue")),
    ui("GET", "/ui/events", Some("listQueue")),
    ui("POST", "/ui/queue/claim", Some("claimHandoff")),
    ui("GET", "/ui/handoffs/{id}", Some("getHandoff")),
    ui("POST", "/ui/handoffs/{id}/ack", Some("acknowledgeHandoff")),
    ui("POST", "/ui/handoffs/{id}/renew", Some("renewHandoff")),
    ui("POST", "/ui/handoffs/{id}/release", Some("releaseHandoff")),
    ui("POST", "/ui/handoffs/{id}/resolve", Some("resolveHandoff")),
    ui("GET", "/ui/decisions", Some("queryAudit")),
    ui("GET", "/ui/decisions/{seq}", Some("queryAudit")),
    ui("GET", "/ui/work/{item}", Some("queryAudit")),
    ui("GET", "/ui/policies", Some("listPolicies")),
    ui("GET", "/ui/performance", Some("feedbackReport")),
];

/// The roles an API operation admits; `None` for an unknown operation.
pub fn roles_of(operation: &str) -> Option<&'static [Role]> {
    ROUTES
        .iter()
        .find(|r| r.operation == operation)
        .map(|r| r.roles)
}

/// The person looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who they are; every action is recorded as theirs.
    pub principal: Arc<Principal>,
    /// The anti-forgery token their forms carry.
    pub csrf: String,
    /// Whether the server has no credentials configured: then, as over the
    /// API, every role is open (and only on loopback).
    pub open: bool,
}

impl Viewer {
    /// Whether they may use `operation`, and so the pages that borrow it.
    pub fn may(&self, operation: &str) -> bool {
        match roles_of(operation) {
            Some([]) => true,
            Some(roles) => self.open || self.principal.roles.iter().any(|r| roles.contains(r)),
            None => false,
        }
    }
}

/// What the guard of one route knows.
#[derive(Clone)]
pub struct Guard {
    pub app: Arc<App>,
    pub route: UiRoute,
}

/// Middleware: same-origin and anti-forgery checks on every `POST`, a
/// session for every page that borrows an operation (else the sign-in
/// page), the operation's roles (else a 403 page naming them); the request
/// then carries its [`Viewer`].
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let posting = request.method() == Method::POST;
    if posting && let Err(problem) = same_origin(&request) {
        return problem.into_response();
    }
    let Some(operation) = guard.route.borrows else {
        return next.run(request).await;
    };
    let session = session_of(&guard.app, &request);
    let Some(session) = session else {
        if posting {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "your session has ended; sign in again, then send the form again",
            )
            .into_response();
        }
        let next_path = request
            .uri()
            .path_and_query()
            .map_or("/ui", |p| p.as_str())
            .to_string();
        return Redirect::to(&format!("/ui/login?next={}", encode_component(&next_path)))
            .into_response();
    };
    let viewer = Viewer {
        principal: session.principal.clone(),
        csrf: session.csrf.clone(),
        open: guard.app.identities.is_empty(),
    };
    if !viewer.may(operation) {
        return forbidden(&viewer, operation).into_response();
    }
    let mut request = if posting {
        match checked_form(&guard.app, request, &session).await {
            Ok(request) => request,
            Err(problem) => return problem.with_viewer(viewer).into_response(),
        }
    } else {
        request
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// The live session a request's cookie names.
pub fn session_of(app: &App, request: &Request) -> Option<Session> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::id_in)
        .and_then(|id| app.sessions.get(id))
}

/// A 403 page that says which roles the page needs.
pub fn forbidden(viewer: &Viewer, operation: &str) -> Problem {
    let needs: Vec<&str> = roles_of(operation)
        .unwrap_or_default()
        .iter()
        .map(|r| r.as_str())
        .collect();
    let held: Vec<&str> = viewer.principal.roles.iter().map(|r| r.as_str()).collect();
    let held = if held.is_empty() {
        "no role".to_string()
    } else {
        held.join(", ")
    };
    Problem::new(
        StatusCode::FORBIDDEN,
        "Not for your role",
        format!(
            "{} ({held}) cannot open this: it needs one of: {}",
            viewer.principal.name,
            needs.join(", ")
        ),
    )
    .with_viewer(viewer.clone())
}

/// Refuses a `POST` from another origin. Browsers send `Origin` on every
/// form post; `Sec-Fetch-Site` is the fallback. A request with neither did
/// not come from a browser, and must still carry the session's token.
fn same_origin(request: &Request) -> Result<(), Problem> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let cross = |why: &str| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "Refused",
            format!(
                "this form was sent from another site ({why}); open the dashboard and send it from there"
            ),
        )
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return match (authority, host) {
            (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
            _ => Err(cross("its origin is not this server")),
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(cross("the browser says it came from elsewhere")),
    }
}

/// Reads a form body (within the body limit), checks its `csrf` field
/// against the session, and hands the request on with the body restored.
async fn checked_form(app: &App, request: Request, session: &Session) -> Result<Request, Problem> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, app.config.body_limit_bytes)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                format!(
                    "the form is larger than the server's {}-byte body limit",
                    app.config.body_limit_bytes
                ),
            )
        })?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let presented = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.as_str())
        .unwrap_or("");
    if !session.csrf_matches(presented) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's anti-forgery token is missing or stale; reload the page and send it again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Percent-encodes a query parameter value.
pub fn encode_component(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Where to go after signing in: a dashboard path only, never another site.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with("/ui") && !path.contains("//") && !path.contains('\\') => {
            path
        }
        _ => "/ui",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_borrows_an_operation_of_the_api() {
        for route in UI_ROUTES {
            if let Some(operation) = route.borrows {
                assert!(
                    roles_of(operation).is_some_and(|roles| !roles.is_empty()),
                    "{} {} borrows `{operation}`, which is not a guarded API operation",
                    route.method,
                    route.path
                );
            }
        }
    }

    #[test]
    fn after_sign_in_only_dashboard_paths() {
        assert_eq!(safe_next(Some("/ui/queue?role=a")), "/ui/queue?role=a");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/ui//evil",
            "/v1/audit",
            "/ui\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn components_are_encoded() {
        assert_eq!(
            encode_component("/ui/queue?role=a b&x"),
            "%2Fui%2Fqueue%3Frole%3Da+b%26x"
        );
    }
}

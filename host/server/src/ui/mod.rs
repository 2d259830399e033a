//! The intervention dashboard: the web pages operators and compliance work
//! from, served by `handoff serve` beside the API it mirrors.
//!
//! - `access`: the page table, each page borrowing an API operation's
//!   roles, and the guard (session, roles, same-origin, anti-forgery);
//! - `session`: signed-in people and their cookie;
//! - `layout`: the page shell, the error page and shared markup;
//! - `queue`: open handoffs, one handoff's transfer payload, and the
//!   operator's actions; `live`: the event stream that keeps it current;
//! - `explain`: a decision and its item, as both of those show them;
//! - `decisions`: the audit search, a decision's explanation, the story of
//!   one piece of work, the chain's verification;
//! - `policies`: the serving generation and the reload history;
//! - `performance` and `charts`: the report's figures over time, drawn as
//!   SVG by the server;
//! - `assets`: the style sheet and the script, embedded in the binary.
//!
//! Pages are HTML made on the server; the script only keeps countdowns
//! ticking and swaps in fresh rows when the stream says something changed,
//! so every page works, and every form submits, without it.

mod access;
mod assets;
mod charts;
mod decisions;
mod explain;
mod layout;
mod live;
mod performance;
mod policies;
mod queue;
mod session;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use maud::html;
use serde::Deserialize;

pub use access::{UI_ROUTES, UiRoute};
pub use session::Sessions;

use crate::app::App;
use access::{Guard, Viewer};
use layout::{Problem, SECTIONS, error_box, respond, shell};

/// The dashboard's routes, each behind its guard, with the headers every
/// page carries.
pub(crate) fn router(app: &Arc<App>) -> Router<Arc<App>> {
    let mut router = Router::new();
    for route in UI_ROUTES {
        let guard = Guard {
            app: app.clone(),
            route: *route,
        };
        router = router.route(
            route.path,
            handler(route).route_layer(from_fn_with_state(guard, access::guard)),
        );
    }
    router.layer(map_response(with_page_headers))
}

fn handler(route: &UiRoute) -> MethodRouter<Arc<App>> {
    match (route.method, route.path) {
        ("GET", "/") => get(|| async { Redirect::to("/ui") }),
        ("GET", "/ui") => get(home),
        ("GET", "/ui/login") => get(sign_in_page),
        ("POST", "/ui/login") => post(sign_in),
        ("POST", "/ui/logout") => post(sign_out),
        ("GET", "/ui/assets/{name}") => get(assets::serve),
        ("GET", "/ui/queue") => get(queue::page),
        ("GET", "/ui/queue/rows") => get(queue::rows),
        ("GET", "/ui/events") => get(live::events),
        ("POST", "/ui/queue/claim") => post(queue::claim),
        ("GET", "/ui/handoffs/{id}") => get(queue::handoff),
        ("POST", "/ui/handoffs/{id}/ack") => post(queue::acknowledge),
        ("POST", "/ui/handoffs/{id}/renew") => post(queue::renew),
        ("POST", "/ui/handoffs/{id}/release") => post(queue::release),
        ("POST", "/ui/handoffs/{id}/resolve") => post(queue::resolve),
        ("GET", "/ui/decisions") => get(decisions::search),
        ("GET", "/ui/decisions/{seq}") => get(decisions::explain),
        ("GET", "/ui/work/{item}") => get(decisions::story),
        ("GET", "/ui/policies") => get(policies::page),
        ("GET", "/ui/performance") => get(performance::page),
        // The page table and this match are one list read twice; a test
        // builds the router, which reaches every arm.
        _ => get(|| async { StatusCode::NOT_FOUND }),
    }
}

/// What every dashboard response carries: a content security policy that
/// admits only this server's own script and style (no inline code, no
/// other origin, no framing), no caching of pages that show work, and no
/// referrer leaving the site (`same-origin`, not `no-referrer`: under
/// `no-referrer` a browser sends `Origin: null` with its own forms, which
/// the forgery check must refuse).
async fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// `/ui`: the first section the viewer may open, or the sign-in page.
async fn home(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(session) = access::session_of(&app, &request) else {
        return Redirect::to("/ui/login").into_response();
    };
    let viewer = Viewer {
        principal: session.principal,
        csrf: session.csrf,
        open: app.identities.is_empty(),
    };
    match SECTIONS.iter().find(|(_, _, op)| viewer.may(op)) {
        Some((key, _, _)) => Redirect::to(&format!("/ui/{key}")).into_response(),
        None => Problem::new(
            StatusCode::FORBIDDEN,
            "Nothing to show",
            no_page_message(&viewer.principal.name),
        )
        .into_response(),
    }
}

fn no_page_message(name: &str) -> String {
    format!(
        "{name}'s credential opens no page of the dashboard: it is for operators and \
         compliance; agents use the API"
    )
}

#[derive(Debug, Default, Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

/// `GET /ui/login`.
async fn sign_in_page(
    State(app): State<Arc<App>>,
    Query(query): Query<SignInQuery>,
    request: Request,
) -> Response {
    if access::session_of(&app, &request).is_some() {
        return Redirect::to(access::safe_next(query.next.as_deref())).into_response();
    }
    sign_in_form(&app, query.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    app: &App,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let open = app.identities.is_empty();
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            @if let Some(error) = error { (error_box(error, None)) }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(access::safe_next(next));
                @if open {
                    p.hint { "This server has no credentials configured, so it serves only this machine and every role is open. Say who you are: it is recorded with everything you do." }
                    label for="name" { "Your name" }
                    input id="name" name="name" type="text" required autofocus autocomplete="username" maxlength="128";
                } @else {
                    p.hint { "Paste the API token you were given. The browser keeps only a session cookie, never the token." }
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" required autofocus autocomplete="current-password";
                }
                button type="submit" { "Sign in" }
            }
        }
    };
    respond(status, shell(None, "", "Sign in", body))
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    token: Option<String>,
    name: Option<String>,
    next: Option<String>,
}

/// `POST /ui/login`: a token (or, on an open server, a name) for a session.
async fn sign_in(
    State(app): State<Arc<App>>,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return sign_in_form(
            &app,
            None,
            Some("the sign-in form could not be read"),
            StatusCode::BAD_REQUEST,
        );
    };
    let next = form.next.as_deref();
    let principal = if app.identities.is_empty() {
        let name = form.name.as_deref().unwrap_or("").trim();
        if !crate::auth::valid_name(name) {
            return sign_in_form(
                &app,
                next,
                Some("a name is 1 to 128 printable characters, with no line breaks or tabs"),
                StatusCode::BAD_REQUEST,
            );
        }
        Arc::new(crate::auth::Principal {
            name: name.to_string(),
            roles: vec![
                crate::auth::Role::Agent,
                crate::auth::Role::Operator,
                crate::auth::Role::Compliance,
            ],
        })
    } else {
        match app
            .identities
            .authenticate(form.token.as_deref().unwrap_or("").trim())
        {
            Ok(principal) => principal,
            Err(error) => {
                return sign_in_form(
                    &app,
                    next,
                    Some(&error.to_string()),
                    StatusCode::UNAUTHORIZED,
                );
            }
        }
    };
    let viewer_may_see_something = app.identities.is_empty()
        || principal.roles.iter().any(|r| {
            matches!(
                r,
                crate::auth::Role::Operator | crate::auth::Role::Compliance
            )
        });
    if !viewer_may_see_something {
        return sign_in_form(
            &app,
            next,
            Some(&no_page_message(&principal.name)),
            StatusCode::FORBIDDEN,
        );
    }
    let name = principal.name.clone();
    match app.sessions.open(principal) {
        Ok((id, _)) => {
            tracing::info!(principal = %name, "signed in to the dashboard");
            let mut response = Redirect::to(access::safe_next(next)).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&id)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot open a dashboard session");
            sign_in_form(
                &app,
                next,
                Some("the server could not open a session; its log has the detail"),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

/// `POST /ui/logout`.
async fn sign_out(State(app): State<Arc<App>>, request: Request) -> Response {
    if let Some(id) = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::id_in)
    {
        app.sessions.close(id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A page's query string into `T`, as the API reads its own: the same
/// parser and the same messages. Fields a form left empty are dropped
/// first, so that an empty filter means no filter.
pub(crate) fn query_of<T: serde::de::DeserializeOwned>(
    raw: Option<&str>,
) -> Result<T, crate::error::ApiError> {
    let invalid = |e: &dyn std::fmt::Display| {
        crate::error::ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("Failed to deserialize query string: {e}"),
        )
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| invalid(&e))?;
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name, value.trim().to_string()))
        .collect();
    let again = serde_urlencoded::to_string(&kept).map_err(|e| invalid(&e))?;
    // Read with the failing field's path in front, as axum's `Query` does.
    let reader = serde_urlencoded::Deserializer::new(form_urlencoded::parse(again.as_bytes()));
    serde_path_to_error::deserialize(reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(&inner)
        } else {
            invalid(&format!("{path}: {inner}"))
        }
    })
}

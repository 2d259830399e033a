//! The page shell every page shares (navigation for what the viewer may
//! open, who is signed in, sign-out), the error page, and the small pieces
//! of markup several pages use. Everything is escaped by `maud`; nothing
//! here writes raw HTML.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use handoff_model::Named;
use maud::{DOCTYPE, Markup, html};

use super::access::Viewer;
use crate::error::ApiError;
use handoff_model::Tier;

/// The sections of the dashboard, in navigation order, each with the API
/// operation that opens it.
pub const SECTIONS: &[(&str, &str, &str)] = &[
    ("queue", "Queue", "listQueue"),
    ("decisions", "Decisions", "queryAudit"),
    ("policies", "Policies", "listPolicies"),
    ("performance", "Performance", "feedbackReport"),
];

/// A whole page.
pub fn shell(viewer: Option<&Viewer>, section: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Handoff" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "Handoff" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Sections" {
                            ul {
                                @for (key, label, operation) in SECTIONS {
                                    @if viewer.may(operation) {
                                        li {
                                            a href={ "/ui/" (key) }
                                              aria-current=[(section == *key).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { (viewer.principal.name) }
                            span.roles { (roles_text(viewer)) }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

fn roles_text(viewer: &Viewer) -> String {
    if viewer.open {
        return "every role (open server)".into();
    }
    viewer
        .principal
        .roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A page as a response, with the status and the headers every dashboard
/// page carries.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// An error shown as a page: the API's message for the same failure.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: String,
    message: String,
    field: Option<String>,
    viewer: Option<Viewer>,
}

impl Problem {
    /// A problem with a status, a heading and a message.
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            status,
            title: title.into(),
            message: message.into(),
            field: None,
            viewer: None,
        }
    }

    /// The same problem, shown with the viewer's navigation.
    pub fn with_viewer(mut self, viewer: Viewer) -> Self {
        self.viewer = Some(viewer);
        self
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        Problem {
            status: error.status(),
            title: title_of(error.status()).into(),
            message: error.message().to_string(),
            field: error.field().map(str::to_string),
            viewer: None,
        }
    }
}

fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Not accepted",
        401 => "Signed out",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        _ => "Something went wrong",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = html! {
            h1 { (self.title) }
            (error_box(&self.message, self.field.as_deref()))
            p { a href="/ui" { "Back to the dashboard" } }
        };
        respond(
            self.status,
            shell(self.viewer.as_ref(), "", &self.title, body),
        )
    }
}

/// An error inside a page, announced to screen readers.
pub fn error_box(message: &str, field: Option<&str>) -> Markup {
    html! {
        div.error role="alert" {
            @if let Some(field) = field {
                strong { "`" (field) "`: " }
            }
            (message)
        }
    }
}

/// An error from the API, inside a page.
pub fn api_error_box(error: &ApiError) -> Markup {
    error_box(error.message(), error.field())
}

/// A tier, as a coloured label.
pub fn tier_badge(tier: Tier) -> Markup {
    html! { span class={ "tier tier-" (tier.as_str()) } { (tier.as_str()) } }
}

/// An instant, machine-readable and in UTC for people.
pub fn instant(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A live countdown to `deadline`: the text is right when the page is
/// made, and the script keeps it right, marking it once it has passed.
pub fn countdown(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let left = (deadline - now).num_seconds();
    let class = if left < 0 {
        "countdown breach"
    } else {
        "countdown"
    };
    html! {
        time class=(class) datetime=(deadline.to_rfc3339()) data-deadline=(deadline.to_rfc3339()) {
            (span_text(left))
        }
    }
}

/// "in 4m 05s" or "3m 12s overdue".
pub fn span_text(seconds: i64) -> String {
    let magnitude = seconds.unsigned_abs();
    let (h, m, s) = (magnitude / 3600, magnitude / 60 % 60, magnitude % 60);
    let text = if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    };
    if seconds < 0 {
        format!("{text} overdue")
    } else {
        format!("in {text}")
    }
}

/// The first 12 hex digits of a digest, with the whole of it on hover and
/// for copying.
pub fn digest(full: &str) -> Markup {
    let short: String = full.chars().take(12).collect();
    html! { code.digest title=(full) { (short) } }
}

/// A value's own name in JSON (`fail-closed`, `warm`): what the API and
/// the manifests call it.
pub fn kebab(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span_text(65), "in 1m 05s");
        assert_eq!(span_text(-192), "3m 12s overdue");
        assert_eq!(span_text(3 * 3600 + 61), "in 3h 01m");
    }

    #[test]
    fn what_reaches_a_page_is_escaped() {
        let markup = error_box("<script>alert(1)</script>", Some("a\"b"));
        let text = markup.into_string();
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
    }
}

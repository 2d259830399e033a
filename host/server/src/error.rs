//! Every failure the API reports, as one JSON shape: a stable code for
//! programs, a message for people, and the field at fault when there is one.

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::connections::BodyTimedOut;
use handoff_dispatch::StoreError;
use handoff_model::InputError;
use handoff_pipeline::PipelineError;
use handoff_policy::EvalError;

/// An error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    /// Always present, null when the error is about no one field, so that
    /// clients can rely on the shape.
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about one field of the request.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", message)
        }
    }

    /// The same error, about one field of the request.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", message)
    }

    /// A 404 about a thing the request named.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// A 500 for what the server could not do; the detail is logged, not
    /// shown, in case it carries something the caller should not see.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context}; the server log has the detail"),
        )
    }

    /// The status: also what the dashboard answers with when it shows
    /// this error on a page.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field at fault, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    /// An oversized body is a 413, one that did not arrive in time a 408;
    /// anything else about reading it a 400.
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(error) = cause {
            if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
                return ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    timed_out.to_string(),
                );
            }
            cause = error.source();
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body-too-large", rejection.body_text())
        } else {
            ApiError::new(status, "unreadable-body", rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            rejection.body_text(),
        )
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        match &error {
            InputError::Invalid { field, .. } => ApiError::invalid_field(*field, error.to_string()),
            InputError::Json(_) => ApiError::bad_request(error.to_string()),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(error: EvalError) -> Self {
        match error {
            EvalError::Input(input) => input.into(),
            EvalError::NoPolicies => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-policies",
                error.to_string(),
            ),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::Undecided(error) => error.into(),
            PipelineError::Audit { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                "the decision could not be recorded in the audit log, so it is not \
                 given; the server log has the detail",
            ),
            PipelineError::Dispatch { source, .. } => source.into(),
            PipelineError::Interrupted(_) => ApiError::internal("evaluation did not finish", error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound(_) => ApiError::not_found(error.to_string()).with_field("id"),
            StoreError::NotClaimant { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not-claimant", error.to_string())
            }
            StoreError::Resolved(_) => {
                ApiError::new(StatusCode::CONFLICT, "already-resolved", error.to_string())
            }
            StoreError::Database(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                error.to_string(),
            ),
            StoreError::Damaged { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-damaged",
                "the handoff store is damaged; the server log says how to recover it",
            ),
            StoreError::Corrupt { .. } => ApiError::internal("the handoff store is damaged", error),
            // Only at opening: a running server never meets these.
            StoreError::Address { .. } | StoreError::Schema(_) => {
                ApiError::internal("the handoff store cannot be used", error)
            }
        }
    }
}

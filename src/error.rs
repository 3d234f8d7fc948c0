//! The service's error type and its mapping to HTTP: the only place that knows status codes.
//!
//! Every handler returns `Result<_, ApiError>`; an error becomes its status and a
//! `{"detail": ...}` body, the shape the legacy service's clients read.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{header, Response, StatusCode};

/// Every response's body: whole (JSON) or streamed (events, files).
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An error a request can end in, each kind with its HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad multipart, bad id, missing filename (400).
    #[error("{0}")]
    BadRequest(String),
    /// No token, or a wrong one, where the server wants one (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No such route or session (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client stopped sending mid-request (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The request's target already finished (409).
    #[error("{0}")]
    Conflict(String),
    /// A part or the whole body is over its limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A content type or a video the service cannot read (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Required form fields are missing (422, in FastAPI's list shape).
    #[error("missing form fields: {0:?}")]
    MissingFields(Vec<String>),
    /// Well-formed input the referee cannot decide on (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The disk is full, or below the free-space floor (507).
    #[error("{0}")]
    InsufficientStorage(String),
    /// The model is not loaded yet, or the service is at its limit (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an I/O failure (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) | ApiError::MissingFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: the status and `{"detail": "<message>"}`.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        let detail = match &self {
            ApiError::MissingFields(fields) => serde_json::Value::Array(
                fields
                    .iter()
                    .map(|f| serde_json::json!({"type": "missing", "loc": ["body", f], "msg": "Field required", "input": null}))
                    .collect(),
            ),
            other => other.to_string().into(),
        };
        let body = serde_json::json!({ "detail": detail });
        let mut response = json_response(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> Self {
        if crate::disk::is_full(&err) {
            return ApiError::InsufficientStorage(format!("the disk is full: {err}"));
        }
        ApiError::Internal(format!("I/O error: {err}"))
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serialises");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full_body(bytes))
        .expect("static status and header are valid")
}

impl From<referee_wire::mjpeg::MjpegError> for ApiError {
    fn from(err: referee_wire::mjpeg::MjpegError) -> Self {
        use referee_wire::mjpeg::MjpegError as E;
        match err {
            E::UnsupportedContentType(_) | E::UnsupportedPart(_) => ApiError::UnsupportedMediaType(err.to_string()),
            E::PartTooLarge(_) | E::PhraseTooLarge(_) => ApiError::PayloadTooLarge(err.to_string()),
            E::MissingBoundary
            | E::NoBoundaryLine
            | E::BadHeader(_)
            | E::Malformed(_)
            | E::Truncated
            | E::Interrupted(_)
            | E::EmptyFrame
            | E::TooManyEmptyParts(_) => {
                ApiError::BadRequest(err.to_string())
            }
        }
    }
}

impl From<referee_store::UnknownCall> for ApiError {
    fn from(err: referee_store::UnknownCall) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl From<crate::session::SessionError> for ApiError {
    fn from(err: crate::session::SessionError) -> Self {
        use crate::session::SessionError as E;
        match err {
            E::AlreadyComplete(_) | E::ReceivingElsewhere(_) => ApiError::Conflict(err.to_string()),
            E::Busy(_) => ApiError::Unavailable(err.to_string()),
            E::PhraseTooLarge { .. } | E::LogTooLarge(_) => ApiError::PayloadTooLarge(err.to_string()),
            E::BadLog(_) => ApiError::Unprocessable(err.to_string()),
            E::BadFrame(_) => ApiError::BadRequest(err.to_string()),
            E::DiskFull { .. } => ApiError::InsufficientStorage(err.to_string()),
            E::Storage(ref io) if crate::disk::is_full(io) => {
                ApiError::InsufficientStorage(format!("the disk is full: {io}; the frames stored so far are kept, resume when there is room"))
            }
            E::Storage(_) => ApiError::Internal(err.to_string()),
        }
    }
}

impl From<crate::session::Failure> for ApiError {
    fn from(failure: crate::session::Failure) -> Self {
        match failure.kind {
            crate::session::FailureKind::Undecidable => ApiError::Unprocessable(failure.message),
            crate::session::FailureKind::Internal => ApiError::Internal(failure.message),
            crate::session::FailureKind::Unavailable => ApiError::Unavailable(failure.message),
        }
    }
}

impl From<crate::analysis::pipeline::PipelineError> for ApiError {
    /// Classified as streamed phrases' failures are (`FailureKind::of`), with the error's own
    /// words (an `/analyze` upload keeps nothing to decide again).
    fn from(err: crate::analysis::pipeline::PipelineError) -> Self {
        let kind = crate::session::FailureKind::of(&err);
        ApiError::from(crate::session::Failure { kind, message: err.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_status_and_detail() {
        let response = ApiError::Unprocessable("Not a double-touch phrase".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let response = ApiError::Unavailable("warming up".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}

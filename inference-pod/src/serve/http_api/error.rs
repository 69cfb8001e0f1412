//! The one place where a failed call becomes an HTTP response: the status mirrors the
//! gRPC code (400, 413, 429 with Retry-After, 503, 504, 500), the body is JSON with the
//! same message the gRPC API gives. A request that cannot be read ([`RequestError`]) is
//! answered 400 or 415 here too, with its message as it is.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube_ocr_http_request::{RequestError, RequestErrorKind};
use kube_ocr_proto::contract::code_name;
use serde::Serialize;
use utoipa::ToSchema;

use super::REQUEST_ID_HEADER;
use crate::serve::api::{ApiError, Failure};

/// An [`ApiError`] with the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub error: ApiError,
}

impl HttpError {
    /// A body this API does not read (415); counted as INVALID_ARGUMENT.
    pub(crate) fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, error: ApiError::invalid_argument(message) }
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        Self { status: http_status(error.failure), error }
    }
}

/// A body or a field this API cannot read: 415 for a Content-Type it does not take, else
/// 400; both INVALID_ARGUMENT on the gRPC side of the counts.
impl From<RequestError> for HttpError {
    fn from(error: RequestError) -> Self {
        let message = error.to_string();
        match error.kind() {
            RequestErrorKind::InvalidArgument => ApiError::invalid_argument(message).into(),
            RequestErrorKind::UnsupportedMediaType => Self::unsupported_media_type(message),
        }
    }
}

/// The HTTP status of each failure.
pub(crate) fn http_status(failure: Failure) -> StatusCode {
    match failure {
        Failure::InvalidArgument => StatusCode::BAD_REQUEST,
        Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        Failure::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // Nobody reads it (the caller has gone); 499 is what proxies log for that.
        Failure::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status code"),
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::PermissionDenied => StatusCode::FORBIDDEN,
        Failure::FailedPrecondition => StatusCode::CONFLICT,
        Failure::Unimplemented => StatusCode::NOT_IMPLEMENTED,
    }
}

/// An error response's body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    /// The gRPC code this error has on the gRPC API (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...).
    #[schema(example = "INVALID_ARGUMENT")]
    pub code: String,
    /// The HTTP status, as in the status line.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The request's id (the caller's, or one the server made up).
    pub request_id: String,
    /// For 429: when a retry could be admitted, in milliseconds (also `Retry-After`, in
    /// whole seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl HttpError {
    /// The JSON response, with `x-request-id` and, when the server knows it, `Retry-After`.
    pub(crate) fn into_response(self, request_id: &str) -> Response {
        let retry_after = match self.error.failure {
            Failure::Busy { retry_after } => Some(retry_after.unwrap_or(std::time::Duration::from_secs(1))),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code_name(self.error.failure.code()).to_owned(),
                status: self.status.as_u16(),
                message: self.error.message,
                request_id: request_id.to_owned(),
                retry_after_ms: retry_after.map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Ok(id) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        if let Some(delay) = retry_after {
            // Whole seconds, rounded up: a client that waits less is refused again.
            let seconds = delay.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube_ocr_proto::contract::is_server_fault;

    use super::*;

    const EVERY_FAILURE: [Failure; 12] = [
        Failure::InvalidArgument,
        Failure::TooLarge,
        Failure::Busy { retry_after: None },
        Failure::Busy { retry_after: Some(Duration::from_millis(1)) },
        Failure::DeadlineExceeded,
        Failure::Unavailable,
        Failure::Internal,
        Failure::Cancelled,
        Failure::NotFound,
        Failure::PermissionDenied,
        Failure::FailedPrecondition,
        Failure::Unimplemented,
    ];

    #[test]
    fn statuses_mirror_the_grpc_codes() {
        let statuses: Vec<u16> = EVERY_FAILURE.iter().map(|f| http_status(*f).as_u16()).collect();
        assert_eq!(statuses, [400, 413, 429, 429, 504, 503, 500, 499, 404, 403, 409, 501]);
    }

    /// The canary analysis counts server faults by gRPC code; an HTTP 5xx must be one of them.
    #[test]
    fn every_5xx_is_counted_as_a_server_fault() {
        for failure in EVERY_FAILURE {
            if http_status(failure).is_server_error() {
                assert!(is_server_fault(code_name(failure.code())), "{failure:?}");
            }
        }
    }

    #[test]
    fn an_unreadable_request_is_a_400_or_a_415_with_its_message() {
        let media = HttpError::from(RequestError::NoContentType);
        assert_eq!(media.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(media.error.failure, Failure::InvalidArgument);
        assert_eq!(media.error.message, RequestError::NoContentType.to_string());
        let field = RequestError::Count { field: "pdf_dpi", value: "0".into() };
        let message = field.to_string();
        let field = HttpError::from(field);
        assert_eq!(field.status, StatusCode::BAD_REQUEST);
        assert_eq!(field.error, ApiError::invalid_argument(message));
    }

    #[tokio::test]
    async fn a_busy_answer_says_when_to_retry_in_the_header_and_the_body() {
        let busy = ApiError::new(Failure::Busy { retry_after: Some(Duration::from_millis(1200)) }, "busy");
        let response = HttpError::from(busy).into_response("r-1");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "r-1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "RESOURCE_EXHAUSTED", "status": 429, "message": "busy", "requestId": "r-1", "retryAfterMs": 1200}})
        );
    }
}

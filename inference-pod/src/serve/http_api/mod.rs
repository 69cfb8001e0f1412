//! The HTTP/JSON API on its own port: `POST /v1/ocr` (the document as the raw body,
//! multipart/form-data, or JSON with base64) and `GET /openapi.json`. It answers like the
//! gRPC API because both go through the same [`OcrApi`]; this module only reads the body
//! and writes the response. What the body and the fields say is read and checked by the
//! pure [`kube_ocr_http_request`] (fuzzed on its own); [`error`] maps its refusals.

mod error;
mod fields;
mod handler;
mod hocr;
pub(crate) mod jobs;
pub(crate) mod openapi;
pub(crate) mod render;
mod response;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::serve::api::OcrApi;
use crate::serve::jobs::Jobs;

/// Carries the request id in and out (the response always has one).
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";
/// The OCR operation.
pub(crate) const OCR_PATH: &str = "/v1/ocr";
/// Document jobs: submit (POST), and under it `/{id}` (GET status, DELETE cancel) and
/// `/{id}/result` (GET).
pub(crate) const JOBS_PATH: &str = "/v1/jobs";
/// The OpenAPI 3.1 document of this API.
pub(crate) const OPENAPI_PATH: &str = "/openapi.json";

/// Cross-origin access for browsers: off unless origins are configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No CORS headers: browsers refuse cross-origin calls.
    #[default]
    Off,
    /// Any origin (`*`).
    AnyOrigin,
    /// These origins (`https://app.example.com`).
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// From `--http-cors-allow-origins`: empty = off, `*` = any, else a list.
    pub fn from_origins(origins: &[String]) -> Self {
        let origins: Vec<String> = origins.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        if origins.is_empty() {
            Self::Off
        } else if origins.iter().any(|o| o == "*") {
            Self::AnyOrigin
        } else {
            Self::Origins(origins)
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct HttpApiState {
    pub api: Arc<OcrApi>,
    /// Document jobs, when the pod has a bucket and a queue.
    pub jobs: Option<Arc<Jobs>>,
    /// Largest request body read: the document limit plus room for base64 and framing.
    pub max_body_bytes: usize,
}

/// The largest body for a document limit of `max_image_bytes`: base64 grows it by 4/3,
/// and multipart or JSON framing and fields need a little more.
pub(crate) fn max_body_bytes(max_image_bytes: usize) -> usize {
    max_image_bytes.saturating_mul(4).div_ceil(3).saturating_add(64 << 10)
}

pub(crate) fn router(state: HttpApiState, cors: &CorsPolicy) -> Result<Router, String> {
    let jobs = jobs::JobsHttpState { jobs: state.jobs.clone(), max_body_bytes: state.max_body_bytes };
    let router = Router::new()
        .route(OCR_PATH, post(handler::recognize))
        .route(OPENAPI_PATH, get(openapi::serve_document))
        .with_state(state)
        .merge(job_routes(jobs));
    with_cors(router, cors)
}

/// A job front's API: the job endpoints and the OpenAPI document, no OCR endpoint (the
/// front loads no model).
pub(crate) fn jobs_front_router(state: jobs::JobsHttpState, cors: &CorsPolicy) -> Result<Router, String> {
    let router = job_routes(state).route(OPENAPI_PATH, get(openapi::serve_document));
    with_cors(router, cors)
}

fn job_routes(state: jobs::JobsHttpState) -> Router {
    Router::new()
        .route(JOBS_PATH, post(jobs::submit))
        .route(&format!("{JOBS_PATH}/{{id}}"), get(jobs::get).delete(jobs::cancel))
        .route(&format!("{JOBS_PATH}/{{id}}/result"), get(jobs::result))
        .with_state(state)
}

fn with_cors(router: Router, cors: &CorsPolicy) -> Result<Router, String> {
    Ok(match cors_layer(cors)? {
        Some(layer) => router.layer(layer),
        None => router,
    })
}

fn cors_layer(policy: &CorsPolicy) -> Result<Option<CorsLayer>, String> {
    let origins = match policy {
        CorsPolicy::Off => return Ok(None),
        CorsPolicy::AnyOrigin => AllowOrigin::any(),
        CorsPolicy::Origins(origins) => AllowOrigin::list(
            origins
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin).map_err(|_| format!("CORS origin {origin:?} is not a header value"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::POST, Method::GET, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, request_id.clone()])
            .expose_headers([request_id, header::RETRY_AFTER]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_parse_into_a_policy() {
        assert_eq!(CorsPolicy::from_origins(&[]), CorsPolicy::Off);
        assert_eq!(CorsPolicy::from_origins(&[" ".into()]), CorsPolicy::Off);
        assert_eq!(CorsPolicy::from_origins(&["https://a.example".into(), "*".into()]), CorsPolicy::AnyOrigin);
        assert_eq!(
            CorsPolicy::from_origins(&["https://a.example".into()]),
            CorsPolicy::Origins(vec!["https://a.example".into()])
        );
        assert!(cors_layer(&CorsPolicy::Origins(vec!["bad\norigin".into()])).is_err());
    }

    #[test]
    fn the_body_limit_leaves_room_for_base64() {
        assert_eq!(max_body_bytes(3 << 20), (4 << 20) + (64 << 10));
    }
}

//! The HTTP side port: `/healthz` (liveness), `/readyz` (readiness), `/metrics`.
//!
//! Kept apart from gRPC so probes and scrapes never queue behind OCR traffic.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::serve::serving_state::ServingState;

pub(crate) const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub(crate) struct HttpState {
    pub serving: ServingState,
    pub registry: Arc<Registry>,
    /// Refreshes sampled gauges (queue depth, cache size) right before a scrape.
    pub before_scrape: Arc<dyn Fn() + Send + Sync>,
    /// The liveness report: device, model, NVML state.
    pub health_report: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").field("serving", &self.serving).finish()
    }
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Alive as long as the process answers: a pod still loading or draining is alive.
async fn healthz(State(state): State<HttpState>) -> Response {
    let mut report = (state.health_report)();
    report["status"] = "ok".into();
    report["phase"] = state.serving.phase().describe().into();
    axum::Json(report).into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let phase = state.serving.phase();
    let status = if phase.is_serving() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, format!("{}\n", phase.describe())).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (state.before_scrape)();
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {error}\n")).into_response(),
    }
}

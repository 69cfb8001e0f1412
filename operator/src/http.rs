//! `/metrics`, `/healthz` and `/readyz` for the kubelet and Prometheus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::OperatorError;
use crate::telemetry::Metrics;

/// What the HTTP endpoints report.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Metrics,
    /// Set once the operator has reached the API server and found its CRD; a standby
    /// replica waiting for the Lease is ready too (it is healthy, just not leading).
    pub ready: Arc<AtomicBool>,
}

/// Binds `addr` and serves until `stop` is cancelled. Returns the bound address (port 0
/// picks a free one) and the server task.
pub async fn serve(
    addr: std::net::SocketAddr,
    state: HttpState,
    stop: CancellationToken,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<Result<(), OperatorError>>), OperatorError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| OperatorError::BindHttp { addr, source })?;
    let bound = listener.local_addr().map_err(|source| OperatorError::BindHttp { addr, source })?;
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .map_err(|source| OperatorError::ServeHttp { source })
    });
    Ok((bound, task))
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

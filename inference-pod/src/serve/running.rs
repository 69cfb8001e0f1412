//! A started pod and its drain on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::serve::error::ServeError;
use crate::serve::jobs::WorkerHandle;
use crate::serve::serving_state::{Phase, ServingState};

/// A started pod. `shutdown` drains it; dropping it without shutdown aborts the tasks.
#[derive(Debug)]
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    /// The HTTP/JSON API.
    pub http_api_addr: SocketAddr,
    /// Probes and metrics.
    pub http_addr: SocketAddr,
    pub(crate) serving: ServingState,
    pub(crate) stop_grpc: Option<oneshot::Sender<()>>,
    pub(crate) grpc_task: JoinHandle<Result<(), ServeError>>,
    pub(crate) stop_http_api: Option<oneshot::Sender<()>>,
    pub(crate) http_api_task: JoinHandle<Result<(), ServeError>>,
    pub(crate) http_task: JoinHandle<()>,
    pub(crate) startup_task: JoinHandle<()>,
    /// Works document jobs; stopped first on shutdown so its jobs go back to the queue
    /// for the other pods while this one drains.
    pub(crate) jobs_worker: Option<WorkerHandle>,
    pub(crate) drain_delay: Duration,
    pub(crate) shutdown_grace: Duration,
}

impl RunningServer {
    /// Not serving any more (health says so at once), then after `drain_delay` stops
    /// accepting and waits up to `shutdown_grace` for in-flight requests to finish.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.startup_task.abort();
        self.serving.set(Phase::Draining).await;
        tracing::info!(drain_delay_ms = self.drain_delay.as_millis() as u64, "draining: NOT_SERVING");
        if let Some(worker) = self.jobs_worker.take() {
            worker.stop(self.shutdown_grace).await;
        }
        tokio::time::sleep(self.drain_delay).await;
        for stop in [self.stop_grpc.take(), self.stop_http_api.take()].into_iter().flatten() {
            let _ = stop.send(());
        }
        // Both servers finish their in-flight requests within one grace period.
        let grace = tokio::time::Instant::now() + self.shutdown_grace;
        let grpc = finish(&mut self.grpc_task, grace, "gRPC").await;
        let http_api = finish(&mut self.http_api_task, grace, "HTTP API").await;
        self.http_task.abort();
        grpc.and(http_api)
    }

    /// Waits until the pod serves or start-up failed (`Err` with the reason).
    pub async fn wait_until_serving(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.serving.phase() {
                Phase::Serving => return Ok(()),
                Phase::Failed { reason } => return Err(reason),
                Phase::Draining => return Err("draining".into()),
                Phase::Starting { .. } if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("still {} after {timeout:?}", self.serving.phase().describe()));
                }
                Phase::Starting { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Waits for a server that was told to stop until `grace`, then aborts it.
async fn finish(
    task: &mut JoinHandle<Result<(), ServeError>>,
    grace: tokio::time::Instant,
    what: &'static str,
) -> Result<(), ServeError> {
    match tokio::time::timeout_at(grace, &mut *task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ServeError::JoinServer { what, source: join }),
        Err(_) => {
            tracing::warn!(server = what, "in-flight requests outlived the grace period");
            task.abort();
            Ok(())
        }
    }
}

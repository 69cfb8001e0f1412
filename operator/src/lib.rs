//! The kube-ocr operator: reconciles `OcrService` resources into inference Deployments,
//! Services, an HPA and a PodDisruptionBudget, with status, conditions and events.
//!
//! Layering: `builders` (desired objects), `status` (status, conditions, events),
//! `rollout` (the canary state machine), `analysis` (metrics windows and verdicts) and
//! `traffic` (Gateway API route weights) are pure: no IO, unit-tested beside their code. They use
//! each other only downwards (`status` → `rollout` → `analysis`; `builders` → `rollout`),
//! plus the leaves `names`, `model_source`, `error` and the shared crates. All IO of a
//! reconcile is in `controller` (the Kubernetes API, pod scrapes, golden gRPC calls),
//! which uses the pure modules and is used by none of them; `leader` (the Lease) and
//! `http` (the operator's own `/metrics` and probes) are the process' IO around it.
//! Public is only what the binaries and the e2e tests use.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kube_ocr_operator::OperatorError> {
//! use kube_ocr_operator::{OperatorConfig, run};
//! let mut config = OperatorConfig::defaults();
//! config.leader_elect = false;
//! run(client, config, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

pub mod analysis;
mod builders;
mod config;
pub mod controller;
mod error;
mod http;
mod leader;
mod model_source;
pub mod names;
pub mod rbac;
mod rollout;
mod status;
mod telemetry;
mod traffic;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube_ocr_crds::OcrService;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use config::{LogFormat, OperatorConfig};
pub use error::OperatorError;
pub use telemetry::Metrics;

use crate::http::HttpState;
use crate::leader::{LeaderElector, LeaseSettings};

/// Runs the operator until `shutdown` completes (or it loses its leader Lease, which is
/// an error: the process should exit and be restarted as a standby).
pub async fn run(
    client: kube::Client,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), OperatorError> {
    Operator::start(client, config).await?.run_until(shutdown).await
}

/// A started operator: its HTTP server is bound, its CRD was found, and it is electing,
/// leading or reconciling in the background.
#[derive(Debug)]
pub struct Operator {
    http_addr: SocketAddr,
    metrics: Metrics,
    stop: CancellationToken,
    task: JoinHandle<Result<(), OperatorError>>,
}

impl Operator {
    /// Binds `/metrics` `/healthz` `/readyz`, checks the CRD is installed, then elects
    /// (when enabled) and runs the controller in a task.
    pub async fn start(client: kube::Client, config: OperatorConfig) -> Result<Self, OperatorError> {
        let metrics = Metrics::new();
        let ready = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let state = HttpState { metrics: metrics.clone(), ready: ready.clone() };
        let (http_addr, http_task) = http::serve(config.http_addr, state, stop.child_token()).await?;
        info!(%http_addr, "serving /metrics, /healthz and /readyz");
        let probe: Api<OcrService> = match &config.watch_namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        };
        if let Err(source) = probe.list_metadata(&ListParams::default().limit(1)).await {
            stop.cancel();
            return Err(OperatorError::FindCrd { source });
        }
        ready.store(true, Ordering::Relaxed);
        let task = tokio::spawn(lead_and_reconcile(client, config, metrics.clone(), stop.clone(), http_task));
        Ok(Self { http_addr, metrics, stop, task })
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs until `shutdown` completes, then stops gracefully; or returns the error that
    /// ended the operator first.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<(), OperatorError> {
        tokio::select! {
            () = shutdown => self.shutdown().await,
            result = &mut self.task => flatten(result),
        }
    }

    /// Stops reconciling (in-flight reconciles finish), releases the Lease, stops HTTP.
    pub async fn shutdown(self) -> Result<(), OperatorError> {
        self.stop.cancel();
        flatten(self.task.await)
    }
}

fn flatten(result: Result<Result<(), OperatorError>, tokio::task::JoinError>) -> Result<(), OperatorError> {
    match result {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Ok(()),
    }
}

async fn lead_and_reconcile(
    client: kube::Client,
    config: OperatorConfig,
    metrics: Metrics,
    stop: CancellationToken,
    http_task: JoinHandle<Result<(), OperatorError>>,
) -> Result<(), OperatorError> {
    let identity = config.identity();
    let elector = config.leader_elect.then(|| {
        LeaderElector::new(
            client.clone(),
            LeaseSettings {
                namespace: config.lease_namespace.clone(),
                name: config.lease_name.clone(),
                identity: identity.clone(),
                duration: Duration::from_secs(config.lease_duration_secs),
                retry: Duration::from_secs(config.lease_retry_secs.max(1)),
            },
        )
    });
    let mut result = Ok(());
    let leading = match &elector {
        Some(elector) => elector.acquire(&stop).await,
        None => true,
    };
    if leading {
        metrics.set_leader(true);
        let controller_stop = stop.child_token();
        let controller = controller::run_controller(
            client,
            config,
            metrics.clone(),
            identity,
            controller_stop.clone().cancelled_owned(),
        );
        match &elector {
            Some(elector) => {
                let hold = elector.hold(&controller_stop);
                tokio::pin!(controller);
                tokio::select! {
                    held = hold => {
                        if let Err(lost) = held {
                            error!(error = %lost, "lost the leader Lease; stopping the controller");
                            result = Err(lost);
                        }
                        controller_stop.cancel();
                        controller.await;
                    }
                    () = &mut controller => {}
                }
                if result.is_ok() {
                    elector.release().await;
                }
            }
            None => controller.await,
        }
        metrics.set_leader(false);
    }
    stop.cancel();
    match http_task.await {
        Ok(Err(error)) if result.is_ok() => result = Err(error),
        _ => {}
    }
    result
}

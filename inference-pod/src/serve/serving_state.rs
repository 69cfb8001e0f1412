//! Whether the pod serves, as one state behind `/readyz`, gRPC health and `ocr_ready`.
//!
//! Starting (loading, warming up, self-testing) → Serving → Draining on SIGTERM; or
//! Failed when start-up could not complete (the reason is kept for `/readyz` and logs).

use std::sync::{Arc, RwLock};

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting { step: String },
    Serving,
    Failed { reason: String },
    Draining,
}

impl Phase {
    pub(crate) fn is_serving(&self) -> bool {
        matches!(self, Self::Serving)
    }

    /// One line for `/readyz` and logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Starting { step } => format!("starting: {step}"),
            Self::Serving => "serving".to_owned(),
            Self::Failed { reason } => format!("not serving: {reason}"),
            Self::Draining => "draining: shutting down, finishing in-flight requests".to_owned(),
        }
    }
}

/// Shared by the gRPC service, the HTTP server and the start-up sequence.
#[derive(Clone)]
pub(crate) struct ServingState {
    phase: Arc<RwLock<Phase>>,
    health: HealthReporter,
    /// The gRPC service names whose health follows this state (besides "" for the server).
    services: Vec<&'static str>,
    on_change: Arc<dyn Fn(bool) + Send + Sync>,
}

impl std::fmt::Debug for ServingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingState").field("phase", &self.phase()).finish()
    }
}

impl ServingState {
    pub(crate) fn new(
        health: HealthReporter,
        services: Vec<&'static str>,
        on_change: Arc<dyn Fn(bool) + Send + Sync>,
    ) -> Self {
        Self {
            phase: Arc::new(RwLock::new(Phase::Starting { step: "initialising".into() })),
            health,
            services,
            on_change,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Moves to `phase` and tells gRPC health. Once draining, the pod never serves again.
    pub(crate) async fn set(&self, phase: Phase) {
        let serving = {
            let mut current = self.phase.write().unwrap_or_else(|p| p.into_inner());
            if *current == Phase::Draining {
                return;
            }
            *current = phase;
            current.is_serving()
        };
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.health.set_service_status("", status).await;
        for service in &self.services {
            self.health.set_service_status(*service, status).await;
        }
        (self.on_change)(serving);
    }
}

//! The document jobs' metrics: what this pod did with jobs, and the service's backlog as
//! this pod last saw it in Redis (every pod reports the same queue; alerts and dashboards
//! take the max per service).

use std::sync::atomic::AtomicU64;

use kube_ocr_proto::contract::metrics as names;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Label of a submit's outcome, a finished job's state, or why a job was put back.
const RESULT: &str = "result";
const STATE: &str = "state";
const REASON: &str = "reason";

type Labels<const N: usize> = [(&'static str, &'static str); N];

#[derive(Debug, Default)]
pub(crate) struct JobMetrics {
    submitted: Family<Labels<1>, Counter>,
    finished: Family<Labels<1>, Counter>,
    released: Family<Labels<1>, Counter>,
    claimed: Counter,
    running: Gauge,
    queued: Gauge,
    pending: Gauge,
    oldest_age: Gauge<f64, AtomicU64>,
    slo: Gauge<f64, AtomicU64>,
}

/// Why a pod put a job back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseReason {
    /// The pod is shutting down.
    Draining,
    /// The bucket, the queue or the engine could not take it now.
    Transient,
}

impl JobMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "ocr_jobs_submitted",
            "Job submits answered by this pod: created (a new job was queued) or existing (the same document and options were already queued, running or done)",
            metrics.submitted.clone(),
        );
        registry.register(
            "ocr_jobs_finished",
            "Jobs this pod finished, by state: succeeded, failed (the error is in the job's status), cancelled",
            metrics.finished.clone(),
        );
        registry.register(
            "ocr_jobs_released",
            "Jobs this pod put back in the queue unfinished: draining (it was shutting down) or transient (the bucket or the queue failed; another attempt follows)",
            metrics.released.clone(),
        );
        registry.register(
            "ocr_jobs_claimed",
            "Jobs this pod took over from a pod that stopped heartbeating them (it died or hung)",
            metrics.claimed.clone(),
        );
        registry.register("ocr_jobs_running", "Jobs this pod is working now", metrics.running.clone());
        registry.register(
            names::JOBS_QUEUED,
            "Jobs of the service waiting for a pod (the queue's lag), as this pod last read it",
            metrics.queued.clone(),
        );
        registry.register(
            "ocr_jobs_pending",
            "Jobs of the service taken by a pod and not finished, as this pod last read it",
            metrics.pending.clone(),
        );
        registry.register_with_unit(
            names::JOBS_OLDEST_AGE,
            "Age of the service's oldest unfinished job (queued or running), as this pod last read it; 0 when there is none",
            Unit::Seconds,
            metrics.oldest_age.clone(),
        );
        registry.register_with_unit(
            "ocr_jobs_slo",
            "The age past which an unfinished job breaks its objective (--jobs-slo-secs); the OcrJobsOlderThanSlo alert compares ocr_jobs_oldest_age_seconds with it",
            Unit::Seconds,
            metrics.slo.clone(),
        );
        metrics
    }

    pub(crate) fn set_slo(&self, slo: std::time::Duration) {
        self.slo.set(slo.as_secs_f64());
    }

    pub(crate) fn record_submit(&self, created: bool) {
        self.submitted.get_or_create(&[(RESULT, if created { "created" } else { "existing" })]).inc();
    }

    pub(crate) fn record_finished(&self, state: &'static str) {
        self.finished.get_or_create(&[(STATE, state)]).inc();
    }

    pub(crate) fn record_released(&self, reason: ReleaseReason) {
        let reason = match reason {
            ReleaseReason::Draining => "draining",
            ReleaseReason::Transient => "transient",
        };
        self.released.get_or_create(&[(REASON, reason)]).inc();
    }

    pub(crate) fn record_claimed(&self) {
        self.claimed.inc();
    }

    pub(crate) fn job_started(&self) {
        self.running.inc();
    }

    pub(crate) fn job_ended(&self) {
        self.running.dec();
    }

    pub(crate) fn set_backlog(&self, queued: u64, pending: u64, oldest_age_seconds: f64) {
        self.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_age.set(oldest_age_seconds);
    }
}

//! The operator's own metrics, served on `/metrics` (OpenMetrics text).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub kind: &'static str,
}

/// Counters and histograms of the controller; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    duration: Histogram,
    writes: Family<WriteLabel, Counter>,
    leader: Gauge<i64, AtomicI64>,
    rollout: RolloutMetrics,
}

/// The rollout and golden-accuracy series the alert rules and dashboard read
/// (deploy/monitoring; the contract is listed in docs/runbook.md).
#[derive(Debug, Clone, Default)]
struct RolloutMetrics {
    canary_weight: Family<ServiceLabels, Gauge<i64, AtomicI64>>,
    rollbacks: Family<ServiceLabels, Counter>,
    golden_accuracy: Family<TrackLabels, Gauge<f64, AtomicU64>>,
    golden_min_accuracy: Family<ServiceLabels, Gauge<f64, AtomicU64>>,
    max_p95_seconds: Family<ServiceLabels, Gauge<f64, AtomicU64>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    ocrservice: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrackLabels {
    namespace: String,
    ocrservice: String,
    track: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ocr_operator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register("reconciles", "Reconciles of OcrServices by result", reconciles.clone());
        let errors = Family::<ErrorLabel, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles by the operation that failed", errors.clone());
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        registry.register("reconcile_duration_seconds", "Time one reconcile took", duration.clone());
        let writes = Family::<WriteLabel, Counter>::default();
        registry.register("api_writes", "Apply, status and delete requests sent, by object kind", writes.clone());
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without election)",
            leader.clone(),
        );
        let rollout = RolloutMetrics::default();
        registry.register(
            "canary_weight",
            "Share of traffic (percent) the canary of an OcrService is meant to get",
            rollout.canary_weight.clone(),
        );
        registry.register("rollbacks", "Canary rollbacks per OcrService", rollout.rollbacks.clone());
        registry.register(
            "golden_accuracy",
            "Golden-set accuracy (1 - CER) of the last analysis, per track",
            rollout.golden_accuracy.clone(),
        );
        registry.register(
            "golden_min_accuracy",
            "spec.rollout.analysis.golden.minAccuracy of each OcrService",
            rollout.golden_min_accuracy.clone(),
        );
        registry.register(
            "max_p95_seconds",
            "spec.rollout.analysis.latency.maxP95Ms of each OcrService, in seconds",
            rollout.max_p95_seconds.clone(),
        );
        Self { registry: Arc::new(registry), reconciles, errors, duration, writes, leader, rollout }
    }

    pub fn reconciled(&self, elapsed: Duration, result: Result<(), &'static str>) {
        self.duration.observe(elapsed.as_secs_f64());
        match result {
            Ok(()) => {
                self.reconciles.get_or_create(&ResultLabel { result: "success" }).inc();
            }
            Err(operation) => {
                self.reconciles.get_or_create(&ResultLabel { result: "error" }).inc();
                self.errors.get_or_create(&ErrorLabel { operation }).inc();
            }
        }
    }

    pub fn wrote(&self, kind: &'static str) {
        self.writes.get_or_create(&WriteLabel { kind }).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records a rollout decision: the canary's weight, and a rollback when there was one.
    pub fn rollout(&self, namespace: &str, ocrservice: &str, weight: i32, rolled_back: bool) {
        let labels = ServiceLabels { namespace: namespace.to_owned(), ocrservice: ocrservice.to_owned() };
        self.rollout.canary_weight.get_or_create(&labels).set(i64::from(weight));
        // Created at 0 so `increase()` sees the first rollback.
        let rollbacks = self.rollout.rollbacks.get_or_create(&labels);
        if rolled_back {
            rollbacks.inc();
        }
    }

    /// Records an analysis: golden accuracy per track and the thresholds alerts compare to.
    pub fn analysis(
        &self,
        namespace: &str,
        ocrservice: &str,
        record: &kube_ocr_crds::AnalysisStatus,
        min_accuracy: f64,
        max_p95_ms: u32,
    ) {
        let labels = ServiceLabels { namespace: namespace.to_owned(), ocrservice: ocrservice.to_owned() };
        self.rollout.golden_min_accuracy.get_or_create(&labels).set(min_accuracy);
        self.rollout.max_p95_seconds.get_or_create(&labels).set(f64::from(max_p95_ms) / 1000.0);
        for (track, measured) in [("stable", &record.stable), ("canary", &record.canary)] {
            let track_labels =
                TrackLabels { namespace: namespace.to_owned(), ocrservice: ocrservice.to_owned(), track };
            match measured.as_ref().and_then(|m| m.accuracy) {
                Some(accuracy) => {
                    self.rollout.golden_accuracy.get_or_create(&track_labels).set(accuracy);
                }
                None => {
                    self.rollout.golden_accuracy.remove(&track_labels);
                }
            }
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_errors_and_durations() {
        let metrics = Metrics::new();
        metrics.reconciled(Duration::from_millis(20), Ok(()));
        metrics.reconciled(Duration::from_millis(30), Err("apply"));
        metrics.wrote("Deployment");
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(text.contains("ocr_operator_reconciles_total{result=\"success\"} 1"), "{text}");
        assert!(text.contains("ocr_operator_reconciles_total{result=\"error\"} 1"), "{text}");
        assert!(text.contains("ocr_operator_reconcile_errors_total{operation=\"apply\"} 1"), "{text}");
        assert!(text.contains("ocr_operator_reconcile_duration_seconds_count 2"), "{text}");
        assert!(text.contains("ocr_operator_api_writes_total{kind=\"Deployment\"} 1"), "{text}");
        assert!(text.contains("ocr_operator_leader 1"), "{text}");
    }
}

//! The operator's own metrics, served on `/metrics` (OpenMetrics text).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
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
        Self { registry: Arc::new(registry), reconciles, errors, duration, writes, leader }
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

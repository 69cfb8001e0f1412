//! The pod's Prometheus metrics (OpenMetrics text on `/metrics`).
//!
//! Names start with `ocr_`, durations are in seconds, and every OCR series carries the
//! model, its version and the task, so canary and stable (different versions) can be
//! compared from the same scrape.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TaskLabel {
    document,
    line,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PhaseLabel {
    queue,
    preprocess,
    inference,
    postprocess,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub model: String,
    pub version: String,
    pub task: TaskLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub version: String,
    pub task: TaskLabel,
    /// gRPC status code name, e.g. `OK`, `INVALID_ARGUMENT`.
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub model: String,
    pub version: String,
    pub task: TaskLabel,
    pub phase: PhaseLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub model: String,
    pub version: String,
    /// Model stage: `detect`, `classify`, `recognize`.
    pub stage: String,
}

/// Latency buckets: 1 ms to ~66 s in steps of 35 %, so P95 interpolates within a few
/// percent anywhere between 5 ms and 30 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    // Rounded to 3 significant digits so `le` labels read 0.00182, not 0.0018225000000000004.
    exponential_buckets(0.001, 1.35, 38).map(|bound| {
        let scale = 10f64.powi(2 - bound.log10().floor() as i32);
        (bound * scale).round() / scale
    })
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

fn batch_size_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0])
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server records; cheap to clone handles live inside.
#[derive(Debug)]
pub struct OcrMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<TaskLabels>,
    pub phase_duration: HistogramFamily<PhaseLabels>,
    pub batch_size: HistogramFamily<StageLabels>,
    pub expired_in_queue: Family<StageLabels, Counter>,
    pub queue_depth: Family<StageLabels, Gauge>,
    pub in_flight: Family<ModelLabels, Gauge>,
    pub pages: Family<TaskLabels, Counter>,
    pub lines: Family<TaskLabels, Counter>,
    pub cache_hits: Family<ModelLabels, Counter>,
    pub cache_misses: Family<ModelLabels, Counter>,
    pub cache_bytes: Family<ModelLabels, Gauge>,
    pub cache_entries: Family<ModelLabels, Gauge>,
    pub self_test_accuracy: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    pub ready: Family<ModelLabels, Gauge>,
}

impl OcrMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            phase_duration: Family::new_with_constructor(latency_histogram),
            batch_size: Family::new_with_constructor(batch_size_histogram),
            expired_in_queue: Family::default(),
            queue_depth: Family::default(),
            in_flight: Family::default(),
            pages: Family::default(),
            lines: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            cache_bytes: Family::default(),
            cache_entries: Family::default(),
            self_test_accuracy: Family::default(),
            ready: Family::default(),
        };
        registry.register("ocr_requests", "OCR requests finished, by gRPC status code", metrics.requests.clone());
        registry.register_with_unit(
            "ocr_request_duration",
            "Time from receiving an OCR request to its response",
            Unit::Seconds,
            metrics.request_duration.clone(),
        );
        registry.register_with_unit(
            "ocr_phase_duration",
            "Time one request spent in each phase: queue (waiting for a batch), preprocess (decode, resize, crop), inference (model forward), postprocess (DB boxes, CTC decode)",
            Unit::Seconds,
            metrics.phase_duration.clone(),
        );
        registry.register("ocr_batch_size", "Items per model forward pass", metrics.batch_size.clone());
        registry.register(
            "ocr_queue_expired",
            "Items dropped before compute because their deadline passed in the queue",
            metrics.expired_in_queue.clone(),
        );
        registry.register("ocr_queue_depth", "Items waiting for a batch, per stage", metrics.queue_depth.clone());
        registry.register("ocr_in_flight_requests", "Requests being processed", metrics.in_flight.clone());
        registry.register("ocr_pages", "Images (pages or line images) recognised", metrics.pages.clone());
        registry.register("ocr_lines", "Text lines returned", metrics.lines.clone());
        registry.register("ocr_cache_hits", "Result cache hits", metrics.cache_hits.clone());
        registry.register("ocr_cache_misses", "Result cache misses", metrics.cache_misses.clone());
        registry.register_with_unit(
            "ocr_cache_size",
            "Bytes held by the result cache",
            Unit::Bytes,
            metrics.cache_bytes.clone(),
        );
        registry.register("ocr_cache_entries", "Entries in the result cache", metrics.cache_entries.clone());
        registry.register(
            "ocr_selftest_accuracy",
            "Golden accuracy (1 - CER) of the start-up self-test",
            metrics.self_test_accuracy.clone(),
        );
        registry.register(
            "ocr_ready",
            "1 when the pod serves (model loaded, self-test passed, not draining)",
            metrics.ready.clone(),
        );
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear interpolation inside the bucket holding the quantile, as PromQL's
    /// histogram_quantile does, returned as the worst-case relative error.
    fn worst_relative_error(bounds: &[f64], value: f64) -> f64 {
        let upper = bounds.iter().copied().find(|b| *b >= value).unwrap();
        let lower = bounds.iter().copied().rev().find(|b| *b < value).unwrap_or(0.0);
        (upper - lower) / value
    }

    #[test]
    fn latency_buckets_resolve_p95_between_5ms_and_30s() {
        let bounds: Vec<f64> = latency_buckets().collect();
        assert!(bounds.first().unwrap() <= &0.005 && bounds.last().unwrap() >= &30.0, "{bounds:?}");
        for value in [0.005, 0.012, 0.05, 0.2, 1.0, 4.0, 12.0, 30.0] {
            let error = worst_relative_error(&bounds, value);
            assert!(error <= 0.36, "a P95 of {value}s is only known within {:.0}%", error * 100.0);
        }
    }

    #[test]
    fn metrics_encode_with_ocr_names_and_seconds() {
        let mut registry = Registry::default();
        let metrics = OcrMetrics::register(&mut registry);
        let labels = TaskLabels { model: "ppocr-v4".into(), version: "4.0.0".into(), task: TaskLabel::document };
        metrics.request_duration.get_or_create(&labels).observe(0.042);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                model: "ppocr-v4".into(),
                version: "4.0.0".into(),
                task: TaskLabel::line,
                code: "OK".into(),
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE ocr_request_duration_seconds histogram"), "{text}");
        assert!(
            text.contains(r#"ocr_requests_total{model="ppocr-v4",version="4.0.0",task="line",code="OK"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}

//! The pod's Prometheus metrics (OpenMetrics text on `/metrics`).
//!
//! Names start with `ocr_`, durations are in seconds, and every OCR series carries the
//! model and its version (set once, on the registry the metrics live in), so canary and
//! stable (different versions) can be compared from the same scrape. The names other
//! components read (operator, dashboards) come from `kube_ocr_proto::contract`.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use kube_ocr_proto::contract::{code_name, labels, metrics as names};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::Precision;
use crate::serve::api::Protocol;
use crate::serve::cache::{SharedLookup, SharedWrite};
use crate::serve::engine::{OcrTask, PhaseTimings};
use crate::serve::pdf::RenderError;

/// Label of the request phase on `ocr_phase_duration`.
const PHASE: &str = "phase";
/// Label of the model stage (`detect`, `classify`, `recognize`) on batching series.
const STAGE: &str = "stage";
/// Label of a shared cache call's outcome.
const RESULT: &str = "result";
/// Label of why a PDF renderer failed.
const REASON: &str = "reason";
/// Label of the numeric precision (`fp32`, `fp16`, `bf16`) on self-test accuracy.
const PRECISION: &str = "precision";

/// A series' own labels, after the registry's model and version; every value is static.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// Latency buckets: 1 ms to ~66 s in steps of 35 %, so P95 interpolates within a few
/// percent anywhere between 5 ms and 30 s.
pub(crate) fn latency_buckets() -> impl Iterator<Item = f64> {
    // Rounded to 3 significant digits so `le` labels read 0.00182, not 0.0018225000000000004.
    exponential_buckets(0.001, 1.35, 38).map(|bound| {
        let scale = 10f64.powi(2 - bound.log10().floor() as i32);
        (bound * scale).round() / scale
    })
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// Shared cache round trips: 100 µs to ~0.8 s in doubling steps (a healthy Redis on the
/// same network answers in well under a millisecond; the timeout is tens of them).
fn shared_cache_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 14))
}

fn batch_size_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0])
}

type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// The model a pod serves, as its series are labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelIdentity {
    pub name: String,
    pub version: String,
}

/// Every metric the server records. Series of one model appear once first recorded (the
/// families with no labels of their own still hold at most one series).
#[derive(Debug)]
pub(crate) struct OcrMetrics {
    requests: Family<Labels<3>, Counter>,
    request_duration: HistogramFamily<1>,
    phase_duration: HistogramFamily<2>,
    batch_size: HistogramFamily<1>,
    expired_in_queue: Family<Labels<1>, Counter>,
    queue_depth: Family<Labels<1>, Gauge>,
    expected_latency: Family<Labels<1>, Gauge<f64, AtomicU64>>,
    in_flight: Family<Labels<0>, Gauge>,
    pages: Family<Labels<1>, Counter>,
    lines: Family<Labels<1>, Counter>,
    cache_hits: Family<Labels<0>, Counter>,
    cache_misses: Family<Labels<0>, Counter>,
    cache_bytes: Family<Labels<0>, Gauge>,
    cache_entries: Family<Labels<0>, Gauge>,
    shared_lookups: Family<Labels<1>, Counter>,
    shared_lookup_duration: HistogramFamily<0>,
    shared_writes: Family<Labels<1>, Counter>,
    shared_available: Family<Labels<0>, Gauge>,
    render_failures: Family<Labels<1>, Counter>,
    self_test_accuracy: Family<Labels<1>, Gauge<f64, AtomicU64>>,
    ready: Family<Labels<0>, Gauge>,
}

impl OcrMetrics {
    /// Creates the metrics and registers them in a sub-registry of `registry` whose series
    /// all carry `model` and `version`.
    pub(crate) fn register(registry: &mut Registry, model: &ModelIdentity) -> Self {
        let model_labels = [
            (Cow::Borrowed(labels::MODEL), Cow::Owned(model.name.clone())),
            (Cow::Borrowed(labels::VERSION), Cow::Owned(model.version.clone())),
        ];
        let registry = registry.sub_registry_with_labels(model_labels.into_iter());
        let metrics = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            phase_duration: Family::new_with_constructor(latency_histogram),
            batch_size: Family::new_with_constructor(batch_size_histogram),
            expired_in_queue: Family::default(),
            queue_depth: Family::default(),
            expected_latency: Family::default(),
            in_flight: Family::default(),
            pages: Family::default(),
            lines: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            cache_bytes: Family::default(),
            cache_entries: Family::default(),
            shared_lookups: Family::default(),
            shared_lookup_duration: Family::new_with_constructor(shared_cache_histogram),
            shared_writes: Family::default(),
            shared_available: Family::default(),
            render_failures: Family::default(),
            self_test_accuracy: Family::default(),
            ready: Family::default(),
        };
        registry.register(
            names::REQUESTS,
            "OCR requests finished, by API (grpc, http) and gRPC status code (the HTTP API's statuses mirror them)",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            names::REQUEST_DURATION,
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
        registry.register(names::QUEUE_DEPTH, "Items waiting for a batch, per stage", metrics.queue_depth.clone());
        registry.register_with_unit(
            "ocr_expected_latency",
            "Deadline-aware admission's estimate of how long a request of each task sent now would take (queued work ahead plus its own); absent until measured",
            Unit::Seconds,
            metrics.expected_latency.clone(),
        );
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
            "ocr_shared_cache_lookups",
            "Lookups in the shared (Redis) result cache after an in-memory miss: hit, miss, skipped (the cache kept failing and is rested), error (timeout, connection, an entry that does not decode)",
            metrics.shared_lookups.clone(),
        );
        registry.register_with_unit(
            "ocr_shared_cache_lookup_duration",
            "Time a shared cache lookup took, whatever its outcome",
            Unit::Seconds,
            metrics.shared_lookup_duration.clone(),
        );
        registry.register(
            "ocr_shared_cache_writes",
            "Results written to the shared cache in the background: stored, skipped (the cache is rested, or too many writes are pending), error",
            metrics.shared_writes.clone(),
        );
        registry.register(
            "ocr_shared_cache_available",
            "1 while the shared cache is being asked, 0 while it is skipped after failures; absent without one",
            metrics.shared_available.clone(),
        );
        registry.register(
            "ocr_pdf_render_failures",
            "PDF requests the renderer process failed, by reason: limit (it went past its memory or CPU limit, or crashed), page_timeout (a page took longer than --pdf-page-timeout-secs), spawn (it could not start), protocol (its output was not understood); a PDF that is damaged or encrypted is the caller's and not counted",
            metrics.render_failures.clone(),
        );
        registry.register(
            "ocr_selftest_accuracy",
            "Golden accuracy (1 - CER) of the start-up self-test, by precision: the served one, and fp32's when the pod serves another (the precision gate)",
            metrics.self_test_accuracy.clone(),
        );
        registry.register(
            "ocr_ready",
            "1 when the pod serves (model loaded, self-test passed, not draining)",
            metrics.ready.clone(),
        );
        // Exported from the start, at 0: autoscalers read it (KEDA's in-flight trigger),
        // and a series that appears only with the first request reads as an error to them.
        drop(metrics.in_flight.get_or_create(&[]));
        metrics
    }

    /// A request was admitted to the handler.
    pub(crate) fn request_started(&self) {
        self.in_flight.get_or_create(&[]).inc();
    }

    /// A request ended with `code` after `duration` (whatever the outcome).
    pub(crate) fn request_finished(&self, protocol: Protocol, task: OcrTask, code: tonic::Code, duration: Duration) {
        self.in_flight.get_or_create(&[]).dec();
        let series =
            [(labels::TASK, task.as_str()), (labels::PROTOCOL, protocol.as_str()), (labels::CODE, code_name(code))];
        self.requests.get_or_create(&series).inc();
        self.request_duration.get_or_create(&[(labels::TASK, task.as_str())]).observe(duration.as_secs_f64());
    }

    /// A request returned `lines` text lines for one image.
    pub(crate) fn record_output(&self, task: OcrTask, lines: usize) {
        let task = [(labels::TASK, task.as_str())];
        self.pages.get_or_create(&task).inc();
        self.lines.get_or_create(&task).inc_by(lines as u64);
    }

    /// Where a computed (not cached) request's time went.
    pub(crate) fn observe_phases(&self, task: OcrTask, timings: &PhaseTimings) {
        let phases = [
            ("queue", timings.queue),
            ("preprocess", timings.preprocess),
            ("inference", timings.inference),
            ("postprocess", timings.postprocess),
        ];
        for (phase, duration) in phases {
            let labels = [(labels::TASK, task.as_str()), (PHASE, phase)];
            self.phase_duration.get_or_create(&labels).observe(duration.as_secs_f64());
        }
    }

    /// One batch of `stage` ran with `size` items after `expired` were dropped unrun.
    pub(crate) fn record_batch(&self, stage: &'static str, size: usize, expired: usize) {
        let labels = [(STAGE, stage)];
        if size > 0 {
            self.batch_size.get_or_create(&labels).observe(size as f64);
        }
        if expired > 0 {
            self.expired_in_queue.get_or_create(&labels).inc_by(expired as u64);
        }
    }

    pub(crate) fn set_queue_depth(&self, stage: &'static str, depth: usize) {
        self.queue_depth.get_or_create(&[(STAGE, stage)]).set(depth as i64);
    }

    pub(crate) fn set_expected_latency(&self, task: OcrTask, latency: Duration) {
        self.expected_latency.get_or_create(&[(labels::TASK, task.as_str())]).set(latency.as_secs_f64());
    }

    pub(crate) fn record_cache_lookup(&self, hit: bool) {
        let counter = if hit { &self.cache_hits } else { &self.cache_misses };
        counter.get_or_create(&[]).inc();
    }

    pub(crate) fn record_shared_lookup(&self, lookup: &SharedLookup, duration: Duration) {
        let result = match lookup {
            SharedLookup::Hit(_) => "hit",
            SharedLookup::Miss => "miss",
            SharedLookup::Skipped => "skipped",
            SharedLookup::Failed => "error",
        };
        self.shared_lookups.get_or_create(&[(RESULT, result)]).inc();
        if !matches!(lookup, SharedLookup::Skipped) {
            self.shared_lookup_duration.get_or_create(&[]).observe(duration.as_secs_f64());
        }
    }

    pub(crate) fn record_shared_write(&self, write: SharedWrite) {
        let result = match write {
            SharedWrite::Stored => "stored",
            SharedWrite::Skipped => "skipped",
            SharedWrite::Failed => "error",
        };
        self.shared_writes.get_or_create(&[(RESULT, result)]).inc();
    }

    pub(crate) fn set_shared_cache_available(&self, available: bool) {
        self.shared_available.get_or_create(&[]).set(i64::from(available));
    }

    /// A PDF's renderer failed; the document's own faults (damaged, encrypted, too many
    /// pages) are not counted here.
    pub(crate) fn record_render_failure(&self, error: &RenderError) {
        let reason = match error {
            RenderError::Document(_) => return,
            RenderError::Died { .. } => "limit",
            RenderError::PageTimedOut { .. } => "page_timeout",
            RenderError::Spawn { .. } => "spawn",
            RenderError::ReadFrames(_) | RenderError::BadFrame(_) | RenderError::Unexpected => "protocol",
        };
        self.render_failures.get_or_create(&[(REASON, reason)]).inc();
    }

    pub(crate) fn set_cache_usage(&self, entries: usize, bytes: usize) {
        self.cache_entries.get_or_create(&[]).set(entries as i64);
        self.cache_bytes.get_or_create(&[]).set(bytes as i64);
    }

    pub(crate) fn set_self_test_accuracy(&self, precision: Precision, accuracy: f64) {
        let precision = match precision {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        };
        self.self_test_accuracy.get_or_create(&[(PRECISION, precision)]).set(accuracy);
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.get_or_create(&[]).set(i64::from(ready));
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

    fn model() -> ModelIdentity {
        ModelIdentity { name: "ppocr-v4".into(), version: "4.0.0".into() }
    }

    fn encode(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn in_flight_requests_are_exported_at_zero_before_any_request() {
        let mut registry = Registry::default();
        let _metrics = OcrMetrics::register(&mut registry, &model());
        let text = encode(&registry);
        assert!(
            text.lines().any(|line| line.starts_with("ocr_in_flight_requests{") && line.ends_with(" 0")),
            "autoscalers read it from the start: {text}"
        );
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
        let metrics = OcrMetrics::register(&mut registry, &model());
        metrics.request_finished(Protocol::Grpc, OcrTask::Line, tonic::Code::Ok, Duration::from_millis(42));
        metrics.request_finished(Protocol::Http, OcrTask::Line, tonic::Code::Ok, Duration::from_millis(40));
        let text = encode(&registry);
        assert!(text.contains("# TYPE ocr_request_duration_seconds histogram"), "{text}");
        for protocol in ["grpc", "http"] {
            let series = format!(
                r#"ocr_requests_total{{model="ppocr-v4",version="4.0.0",task="line",protocol="{protocol}",code="OK"}} 1"#
            );
            assert!(text.contains(&series), "missing {series}:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_recorded_series_carries_the_model_once_and_other_collectors_do_not() {
        let mut registry = Registry::default();
        registry.register("unrelated", "A metric of the process, not the model", Counter::<u64>::default());
        let metrics = OcrMetrics::register(&mut registry, &model());
        metrics.request_started();
        metrics.request_finished(
            Protocol::Http,
            OcrTask::Document,
            tonic::Code::ResourceExhausted,
            Duration::from_millis(3),
        );
        metrics.record_output(OcrTask::Document, 2);
        metrics.observe_phases(OcrTask::Document, &PhaseTimings::default());
        metrics.record_batch("recognize", 4, 1);
        metrics.set_queue_depth("detect", 3);
        metrics.record_cache_lookup(true);
        metrics.record_cache_lookup(false);
        metrics.set_cache_usage(1, 100);
        metrics.set_self_test_accuracy(Precision::Bf16, 0.97);
        metrics.set_ready(true);
        let text = encode(&registry);
        let samples: Vec<&str> = text.lines().filter(|l| l.starts_with("ocr_")).collect();
        assert!(samples.len() > 20, "{text}");
        for sample in samples {
            assert!(sample.contains(r#"{model="ppocr-v4",version="4.0.0""#), "{sample}");
            assert_eq!(sample.matches("model=").count(), 1, "{sample}");
        }
        assert!(text.contains("unrelated_total 0"), "{text}");
        for expected in [
            r#"ocr_requests_total{model="ppocr-v4",version="4.0.0",task="document",protocol="http",code="RESOURCE_EXHAUSTED"} 1"#,
            r#"ocr_phase_duration_seconds_count{model="ppocr-v4",version="4.0.0",task="document",phase="inference"} 1"#,
            r#"ocr_batch_size_count{model="ppocr-v4",version="4.0.0",stage="recognize"} 1"#,
            r#"ocr_queue_expired_total{model="ppocr-v4",version="4.0.0",stage="recognize"} 1"#,
            r#"ocr_queue_depth{model="ppocr-v4",version="4.0.0",stage="detect"} 3"#,
            r#"ocr_in_flight_requests{model="ppocr-v4",version="4.0.0"} 0"#,
            r#"ocr_lines_total{model="ppocr-v4",version="4.0.0",task="document"} 2"#,
            r#"ocr_cache_hits_total{model="ppocr-v4",version="4.0.0"} 1"#,
            r#"ocr_cache_size_bytes{model="ppocr-v4",version="4.0.0"} 100"#,
            r#"ocr_ready{model="ppocr-v4",version="4.0.0"} 1"#,
            r#"ocr_selftest_accuracy{model="ppocr-v4",version="4.0.0",precision="bf16"} 0.97"#,
        ] {
            assert!(text.contains(expected), "missing {expected}:\n{text}");
        }
    }
}

//! The start-up self-test: a handful of golden samples through the full pipeline. Below
//! the bundle's declared minimum accuracy the pod never becomes ready, and says why — a
//! model that loads but reads garbage (wrong charset, broken export, bad weights) is
//! caught before it takes traffic. At half precision (`--precision fp16|bf16`) the same
//! samples are also read by an fp32 load of the same bundle on the same device, and the
//! pod refuses to serve when half precision loses more than the allowed accuracy.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_ocr_golden::dataset::{GoldenSet, Task as GoldenTask};
use kube_ocr_golden::metrics::{Summary, score_text};

use crate::model::{ModelOptions, Precision};
use crate::serve::batcher::BatchObserver;
use crate::serve::engine::{Engine, EngineConfig, OcrError, OcrOptions, OcrTask, PageImage};
use crate::serve::error::ServeError;

/// The default of `--max-precision-accuracy-drop`: half precision may lose at most 0.5
/// points of self-test accuracy against fp32.
pub const DEFAULT_MAX_PRECISION_ACCURACY_DROP: f64 = 0.005;

/// Why the self-test could not pass; the pod stays unready and `/readyz` says this.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SelfTestError {
    #[error("the self-test has no samples")]
    NoSamples,

    #[error("self-test sample {sample} failed: {source}")]
    ReadSample { sample: String, source: OcrError },

    #[error(
        "self-test accuracy {accuracy:.4} on {samples} samples is below the bundle's minimum {min_accuracy:.4}; the model or its charset is broken ({examples})"
    )]
    BelowMinimum { accuracy: f64, samples: usize, min_accuracy: f64, examples: String },

    #[error("loading the fp32 reference model to check {precision} against: {source}")]
    LoadFp32Reference { precision: Precision, source: ServeError },

    #[error(
        "self-test accuracy at {precision} is {accuracy:.4}, {drop_points:.2} points below fp32's {fp32_accuracy:.4} on the same {samples} samples; at most {max_drop_points:.2} points are allowed (--max-precision-accuracy-drop {max_drop}): serve at fp32, or allow a larger drop ({examples})"
    )]
    PrecisionAccuracyDrop {
        precision: Precision,
        accuracy: f64,
        fp32_accuracy: f64,
        drop_points: f64,
        max_drop: f64,
        max_drop_points: f64,
        samples: usize,
        examples: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SelfTestSample {
    pub id: String,
    pub task: OcrTask,
    pub image: Arc<[u8]>,
    pub truth: String,
}

macro_rules! golden_sample {
    ($id:literal, $task:expr, $file:literal, $truth:literal) => {
        SelfTestSample {
            id: $id.to_owned(),
            task: $task,
            image: Arc::from(&include_bytes!(concat!("../../../golden/data/", $file))[..]),
            truth: $truth.to_owned(),
        }
    };
}

/// Samples compiled into the binary (from the default golden set), used when the bundle
/// brings none: Latin, Chinese, mixed and numeric lines, and one whole document.
pub(crate) fn builtin_samples() -> Vec<SelfTestSample> {
    vec![
        golden_sample!(
            "line-en-001-clean",
            OcrTask::Line,
            "lines/line-en-001-clean.png",
            "The quick brown fox jumps over the lazy dog"
        ),
        golden_sample!("line-zh-003-clean", OcrTask::Line, "lines/line-zh-003-clean.png", "本店支持微信和支付宝付款"),
        golden_sample!("line-mix-002-clean", OcrTask::Line, "lines/line-mix-002-clean.png", "合计金额：¥1,234.50元"),
        golden_sample!("line-num-004-clean", OcrTask::Line, "lines/line-num-004-clean.png", "Tel: +86 21 6234 5678"),
        golden_sample!(
            "doc-invoice-01-clean",
            OcrTask::Document,
            "documents/doc-invoice-01-clean.png",
            "ACME Trading Ltd.\nInvoice No. INV-2026-0042\nDate: 2026-03-15\nBill to: Northwind Foods Inc.\nItem: Paper rolls x 12\nSubtotal: $1,092.48\nTax (13%): $142.02\nTotal: $1,234.50"
        ),
    ]
}

/// Samples from a golden-set folder (`truth.jsonl` + images), e.g. `<bundle>/selftest`.
pub(crate) fn samples_from_dir(dir: &Path) -> Result<Vec<SelfTestSample>, ServeError> {
    let load_error = |source| ServeError::LoadSelfTestSamples { dir: dir.to_path_buf(), source };
    let set = GoldenSet::load(dir).map_err(load_error)?;
    set.items
        .iter()
        .map(|item| {
            let image = set.image_bytes(item).map_err(load_error)?;
            let task = match item.task {
                GoldenTask::Line => OcrTask::Line,
                GoldenTask::Document => OcrTask::Document,
            };
            Ok(SelfTestSample { id: item.id.clone(), task, image: Arc::from(image), truth: item.truth.text() })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelfTestReport {
    pub accuracy: f64,
    pub samples: usize,
    pub elapsed: Duration,
    /// (id, expected, read) of samples not read exactly, worst first, at most 3.
    pub misreads: Vec<(String, String, String)>,
}

impl SelfTestReport {
    /// Ok, or why the pod must not become ready.
    pub(crate) fn verdict(&self, min_accuracy: f64) -> Result<(), SelfTestError> {
        if self.accuracy + 1e-9 >= min_accuracy {
            return Ok(());
        }
        Err(SelfTestError::BelowMinimum {
            accuracy: self.accuracy,
            samples: self.samples,
            min_accuracy,
            examples: self.misread_examples(),
        })
    }

    /// The worst misreads, for a refusal's reason.
    fn misread_examples(&self) -> String {
        let examples: Vec<String> = self
            .misreads
            .iter()
            .map(|(id, expected, read)| format!("{id}: expected {expected:?}, read {read:?}"))
            .collect();
        examples.join("; ")
    }
}

/// What the start-up self-test must show before the pod serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SelfTestGate {
    /// Lowest accuracy at the served precision.
    pub min_accuracy: f64,
    /// Most accuracy (a fraction: 0.005 = 0.5 points) the served precision may lose
    /// against fp32 on the same samples; checked when the precision is not fp32.
    pub max_precision_drop: f64,
}

/// The self-test at the served precision and, when that is not fp32, an fp32 load's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelfTestOutcome {
    pub precision: Precision,
    pub served: SelfTestReport,
    pub fp32: Option<SelfTestReport>,
}

impl SelfTestOutcome {
    /// Ok, or why the pod must not become ready. The drop against fp32 is checked first:
    /// when fp32 reads well and half precision does not, the precision is the cause, and
    /// the floor's "the model is broken" would mislead.
    pub(crate) fn verdict(&self, gate: &SelfTestGate) -> Result<(), SelfTestError> {
        if let Some(fp32) = &self.fp32 {
            let drop = fp32.accuracy - self.served.accuracy;
            if drop > gate.max_precision_drop + 1e-9 {
                return Err(SelfTestError::PrecisionAccuracyDrop {
                    precision: self.precision,
                    accuracy: self.served.accuracy,
                    fp32_accuracy: fp32.accuracy,
                    drop_points: drop * 100.0,
                    max_drop: gate.max_precision_drop,
                    max_drop_points: gate.max_precision_drop * 100.0,
                    samples: self.served.samples,
                    examples: self.served.misread_examples(),
                });
            }
        }
        self.served.verdict(gate.min_accuracy)
    }
}

/// Reads the samples with `engine`, and at half precision again with an fp32 load of the
/// same bundle on the same device (same memory format and batching), which is freed
/// before this returns.
pub(crate) async fn run_self_test_at_precision(
    engine: &Engine,
    samples: &[SelfTestSample],
) -> Result<SelfTestOutcome, SelfTestError> {
    let config = *engine.config();
    let precision = config.model_options.precision;
    let served = run_self_test(engine, samples).await?;
    if precision == Precision::Fp32 {
        return Ok(SelfTestOutcome { precision, served, fp32: None });
    }
    let bundle = engine.bundle().clone();
    let device = engine.device();
    let reference_config =
        EngineConfig { model_options: ModelOptions { precision: Precision::Fp32, ..config.model_options }, ..config };
    // Its batches are not the served model's: they stay out of the batch metrics.
    let unobserved: BatchObserver = Arc::new(|_, _, _| {});
    let load = move || Engine::load(bundle, device, reference_config, unobserved);
    let reference = tokio::task::spawn_blocking(load)
        .await
        .map_err(ServeError::JoinModelLoader)
        .and_then(|loaded| loaded)
        .map_err(|source| SelfTestError::LoadFp32Reference { precision, source })?;
    let fp32 = run_self_test(&reference, samples).await;
    // Dropping the engine joins its stage workers, which frees the fp32 modules (and their
    // device memory); off the async runtime, as joins block.
    let _ = tokio::task::spawn_blocking(move || drop(reference)).await;
    Ok(SelfTestOutcome { precision, served, fp32: Some(fp32?) })
}

/// Reads every sample (one at a time: start-up latency is not what matters here).
pub(crate) async fn run_self_test(
    engine: &Engine,
    samples: &[SelfTestSample],
) -> Result<SelfTestReport, SelfTestError> {
    if samples.is_empty() {
        return Err(SelfTestError::NoSamples);
    }
    let started = Instant::now();
    let mut scores = Vec::with_capacity(samples.len());
    let mut misreads = Vec::new();
    for sample in samples {
        let deadline = Instant::now() + Duration::from_secs(300);
        let output = engine
            .recognize(PageImage::Encoded(sample.image.clone()), sample.task, OcrOptions::default(), deadline)
            .await
            .map_err(|source| SelfTestError::ReadSample { sample: sample.id.clone(), source })?;
        let read = output.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
        let score = score_text(&sample.truth, &read);
        if !score.exact {
            misreads.push((score.cer, sample.id.clone(), sample.truth.clone(), read));
        }
        scores.push(score);
    }
    misreads.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(SelfTestReport {
        accuracy: Summary::from_scores(&scores).accuracy,
        samples: samples.len(),
        elapsed: started.elapsed(),
        misreads: misreads.into_iter().take(3).map(|(_, id, truth, read)| (id, truth, read)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_samples_match_the_golden_set() {
        let set = GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
        for sample in builtin_samples() {
            let item = set.get(&sample.id).unwrap_or_else(|| panic!("{} is not in the golden set", sample.id));
            assert_eq!(item.truth.text(), sample.truth, "{}", sample.id);
            assert_eq!(&*sample.image, set.image_bytes(item).unwrap().as_slice(), "{}", sample.id);
        }
    }

    #[test]
    fn the_verdict_names_the_gap_and_examples() {
        let report = SelfTestReport {
            accuracy: 0.5,
            samples: 4,
            elapsed: Duration::from_secs(1),
            misreads: vec![("a".into(), "hello".into(), "he11o".into())],
        };
        assert!(report.verdict(0.5).is_ok());
        let reason = report.verdict(0.9).unwrap_err().to_string();
        assert!(reason.contains("0.5000") && reason.contains("0.9000") && reason.contains("he11o"), "{reason}");
    }

    fn report(accuracy: f64) -> SelfTestReport {
        SelfTestReport { accuracy, samples: 5, elapsed: Duration::from_secs(1), misreads: Vec::new() }
    }

    const GATE: SelfTestGate = SelfTestGate { min_accuracy: 0.9, max_precision_drop: 0.005 };

    #[test]
    fn half_precision_may_lose_at_most_the_allowed_drop_against_fp32() {
        let outcome = |served, fp32| SelfTestOutcome {
            precision: Precision::Bf16,
            served: report(served),
            fp32: Some(report(fp32)),
        };
        assert!(outcome(0.975, 0.98).verdict(&GATE).is_ok(), "0.5 points is allowed");
        assert!(outcome(0.99, 0.98).verdict(&GATE).is_ok(), "better than fp32");
        let reason = outcome(0.97, 0.98).verdict(&GATE).unwrap_err().to_string();
        for expected in ["bf16", "0.9700", "0.9800", "1.00 points", "0.50 points", "--max-precision-accuracy-drop"] {
            assert!(reason.contains(expected), "{expected} missing from {reason}");
        }
        let precision_broke_it = outcome(0.5, 0.98).verdict(&GATE).unwrap_err();
        assert!(matches!(precision_broke_it, SelfTestError::PrecisionAccuracyDrop { .. }), "{precision_broke_it}");
        let model_broken = outcome(0.5, 0.5).verdict(&GATE).unwrap_err();
        assert!(matches!(model_broken, SelfTestError::BelowMinimum { .. }), "{model_broken}");
    }

    #[test]
    fn fp32_has_no_reference_to_drop_against() {
        let outcome = SelfTestOutcome { precision: Precision::Fp32, served: report(0.95), fp32: None };
        assert!(outcome.verdict(&GATE).is_ok());
        assert!(outcome.verdict(&SelfTestGate { max_precision_drop: -1.0, ..GATE }).is_ok());
    }
}

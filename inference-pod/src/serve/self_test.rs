//! The start-up self-test: a handful of golden samples through the full pipeline. Below
//! the bundle's declared minimum accuracy the pod never becomes ready, and says why — a
//! model that loads but reads garbage (wrong charset, broken export, bad weights) is
//! caught before it takes traffic.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_ocr_golden::dataset::{GoldenSet, Task as GoldenTask};
use kube_ocr_golden::metrics::{Summary, score_text};

use crate::serve::engine::{Engine, OcrError, OcrOptions, OcrTask};
use crate::serve::error::ServeError;

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
        let examples: Vec<String> = self
            .misreads
            .iter()
            .map(|(id, expected, read)| format!("{id}: expected {expected:?}, read {read:?}"))
            .collect();
        Err(SelfTestError::BelowMinimum {
            accuracy: self.accuracy,
            samples: self.samples,
            min_accuracy,
            examples: examples.join("; "),
        })
    }
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
            .recognize(sample.image.clone(), sample.task, OcrOptions::default(), deadline)
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
}

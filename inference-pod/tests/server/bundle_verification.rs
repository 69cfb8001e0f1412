//! Re-scores what the export recorded, with the project's own metrics: the exported model
//! reads the golden set as well as the onnxruntime reference, and the rollout-test
//! variants are as bad as they claim to be.

use crate::common;

use kube_ocr_golden::{GoldenSet, Predictions, default_set_dir, evaluate};

fn accuracy(bundle: &str, predictions: &str) -> f64 {
    let set = GoldenSet::load(default_set_dir()).unwrap();
    let predictions = Predictions::load(common::bundle_dir(bundle).join(predictions)).unwrap();
    let report = evaluate(&set, &predictions);
    assert!(report.missing.is_empty() && report.unknown.is_empty(), "predictions do not cover the golden set");
    report.overall.accuracy
}

#[test]
fn the_export_reads_the_golden_set_like_the_onnxruntime_reference() {
    let reference = accuracy("ppocr-v4", "reference-predictions.jsonl");
    let exported = accuracy("ppocr-v4", "golden-predictions.jsonl");
    assert!(reference >= 0.90, "reference accuracy {reference:.4}");
    assert!((exported - reference).abs() <= 0.005, "exported {exported:.4} vs reference {reference:.4}");
}

#[test]
fn the_degraded_variant_loses_at_least_ten_points() {
    let standard = accuracy("ppocr-v4", "golden-predictions.jsonl");
    let degraded = accuracy("ppocr-v4-degraded", "golden-predictions.jsonl");
    assert!(standard - degraded >= 0.10, "standard {standard:.4}, degraded {degraded:.4}");
    assert!(degraded > 0.0, "the degraded model should still read something");
}

#[test]
fn the_slow_variant_reads_exactly_like_the_standard_one() {
    let standard = accuracy("ppocr-v4", "golden-predictions.jsonl");
    let slow = accuracy("ppocr-v4-slow", "golden-predictions.jsonl");
    assert_eq!(slow, standard);
}

//! `status.lastAnalysis` from an analysis' numbers: the canary judged against stable, or
//! the golden check of stable alone (no canary running).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::{AnalysisStatus, TrackMeasurement};

use super::numbers::{GoldenOutcome, track_numbers};
use super::verdict::{Thresholds, TrackNumbers, Verdict, judge};
use super::window::WindowTraffic;

/// `status.lastAnalysis.verdict` of a stable-only check below `minAccuracy`.
pub const STABLE_BELOW_MIN_ACCURACY: &str = "StableBelowMinAccuracy";
/// `status.lastAnalysis.verdict` of a stable-only check that found nothing wrong.
pub const STABLE_CHECKED: &str = "StableChecked";

/// Judges the canary against stable. `notes` say what could not be measured (no golden
/// set, no Ready pod); they join the reasons of a failed verdict, where they explain it.
pub fn canary_record(
    stable: &TrackNumbers,
    canary: &TrackNumbers,
    thresholds: &Thresholds,
    notes: Vec<String>,
    now: &Time,
) -> (AnalysisStatus, Verdict) {
    let mut verdict = judge(stable, canary, thresholds);
    if !verdict.passed {
        verdict.reasons.extend(notes);
    }
    let record = AnalysisStatus {
        at: Some(now.clone()),
        stable: Some(measurement(stable)),
        canary: Some(measurement(canary)),
        verdict: Some(if verdict.passed { "Passed" } else { "Failed" }.to_owned()),
        reasons: verdict.reasons.clone(),
    };
    (record, verdict)
}

/// The golden check of stable alone: [`STABLE_BELOW_MIN_ACCURACY`] when it reads the set
/// worse than `min_accuracy`. `reasons` say what could not be checked.
pub fn stable_record(
    outcome: &GoldenOutcome,
    mut reasons: Vec<String>,
    min_accuracy: f64,
    now: &Time,
) -> AnalysisStatus {
    let numbers = track_numbers(&WindowTraffic::default(), outcome);
    let below = numbers.accuracy.is_some_and(|a| a < min_accuracy);
    if below {
        reasons.insert(
            0,
            format!("stable golden accuracy {:.4} < minAccuracy {min_accuracy:.4}", numbers.accuracy.unwrap_or(0.0)),
        );
    }
    AnalysisStatus {
        at: Some(now.clone()),
        stable: Some(measurement(&numbers)),
        canary: None,
        verdict: Some(if below { STABLE_BELOW_MIN_ACCURACY } else { STABLE_CHECKED }.to_owned()),
        reasons,
    }
}

/// A track's numbers as status shows them: accuracy and error rate to 4 decimals, P95 in
/// whole milliseconds.
pub fn measurement(numbers: &TrackNumbers) -> TrackMeasurement {
    TrackMeasurement {
        accuracy: numbers.accuracy.map(|a| (a * 10_000.0).round() / 10_000.0),
        p95_ms: numbers.p95_ms.map(|p| p.round()),
        error_rate: numbers.error_rate.map(|e| (e * 10_000.0).round() / 10_000.0),
        samples: Some(numbers.samples),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::analysis::verdict::THRESHOLDS;

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn numbers(accuracy: Option<f64>) -> TrackNumbers {
        TrackNumbers { accuracy, p95_ms: Some(212.4), error_rate: Some(0.012_345), samples: 40 }
    }

    #[test]
    fn a_passed_canary_is_recorded_without_the_notes() {
        let notes = vec!["no Ready stable pod to measure".to_owned()];
        let (record, verdict) = canary_record(&numbers(Some(0.95)), &numbers(Some(0.95)), &THRESHOLDS, notes, &now());
        assert!(verdict.passed);
        assert_eq!(record.verdict.as_deref(), Some("Passed"));
        assert!(record.reasons.is_empty(), "notes only explain a failure");
        assert_eq!(record.at, Some(now()));
    }

    #[test]
    fn a_failed_canary_carries_its_reasons_then_the_notes() {
        let notes = vec!["golden set \"x\" not found".to_owned()];
        let (record, verdict) = canary_record(&numbers(Some(0.95)), &numbers(None), &THRESHOLDS, notes, &now());
        assert!(!verdict.passed);
        assert_eq!(record.verdict.as_deref(), Some("Failed"));
        assert_eq!(record.reasons, verdict.reasons);
        assert!(record.reasons[0].contains("no golden accuracy"), "{:?}", record.reasons);
        assert_eq!(record.reasons.last().map(String::as_str), Some("golden set \"x\" not found"));
    }

    #[test]
    fn a_stable_check_below_the_minimum_says_so_first() {
        let outcome = GoldenOutcome {
            accuracy: Some(0.8),
            latencies: vec![Duration::from_millis(100)],
            server_failures: 0,
            calls: 1,
        };
        let record = stable_record(&outcome, vec!["later".to_owned()], 0.9, &now());
        assert_eq!(record.verdict.as_deref(), Some(STABLE_BELOW_MIN_ACCURACY));
        assert_eq!(record.reasons, ["stable golden accuracy 0.8000 < minAccuracy 0.9000", "later"]);
        assert!(record.canary.is_none());
        let fine = stable_record(&GoldenOutcome { accuracy: Some(0.95), ..outcome }, vec![], 0.9, &now());
        assert_eq!(fine.verdict.as_deref(), Some(STABLE_CHECKED));
        assert!(fine.reasons.is_empty());
    }

    #[test]
    fn measurements_are_rounded_for_status() {
        let shown = measurement(&TrackNumbers { accuracy: Some(0.956_789), ..numbers(None) });
        assert_eq!(shown.accuracy, Some(0.9568));
        assert_eq!(shown.p95_ms, Some(212.0));
        assert_eq!(shown.error_rate, Some(0.0123));
        assert_eq!(shown.samples, Some(40));
    }
}

//! The analysis verdict: canary against its thresholds and against stable measured in
//! the same window. Every failing check gives a reason with the numbers.

use kube_ocr_crds::OcrService;

/// What one track showed in a window. `None` = not measured (no data).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackNumbers {
    /// Golden accuracy (1 − CER, clipped at 0).
    pub accuracy: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Server-side gRPC failures per request.
    pub error_rate: Option<f64>,
    /// Requests the latency and error numbers rest on.
    pub samples: u64,
}

/// The thresholds of `spec.rollout.analysis`, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_accuracy: f64,
    pub max_accuracy_drop: f64,
    pub max_p95_ms: f64,
    pub max_p95_increase: f64,
    pub max_error_rate_increase: f64,
}

/// The thresholds an OcrService's `spec.rollout.analysis` sets.
pub fn thresholds_of(ocr: &OcrService) -> Thresholds {
    let analysis = &ocr.spec.rollout.analysis;
    Thresholds {
        min_accuracy: analysis.golden.min_accuracy,
        max_accuracy_drop: analysis.golden.max_accuracy_drop,
        max_p95_ms: f64::from(analysis.latency.max_p95_ms),
        max_p95_increase: analysis.latency.max_p95_increase,
        max_error_rate_increase: analysis.errors.max_error_rate_increase,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// Why it failed; empty when it passed.
    pub reasons: Vec<String>,
}

pub fn judge(stable: &TrackNumbers, canary: &TrackNumbers, thresholds: &Thresholds) -> Verdict {
    let mut reasons = Vec::new();
    match canary.accuracy {
        None => reasons.push("no golden accuracy for the canary (golden calls failed)".to_owned()),
        Some(accuracy) => {
            if accuracy < thresholds.min_accuracy {
                reasons
                    .push(format!("canary golden accuracy {accuracy:.4} < minAccuracy {:.4}", thresholds.min_accuracy));
            }
            if let Some(stable_accuracy) = stable.accuracy
                && stable_accuracy - accuracy > thresholds.max_accuracy_drop
            {
                reasons.push(format!(
                    "canary golden accuracy {accuracy:.4} is {:.2} points below stable {stable_accuracy:.4} (maxAccuracyDrop {:.2} points)",
                    100.0 * (stable_accuracy - accuracy),
                    100.0 * thresholds.max_accuracy_drop
                ));
            }
        }
    }
    if let Some(p95) = canary.p95_ms {
        if p95 > thresholds.max_p95_ms {
            reasons.push(format!("canary P95 {p95:.0} ms > maxP95Ms {:.0} ms", thresholds.max_p95_ms));
        }
        if let Some(stable_p95) = stable.p95_ms {
            let limit = stable_p95 * (1.0 + thresholds.max_p95_increase);
            if p95 > limit {
                reasons.push(format!(
                    "canary P95 {p95:.0} ms > stable P95 {stable_p95:.0} ms × {:.2} = {limit:.0} ms",
                    1.0 + thresholds.max_p95_increase
                ));
            }
        }
    }
    if let Some(errors) = canary.error_rate {
        let stable_errors = stable.error_rate.unwrap_or(0.0);
        if errors - stable_errors > thresholds.max_error_rate_increase {
            reasons.push(format!(
                "canary server error rate {:.2}% vs stable {:.2}% (maxErrorRateIncrease {:.2} points)",
                100.0 * errors,
                100.0 * stable_errors,
                100.0 * thresholds.max_error_rate_increase
            ));
        }
    }
    Verdict { passed: reasons.is_empty(), reasons }
}

/// The thresholds the tests judge with: the CRD's defaults (accuracy −3 points, P95 +50 %,
/// error rate +2 points), written out so a changed default shows up in a test.
#[cfg(test)]
pub(crate) const THRESHOLDS: Thresholds = Thresholds {
    min_accuracy: 0.90,
    max_accuracy_drop: 0.03,
    max_p95_ms: 800.0,
    max_p95_increase: 0.5,
    max_error_rate_increase: 0.02,
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builders::test_support::ocr_service;

    fn numbers(accuracy: f64, p95_ms: f64, error_rate: f64) -> TrackNumbers {
        TrackNumbers { accuracy: Some(accuracy), p95_ms: Some(p95_ms), error_rate: Some(error_rate), samples: 100 }
    }

    #[test]
    fn an_equal_canary_passes() {
        let verdict = judge(&numbers(0.96, 200.0, 0.0), &numbers(0.955, 220.0, 0.01), &THRESHOLDS);
        assert!(verdict.passed, "{:?}", verdict.reasons);
    }

    #[test]
    fn each_regression_fails_with_its_numbers() {
        let stable = numbers(0.96, 200.0, 0.0);
        let cases = [
            // Far below both the floor and stable: both checks say so.
            (numbers(0.67, 200.0, 0.0), "0.6700 < minAccuracy 0.9000", 2),
            (numbers(0.92, 200.0, 0.0), "4.00 points below stable", 1),
            // Above the absolute limit and more than 1.5 × stable.
            (numbers(0.96, 900.0, 0.0), "P95 900 ms > maxP95Ms 800 ms", 2),
            (numbers(0.96, 350.0, 0.0), "stable P95 200 ms × 1.50 = 300 ms", 1),
            (numbers(0.96, 200.0, 0.05), "5.00% vs stable 0.00%", 1),
        ];
        for (canary, reason, count) in cases {
            let verdict = judge(&stable, &canary, &THRESHOLDS);
            assert!(!verdict.passed);
            assert!(verdict.reasons.iter().any(|r| r.contains(reason)), "{reason}: {:?}", verdict.reasons);
            assert_eq!(verdict.reasons.len(), count, "{:?}", verdict.reasons);
        }
    }

    #[test]
    fn a_canary_without_golden_results_fails_but_missing_traffic_does_not() {
        let stable = numbers(0.96, 200.0, 0.0);
        let silent = TrackNumbers { accuracy: Some(0.96), ..TrackNumbers::default() };
        assert!(judge(&stable, &silent, &THRESHOLDS).passed);
        let blind = TrackNumbers { accuracy: None, ..numbers(0.0, 200.0, 0.0) };
        assert!(!judge(&stable, &blind, &THRESHOLDS).passed);
    }

    #[test]
    fn thresholds_come_from_the_spec_and_default_to_the_ops_practice() {
        let defaults = thresholds_of(&ocr_service(json!({})));
        assert_eq!(defaults, THRESHOLDS, "accuracy -3 points, P95 +50%, error rate +2 points");
        let set = thresholds_of(&ocr_service(json!({ "rollout": { "analysis": {
            "golden": { "minAccuracy": 0.8, "maxAccuracyDrop": 0.05 },
            "latency": { "maxP95Ms": 250, "maxP95Increase": 0.2 },
            "errors": { "maxErrorRateIncrease": 0.01 },
        } } })));
        let expected = Thresholds {
            min_accuracy: 0.8,
            max_accuracy_drop: 0.05,
            max_p95_ms: 250.0,
            max_p95_increase: 0.2,
            max_error_rate_increase: 0.01,
        };
        assert_eq!(set, expected);
    }

    #[test]
    fn errors_are_compared_with_stable_in_the_same_window() {
        // Both tracks suffer the same outage (e.g. a shared dependency): not the canary's fault.
        assert!(judge(&numbers(0.96, 200.0, 0.10), &numbers(0.96, 200.0, 0.11), &THRESHOLDS).passed);
    }
}

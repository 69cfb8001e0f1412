//! `spec.rollout` parsed into durations and counts, with the defaults the CRD documents
//! standing in for durations that do not parse.

use std::time::Duration;

use kube_ocr_crds::{OcrService, parse_duration};

/// `spec.rollout`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSettings {
    /// Canary weights in percent, strictly increasing, ending at 100.
    pub steps: Vec<i32>,
    pub step_interval: Duration,
    pub analysis_interval: Duration,
    pub failure_limit: u32,
    /// How long a canary step may wait for Ready pods before the rollout gives up.
    pub progress_deadline: Duration,
    /// `dynamicStableScale`: both tracks share the pods stable had when the rollout
    /// started ([`super::dynamic`]).
    pub dynamic_stable_scale: bool,
}

pub fn settings_of(ocr: &OcrService) -> RolloutSettings {
    let rollout = &ocr.spec.rollout;
    RolloutSettings {
        steps: rollout.steps.clone(),
        step_interval: duration_or(&rollout.step_interval, 60),
        analysis_interval: duration_or(&rollout.analysis.interval, 30),
        // At least one failed check before a rollback: 0 would roll back on nothing.
        failure_limit: rollout.analysis.failure_limit.max(1),
        progress_deadline: duration_or(&rollout.progress_deadline, 600),
        dynamic_stable_scale: rollout.dynamic_stable_scale,
    }
}

/// `spec.rollout.analysis.golden.stableInterval`: how often stable's golden check runs
/// outside rollouts.
pub fn stable_check_interval(ocr: &OcrService) -> Duration {
    duration_or(&ocr.spec.rollout.analysis.golden.stable_interval, 300)
}

fn duration_or(text: &str, default_secs: u64) -> Duration {
    parse_duration(text).unwrap_or(Duration::from_secs(default_secs))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builders::test_support::ocr_service;

    #[test]
    fn the_spec_defaults_are_the_ops_practice() {
        let settings = settings_of(&ocr_service(json!({})));
        assert_eq!(settings.steps, [10, 50, 100]);
        assert_eq!(settings.step_interval, Duration::from_secs(60));
        assert_eq!(settings.analysis_interval, Duration::from_secs(30));
        assert_eq!(settings.failure_limit, 2);
        assert_eq!(settings.progress_deadline, Duration::from_secs(600));
        assert!(!settings.dynamic_stable_scale);
        assert_eq!(stable_check_interval(&ocr_service(json!({}))), Duration::from_secs(300));
    }

    #[test]
    fn set_values_are_parsed_and_a_zero_failure_limit_means_one() {
        let ocr = ocr_service(json!({ "rollout": {
            "steps": [25, 100], "stepInterval": "2m", "progressDeadline": "90s", "dynamicStableScale": true,
            "analysis": { "interval": "10s", "failureLimit": 0, "golden": { "stableInterval": "1h" } },
        } }));
        let settings = settings_of(&ocr);
        assert_eq!(settings.steps, [25, 100]);
        assert_eq!(settings.step_interval, Duration::from_secs(120));
        assert_eq!(settings.analysis_interval, Duration::from_secs(10));
        assert_eq!(settings.failure_limit, 1);
        assert_eq!(settings.progress_deadline, Duration::from_secs(90));
        assert!(settings.dynamic_stable_scale);
        assert_eq!(stable_check_interval(&ocr), Duration::from_secs(3600));
    }

    #[test]
    fn durations_that_do_not_parse_fall_back_to_the_defaults() {
        let ocr = ocr_service(json!({ "rollout": {
            "stepInterval": "soon", "analysis": { "interval": "", "golden": { "stableInterval": "often" } },
        } }));
        let settings = settings_of(&ocr);
        assert_eq!(
            (settings.step_interval, settings.analysis_interval),
            (Duration::from_secs(60), Duration::from_secs(30))
        );
        assert_eq!(stable_check_interval(&ocr), Duration::from_secs(300));
    }
}

//! The rollout's part of status: revisions per track, canary progress, the last analysis,
//! and RolledBack with its reason while the spec still asks for a failed revision.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::{AnalysisStatus, OcrService, OcrServiceStatus, Phase};

use super::conditions::{Decided, merge};
use crate::analysis::record::STABLE_BELOW_MIN_ACCURACY;
use crate::rollout::RolloutPlan;

/// Puts `plan` (and `analysis`, when one ran this round) over the status computed from
/// the stable Deployment. `spec_revision`: the revision the spec asks for.
pub fn overlay_rollout(
    status: &mut OcrServiceStatus,
    plan: &RolloutPlan,
    analysis: Option<&AnalysisStatus>,
    spec_revision: Option<String>,
    ocr: &OcrService,
    now: &Time,
) {
    status.desired_revision = spec_revision;
    status.stable_revision = Some(plan.stable_revision.clone());
    status.canary_revision = plan.canary_revision.clone();
    status.canary = plan.canary.clone();
    if status.canary_revision.is_some() {
        status.canary_version = Some(ocr.spec.model.version.clone());
    } else {
        status.canary_version = None;
    }
    status.failed_revision = plan.failed_revision.clone();
    if let Some(analysis) = analysis {
        status.last_analysis = Some(analysis.clone());
    }
    let stable_below = status
        .last_analysis
        .as_ref()
        .filter(|a| a.canary.is_none() && a.verdict.as_deref() == Some(STABLE_BELOW_MIN_ACCURACY));
    if let Some(analysis) = stable_below.cloned() {
        status.phase = Some(Phase::Degraded);
        let message = format!(
            "{}. The serving model reads the golden set worse than spec.rollout.analysis.golden.minAccuracy: check \
             recent changes to the model, the input data, or the golden set itself.",
            analysis.reasons.join("; ")
        );
        status.conditions = merge(
            &status.conditions,
            &[Decided { type_: "Degraded", status: true, reason: "AccuracyBelowMinimum", message }],
            ocr.metadata.generation,
            now,
        );
    }
    if plan.rolled_back {
        status.phase = Some(Phase::RolledBack);
        let reasons = status.last_analysis.as_ref().map(|a| a.reasons.join("; ")).unwrap_or_default();
        let message = format!(
            "Revision {} was rolled back and is not retried until the spec changes{}",
            plan.failed_revision.as_deref().unwrap_or("?"),
            if reasons.is_empty() { String::new() } else { format!(": {reasons}") }
        );
        status.conditions = merge(
            &status.conditions,
            &[Decided { type_: "Degraded", status: true, reason: "RolledBack", message }],
            ocr.metadata.generation,
            now,
        );
    } else if let (Some(canary), Some(progress)) = (&plan.canary_revision, &plan.canary) {
        if status.phase != Some(Phase::Degraded) {
            status.phase = Some(Phase::Progressing);
        }
        let message = format!(
            "Canary {canary} at {}% (step {} of {}), {} failed check(s)",
            progress.weight,
            progress.step + 1,
            ocr.spec.rollout.steps.len(),
            progress.failed_checks
        );
        status.conditions = merge(
            &status.conditions,
            &[Decided { type_: "Progressing", status: true, reason: "CanaryAnalysis", message }],
            ocr.metadata.generation,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use kube_ocr_crds::CanaryStatus;
    use serde_json::json;

    use super::super::conditions::find;
    use super::*;
    use crate::builders::test_support::ocr_service;

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn healthy() -> OcrServiceStatus {
        OcrServiceStatus { phase: Some(Phase::Healthy), ..OcrServiceStatus::default() }
    }

    #[test]
    fn a_running_canary_is_progressing_with_its_step() {
        let ocr = ocr_service(json!({ "model": { "version": "4.1.0" } }));
        let canary = CanaryStatus { step: 1, weight: 50, failed_checks: 1, ..CanaryStatus::default() };
        let plan = RolloutPlan {
            canary_revision: Some("new".into()),
            canary: Some(canary.clone()),
            ..RolloutPlan::steady("old")
        };
        let mut status = healthy();
        overlay_rollout(&mut status, &plan, None, Some("new".into()), &ocr, &now());
        assert_eq!(status.phase, Some(Phase::Progressing));
        assert_eq!((status.desired_revision.as_deref(), status.stable_revision.as_deref()), (Some("new"), Some("old")));
        assert_eq!((status.canary_revision.as_deref(), status.canary_version.as_deref()), (Some("new"), Some("4.1.0")));
        assert_eq!(status.canary, Some(canary));
        let progressing = find(&status.conditions, "Progressing").unwrap();
        assert_eq!(progressing.reason, "CanaryAnalysis");
        assert_eq!(progressing.message, "Canary new at 50% (step 2 of 3), 1 failed check(s)");
    }

    #[test]
    fn a_rollback_is_degraded_with_the_analysis_reasons() {
        let ocr = ocr_service(json!({}));
        let plan = RolloutPlan { failed_revision: Some("new".into()), rolled_back: true, ..RolloutPlan::steady("old") };
        let analysis = AnalysisStatus {
            verdict: Some("Failed".into()),
            reasons: vec!["canary P95 900 ms > maxP95Ms 800 ms".into()],
            ..AnalysisStatus::default()
        };
        let mut status = OcrServiceStatus { canary_version: Some("4.1.0".into()), ..healthy() };
        overlay_rollout(&mut status, &plan, Some(&analysis), Some("new".into()), &ocr, &now());
        assert_eq!(status.phase, Some(Phase::RolledBack));
        assert_eq!((status.failed_revision.as_deref(), status.canary_version.as_deref()), (Some("new"), None));
        assert_eq!(status.last_analysis, Some(analysis));
        let degraded = find(&status.conditions, "Degraded").unwrap();
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RolledBack"));
        assert_eq!(
            degraded.message,
            "Revision new was rolled back and is not retried until the spec changes: canary P95 900 ms > maxP95Ms 800 ms"
        );
    }

    #[test]
    fn stable_below_the_minimum_accuracy_is_degraded_and_stays_so_without_a_new_check() {
        let ocr = ocr_service(json!({}));
        let below = AnalysisStatus {
            verdict: Some(STABLE_BELOW_MIN_ACCURACY.into()),
            reasons: vec!["stable golden accuracy 0.8000 < minAccuracy 0.9000".into()],
            ..AnalysisStatus::default()
        };
        let mut status = healthy();
        overlay_rollout(&mut status, &RolloutPlan::steady("old"), Some(&below), Some("old".into()), &ocr, &now());
        assert_eq!(status.phase, Some(Phase::Degraded));
        let degraded = find(&status.conditions, "Degraded").unwrap();
        assert_eq!(degraded.reason, "AccuracyBelowMinimum");
        assert!(degraded.message.starts_with("stable golden accuracy 0.8000 < minAccuracy 0.9000. The serving model"));
        let mut next = OcrServiceStatus { last_analysis: status.last_analysis.clone(), ..healthy() };
        overlay_rollout(&mut next, &RolloutPlan::steady("old"), None, Some("old".into()), &ocr, &now());
        assert_eq!(next.phase, Some(Phase::Degraded), "the last check still stands");
    }
}

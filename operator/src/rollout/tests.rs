//! The rollout as a sequence of rounds: each test feeds `plan`'s output back as the next
//! status, the way the controller does through the API server.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube_ocr_crds::{AnalysisStatus, OcrServiceStatus};

use super::*;
use crate::analysis::verdict::Verdict;

fn settings() -> RolloutSettings {
    RolloutSettings {
        steps: vec![10, 50, 100],
        step_interval: Duration::from_secs(60),
        analysis_interval: Duration::from_secs(30),
        failure_limit: 2,
        progress_deadline: Duration::from_secs(600),
        dynamic_stable_scale: false,
    }
}

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
}

const READY: CanaryObservation = CanaryObservation { desired: 1, ready: 1 };
const STARTING: CanaryObservation = CanaryObservation { desired: 1, ready: 0 };

fn pass() -> Verdict {
    Verdict { passed: true, reasons: vec![] }
}

fn fail(reason: &str) -> Verdict {
    Verdict { passed: false, reasons: vec![reason.to_owned()] }
}

/// The status the controller writes from a plan (rollout fields only).
fn apply(status: &OcrServiceStatus, plan: &RolloutPlan, analysed_at: Option<Time>) -> OcrServiceStatus {
    let mut next = status.clone();
    next.stable_revision = Some(plan.stable_revision.clone());
    next.canary_revision = plan.canary_revision.clone();
    next.canary = plan.canary.clone();
    next.failed_revision = plan.failed_revision.clone();
    if let Some(at) = analysed_at {
        next.last_analysis = Some(AnalysisStatus { at: Some(at), ..AnalysisStatus::default() });
    }
    next
}

struct Run {
    status: OcrServiceStatus,
    settings: RolloutSettings,
    /// Sent with the next round only, as the annotation is removed when read.
    manual: Option<ManualAction>,
}

impl Run {
    fn stable(revision: &str) -> Self {
        Self {
            status: OcrServiceStatus { stable_revision: Some(revision.into()), ..OcrServiceStatus::default() },
            settings: settings(),
            manual: None,
        }
    }

    fn round(
        &mut self,
        desired: &str,
        second: i64,
        canary: CanaryObservation,
        stable_rolled_out: bool,
        analysis: Option<Verdict>,
    ) -> RolloutPlan {
        let now = at(second);
        let plan = plan(&RolloutInput {
            desired_revision: desired,
            status: &self.status,
            settings: &self.settings,
            canary,
            stable_rolled_out,
            stable_replicas: 1,
            stable_ready: 1,
            canary_problem: None,
            analysis: analysis.as_ref(),
            manual: self.manual.take(),
            now: &now,
        });
        self.status = apply(&self.status, &plan, analysis.map(|_| now));
        plan
    }

    fn reasons(plan: &RolloutPlan) -> Vec<&'static str> {
        plan.events.iter().map(|e| e.reason).collect()
    }
}

#[test]
fn the_first_revision_goes_straight_to_stable() {
    let status = OcrServiceStatus::default();
    let plan = plan(&RolloutInput {
        desired_revision: "r1",
        status: &status,
        settings: &settings(),
        canary: CanaryObservation::default(),
        stable_rolled_out: false,
        stable_replicas: 0,
        stable_ready: 0,
        canary_problem: None,
        analysis: None,
        manual: None,
        now: &at(0),
    });
    assert_eq!(plan.stable_revision, "r1");
    assert_eq!(plan.canary_revision, None);
    assert!(plan.events.is_empty(), "RevisionApplied (status transitions) announces it: {:?}", plan.events);
}

#[test]
fn a_steady_state_decides_nothing() {
    let mut run = Run::stable("r1");
    let plan = run.round("r1", 0, CanaryObservation::default(), true, None);
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision.as_deref(), plan.canary_weight), ("r1", None, 0));
    assert!(plan.events.is_empty());
}

#[test]
fn a_good_canary_walks_every_step_then_promotes_and_retires() {
    let mut run = Run::stable("r1");
    let plan = run.round("r2", 0, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryStarted"]);
    assert_eq!((plan.canary_revision.as_deref(), plan.canary_weight), (Some("r2"), 10));

    // Ready; analysis passes but the step interval (60 s) has not passed yet.
    assert!(analysis_due(&run.status, &run.settings, READY, &at(10)));
    let plan = run.round("r2", 10, READY, true, Some(pass()));
    assert_eq!(plan.canary_weight, 10);
    assert!(!analysis_due(&run.status, &run.settings, READY, &at(20)), "analysed 10 s ago, interval 30 s");

    // Ready since 10 s: 60 s of serving at 70 s.
    let plan = run.round("r2", 61, READY, true, Some(pass()));
    assert_eq!(plan.canary_weight, 10);
    let plan = run.round("r2", 70, READY, true, Some(pass()));
    assert_eq!(Run::reasons(&plan), ["StepAdvanced"]);
    assert_eq!(plan.canary_weight, 50);
    let plan = run.round("r2", 131, READY, true, Some(pass()));
    assert_eq!(plan.canary_weight, 100);
    let plan = run.round("r2", 192, READY, true, Some(pass()));
    assert_eq!(Run::reasons(&plan), ["Promoted"]);
    assert_eq!(plan.stable_revision, "r2");
    assert_eq!(plan.canary_revision.as_deref(), Some("r2"), "the canary serves until stable has rolled");

    // Stable still rolling: nothing changes; then it is done and the canary retires.
    let plan = run.round("r2", 195, READY, false, None);
    assert_eq!((plan.canary_revision.as_deref(), plan.canary_weight), (Some("r2"), 100));
    assert!(plan.events.is_empty());
    let plan = run.round("r2", 205, READY, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryRetired"]);
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision, plan.canary_weight), ("r2", None, 0));
    // And it stays that way: no second promotion.
    let plan = run.round("r2", 305, CanaryObservation::default(), true, None);
    assert!(plan.events.is_empty() && plan.canary_revision.is_none());
}

#[test]
fn failed_checks_up_to_the_limit_roll_back_and_the_revision_is_not_retried() {
    let mut run = Run::stable("r1");
    run.round("bad", 0, STARTING, true, None);
    let plan = run.round("bad", 10, READY, true, Some(fail("canary golden accuracy 0.6686 < minAccuracy 0.9000")));
    assert_eq!(Run::reasons(&plan), ["AnalysisFailed"]);
    assert!(plan.events[0].warning && plan.events[0].message.contains("check 1 of 2"));
    assert_eq!(plan.canary.as_ref().unwrap().failed_checks, 1);
    let plan = run.round("bad", 40, READY, true, Some(fail("canary golden accuracy 0.6686 < minAccuracy 0.9000")));
    assert_eq!(Run::reasons(&plan), ["RolledBack"]);
    assert!(plan.events[0].message.contains("0.6686"), "{}", plan.events[0].message);
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision, plan.canary_weight), ("r1", None, 0));
    assert_eq!(plan.failed_revision.as_deref(), Some("bad"));
    assert!(plan.rolled_back);

    // The spec still asks for it: not retried, no new events.
    let plan = run.round("bad", 100, CanaryObservation::default(), true, None);
    assert!(plan.rolled_back && plan.canary_revision.is_none() && plan.events.is_empty());
    // A new spec starts a new canary.
    let plan = run.round("r3", 200, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryStarted"]);
    assert_eq!(plan.failed_revision.as_deref(), Some("bad"), "the record of the failure stays");
}

#[test]
fn a_pass_after_a_failure_does_not_reset_the_count() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.round("r2", 10, READY, true, Some(fail("P95")));
    run.round("r2", 40, READY, true, Some(pass()));
    let plan = run.round("r2", 70, READY, true, Some(fail("P95")));
    assert_eq!(Run::reasons(&plan), ["RolledBack"]);
}

#[test]
fn a_canary_that_never_becomes_ready_rolls_back_at_the_progress_deadline() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    let plan = run.round("r2", 599, STARTING, true, None);
    assert!(plan.events.is_empty() && plan.canary_revision.is_some());
    assert!(plan.requeue_after.unwrap() <= Duration::from_secs(5));
    let plan = run.round("r2", 600, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["RolledBack"]);
    assert!(plan.events[0].message.contains("0/1 Ready"), "{}", plan.events[0].message);
}

#[test]
fn a_step_lasts_step_interval_of_serving_not_of_starting() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    // Ready only after 50 s: a passing analysis at 55 s does not advance (5 s of serving).
    let plan = run.round("r2", 55, READY, true, Some(pass()));
    assert_eq!(plan.canary_weight, 10, "still the first step");
    let plan = run.round("r2", 100, READY, true, Some(pass()));
    assert_eq!(plan.canary_weight, 10, "45 s of serving < 60 s");
    let plan = run.round("r2", 116, READY, true, Some(pass()));
    assert_eq!(Run::reasons(&plan), ["StepAdvanced"]);
}

#[test]
fn no_analysis_no_progress() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    let plan = run.round("r2", 500, READY, true, None);
    assert_eq!(plan.canary_weight, 10, "steps advance on a passing analysis only");
}

#[test]
fn a_new_spec_mid_canary_restarts_the_canary() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.round("r2", 61, READY, true, Some(pass()));
    let plan = run.round("r3", 70, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryStarted"]);
    assert!(plan.events[0].message.contains("replaces canary r2"));
    assert_eq!((plan.canary_revision.as_deref(), plan.canary_weight), (Some("r3"), 10));
}

#[test]
fn going_back_to_the_stable_spec_aborts_the_canary() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    let plan = run.round("r1", 30, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryAborted"]);
    assert_eq!((plan.canary_revision, plan.canary_weight), (None, 0));
}

#[test]
fn a_restarted_operator_resumes_from_status() {
    // Two controllers reading the same status decide the same thing: no double advance.
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.round("r2", 5, READY, true, Some(pass()));
    run.round("r2", 66, READY, true, Some(pass()));
    let snapshot = run.status.clone();
    let first = run.round("r2", 70, READY, true, None);
    run.status = snapshot;
    let second = run.round("r2", 70, READY, true, None);
    assert_eq!(first, second);
    assert_eq!(first.canary_weight, 50);
}

#[test]
fn canary_replicas_realise_the_weight() {
    assert_eq!(canary_replicas(4, 0), 0);
    assert_eq!(canary_replicas(4, 10), 1, "at least one pod");
    assert_eq!(canary_replicas(4, 50), 4);
    assert_eq!(canary_replicas(9, 10), 1);
    assert_eq!(canary_replicas(9, 25), 3);
    assert_eq!(canary_replicas(2, 100), 2);
    assert_eq!(canary_replicas(0, 50), 1);
}

#[test]
fn promote_by_request_skips_the_remaining_steps_once() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.round("r2", 10, READY, true, Some(pass()));
    run.manual = Some(ManualAction::Promote);
    let plan = run.round("r2", 20, READY, true, None);
    assert_eq!(Run::reasons(&plan), ["ManualPromote", "Promoted"]);
    assert!(plan.events[0].message.contains("at 10%"), "{}", plan.events[0].message);
    assert_eq!(plan.stable_revision, "r2");
    assert_eq!((plan.canary_revision.as_deref(), plan.canary_weight), (Some("r2"), 100));
    // Then the usual end: the canary retires once stable has rolled, and nothing repeats.
    let plan = run.round("r2", 25, READY, true, None);
    assert_eq!(Run::reasons(&plan), ["CanaryRetired"]);
    run.manual = Some(ManualAction::Promote);
    let plan = run.round("r2", 30, CanaryObservation::default(), true, None);
    assert_eq!(Run::reasons(&plan), ["ManualActionIgnored"]);
    assert!(plan.events[0].message.contains("no canary is running"), "{}", plan.events[0].message);
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision), ("r2", None));
}

#[test]
fn a_canary_not_ready_yet_can_be_promoted_by_request() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.manual = Some(ManualAction::Promote);
    let plan = run.round("r2", 5, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["ManualPromote", "Promoted"]);
    assert_eq!(plan.stable_revision, "r2", "stable's own rolling update waits for Ready pods");
}

#[test]
fn abort_by_request_rolls_back_and_retry_starts_the_canary_again() {
    let mut run = Run::stable("r1");
    run.round("r2", 0, STARTING, true, None);
    run.round("r2", 10, READY, true, Some(pass()));
    run.manual = Some(ManualAction::Abort);
    let plan = run.round("r2", 20, READY, true, None);
    assert_eq!(Run::reasons(&plan), ["ManualAbort", "RolledBack"]);
    assert!(plan.events[1].warning && plan.events[1].message.contains("aborted by request"));
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision, plan.canary_weight), ("r1", None, 0));
    assert_eq!(plan.failed_revision.as_deref(), Some("r2"));
    assert!(plan.rolled_back);

    // Rolled back: promote and abort do not apply; nothing changes.
    for action in [ManualAction::Promote, ManualAction::Abort] {
        run.manual = Some(action);
        let plan = run.round("r2", 30, CanaryObservation::default(), true, None);
        assert_eq!(Run::reasons(&plan), ["ManualActionIgnored"]);
        assert!(plan.events[0].message.contains("ask for retry"), "{}", plan.events[0].message);
        assert!(plan.rolled_back && plan.canary_revision.is_none());
    }

    run.manual = Some(ManualAction::Retry);
    let plan = run.round("r2", 40, CanaryObservation::default(), true, None);
    assert_eq!(Run::reasons(&plan), ["ManualRetry", "CanaryStarted"]);
    assert_eq!((plan.canary_revision.as_deref(), plan.canary_weight), (Some("r2"), 10));
    assert_eq!(plan.failed_revision, None);
    assert!(!plan.rolled_back);
    // The retried canary goes on by itself.
    let plan = run.round("r2", 50, READY, true, Some(pass()));
    assert!(plan.events.is_empty() && plan.canary_revision.as_deref() == Some("r2"));
}

#[test]
fn retry_without_a_rollback_and_requests_at_rest_are_ignored_with_the_reason() {
    let mut run = Run::stable("r1");
    run.manual = Some(ManualAction::Retry);
    let plan = run.round("r1", 0, CanaryObservation::default(), true, None);
    assert_eq!(Run::reasons(&plan), ["ManualActionIgnored"]);
    assert!(plan.events[0].message.contains("has not been rolled back"), "{}", plan.events[0].message);

    run.round("r2", 10, STARTING, true, None);
    run.manual = Some(ManualAction::Retry);
    let plan = run.round("r2", 20, STARTING, true, None);
    assert_eq!(Run::reasons(&plan), ["ManualActionIgnored"]);
    assert_eq!(plan.canary_revision.as_deref(), Some("r2"), "the running canary is untouched");
}

#[test]
fn the_canary_runs_the_dynamic_share_or_the_replicas_for_its_weight() {
    let mut run = Run::stable("r1");
    let plan = run.round("r2", 0, STARTING, true, None);
    assert_eq!(plan.canary_weight, 10);
    assert_eq!(plan.canary_size(4), canary_replicas(4, 10));
    let shared = RolloutPlan {
        dynamic: Some(DynamicScale { sizes: TrackSizes { stable: 3, canary: 2 }, stable_must_reach: false }),
        ..plan.clone()
    };
    assert_eq!(shared.canary_size(4), 2, "a dynamic rollout's share wins over the weight");
    assert!(!plan.rolls_back());
}

#[test]
fn only_the_round_that_rolls_back_says_so() {
    let mut run = Run::stable("r1");
    run.round("bad", 0, STARTING, true, None);
    run.round("bad", 10, READY, true, Some(fail("slow")));
    let plan = run.round("bad", 40, READY, true, Some(fail("slow")));
    assert!(plan.rolls_back());
    let plan = run.round("bad", 100, CanaryObservation::default(), true, None);
    assert!(plan.rolled_back && !plan.rolls_back(), "the rollback still stands, but it happened earlier");
}

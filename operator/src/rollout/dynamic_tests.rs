//! The rollout with `dynamicStableScale` as a sequence of rounds, each plan fed back as the
//! next status: stable's share shrinks as the canary grows, the promotion hands the pods
//! back one at a time, and a rollback, an abort or a restart leave nothing half-scaled.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube_ocr_crds::{AnalysisStatus, OcrServiceStatus};

use super::*;
use crate::analysis::verdict::Verdict;

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
}

fn pass() -> Verdict {
    Verdict { passed: true, reasons: vec![] }
}

fn sizes(stable: i32, canary: i32) -> TrackSizes {
    TrackSizes { stable, canary }
}

/// What the cluster looks like in a round.
#[derive(Clone, Copy)]
struct Cluster {
    canary: CanaryObservation,
    stable_replicas: i32,
    stable_ready: i32,
    stable_rolled_out: bool,
}

fn canary_ready(pods: i32) -> CanaryObservation {
    CanaryObservation { desired: pods, ready: pods }
}

fn stable(replicas: i32) -> Cluster {
    Cluster {
        canary: CanaryObservation::default(),
        stable_replicas: replicas,
        stable_ready: replicas,
        stable_rolled_out: true,
    }
}

struct Run {
    status: OcrServiceStatus,
    settings: RolloutSettings,
    manual: Option<ManualAction>,
}

impl Run {
    fn new(steps: &[i32]) -> Self {
        Self {
            status: OcrServiceStatus { stable_revision: Some("r1".into()), ..OcrServiceStatus::default() },
            settings: RolloutSettings {
                steps: steps.to_vec(),
                step_interval: Duration::from_secs(60),
                analysis_interval: Duration::from_secs(30),
                failure_limit: 2,
                progress_deadline: Duration::from_secs(600),
                dynamic_stable_scale: true,
            },
            manual: None,
        }
    }

    fn decide(&self, desired: &str, second: i64, cluster: Cluster, analysis: Option<&Verdict>) -> RolloutPlan {
        plan(&RolloutInput {
            desired_revision: desired,
            status: &self.status,
            settings: &self.settings,
            canary: cluster.canary,
            stable_rolled_out: cluster.stable_rolled_out,
            stable_replicas: cluster.stable_replicas,
            stable_ready: cluster.stable_ready,
            canary_problem: None,
            analysis,
            manual: self.manual,
            now: &at(second),
        })
    }

    fn round(&mut self, desired: &str, second: i64, cluster: Cluster, analysis: Option<Verdict>) -> RolloutPlan {
        let plan = self.decide(desired, second, cluster, analysis.as_ref());
        self.status.stable_revision = Some(plan.stable_revision.clone());
        self.status.canary_revision = plan.canary_revision.clone();
        self.status.canary = plan.canary.clone();
        self.status.failed_revision = plan.failed_revision.clone();
        if analysis.is_some() {
            self.status.last_analysis = Some(AnalysisStatus { at: Some(at(second)), ..AnalysisStatus::default() });
        }
        plan
    }

    fn reasons(plan: &RolloutPlan) -> Vec<&'static str> {
        plan.events.iter().map(|e| e.reason).collect()
    }
}

/// Walks base-4 stable through 10 → 50 → 100 to the promotion; returns the next second.
fn walk_to_promotion(run: &mut Run) -> i64 {
    let plan = run.round("r2", 0, stable(4), None);
    assert_eq!(run.status.canary.as_ref().unwrap().stable_replicas, Some(4), "the base is in status");
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(3, 1));
    assert!(!plan.dynamic.unwrap().stable_must_reach, "during steps the HPA may run stable below its share");
    let mut cluster = Cluster { canary: canary_ready(1), ..stable(3) };
    run.round("r2", 10, cluster, Some(pass()));
    let plan = run.round("r2", 71, cluster, Some(pass()));
    assert_eq!((plan.canary_weight, plan.dynamic.unwrap().sizes), (50, sizes(2, 2)));
    cluster = Cluster { canary: canary_ready(2), ..stable(2) };
    run.round("r2", 80, cluster, Some(pass()));
    let plan = run.round("r2", 141, cluster, Some(pass()));
    assert_eq!((plan.canary_weight, plan.dynamic.unwrap().sizes), (100, sizes(1, 3)));
    cluster = Cluster { canary: canary_ready(3), ..stable(1) };
    run.round("r2", 150, cluster, Some(pass()));
    let plan = run.round("r2", 211, cluster, Some(pass()));
    assert_eq!(Run::reasons(&plan), ["Promoted"]);
    assert_eq!(plan.stable_revision, "r2");
    let scale = plan.dynamic.unwrap();
    assert_eq!((scale.sizes, scale.stable_must_reach), (sizes(1, 3), true));
    assert_eq!(plan.canary_weight, 100, "the canary serves while stable replaces its pod in place");
    212
}

#[test]
fn stable_shrinks_as_the_canary_grows_and_grows_back_pod_by_pod_after_the_promotion() {
    let mut run = Run::new(&[10, 50, 100]);
    let second = walk_to_promotion(&mut run);
    let rolling = Cluster { canary: canary_ready(3), stable_replicas: 1, stable_ready: 0, stable_rolled_out: false };
    let plan = run.round("r2", second, rolling, None);
    assert_eq!((plan.dynamic.unwrap().sizes, plan.canary_revision.as_deref()), (sizes(1, 3), Some("r2")));
    assert!(plan.events.is_empty());

    // Stable runs r2 on its one pod: the canary gives one pod back.
    let plan = run.round("r2", second + 5, Cluster { canary: canary_ready(3), ..stable(1) }, None);
    assert_eq!((plan.dynamic.unwrap().sizes, plan.canary_weight), (sizes(2, 2), 67), "2 of 3 Ready pods");
    assert_eq!(run.status.canary.as_ref().unwrap().handover_canary_replicas, Some(2));
    // The HPA has not grown stable yet (rolled out at 1 of 2): nothing moves.
    let plan = run.round("r2", second + 10, Cluster { canary: canary_ready(2), ..stable(1) }, None);
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(2, 2));
    let starting = Cluster { canary: canary_ready(2), stable_replicas: 2, stable_ready: 1, stable_rolled_out: false };
    let plan = run.round("r2", second + 15, starting, None);
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(2, 2), "stable's second pod is still starting");
    let plan = run.round("r2", second + 20, Cluster { canary: canary_ready(2), ..stable(2) }, None);
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(3, 1));
    let plan = run.round("r2", second + 25, Cluster { canary: canary_ready(1), ..stable(3) }, None);
    assert_eq!((plan.dynamic.unwrap().sizes, plan.canary_weight), (sizes(4, 0), 0));
    assert_eq!(plan.canary_revision.as_deref(), Some("r2"), "retired only once stable holds every pod");
    let plan = run.round("r2", second + 30, stable(4), None);
    assert_eq!(Run::reasons(&plan), ["CanaryRetired"]);
    assert_eq!((plan.canary_revision, plan.dynamic, plan.canary), (None, None, None), "the HPA gets its bounds back");
    let plan = run.round("r2", second + 35, stable(4), None);
    assert!(plan.events.is_empty() && plan.dynamic.is_none());
}

#[test]
fn a_restarted_operator_takes_the_same_decision_from_status() {
    let mut run = Run::new(&[10, 50, 100]);
    let second = walk_to_promotion(&mut run);
    let cluster = Cluster { canary: canary_ready(3), ..stable(1) };
    run.round("r2", second, cluster, None);
    // Same status, same cluster: a new operator process plans the same handover.
    let cluster = Cluster { canary: canary_ready(2), ..stable(1) };
    let first = run.decide("r2", second + 1, cluster, None);
    let again = run.decide("r2", second + 1, cluster, None);
    assert_eq!(first, again);
    assert_eq!(first.dynamic.unwrap().sizes, sizes(2, 2), "no second pod handed over for the same stable");
}

#[test]
fn a_rollback_gives_stable_its_bounds_back() {
    let mut run = Run::new(&[50, 100]);
    run.settings.progress_deadline = Duration::from_secs(30);
    let plan = run.round("r2", 0, stable(2), None);
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(1, 1));
    let pending = Cluster { canary: CanaryObservation { desired: 1, ready: 0 }, ..stable(1) };
    let plan = plan_with_problem(&run, pending, "pod ocr-canary-x is Unschedulable: 0/1 nodes are available");
    assert_eq!(Run::reasons(&plan), ["RolledBack"]);
    assert!(plan.events[0].message.contains("Unschedulable: 0/1 nodes"), "{}", plan.events[0].message);
    assert_eq!((plan.dynamic, plan.canary_revision), (None, None));
    run.round("r2", 31, pending, None);
    let plan = run.round("r2", 40, stable(1), None);
    assert!(plan.rolled_back && plan.dynamic.is_none(), "the failed revision keeps stable at the spec's bounds");
}

fn plan_with_problem(run: &Run, cluster: Cluster, problem: &str) -> RolloutPlan {
    plan(&RolloutInput {
        desired_revision: "r2",
        status: &run.status,
        settings: &run.settings,
        canary: cluster.canary,
        stable_rolled_out: cluster.stable_rolled_out,
        stable_replicas: cluster.stable_replicas,
        stable_ready: cluster.stable_ready,
        canary_problem: Some(problem),
        analysis: None,
        manual: None,
        now: &at(31),
    })
}

#[test]
fn an_abort_gives_stable_its_bounds_back() {
    let mut run = Run::new(&[50, 100]);
    run.round("r2", 0, stable(2), None);
    let plan = run.round("r1", 5, Cluster { canary: canary_ready(1), ..stable(1) }, None);
    assert_eq!(Run::reasons(&plan), ["CanaryAborted"]);
    assert_eq!((plan.dynamic, plan.canary_revision), (None, None));
}

#[test]
fn a_newer_revision_keeps_the_base_of_the_rollout_it_replaces() {
    let mut run = Run::new(&[50, 100]);
    run.round("r2", 0, stable(4), None);
    // Stable runs its share (2) when r3 replaces the canary: the base stays 4.
    let plan = run.round("r3", 5, Cluster { canary: canary_ready(2), ..stable(2) }, None);
    assert_eq!(Run::reasons(&plan), ["CanaryStarted"]);
    assert_eq!(run.status.canary.as_ref().unwrap().stable_replicas, Some(4));
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(2, 2));
}

#[test]
fn turned_on_or_off_mid_rollout() {
    let mut run = Run::new(&[50, 100]);
    run.settings.dynamic_stable_scale = false;
    let plan = run.round("r2", 0, stable(3), None);
    assert_eq!((plan.dynamic, run.status.canary.as_ref().unwrap().stable_replicas), (None, None));
    run.settings.dynamic_stable_scale = true;
    let plan = run.round("r2", 5, Cluster { canary: canary_ready(2), ..stable(3) }, None);
    assert_eq!(run.status.canary.as_ref().unwrap().stable_replicas, Some(3), "stable was full: that is the base");
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(1, 2));
    run.settings.dynamic_stable_scale = false;
    let plan = run.round("r2", 10, Cluster { canary: canary_ready(2), ..stable(1) }, None);
    assert_eq!((plan.dynamic, run.status.canary.as_ref().unwrap().stable_replicas), (None, None));
}

#[test]
fn one_stable_pod_hands_over_to_itself() {
    let mut run = Run::new(&[100]);
    run.round("r2", 0, stable(1), None);
    assert_eq!(run.status.canary.as_ref().unwrap().stable_replicas, Some(1));
    let cluster = Cluster { canary: canary_ready(1), ..stable(1) };
    run.round("r2", 10, cluster, Some(pass()));
    let plan = run.round("r2", 71, cluster, Some(pass()));
    assert_eq!(Run::reasons(&plan), ["Promoted"]);
    assert_eq!(plan.dynamic.unwrap().sizes, sizes(1, 1));
    let plan = run.round("r2", 72, Cluster { canary: canary_ready(1), ..stable(1) }, None);
    assert_eq!((plan.dynamic.unwrap().sizes, plan.canary_weight), (sizes(1, 0), 0));
    let plan = run.round("r2", 77, stable(1), None);
    assert_eq!(Run::reasons(&plan), ["CanaryRetired"]);
}

#[test]
fn a_manual_promote_hands_over_from_the_step_it_came_at() {
    let mut run = Run::new(&[10, 50, 100]);
    run.round("r2", 0, stable(4), None);
    let cluster = Cluster { canary: canary_ready(1), ..stable(3) };
    run.round("r2", 10, cluster, None);
    run.manual = Some(ManualAction::Promote);
    let plan = run.round("r2", 15, cluster, None);
    run.manual = None;
    assert!(Run::reasons(&plan).contains(&"Promoted"), "{:?}", Run::reasons(&plan));
    let scale = plan.dynamic.unwrap();
    assert_eq!((scale.sizes, scale.stable_must_reach), (sizes(3, 1), true), "no detour through the last step");
    assert_eq!(run.status.canary.as_ref().unwrap().handover_canary_replicas, Some(1));
    // Stable replaces its three pods in place; then it takes the canary's pod back.
    let rolling = Cluster { canary: canary_ready(1), stable_replicas: 3, stable_ready: 1, stable_rolled_out: false };
    assert_eq!(run.round("r2", 20, rolling, None).dynamic.unwrap().sizes, sizes(3, 1));
    let plan = run.round("r2", 25, Cluster { canary: canary_ready(1), ..stable(3) }, None);
    assert_eq!((plan.dynamic.unwrap().sizes, plan.canary_weight), (sizes(4, 0), 0));
    let plan = run.round("r2", 30, stable(4), None);
    assert_eq!(Run::reasons(&plan), ["CanaryRetired"]);
}

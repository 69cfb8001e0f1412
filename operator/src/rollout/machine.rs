use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::{CanaryStatus, OcrServiceStatus};

use super::dynamic::{DynamicScale, handover_sizes, handover_weight, step_sizes};
use super::manual::ManualAction;
use super::settings::RolloutSettings;
use crate::analysis::verdict::Verdict;

/// The canary Deployment as observed: replicas of the canary revision that are Ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CanaryObservation {
    pub desired: i32,
    pub ready: i32,
}

impl CanaryObservation {
    pub fn is_ready(&self) -> bool {
        self.desired > 0 && self.ready >= self.desired
    }
}

#[derive(Debug, Clone)]
pub struct RolloutInput<'a> {
    /// The revision the spec asks for (hash of everything in the pod template).
    pub desired_revision: &'a str,
    pub status: &'a OcrServiceStatus,
    pub settings: &'a RolloutSettings,
    pub canary: CanaryObservation,
    /// Whether the stable Deployment runs `status.stableRevision` with all replicas Ready
    /// (needed to retire the canary after a promotion).
    pub stable_rolled_out: bool,
    /// Pods the stable Deployment runs now (what the HPA set), and how many of them are
    /// Ready at `status.stableRevision`: the base of a dynamic rollout, and the handover's
    /// progress.
    pub stable_replicas: i32,
    pub stable_ready: i32,
    /// Why canary pods are not Ready, as Kubernetes says it (e.g. Unschedulable with the
    /// scheduler's message), for the rollback at the progress deadline.
    pub canary_problem: Option<&'a str>,
    /// This round's analysis, when it was due and ran.
    pub analysis: Option<&'a Verdict>,
    /// What a human asked for with the rollout-action annotation, this round.
    pub manual: Option<ManualAction>,
    pub now: &'a Time,
}

/// A decision worth an Event; `warning` ones are the ones a human must look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What the rollout wants: which revision each track runs, the canary weight, the next
/// rollout fields of status, and the events of this decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub stable_revision: String,
    /// `None` = no canary (scaled to zero).
    pub canary_revision: Option<String>,
    /// Share of traffic for the canary, in percent.
    pub canary_weight: i32,
    pub canary: Option<CanaryStatus>,
    pub failed_revision: Option<String>,
    /// The rollout ended in a rollback that still stands (the spec still asks for the
    /// failed revision).
    pub rolled_back: bool,
    pub events: Vec<RolloutEvent>,
    /// Come back after this long even if nothing changes (next analysis, step, deadline).
    pub requeue_after: Option<Duration>,
    /// With `dynamicStableScale`, while a canary runs: each track's share. `None`: stable
    /// at the spec's bounds, the canary by [`canary_replicas`].
    pub dynamic: Option<DynamicScale>,
}

impl RolloutPlan {
    /// Only stable, at `stable_revision`: no canary, no rollback, nothing to do (for tests
    /// that vary one field from there).
    #[cfg(test)]
    pub(crate) fn steady(stable_revision: &str) -> Self {
        Self {
            stable_revision: stable_revision.to_owned(),
            canary_revision: None,
            canary_weight: 0,
            canary: None,
            failed_revision: None,
            rolled_back: false,
            events: Vec::new(),
            requeue_after: None,
            dynamic: None,
        }
    }

    /// Replicas of the canary Deployment for this plan, when stable runs `stable_replicas`:
    /// the dynamic share, or what realises the weight with the `replicas` provider.
    pub fn canary_size(&self, stable_replicas: i32) -> i32 {
        match &self.dynamic {
            Some(scale) => scale.sizes.canary,
            None => canary_replicas(stable_replicas, self.canary_weight),
        }
    }

    /// This round rolled the canary back.
    pub fn rolls_back(&self) -> bool {
        self.events.iter().any(|e| e.reason == "RolledBack")
    }
}

/// Whether the controller should run an analysis before calling [`plan`]: a canary is
/// Ready at a step and the last analysis is at least one interval old.
pub fn analysis_due(
    input_status: &OcrServiceStatus,
    settings: &RolloutSettings,
    canary: CanaryObservation,
    now: &Time,
) -> bool {
    let Some(progress) = &input_status.canary else { return false };
    if input_status.canary_revision.is_none() || !canary.is_ready() || progress.weight <= 0 {
        return false;
    }
    match input_status.last_analysis.as_ref().and_then(|a| a.at.as_ref()) {
        None => true,
        Some(at) => elapsed(now, at) >= settings.analysis_interval,
    }
}

/// Canary replicas that realise `weight` percent of `stable_replicas` + canary with the
/// `replicas` traffic provider: at least one while the canary runs.
pub fn canary_replicas(stable_replicas: i32, weight: i32) -> i32 {
    if weight <= 0 {
        return 0;
    }
    if weight >= 100 {
        return stable_replicas.max(1);
    }
    // canary / (stable + canary) = weight  →  canary = stable × w / (100 − w)
    let exact = f64::from(stable_replicas.max(1)) * f64::from(weight) / f64::from(100 - weight);
    (exact.round() as i32).clamp(1, stable_replicas.max(1))
}

pub fn plan(input: &RolloutInput<'_>) -> RolloutPlan {
    let (manual, ignored) = manual_action_for(input);
    let mut plan = decide(input, manual);
    plan.events.extend(ignored);
    plan
}

/// The manual action to carry out, or the event saying why it does not apply now (a
/// request is removed when read, so it must not wait for a better moment).
fn manual_action_for(input: &RolloutInput<'_>) -> (Option<ManualAction>, Option<RolloutEvent>) {
    let Some(action) = input.manual else { return (None, None) };
    let status = input.status;
    let desired = input.desired_revision;
    let stable = status.stable_revision.as_deref();
    let failed = status.failed_revision.as_deref() == Some(desired);
    let canary_running = status.canary_revision.as_deref() == Some(desired) && status.canary.is_some() && !failed;
    let applies = stable.is_some_and(|stable| stable != desired)
        && match action {
            ManualAction::Promote | ManualAction::Abort => canary_running,
            ManualAction::Retry => failed,
        };
    if applies {
        return (Some(action), None);
    }
    let why = match action {
        ManualAction::Promote | ManualAction::Abort if failed => {
            format!("revision {desired} was rolled back; ask for retry to start its canary again")
        }
        ManualAction::Promote | ManualAction::Abort => "no canary is running".to_owned(),
        ManualAction::Retry => format!("revision {desired} has not been rolled back"),
    };
    (None, Some(event(true, "ManualActionIgnored", format!("{action} requested but {why}"))))
}

fn decide(input: &RolloutInput<'_>, manual: Option<ManualAction>) -> RolloutPlan {
    let status = input.status;
    let desired = input.desired_revision;
    let mut plan = RolloutPlan {
        stable_revision: status.stable_revision.clone().unwrap_or_else(|| desired.to_owned()),
        canary_revision: None,
        canary_weight: 0,
        canary: None,
        failed_revision: status.failed_revision.clone(),
        rolled_back: false,
        events: Vec::new(),
        requeue_after: None,
        dynamic: None,
    };
    // The first revision goes straight to stable. The status's RevisionApplied event says
    // so (with model and image); a second event here would repeat it.
    let Some(stable) = status.stable_revision.as_deref() else { return plan };

    // A promotion in progress: stable already runs the canary's revision; the canary keeps
    // serving until stable has rolled out, then retires.
    if status.canary_revision.as_deref() == Some(stable) {
        let handover = status.canary.as_ref().and_then(|p| p.stable_replicas.map(|base| (p, base)));
        if let (true, Some((progress, base))) = (input.settings.dynamic_stable_scale, handover) {
            if let Some(left) = hand_over(&mut plan, input, progress, base, stable) {
                plan.canary = Some(CanaryStatus { handover_canary_replicas: Some(left), ..progress.clone() });
            }
        } else if input.stable_rolled_out {
            plan.events.push(event(false, "CanaryRetired", format!("stable runs {stable} on all replicas")));
        } else {
            plan.canary_revision = Some(stable.to_owned());
            plan.canary_weight = 100;
            plan.canary = status.canary.clone();
            plan.requeue_after = Some(Duration::from_secs(5));
        }
        if desired == stable {
            return plan;
        }
    }

    if desired == stable {
        if let Some(canary) = status.canary_revision.as_deref().filter(|c| *c != stable) {
            plan.events.push(event(
                false,
                "CanaryAborted",
                format!("the spec went back to stable revision {stable}; canary {canary} removed"),
            ));
        }
        return plan;
    }

    if status.failed_revision.as_deref() == Some(desired) {
        if manual != Some(ManualAction::Retry) {
            // Not retried until the spec changes again, or a human asks.
            plan.rolled_back = true;
            return plan;
        }
        plan.failed_revision = None;
        plan.events.push(event(
            false,
            "ManualRetry",
            format!("retry of rolled-back revision {desired} requested; its canary starts again"),
        ));
    }

    let settings = input.settings;
    let now = input.now;
    let progress = status.canary.clone().filter(|_| status.canary_revision.as_deref() == Some(desired));
    // The base of a dynamic rollout survives a canary replaced by a newer revision: stable
    // is shrunk by then, and its current size is not what it had.
    let base = status.canary.as_ref().and_then(|p| p.stable_replicas).unwrap_or(input.stable_replicas.max(1));
    let base = settings.dynamic_stable_scale.then_some(base);
    let Some(mut progress) = progress else {
        let weight = settings.steps.first().copied().unwrap_or(100);
        let restarted = status.canary_revision.as_deref().filter(|c| *c != stable && *c != desired);
        plan.events.push(event(
            false,
            "CanaryStarted",
            match restarted {
                Some(previous) => format!("revision {desired} replaces canary {previous}; step 1 at {weight}%"),
                None => format!("canary {desired} started against stable {stable}; step 1 at {weight}%"),
            },
        ));
        plan.canary_revision = Some(desired.to_owned());
        plan.canary_weight = weight;
        plan.canary = Some(CanaryStatus {
            step: 0,
            weight,
            step_started_at: Some(now.clone()),
            failed_checks: 0,
            ready_replicas: Some(input.canary.ready),
            ready_since: input.canary.is_ready().then(|| now.clone()),
            stable_replicas: base,
            handover_canary_replicas: None,
        });
        plan.dynamic = base.map(|base| steps_scale(base, weight));
        plan.requeue_after = Some(settings.analysis_interval);
        return plan;
    };

    match manual {
        Some(ManualAction::Abort) => {
            plan.events.push(event(
                false,
                "ManualAbort",
                format!("abort of canary {desired} at {}% requested", progress.weight),
            ));
            return rollback(plan, desired, stable, format!("aborted by request at {}%", progress.weight));
        }
        Some(ManualAction::Promote) => {
            let message = format!(
                "promotion of canary {desired} at {}% requested; the remaining steps and analyses are skipped",
                progress.weight
            );
            plan.events.push(event(false, "ManualPromote", message));
            return promote(plan, progress, desired, base, "promoted by request; stable now rolls to it");
        }
        Some(ManualAction::Retry) | None => {}
    }

    progress.ready_replicas = Some(input.canary.ready);
    // Turned on mid-rollout, stable is still at full size: that is the base. Turned off,
    // stable goes back to the spec's bounds.
    progress.stable_replicas = base;
    progress.handover_canary_replicas = None;
    plan.dynamic = base.map(|base| steps_scale(base, progress.weight));
    let step_age = progress.step_started_at.as_ref().map_or(Duration::ZERO, |at| elapsed(now, at));
    plan.canary_revision = Some(desired.to_owned());
    plan.canary_weight = progress.weight;

    if !input.canary.is_ready() {
        progress.ready_since = None;
        if step_age >= settings.progress_deadline {
            return rollback(
                plan,
                desired,
                stable,
                format!(
                    "canary {desired} had {}/{} Ready pods {}s into step {} (progressDeadline {}s); {}",
                    input.canary.ready,
                    input.canary.desired,
                    step_age.as_secs(),
                    progress.step + 1,
                    settings.progress_deadline.as_secs(),
                    input.canary_problem.unwrap_or("check its pods' events and logs"),
                ),
            );
        }
        plan.canary = Some(progress);
        plan.requeue_after = Some(Duration::from_secs(5).min(settings.progress_deadline.saturating_sub(step_age)));
        return plan;
    }

    let ready_since = progress.ready_since.get_or_insert_with(|| now.clone()).clone();
    let serving_for = elapsed(now, &ready_since).min(step_age);
    if let Some(verdict) = input.analysis {
        if !verdict.passed {
            progress.failed_checks += 1;
            let reasons = verdict.reasons.join("; ");
            if progress.failed_checks >= settings.failure_limit {
                return rollback(
                    plan,
                    desired,
                    stable,
                    format!(
                        "analysis failed {} of {} allowed times at {}%: {reasons}",
                        progress.failed_checks, settings.failure_limit, progress.weight
                    ),
                );
            }
            plan.events.push(event(
                true,
                "AnalysisFailed",
                format!(
                    "check {} of {} failed at {}%: {reasons}",
                    progress.failed_checks, settings.failure_limit, progress.weight
                ),
            ));
        } else if serving_for >= settings.step_interval {
            let next = progress.step as usize + 1;
            match settings.steps.get(next) {
                Some(&weight) => {
                    plan.events.push(event(
                        false,
                        "StepAdvanced",
                        format!(
                            "canary {desired} passed {}% for {}s; now {weight}%",
                            progress.weight,
                            step_age.as_secs()
                        ),
                    ));
                    progress.step = next as u32;
                    progress.weight = weight;
                    progress.step_started_at = Some(now.clone());
                    progress.ready_since = Some(now.clone());
                    plan.canary_weight = weight;
                    plan.dynamic = base.map(|base| steps_scale(base, weight));
                }
                None => {
                    return promote(plan, progress, desired, base, "passed every step; stable now rolls to it");
                }
            }
        }
    }
    plan.canary = Some(progress);
    plan.requeue_after = Some(settings.analysis_interval.min(settings.step_interval));
    plan
}

/// Stable takes the canary's revision; the canary serves until stable has rolled.
fn promote(
    mut plan: RolloutPlan,
    mut progress: CanaryStatus,
    desired: &str,
    base: Option<i32>,
    why: &str,
) -> RolloutPlan {
    plan.events.push(event(false, "Promoted", format!("canary {desired} {why}")));
    plan.stable_revision = desired.to_owned();
    plan.canary_revision = Some(desired.to_owned());
    plan.canary_weight = 100;
    if let Some(base) = base {
        // Stable rolls the pods of its share in place (maxSurge 0) while the canary serves;
        // the handover then moves the pods back one at a time. It starts from the shares of
        // the step the promotion came at (a manual promote can come before the last step).
        let canary = step_sizes(base, progress.weight).canary;
        progress.stable_replicas = Some(base);
        plan.dynamic = Some(handover_scale(base, canary));
        plan.canary_weight = handover_weight(handover_sizes(base, canary), canary, 0);
        progress.handover_canary_replicas = Some(canary);
    }
    plan.canary = Some(progress);
    plan.requeue_after = Some(Duration::from_secs(5));
    plan
}

fn rollback(mut plan: RolloutPlan, desired: &str, stable: &str, why: String) -> RolloutPlan {
    plan.events.push(event(true, "RolledBack", format!("rolled back to {stable}: {why}")));
    plan.canary_revision = None;
    plan.canary_weight = 0;
    plan.canary = None;
    plan.failed_revision = Some(desired.to_owned());
    plan.rolled_back = true;
    plan.requeue_after = None;
    plan.dynamic = None;
    plan
}

fn steps_scale(base: i32, weight: i32) -> DynamicScale {
    DynamicScale { sizes: step_sizes(base, weight), stable_must_reach: false }
}

fn handover_scale(base: i32, canary: i32) -> DynamicScale {
    DynamicScale { sizes: handover_sizes(base, canary), stable_must_reach: true }
}

/// One round of a dynamic promotion: once stable runs the new revision on all the pods of
/// its share, the canary gives one more pod back. The canary only shrinks after stable's
/// pods are Ready, and stable only grows into a pod the canary has released, so the two
/// never need more than `base` pods and never wait on each other. Returns the canary pods
/// left, to record, or `None` when the canary is retired.
fn hand_over(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    progress: &CanaryStatus,
    base: i32,
    stable: &str,
) -> Option<i32> {
    let mut left = progress.handover_canary_replicas.unwrap_or_else(|| step_sizes(base, progress.weight).canary);
    let sizes = handover_sizes(base, left);
    let stable_full = input.stable_rolled_out && input.stable_ready >= sizes.stable;
    if stable_full && sizes.canary == 0 {
        plan.events.push(event(
            false,
            "CanaryRetired",
            format!("stable runs {stable} on all {} replicas", sizes.stable),
        ));
        return None;
    }
    if stable_full {
        left -= 1;
    }
    let sizes = handover_sizes(base, left);
    plan.canary_revision = Some(stable.to_owned());
    plan.canary_weight = handover_weight(sizes, input.canary.ready, input.stable_ready);
    plan.dynamic = Some(handover_scale(base, left));
    plan.requeue_after = Some(Duration::from_secs(5));
    Some(left)
}

fn event(warning: bool, reason: &'static str, message: String) -> RolloutEvent {
    RolloutEvent { warning, reason, message }
}

/// Time from `then` to `now`; zero if the clock went backwards.
pub(crate) fn elapsed(now: &Time, then: &Time) -> Duration {
    let millis = now.0.as_millisecond() - then.0.as_millisecond();
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

//! One reconcile: build the desired state, apply it, observe, write status and events.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use kube_ocr_crds::OcrService;
use tracing::{debug, warn};

use super::children::{Removals, apply_children};
use super::context::Context;
use super::manual::take_request;
use super::measure::{Analyst, PodAnalyst};
use super::references::check_references;
use super::report::{patch_status, publish};
use super::rollout::{RolloutOutcome, rollout_step, scale_stable};
use crate::builders::{DesiredState, desired_state, jobs_front_name, share_stable, start_at_hpa_min, wake_for_hpa};
use crate::error::OperatorError;
use crate::status::{
    EventNote, JOBS_STATUS_INTERVAL, Observation, compute_status, diagnose, jobs_status, jobs_status_due,
    overlay_rollout, recheck_after, transitions,
};

/// `status.autoscaler` values.
const KEDA_AUTOSCALER: &str = "keda";
const HPA_AUTOSCALER: &str = "hpa";

fn previous_autoscaler(ocr: &OcrService) -> Option<&'static str> {
    match ocr.status.as_ref()?.autoscaler.as_deref()? {
        KEDA_AUTOSCALER => Some(KEDA_AUTOSCALER),
        HPA_AUTOSCALER => Some(HPA_AUTOSCALER),
        _ => None,
    }
}

/// Sets stable's `replicas` on their own where the HPA would leave it short for a while:
/// once when the operator's HPA takes over a Deployment KEDA left at zero
/// ([`wake_for_hpa`] says when), and once when a new Deployment starts below the HPA's
/// minimum ([`start_at_hpa_min`]); nothing otherwise.
async fn wake_for_the_hpa(
    ocr: &OcrService,
    namespace: &str,
    desired: &DesiredState,
    keda_before: bool,
    observation: &Observation,
    ctx: &Context,
) -> Result<(), OperatorError> {
    let stable_desired = observation.stable.as_ref().map(|stable| stable.desired);
    let generation = observation.stable.as_ref().and_then(|stable| stable.generation);
    let hpa_min = desired.autoscaler.as_ref().and_then(|hpa| hpa.spec.min_replicas);
    let (replicas, reason) = match wake_for_hpa(&ocr.spec, keda_before, desired.autoscaler.is_some(), stable_desired) {
        Some(replicas) => (replicas, "the HPA takes over from KEDA at zero"),
        None => match start_at_hpa_min(hpa_min, generation, stable_desired) {
            Some(replicas) => (replicas, "a new Deployment starts at the HPA's minimum"),
            None => return Ok(()),
        },
    };
    let deployments = Api::namespaced(ctx.client.clone(), namespace);
    let stable_name = desired.stable.metadata.name.as_deref().unwrap_or_default();
    scale_stable(&deployments, stable_name, replicas, reason, &ctx.metrics).await
}

/// The controller's reconcile function.
pub async fn reconcile(ocr: Arc<OcrService>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    reconcile_measured_by(ocr, ctx, &PodAnalyst).await
}

/// [`reconcile`] with the analyses made by `analyst`.
pub(crate) async fn reconcile_measured_by(
    ocr: Arc<OcrService>,
    ctx: Arc<Context>,
    analyst: &impl Analyst,
) -> Result<Action, OperatorError> {
    let started = Instant::now();
    let result = reconcile_inner(&ocr, &ctx, analyst).await;
    let outcome = result.as_ref().map(|_| ()).map_err(OperatorError::operation);
    ctx.metrics.reconciled(started.elapsed(), outcome);
    if result.is_ok() {
        ctx.succeeded(&ObjectRef::from_obj(ocr.as_ref()));
    }
    result
}

/// Called by the controller for a failed reconcile: exponential backoff per object, so a
/// persistent failure never hot-loops and a transient one retries fast.
pub fn error_policy(ocr: Arc<OcrService>, error: &OperatorError, ctx: Arc<Context>) -> Action {
    let failures = ctx.failed(ObjectRef::from_obj(ocr.as_ref()));
    let delay = ctx.config.error_backoff(failures);
    warn!(
        ocrservice = %ocr.name_any(),
        namespace = ocr.namespace().unwrap_or_default(),
        %error,
        failures,
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn reconcile_inner(ocr: &OcrService, ctx: &Context, analyst: &impl Analyst) -> Result<Action, OperatorError> {
    let name = ocr.name_any();
    let namespace = ocr.namespace().ok_or(OperatorError::ReadMetadata { field: "namespace" })?;
    if ocr.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the children; nothing to do.
        return Ok(Action::await_change());
    }
    let mut observation = Observation::default();
    let mut first_error = None;
    let mut rollout: Option<RolloutOutcome> = None;
    let mut spec_revision = None;
    let mut manual_events = Vec::new();
    // Unknown when the spec cannot be built: the last one stays recorded.
    let mut applied_autoscaler = previous_autoscaler(ocr);
    match desired_state(ocr, &ctx.settings) {
        Err(error @ OperatorError::ReadMetadata { .. }) => return Err(error),
        Err(error) => observation.invalid_spec = Some(error.to_string()),
        Ok(mut desired) => {
            check_references(ocr, &namespace, &desired, ctx, &mut observation).await?;
            let now = Time(Timestamp::now());
            // Taken off the object first: a request is carried out at most once.
            let request = take_request(ocr, &namespace, ctx).await?;
            if let Some(why) = request.invalid {
                manual_events.push(EventNote { warning: true, reason: "InvalidRolloutAction", note: why });
            }
            let apply_stable = match rollout_step(ocr, &namespace, &desired, ctx, &now, request.action, analyst).await {
                Ok(mut outcome) => {
                    if let Some(error) = outcome.traffic_error.take() {
                        match &error {
                            OperatorError::SetRouteWeights { reason, message, .. } => {
                                observation.traffic_problem = Some((reason, message.clone()));
                            }
                            other => observation.apply_error = Some(other.to_string()),
                        }
                        // Retried with the error backoff: a missing route is no hot loop.
                        first_error = Some(error);
                    }
                    // Stable's own rollout is judged against the revision stable should run,
                    // which during a canary is still the old one.
                    observation.desired_revision = Some(outcome.plan.stable_revision.clone());
                    let apply_stable = outcome.apply_stable;
                    rollout = Some(outcome);
                    apply_stable
                }
                Err(error) => {
                    observation.desired_revision = Some(desired.revision.clone());
                    observation.apply_error = Some(error.to_string());
                    first_error = Some(error);
                    false
                }
            };
            // A dynamicStableScale rollout caps the stable HPA to stable's share.
            share_stable(&mut desired, &ocr.spec, rollout.as_ref().and_then(|o| o.plan.dynamic.as_ref()));
            let keda_before = previous_autoscaler(ocr) == Some(KEDA_AUTOSCALER);
            let removals = Removals {
                keda: desired.keda.is_none() && keda_before,
                // status.jobs is written exactly while the spec has jobs; a front Deployment
                // still in the cache is one whose delete failed before, tried again.
                jobs_front: desired.jobs_front.is_none()
                    && (ocr.status.as_ref().is_some_and(|s| s.jobs.is_some())
                        || ctx.children.deployment(&namespace, &jobs_front_name(&name)).is_some()),
            };
            let applied =
                apply_children(&namespace, &name, &desired, ctx, &mut observation, apply_stable, removals).await;
            // KEDA's objects may still be there: the status keeps saying so, and the next
            // reconcile deletes them again (a 404 counts as gone).
            let keda_left = applied.is_err() && removals.keda;
            if let Err(error) = applied {
                observation.apply_error = Some(error.to_string());
                first_error.get_or_insert(error);
            }
            spec_revision = Some(desired.revision.clone());
            applied_autoscaler = match (&desired.keda, &desired.autoscaler) {
                (Some(_), _) => Some(KEDA_AUTOSCALER),
                (None, Some(_)) => Some(HPA_AUTOSCALER),
                (None, None) => None,
            };
            if keda_left {
                applied_autoscaler = Some(KEDA_AUTOSCALER);
            }
            if let Err(error) = wake_for_the_hpa(ocr, &namespace, &desired, keda_before, &observation, ctx).await {
                // Still KEDA's in the status, so the next reconcile wakes it again.
                applied_autoscaler = Some(KEDA_AUTOSCALER);
                observation.apply_error = Some(error.to_string());
                first_error.get_or_insert(error);
            }
        }
    }
    observation.pod_issues = diagnose(&ctx.children.pods_of(&namespace, &name, &[]));

    let now = Time(Timestamp::now());
    let mut status = compute_status(ocr, &observation, &now);
    if let Some(outcome) = &rollout {
        overlay_rollout(&mut status, &outcome.plan, outcome.analysis.as_ref(), spec_revision, ocr, &now);
    }
    status.autoscaler = applied_autoscaler.map(str::to_owned);
    // The backlog is read on its own clock (a status write triggers another reconcile).
    status.jobs = match &ocr.spec.jobs {
        None => None,
        Some(_) if jobs_status_due(status.jobs.as_ref(), &now) => {
            let reading = analyst.job_backlog(ocr, &namespace, &status, ctx).await;
            Some(jobs_status(status.jobs.as_ref(), reading, &now))
        }
        Some(_) => status.jobs.clone(),
    };
    let mut events = transitions(ocr.status.as_ref(), &status, ocr);
    events.extend(manual_events);
    if let Some(outcome) = &rollout {
        events.extend(outcome.plan.events.iter().map(EventNote::from));
    }
    if ocr.status.as_ref() != Some(&status) {
        patch_status(ocr, &namespace, &status, ctx).await?;
    }
    for event in events {
        publish(ocr, event, ctx).await;
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    debug!(ocrservice = %name, %namespace, phase = ?status.phase, "reconciled");
    // Pods, Deployments and the OcrService are watched; only references created later
    // need a clock.
    let references_missing = !observation.missing_config_maps.is_empty() || observation.missing_claim.is_some();
    let settled = recheck_after(references_missing, &status, &now, ctx.config.settling_recheck(), ctx.config.resync());
    // A canary is analysed on a clock, not on events.
    let next = rollout.and_then(|o| o.plan.requeue_after).map_or(settled, |r| r.min(settled));
    let next = if ocr.spec.jobs.is_some() { next.min(JOBS_STATUS_INTERVAL) } else { next };
    Ok(Action::requeue(next.max(std::time::Duration::from_secs(1))))
}

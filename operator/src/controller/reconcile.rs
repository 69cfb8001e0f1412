//! One reconcile: build the desired state, apply it, observe, write status and events.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use kube_ocr_crds::{OcrService, OcrServiceStatus, Phase};
use serde_json::json;
use tracing::{debug, info, warn};

use super::applied::fingerprint;
use super::apply::{apply, delete_if_present};
use super::context::Context;
use super::manual::take_request;
use super::rollout::{RolloutOutcome, rollout_step};
use crate::builders::{DesiredState, desired_state, share_stable};
use crate::error::OperatorError;
use crate::model_source::ModelSource;
use crate::names::{FIELD_MANAGER, autoscaler_name};
use crate::status::{EventNote, Observation, StableObservation, compute_status, diagnose, recheck_after, transitions};

/// The controller's reconcile function.
pub async fn reconcile(ocr: Arc<OcrService>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    let started = Instant::now();
    let result = reconcile_inner(&ocr, &ctx).await;
    let outcome = result.as_ref().map(|_| ()).map_err(operation_of);
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

async fn reconcile_inner(ocr: &OcrService, ctx: &Context) -> Result<Action, OperatorError> {
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
            let apply_stable = match rollout_step(ocr, &namespace, &desired, ctx, &now, request.action).await {
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
            if let Err(error) = apply_children(&namespace, &name, &desired, ctx, &mut observation, apply_stable).await {
                observation.apply_error = Some(error.to_string());
                first_error.get_or_insert(error);
            }
            spec_revision = Some(desired.revision.clone());
        }
    }
    observation.pod_issues = diagnose(&ctx.children.pods_of(&namespace, &name, &[]));

    let now = Time(Timestamp::now());
    let mut status = compute_status(ocr, &observation, &now);
    if let Some(outcome) = &rollout {
        overlay_rollout(&mut status, outcome, spec_revision, ocr, &now);
    }
    let mut events = transitions(ocr.status.as_ref(), &status, ocr);
    events.extend(manual_events);
    if let Some(outcome) = &rollout {
        events.extend(outcome.plan.events.iter().map(|e| EventNote {
            warning: e.warning,
            reason: e.reason,
            note: e.message.clone(),
        }));
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
    Ok(Action::requeue(next.max(std::time::Duration::from_secs(1))))
}

/// The rollout's part of status: revisions per track, canary progress, the last
/// analysis, and RolledBack with its reason while the spec still asks for a failed
/// revision.
fn overlay_rollout(
    status: &mut OcrServiceStatus,
    outcome: &RolloutOutcome,
    spec_revision: Option<String>,
    ocr: &OcrService,
    now: &Time,
) {
    let plan = &outcome.plan;
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
    if let Some(analysis) = &outcome.analysis {
        status.last_analysis = Some(analysis.clone());
    }
    let stable_below = status
        .last_analysis
        .as_ref()
        .filter(|a| a.canary.is_none() && a.verdict.as_deref() == Some(super::rollout::STABLE_BELOW_MIN_ACCURACY));
    if let Some(analysis) = stable_below.cloned() {
        status.phase = Some(Phase::Degraded);
        let message = format!(
            "{}. The serving model reads the golden set worse than spec.rollout.analysis.golden.minAccuracy: check \
             recent changes to the model, the input data, or the golden set itself.",
            analysis.reasons.join("; ")
        );
        status.conditions = crate::status::merge(
            &status.conditions,
            &[crate::status::Decided { type_: "Degraded", status: true, reason: "AccuracyBelowMinimum", message }],
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
        status.conditions = crate::status::merge(
            &status.conditions,
            &[crate::status::Decided { type_: "Degraded", status: true, reason: "RolledBack", message }],
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
        status.conditions = crate::status::merge(
            &status.conditions,
            &[crate::status::Decided { type_: "Progressing", status: true, reason: "CanaryAnalysis", message }],
            ocr.metadata.generation,
            now,
        );
    }
}

/// Objects the spec names that the operator does not create: they must exist.
async fn check_references(
    ocr: &OcrService,
    namespace: &str,
    desired: &DesiredState,
    ctx: &Context,
    observation: &mut Observation,
) -> Result<(), OperatorError> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    for name in &ocr.spec.rollout.analysis.golden.config_maps {
        let found = config_maps.get_metadata_opt(name).await.map_err(|source| OperatorError::Get {
            kind: "ConfigMap",
            name: name.clone(),
            source,
        })?;
        if found.is_none() {
            observation.missing_config_maps.push(name.clone());
        }
    }
    if let ModelSource::Pvc { claim, .. } = &desired.model {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
        let found = claims.get_metadata_opt(claim).await.map_err(|source| OperatorError::Get {
            kind: "PersistentVolumeClaim",
            name: claim.clone(),
            source,
        })?;
        if found.is_none() {
            observation.missing_claim = Some(claim.clone());
        }
    }
    Ok(())
}

async fn apply_children(
    namespace: &str,
    name: &str,
    desired: &DesiredState,
    ctx: &Context,
    observation: &mut Observation,
    apply_stable: bool,
) -> Result<(), OperatorError> {
    let client = &ctx.client;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    // Reconciles triggered by pod and status churn find this exact state applied already:
    // read the stable Deployment for the status and send no writes.
    let key = format!("{namespace}/{name}");
    let print = format!("{}:{apply_stable}", fingerprint(desired));
    let stable_name = desired.stable.metadata.name.clone().unwrap_or_default();
    if ctx.applied.is_fresh(&key, &print, ctx.config.resync())
        && let Some(stable) = ctx.children.deployment(namespace, &stable_name)
    {
        observation.stable = Some(StableObservation::from_deployment(&stable));
        return Ok(());
    }
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    // The children do not depend on each other: sent together, a reconcile costs one
    // round trip instead of six.
    let apply_services =
        futures::future::try_join_all(desired.services.iter().map(|service| apply(&services, service, &ctx.metrics)));
    let stable = async {
        // While a canary is judged, stable keeps the template it runs: it is not applied.
        if apply_stable {
            apply(&deployments, &desired.stable, &ctx.metrics).await.map(Some)
        } else {
            Ok(ctx.children.deployment(namespace, &stable_name).map(|stable| stable.as_ref().clone()))
        }
    };
    let autoscaler = async {
        match &desired.autoscaler {
            Some(hpa) => apply(&autoscalers, hpa, &ctx.metrics).await.map(drop),
            None => delete_if_present(&autoscalers, &autoscaler_name(name), &ctx.metrics).await,
        }
    };
    let budget = apply(&budgets, &desired.disruption_budget, &ctx.metrics);
    let (services_applied, stable, autoscaler, budget) = futures::join!(apply_services, stable, autoscaler, budget);
    // The stable Deployment feeds the status even when another child failed.
    let stable = stable?;
    observation.stable = stable.as_ref().map(StableObservation::from_deployment);
    services_applied?;
    autoscaler?;
    budget?;
    ctx.applied.record(&key, print);
    Ok(())
}

async fn patch_status(
    ocr: &OcrService,
    namespace: &str,
    status: &OcrServiceStatus,
    ctx: &Context,
) -> Result<(), OperatorError> {
    let api: Api<OcrService> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": OcrService::api_version(&()),
        "kind": OcrService::kind(&()),
        "status": status,
    });
    let name = ocr.name_any();
    api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| OperatorError::PatchStatus { name: name.clone(), source })?;
    ctx.metrics.wrote("OcrService");
    info!(ocrservice = %name, %namespace, phase = ?status.phase, ready = status.ready_replicas, "status updated");
    Ok(())
}

/// Events are best effort: a failed publish is logged, never fails the reconcile.
async fn publish(ocr: &OcrService, note: EventNote, ctx: &Context) {
    let event = Event {
        type_: if note.warning { EventType::Warning } else { EventType::Normal },
        reason: note.reason.to_owned(),
        note: Some(truncate(&note.note, 1000)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    info!(ocrservice = %ocr.name_any(), reason = note.reason, warning = note.warning, note = %note.note, "event");
    if let Err(error) = ctx.recorder.publish(&event, &ocr.object_ref(&())).await {
        warn!(%error, reason = note.reason, "publishing an event failed");
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The failed operation, as a metrics label.
fn operation_of(error: &OperatorError) -> &'static str {
    match error {
        OperatorError::ReadMetadata { .. } => "read_metadata",
        OperatorError::ParseModelUri { .. } => "parse_model_uri",
        OperatorError::Apply { .. } => "apply",
        OperatorError::Delete { .. } => "delete",
        OperatorError::Get { .. } => "get",
        OperatorError::List { .. } => "list",
        OperatorError::PatchStatus { .. } => "patch_status",
        OperatorError::TakeRolloutAction { .. } => "take_rollout_action",
        OperatorError::SetRouteWeights { .. } => "set_route_weights",
        OperatorError::PatchRoute { .. } => "patch_route",
        OperatorError::DiscoverApi { .. } => "discover_api",
        _ => "other",
    }
}

//! One reconcile: build the desired state, apply it, observe, write status and events.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use kube_ocr_crds::{OcrService, OcrServiceStatus, Phase};
use serde_json::json;
use tracing::{debug, info, warn};

use super::apply::{apply, delete_if_present};
use super::context::Context;
use crate::builders::{DesiredState, desired_state};
use crate::error::OperatorError;
use crate::model_source::ModelSource;
use crate::names::{FIELD_MANAGER, SERVICE_LABEL, autoscaler_name};
use crate::status::{EventNote, Observation, StableObservation, compute_status, diagnose, transitions};

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
    match desired_state(ocr, &ctx.settings) {
        Err(error @ OperatorError::ReadMetadata { .. }) => return Err(error),
        Err(error) => observation.invalid_spec = Some(error.to_string()),
        Ok(desired) => {
            observation.desired_revision = Some(desired.revision.clone());
            check_references(ocr, &namespace, &desired, ctx, &mut observation).await?;
            if let Err(error) = apply_children(&namespace, &name, &desired, ctx, &mut observation).await {
                observation.apply_error = Some(error.to_string());
                first_error = Some(error);
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{SERVICE_LABEL}={name}");
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| OperatorError::List { kind: "Pod", source })?;
    observation.pod_issues = diagnose(&pods.items);

    let now = Time(Timestamp::now());
    let status = compute_status(ocr, &observation, &now);
    let events = transitions(ocr.status.as_ref(), &status, ocr);
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
    Ok(match status.phase {
        Some(Phase::Healthy) => Action::requeue(ctx.config.resync()),
        // Starting pods and pod trouble show up in pod watches too; the recheck catches
        // what no watch reports (a ConfigMap or claim created later).
        _ => Action::requeue(ctx.config.settling_recheck()),
    })
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
) -> Result<(), OperatorError> {
    let client = &ctx.client;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    for service in &desired.services {
        apply(&services, service, &ctx.metrics).await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let stable = apply(&deployments, &desired.stable, &ctx.metrics).await?;
    observation.stable = Some(StableObservation::from_deployment(&stable));
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    match &desired.autoscaler {
        Some(hpa) => {
            apply(&autoscalers, hpa, &ctx.metrics).await?;
        }
        None => delete_if_present(&autoscalers, &autoscaler_name(name), &ctx.metrics).await?,
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    apply(&budgets, &desired.disruption_budget, &ctx.metrics).await?;
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
        _ => "other",
    }
}

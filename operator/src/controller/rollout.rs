//! The rollout part of a reconcile:
//! 1. observe both tracks (the watched Deployments; the GRPCRoute and/or HTTPRoute with
//!    `gatewayAPI`);
//! 2. when an analysis is due, have the [`Analyst`] measure canary and stable in the same
//!    window;
//! 3. ask the pure state machine ([`crate::rollout`]) what to do;
//! 4. apply the canary Deployment at its weight, or remove it;
//! 5. with the `gatewayAPI` provider, put the weight on each route (`route.rs`);
//! 6. outside rollouts, run stable's own golden check when it is due.
//!
//! The stable Deployment is applied by the caller, and only when the plan says stable runs
//! the desired revision. That is how stable keeps the old template while a canary is judged.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube_ocr_crds::{AnalysisStatus, OcrService};
use tracing::info;

use super::apply::{apply, delete_if_present};
use super::context::Context;
use super::measure::Analyst;
use super::route::{read_route, write_route_weights};
use crate::builders::{DesiredState, Owner, deployment, pod_template, stable_rescale};
use crate::error::OperatorError;
use crate::names::{FIELD_MANAGER, REVISION_LABEL, TRACK_LABEL, Track};
use crate::rollout::{
    ManualAction, RolloutInput, RolloutPlan, analysis_due, plan, settings_of, stable_check_interval,
    stable_check_schedule,
};
use crate::status::{TrackObservation, diagnose};
use crate::telemetry::Metrics;
use crate::traffic::{RouteTargets, configured_routes, route_canary_weight};

/// What the rollout decided this round.
#[derive(Debug)]
pub struct RolloutOutcome {
    pub plan: RolloutPlan,
    /// A fresh `status.lastAnalysis` when an analysis ran.
    pub analysis: Option<AnalysisStatus>,
    /// Whether the caller should apply the spec's template to the stable Deployment.
    pub apply_stable: bool,
    /// Why the `gatewayAPI` provider could not read or write a route this round (the first
    /// failure, in the order of [`configured_routes`]). The plan still stands (stable,
    /// rollbacks), but no analysis ran, so no step advanced.
    pub traffic_error: Option<OperatorError>,
}

pub async fn rollout_step(
    ocr: &OcrService,
    namespace: &str,
    desired: &DesiredState,
    ctx: &Context,
    now: &Time,
    manual: Option<ManualAction>,
    analyst: &impl Analyst,
) -> Result<RolloutOutcome, OperatorError> {
    let name = ocr.metadata.name.clone().unwrap_or_default();
    let status = ocr.status.clone().unwrap_or_default();
    let settings = settings_of(ocr);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let canary_name = Track::Canary.object_name(&name);
    let canary_deployment = ctx.children.deployment(namespace, &canary_name);
    let stable_deployment = ctx.children.deployment(namespace, &Track::Stable.object_name(&name));
    let tracks = TrackObservation::of(
        stable_deployment.as_deref(),
        canary_deployment.as_deref(),
        &status,
        ocr.spec.replicas.min,
    );

    // With the gatewayAPI provider every configured route (GRPCRoute and/or HTTPRoute) is
    // read first: while one cannot carry the weights, the canary does not get its share of
    // that traffic, so it is not judged and no step advances (a canary that never gets
    // Ready is still rolled back at its deadline).
    let stable_service = Track::Stable.object_name(&name);
    let routes = configured_routes(&ocr.spec.rollout.traffic);
    let targets = |canary_weight| RouteTargets {
        namespace,
        stable_service: &stable_service,
        canary_service: &canary_name,
        canary_weight,
    };
    let mut read = Vec::with_capacity(routes.len());
    for &(kind, route_name) in &routes {
        read.push(read_route(ctx, kind, route_name, &targets(0)).await);
    }
    let route_usable = read.iter().all(Result::is_ok);

    let mut analysis = None;
    let mut verdict = None;
    if route_usable && analysis_due(&status, &settings, tracks.canary, now) {
        let (record, judged) = analyst.canary_analysis(ocr, namespace, &status, ctx, now).await;
        analysis = Some(record);
        verdict = Some(judged);
    }

    let canary_pods = ctx.children.pods_of(
        namespace,
        &name,
        &[(TRACK_LABEL, Track::Canary.label_value()), (REVISION_LABEL, desired.revision.as_str())],
    );
    let canary_problem =
        diagnose(&canary_pods).first().map(|issue| format!("pod {} is {:?}: {}", issue.pod, issue.kind, issue.detail));
    let mut decided = plan(&RolloutInput {
        desired_revision: &desired.revision,
        status: &status,
        settings: &settings,
        canary: tracks.canary,
        stable_rolled_out: tracks.stable_rolled_out,
        stable_replicas: tracks.stable_size,
        stable_ready: tracks.stable_ready,
        canary_problem: canary_problem.as_deref(),
        analysis: verdict.as_ref(),
        manual,
        now,
    });

    // The canary Deployment, at the weight the plan asks for. A canary of another revision
    // (a promotion in progress whose spec moved on) keeps running what it runs until the
    // plan retires it.
    if let Some(revision) = decided.canary_revision.as_ref().filter(|r| **r == desired.revision) {
        let owner = Owner::of(ocr)?;
        let template = pod_template(&owner, &ocr.spec, &desired.model, Track::Canary, &ctx.settings);
        let replicas = decided.canary_size(tracks.canary_base);
        let canary = deployment(&owner, &ocr.spec, Track::Canary, template, revision, Some(replicas));
        apply(&deployments, &canary, &ctx.metrics).await?;
    }
    let stable_desired = tracks.stable.as_ref().map(|s| s.desired);
    if let Some(target) = stable_rescale(&ocr.spec, &status, &decided, &desired.revision, stable_desired) {
        let stable_name = desired.stable.metadata.name.clone().unwrap_or_default();
        scale_stable(&deployments, &stable_name, target, "its share of a dynamic rollout", &ctx.metrics).await?;
    }
    // The routes move traffic before a retired canary's Deployment goes away. Each route
    // that was read gets the weights, even when another could not be read: a rollback
    // takes the canary's share off every route that can still be written.
    let (traffic_weight, traffic_error) = if routes.is_empty() {
        (decided.canary_weight, None)
    } else {
        let ready = tracks.canary_ready_at(decided.canary_revision.as_deref());
        let weight = route_canary_weight(decided.canary_weight, ready);
        let mut first_error = None;
        for (&(kind, route_name), document) in routes.iter().zip(read) {
            let written = match document {
                Ok(document) => write_route_weights(ctx, kind, route_name, document, &targets(weight)).await,
                Err(error) => Err(error),
            };
            if let Err(error) = written {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            None => (weight, None),
            Some(error) => (0, Some(error)),
        }
    };
    if decided.canary_revision.is_none() && canary_deployment.is_some() {
        // Only when there is one: a DELETE per reconcile would be a write in a steady state.
        delete_if_present(&deployments, &canary_name, &ctx.metrics).await?;
    }
    // The weight clients see: the routes' with gatewayAPI (0 while one cannot be written).
    ctx.metrics.rollout(namespace, &name, traffic_weight, decided.rolls_back());
    if let Some(record) = &analysis {
        record_analysis(ctx, ocr, namespace, record);
    }
    let interval = stable_check_interval(ocr);
    if let Some(check) = stable_check_schedule(&decided, analysis.is_some(), interval, &status, now) {
        if check.due && tracks.stable_rolled_out {
            let record = analyst.stable_check(ocr, namespace, &status, ctx, now).await;
            record_analysis(ctx, ocr, namespace, &record);
            analysis = Some(record);
        }
        decided.requeue_after = Some(decided.requeue_after.map_or(check.wait, |r| r.min(check.wait)));
    }
    let apply_stable = decided.stable_revision == desired.revision;
    Ok(RolloutOutcome { plan: decided, analysis, apply_stable, traffic_error })
}

fn record_analysis(ctx: &Context, ocr: &OcrService, namespace: &str, record: &AnalysisStatus) {
    let analysis = &ocr.spec.rollout.analysis;
    let name = ocr.metadata.name.as_deref().unwrap_or_default();
    ctx.metrics.analysis(namespace, name, record, analysis.golden.min_accuracy, analysis.latency.max_p95_ms);
}

/// Without an HPA the operator owns stable's `replicas`. While stable keeps its old template
/// its Deployment is not applied, so a dynamic rollout's share (and the spec's count after
/// it) is written on its own ([`stable_rescale`] says when).
pub(super) async fn scale_stable(
    deployments: &Api<Deployment>,
    name: &str,
    replicas: i32,
    reason: &'static str,
    metrics: &Metrics,
) -> Result<(), OperatorError> {
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    deployments.patch(name, &params, &Patch::Merge(&patch)).await.map_err(|source| OperatorError::ScaleDeployment {
        name: name.to_owned(),
        replicas,
        source,
    })?;
    metrics.wrote("Deployment");
    info!(deployment = %name, replicas, reason, "stable scaled");
    Ok(())
}

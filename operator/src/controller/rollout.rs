//! The rollout part of a reconcile:
//! 1. observe both tracks;
//! 2. when an analysis is due, measure canary and stable in the same window;
//! 3. ask the pure state machine ([`crate::rollout`]) what to do;
//! 4. apply the canary Deployment at its weight, or remove it;
//! 5. with the `gatewayAPI` provider, put the weight on the GRPCRoute (`route.rs`).
//!
//! The stable Deployment is applied by the caller, and only when the plan says stable runs
//! the desired revision. That is how stable keeps the old template while a canary is judged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_ocr_crds::{AnalysisStatus, OcrService, TrackMeasurement, TrafficProvider, parse_duration};
use tracing::info;

use super::apply::{apply, delete_if_present};
use super::context::Context;
use super::route::{read_route, write_route_weights};
use crate::analysis::collect::{PodEndpoint, golden_check, scrape_pods};
use crate::analysis::golden_source::load_golden_set;
use crate::analysis::{GoldenOutcome, PodCounters, Thresholds, TrackNumbers, judge, track_numbers, window_traffic};
use crate::builders::{DesiredState, Owner, deployment, owned_stable_replicas, pod_template};
use crate::error::OperatorError;
use crate::names::{FIELD_MANAGER, GRPC_PORT, HTTP_PORT, REVISION_LABEL, SERVICE_LABEL, TRACK_LABEL, Track};
use crate::rollout::{
    CanaryObservation, ManualAction, RolloutInput, RolloutPlan, RolloutSettings, analysis_due, canary_replicas, plan,
};
use crate::status::{StableObservation, diagnose};
use crate::traffic::{RouteTargets, route_canary_weight};

/// Pods' counters at the end of the last analysis, per OcrService and track: the start
/// of the next window. Lost on restart; the first window after one is then the analysis
/// itself (its golden calls), which is shorter but still canary and stable side by side.
#[derive(Debug, Default)]
pub struct ScrapeMemory {
    last: Mutex<HashMap<ScrapeKey, BTreeMap<String, PodCounters>>>,
}

/// (namespace, OcrService, track).
type ScrapeKey = (String, String, Track);

impl ScrapeMemory {
    fn take(&self, key: &ScrapeKey) -> Option<BTreeMap<String, PodCounters>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    fn put(&self, key: ScrapeKey, counters: BTreeMap<String, PodCounters>) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(key, counters);
    }
}

/// What the rollout decided this round.
#[derive(Debug)]
pub struct RolloutOutcome {
    pub plan: RolloutPlan,
    /// A fresh `status.lastAnalysis` when an analysis ran.
    pub analysis: Option<AnalysisStatus>,
    /// Whether the caller should apply the spec's template to the stable Deployment.
    pub apply_stable: bool,
    /// Why the `gatewayAPI` provider could not read or write the GRPCRoute this round. The
    /// plan still stands (stable, rollbacks), but no analysis ran, so no step advanced.
    pub traffic_error: Option<OperatorError>,
}

pub fn settings_of(ocr: &OcrService) -> RolloutSettings {
    let rollout = &ocr.spec.rollout;
    let duration = |text: &str, default: u64| parse_duration(text).unwrap_or(Duration::from_secs(default));
    RolloutSettings {
        steps: rollout.steps.clone(),
        step_interval: duration(&rollout.step_interval, 60),
        analysis_interval: duration(&rollout.analysis.interval, 30),
        failure_limit: rollout.analysis.failure_limit.max(1),
        progress_deadline: duration(&rollout.progress_deadline, 600),
        dynamic_stable_scale: rollout.dynamic_stable_scale,
    }
}

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

pub async fn rollout_step(
    ocr: &OcrService,
    namespace: &str,
    desired: &DesiredState,
    ctx: &Context,
    now: &Time,
    manual: Option<ManualAction>,
) -> Result<RolloutOutcome, OperatorError> {
    let name = ocr.metadata.name.clone().unwrap_or_default();
    let status = ocr.status.clone().unwrap_or_default();
    let settings = settings_of(ocr);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let canary_name = Track::Canary.object_name(&name);
    let canary_deployment = ctx.children.deployment(namespace, &canary_name);
    let stable_deployment = ctx.children.deployment(namespace, &Track::Stable.object_name(&name));
    let canary = observe_canary(canary_deployment.as_deref(), status.canary_revision.as_deref());
    let stable = stable_deployment.as_deref().map(StableObservation::from_deployment);
    let stable_rolled_out = match (&stable, &status.stable_revision) {
        (Some(stable), Some(revision)) => stable.rolled_out(revision),
        _ => false,
    };

    // With the gatewayAPI provider the route is read first: while it cannot carry the
    // weights, the canary gets no traffic through it, so it is not judged and no step
    // advances (a canary that never gets Ready is still rolled back at its deadline).
    let stable_service = Track::Stable.object_name(&name);
    let route_name = match ocr.spec.rollout.traffic.provider {
        TrafficProvider::GatewayApi => ocr.spec.rollout.traffic.grpc_route.as_deref(),
        TrafficProvider::Replicas => None,
    };
    let targets = |canary_weight| RouteTargets {
        namespace,
        stable_service: &stable_service,
        canary_service: &canary_name,
        canary_weight,
    };
    let route = match route_name {
        Some(route_name) => Some(read_route(ctx, route_name, &targets(0)).await),
        None => None,
    };
    let route_usable = !matches!(route, Some(Err(_)));

    let mut analysis = None;
    let mut verdict = None;
    if route_usable && analysis_due(&status, &settings, canary, now) {
        let (record, judged) = analyse(ocr, namespace, &status, ctx, now).await;
        analysis = Some(record);
        verdict = Some(judged);
    }

    // A dynamic rollout's base: what the HPA runs now, and never below the spec's minimum
    // (right after a rollback the HPA may not have grown stable back yet).
    let stable_size = stable.as_ref().map_or(0, |s| s.desired.max(s.replicas)).max(ocr.spec.replicas.min);
    let stable_ready = match (&stable, &status.stable_revision) {
        (Some(stable), Some(revision)) if stable.revision.as_ref() == Some(revision) => {
            stable.available.min(stable.updated)
        }
        _ => 0,
    };
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
        canary,
        stable_rolled_out,
        stable_replicas: stable_size,
        stable_ready,
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
        let stable_replicas = stable.as_ref().map_or(ocr.spec.replicas.min, |s| s.desired.max(s.replicas));
        let replicas = match &decided.dynamic {
            Some(scale) => scale.sizes.canary,
            None => canary_replicas(stable_replicas, decided.canary_weight),
        };
        let canary = deployment(&owner, &ocr.spec, Track::Canary, template, revision, Some(replicas));
        apply(&deployments, &canary, &ctx.metrics).await?;
    }
    scale_owned_stable(ocr, &status, &decided, stable.as_ref(), desired, &deployments, &ctx.metrics).await?;
    // The route moves traffic before a retired canary's Deployment goes away.
    let (traffic_weight, traffic_error) = match (route, route_name) {
        (Some(Ok(document)), Some(route_name)) => {
            let ready = canary_deployment
                .as_deref()
                .map(StableObservation::from_deployment)
                .filter(|d| d.revision.is_some() && d.revision == decided.canary_revision)
                .map_or(0, |d| d.ready);
            let weight = route_canary_weight(decided.canary_weight, ready);
            match write_route_weights(ctx, route_name, document, &targets(weight)).await {
                Ok(_) => (weight, None),
                Err(error) => (0, Some(error)),
            }
        }
        (Some(Err(error)), _) => (0, Some(error)),
        _ => (decided.canary_weight, None),
    };
    if decided.canary_revision.is_none() && canary_deployment.is_some() {
        // Only when there is one: a DELETE per reconcile would be a write in a steady state.
        delete_if_present(&deployments, &canary_name, &ctx.metrics).await?;
    }
    // The weight clients see: the route's with gatewayAPI (0 while it cannot be written).
    ctx.metrics.rollout(namespace, &name, traffic_weight, decided.events.iter().any(|e| e.reason == "RolledBack"));
    if let Some(record) = &analysis {
        ctx.metrics.analysis(
            namespace,
            &name,
            record,
            ocr.spec.rollout.analysis.golden.min_accuracy,
            ocr.spec.rollout.analysis.latency.max_p95_ms,
        );
    }
    // Outside rollouts the golden check keeps running on stable, at a slower pace:
    // accuracy drift in production shows up even when no canary is being judged.
    if analysis.is_none() && decided.canary_revision.is_none() && !decided.rolled_back {
        let every =
            parse_duration(&ocr.spec.rollout.analysis.golden.stable_interval).unwrap_or(Duration::from_secs(300));
        let last = status.last_analysis.as_ref().and_then(|a| a.at.as_ref());
        let due = last.is_none_or(|at| elapsed(now, at) >= every);
        if due && stable_rolled_out {
            let record = stable_check(ocr, namespace, &status, ctx, now).await;
            ctx.metrics.analysis(
                namespace,
                &name,
                &record,
                ocr.spec.rollout.analysis.golden.min_accuracy,
                ocr.spec.rollout.analysis.latency.max_p95_ms,
            );
            analysis = Some(record);
        }
        let wait = last.map_or(every, |at| every.saturating_sub(elapsed(now, at))).max(Duration::from_secs(1));
        decided.requeue_after = Some(decided.requeue_after.map_or(wait, |r| r.min(wait)));
    }
    let apply_stable = decided.stable_revision == desired.revision;
    Ok(RolloutOutcome { plan: decided, analysis, apply_stable, traffic_error })
}

/// Without an HPA the operator owns stable's `replicas`. While stable keeps its old template
/// its Deployment is not applied, so a dynamic rollout's share (and the spec's count after
/// it) is written on its own, and only when it differs.
async fn scale_owned_stable(
    ocr: &OcrService,
    status: &kube_ocr_crds::OcrServiceStatus,
    decided: &RolloutPlan,
    stable: Option<&StableObservation>,
    desired: &DesiredState,
    deployments: &Api<Deployment>,
    metrics: &crate::telemetry::Metrics,
) -> Result<(), OperatorError> {
    let was_dynamic = status.canary.as_ref().is_some_and(|c| c.stable_replicas.is_some());
    let applied_anyway = decided.stable_revision == desired.revision;
    if applied_anyway || !(ocr.spec.rollout.dynamic_stable_scale || was_dynamic) {
        return Ok(());
    }
    let (Some(target), Some(stable)) = (owned_stable_replicas(&ocr.spec, decided.dynamic.as_ref()), stable) else {
        return Ok(());
    };
    if stable.desired == target {
        return Ok(());
    }
    let name = desired.stable.metadata.name.clone().unwrap_or_default();
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    let patch = serde_json::json!({ "spec": { "replicas": target } });
    deployments
        .patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| OperatorError::ScaleDeployment { name: name.clone(), replicas: target, source })?;
    metrics.wrote("Deployment");
    info!(deployment = %name, replicas = target, "stable scaled to its share of a dynamic rollout");
    Ok(())
}

fn observe_canary(deployment: Option<&Deployment>, revision: Option<&str>) -> CanaryObservation {
    let (Some(deployment), Some(revision)) = (deployment, revision) else { return CanaryObservation::default() };
    let observed = StableObservation::from_deployment(deployment);
    if observed.revision.as_deref() != Some(revision) || observed.observed_generation < observed.generation {
        return CanaryObservation { desired: observed.desired, ready: 0 };
    }
    CanaryObservation { desired: observed.desired, ready: observed.ready.min(observed.updated) }
}

/// Measures both tracks in one window and judges the canary. Never fails: what could not
/// be measured is missing from the numbers, and the verdict says so.
async fn analyse(
    ocr: &OcrService,
    namespace: &str,
    status: &kube_ocr_crds::OcrServiceStatus,
    ctx: &Context,
    now: &Time,
) -> (AnalysisStatus, crate::analysis::Verdict) {
    let name = ocr.metadata.name.clone().unwrap_or_default();
    let timeout = Duration::from_secs(60);
    let golden_names = &ocr.spec.rollout.analysis.golden.config_maps;
    let golden = load_golden_set(&ctx.client, namespace, Some(ctx.config.lease_namespace.as_str()), golden_names).await;
    let mut numbers = Vec::new();
    let mut notes = Vec::new();
    if let Err(reason) = &golden {
        notes.push(reason.clone());
    }
    let tracks = [(Track::Stable, status.stable_revision.clone()), (Track::Canary, status.canary_revision.clone())];
    let mut measured = Vec::new();
    for (track, revision) in &tracks {
        let pods = ready_pods(ctx, namespace, &name, *track, revision.as_deref()).await;
        let key = (namespace.to_owned(), name.clone(), *track);
        let before = match ctx.scrapes.take(&key) {
            Some(before) => before,
            None => scrape_pods(&pods, HTTP_PORT as u16, Duration::from_secs(5)).await,
        };
        measured.push((*track, pods, before, key));
    }
    // Golden calls to both tracks at the same time: the same minutes for both.
    let golden_calls = measured.iter().map(|(_, pods, _, _)| async {
        match (&golden, pods.first()) {
            (Ok(loaded), Some(pod)) => golden_check(pod, GRPC_PORT as u16, &loaded.set, timeout).await,
            _ => GoldenOutcome::default(),
        }
    });
    let outcomes = futures::future::join_all(golden_calls).await;
    for ((track, pods, before, key), outcome) in measured.into_iter().zip(outcomes) {
        let after = scrape_pods(&pods, HTTP_PORT as u16, Duration::from_secs(5)).await;
        let window = window_traffic(&before, &after);
        ctx.scrapes.put(key, after);
        if pods.is_empty() {
            notes.push(format!("no Ready {} pod to measure", track.label_value()));
        }
        numbers.push(track_numbers(&window, &outcome));
    }
    let (stable, canary) = (numbers[0].clone(), numbers[1].clone());
    let mut verdict = judge(&stable, &canary, &thresholds_of(ocr));
    if !verdict.passed {
        verdict.reasons.extend(notes);
    }
    info!(
        ocrservice = %name, %namespace, passed = verdict.passed,
        stable_accuracy = ?stable.accuracy, canary_accuracy = ?canary.accuracy,
        stable_p95_ms = ?stable.p95_ms, canary_p95_ms = ?canary.p95_ms,
        reasons = ?verdict.reasons, "analysis"
    );
    let record = AnalysisStatus {
        at: Some(now.clone()),
        stable: Some(measurement(&stable)),
        canary: Some(measurement(&canary)),
        verdict: Some(if verdict.passed { "Passed" } else { "Failed" }.to_owned()),
        reasons: verdict.reasons.clone(),
    };
    (record, verdict)
}

/// `status.lastAnalysis.verdict` of a stable-only check below `minAccuracy`.
pub const STABLE_BELOW_MIN_ACCURACY: &str = "StableBelowMinAccuracy";

/// The golden check of stable alone (no canary running).
async fn stable_check(
    ocr: &OcrService,
    namespace: &str,
    status: &kube_ocr_crds::OcrServiceStatus,
    ctx: &Context,
    now: &Time,
) -> AnalysisStatus {
    let name = ocr.metadata.name.clone().unwrap_or_default();
    let golden_names = &ocr.spec.rollout.analysis.golden.config_maps;
    let pods = ready_pods(ctx, namespace, &name, Track::Stable, status.stable_revision.as_deref()).await;
    let (outcome, mut reasons) =
        match load_golden_set(&ctx.client, namespace, Some(ctx.config.lease_namespace.as_str()), golden_names).await {
            Ok(loaded) => match pods.first() {
                Some(pod) => (golden_check(pod, GRPC_PORT as u16, &loaded.set, Duration::from_secs(60)).await, vec![]),
                None => (GoldenOutcome::default(), vec!["no Ready stable pod to check".to_owned()]),
            },
            Err(reason) => (GoldenOutcome::default(), vec![reason]),
        };
    let numbers = track_numbers(&crate::analysis::WindowTraffic::default(), &outcome);
    let min_accuracy = ocr.spec.rollout.analysis.golden.min_accuracy;
    let below = numbers.accuracy.is_some_and(|a| a < min_accuracy);
    if below {
        reasons.insert(
            0,
            format!("stable golden accuracy {:.4} < minAccuracy {min_accuracy:.4}", numbers.accuracy.unwrap_or(0.0)),
        );
    }
    info!(ocrservice = %name, %namespace, accuracy = ?numbers.accuracy, below, "stable golden check");
    AnalysisStatus {
        at: Some(now.clone()),
        stable: Some(measurement(&numbers)),
        canary: None,
        verdict: Some(if below { STABLE_BELOW_MIN_ACCURACY } else { "StableChecked" }.to_owned()),
        reasons,
    }
}

/// Time from `then` to `now`; zero if the clock went backwards.
fn elapsed(now: &Time, then: &Time) -> Duration {
    Duration::from_millis(u64::try_from(now.0.as_millisecond() - then.0.as_millisecond()).unwrap_or(0))
}

fn measurement(numbers: &TrackNumbers) -> TrackMeasurement {
    TrackMeasurement {
        accuracy: numbers.accuracy.map(|a| (a * 10_000.0).round() / 10_000.0),
        p95_ms: numbers.p95_ms.map(|p| p.round()),
        error_rate: numbers.error_rate.map(|e| (e * 10_000.0).round() / 10_000.0),
        samples: Some(numbers.samples),
    }
}

/// Ready pods of a track at `revision`, with their addresses.
async fn ready_pods(
    ctx: &Context,
    namespace: &str,
    name: &str,
    track: Track,
    revision: Option<&str>,
) -> Vec<PodEndpoint> {
    let Some(revision) = revision else { return Vec::new() };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!("{SERVICE_LABEL}={name},{TRACK_LABEL}={},{REVISION_LABEL}={revision}", track.label_value());
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { return Vec::new() };
    list.items
        .into_iter()
        .filter(|pod| {
            pod.metadata.deletion_timestamp.is_none()
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
            Some(PodEndpoint { name: pod.metadata.name?, ip })
        })
        .collect()
}

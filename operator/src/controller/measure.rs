//! The IO of an analysis: list a track's Ready pods, scrape them, send one of them the
//! golden set read from ConfigMaps. The numbers and the verdict are pure
//! ([`crate::analysis`]); this file only gathers what they are computed from.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube_ocr_crds::{AnalysisStatus, OcrService, OcrServiceStatus};
use tracing::info;

use super::context::Context;
use super::golden_check::golden_check;
use super::golden_source::load_golden_set;
use super::scrape::{scrape_job_backlog, scrape_pods};
use crate::analysis::numbers::{GoldenOutcome, track_numbers};
use crate::analysis::record::{STABLE_BELOW_MIN_ACCURACY, canary_record, stable_record};
use crate::analysis::targets::{PodEndpoint, ready_endpoints, track_pod_selector};
use crate::analysis::verdict::{Verdict, thresholds_of};
use crate::analysis::window::window_traffic;
use crate::names::{GRPC_PORT, HTTP_PORT, Track};
use crate::status::JobBacklogReading;

/// Deadline of each golden call (and of connecting to the pod).
const GOLDEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one pod's `/metrics` scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who measures the tracks. [`PodAnalyst`] reaches the pods; the controller's tests hand
/// in results instead, as no pod runs there. Neither method fails: what could not be
/// measured is missing from the numbers, and the record says so.
pub trait Analyst: Sync {
    /// Measures canary and stable in one window and judges the canary.
    fn canary_analysis(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
        now: &Time,
    ) -> impl Future<Output = (AnalysisStatus, Verdict)> + Send;

    /// The golden check of stable alone (no canary running).
    fn stable_check(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
        now: &Time,
    ) -> impl Future<Output = AnalysisStatus> + Send;

    /// The job backlog (queued, oldest age in seconds) the stable pods report.
    fn job_backlog(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
    ) -> impl Future<Output = JobBacklogReading> + Send;
}

/// The production [`Analyst`]: the pods' `/metrics` and golden calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodAnalyst;

impl Analyst for PodAnalyst {
    async fn canary_analysis(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
        now: &Time,
    ) -> (AnalysisStatus, Verdict) {
        let name = ocr.metadata.name.clone().unwrap_or_default();
        let golden_names = &ocr.spec.rollout.analysis.golden.config_maps;
        let golden =
            load_golden_set(&ctx.client, namespace, Some(ctx.config.lease_namespace.as_str()), golden_names).await;
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
                None => scrape_pods(&pods, HTTP_PORT as u16, SCRAPE_TIMEOUT).await,
            };
            measured.push((*track, pods, before, key));
        }
        // Golden calls to both tracks at the same time: the same minutes for both.
        let golden_calls = measured.iter().map(|(_, pods, _, _)| async {
            match (&golden, pods.first()) {
                (Ok(loaded), Some(pod)) => golden_check(pod, GRPC_PORT as u16, &loaded.set, GOLDEN_TIMEOUT).await,
                _ => GoldenOutcome::default(),
            }
        });
        let outcomes = futures::future::join_all(golden_calls).await;
        for ((track, pods, before, key), outcome) in measured.into_iter().zip(outcomes) {
            let after = scrape_pods(&pods, HTTP_PORT as u16, SCRAPE_TIMEOUT).await;
            let window = window_traffic(&before, &after);
            ctx.scrapes.put(key, after);
            if pods.is_empty() {
                notes.push(format!("no Ready {} pod to measure", track.label_value()));
            }
            numbers.push(track_numbers(&window, &outcome));
        }
        let (stable, canary) = (&numbers[0], &numbers[1]);
        let (record, verdict) = canary_record(stable, canary, &thresholds_of(ocr), notes, now);
        info!(
            ocrservice = %name, %namespace, passed = verdict.passed,
            stable_accuracy = ?stable.accuracy, canary_accuracy = ?canary.accuracy,
            stable_p95_ms = ?stable.p95_ms, canary_p95_ms = ?canary.p95_ms,
            reasons = ?verdict.reasons, "analysis"
        );
        (record, verdict)
    }

    async fn stable_check(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
        now: &Time,
    ) -> AnalysisStatus {
        let name = ocr.metadata.name.clone().unwrap_or_default();
        let golden_names = &ocr.spec.rollout.analysis.golden.config_maps;
        let pods = ready_pods(ctx, namespace, &name, Track::Stable, status.stable_revision.as_deref()).await;
        let lease_namespace = Some(ctx.config.lease_namespace.as_str());
        let (outcome, reasons) = match load_golden_set(&ctx.client, namespace, lease_namespace, golden_names).await {
            Ok(loaded) => match pods.first() {
                Some(pod) => (golden_check(pod, GRPC_PORT as u16, &loaded.set, GOLDEN_TIMEOUT).await, vec![]),
                None => (GoldenOutcome::default(), vec!["no Ready stable pod to check".to_owned()]),
            },
            Err(reason) => (GoldenOutcome::default(), vec![reason]),
        };
        let min_accuracy = ocr.spec.rollout.analysis.golden.min_accuracy;
        let record = stable_record(&outcome, reasons, min_accuracy, now);
        let below = record.verdict.as_deref() == Some(STABLE_BELOW_MIN_ACCURACY);
        let accuracy = record.stable.as_ref().and_then(|s| s.accuracy);
        info!(ocrservice = %name, %namespace, ?accuracy, below, "stable golden check");
        record
    }

    async fn job_backlog(
        &self,
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
    ) -> JobBacklogReading {
        Self::read_job_backlog(ocr, namespace, status, ctx).await
    }
}

impl PodAnalyst {
    /// The first stable pod that answers: every pod reports the same service-wide backlog.
    pub(crate) async fn read_job_backlog(
        ocr: &OcrService,
        namespace: &str,
        status: &OcrServiceStatus,
        ctx: &Context,
    ) -> JobBacklogReading {
        let name = ocr.metadata.name.clone().unwrap_or_default();
        let pods = ready_pods(ctx, namespace, &name, Track::Stable, status.stable_revision.as_deref()).await;
        let mut last_error = "no Ready stable pod to read the job backlog from".to_owned();
        for pod in &pods {
            match scrape_job_backlog(pod, HTTP_PORT as u16, SCRAPE_TIMEOUT).await {
                Ok(Some(backlog)) => return Ok(backlog),
                Ok(None) => last_error = format!("pod {} exports no job backlog (is spec.jobs rolled out?)", pod.name),
                Err(error) => last_error = format!("pod {}: {error}", pod.name),
            }
        }
        Err(last_error)
    }
}

/// Ready pods of a track at `revision`, with their addresses. A failed list is no pods
/// (the analysis then says so).
async fn ready_pods(
    ctx: &Context,
    namespace: &str,
    name: &str,
    track: Track,
    revision: Option<&str>,
) -> Vec<PodEndpoint> {
    let Some(revision) = revision else { return Vec::new() };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = track_pod_selector(name, track, revision);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { return Vec::new() };
    ready_endpoints(list.items)
}

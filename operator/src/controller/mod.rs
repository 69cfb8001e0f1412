//! The OcrService controller: watches OcrServices, their children and their pods, and
//! reconciles each OcrService into its desired state.
//!
//! This is where a reconcile's IO is: the Kubernetes API (the watched caches, server-side
//! apply, status, events, the Gateway API routes), the pods' `/metrics` scrapes and the golden gRPC
//! calls. What to apply, what the status says and what the rollout does next are decided
//! by the pure modules (`builders`, `status`, `rollout`, `analysis`, `traffic`), which
//! never use this one (but for two old e2e paths `analysis` re-exports until the e2e tests
//! import `scrape` and `golden_source` from here). Within it, `reconcile` drives the others (`references`, `manual`,
//! `rollout`, `children`, `report`); `rollout` uses `measure` (which uses `scrape`,
//! `golden_check` and `golden_source`), `route` and `apply`; all of them read `context`,
//! which holds the caches (`cache`, `applied`, `scrape_memory`). The tests' mock API
//! server is `fixtures`.

mod applied;
mod apply;
mod cache;
mod children;
mod context;
#[cfg(test)]
mod fixtures;
mod golden_check;
pub mod golden_source;
mod manual;
mod measure;
mod reconcile;
#[cfg(test)]
mod reconcile_tests;
mod references;
mod report;
mod rollout;
#[cfg(test)]
mod rollout_tests;
mod route;
pub mod scrape;
mod scrape_memory;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use kube_ocr_crds::OcrService;
use tracing::{debug, info, warn};

use cache::ChildCache;
use context::Context;
use reconcile::{error_policy, reconcile};

use crate::config::OperatorConfig;
use crate::names::{FIELD_MANAGER, SERVICE_LABEL};
use crate::telemetry::Metrics;

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `stop` completes.
pub(crate) async fn run_controller(
    client: kube::Client,
    config: OperatorConfig,
    metrics: Metrics,
    identity: String,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespace = config.watch_namespace.clone();
    let namespace = namespace.as_deref();
    let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some(identity) };
    let recorder = Recorder::new(client.clone(), reporter);
    let concurrency = config.concurrency;
    // Only what the operator manages is watched: children carry the managed-by label.
    let managed = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    let pods = watcher::Config::default().labels(SERVICE_LABEL);
    let (children, keep_children_current) =
        ChildCache::start(api(&client, namespace), managed.clone(), api(&client, namespace));
    let cache_task = tokio::spawn(keep_children_current);
    // A reconcile on an empty cache would take every child for missing.
    let stop = stop.shared();
    tokio::select! {
        filled = children.wait_until_ready() => if filled.is_err() {
            warn!("the child cache stopped before it was filled; the controller does not start");
            cache_task.abort();
            return;
        },
        () = stop.clone() => {
            cache_task.abort();
            return;
        }
    }
    let context = Arc::new(Context::new(client.clone(), config, metrics, recorder, children));
    info!(namespace = namespace.unwrap_or("(all)"), "starting the OcrService controller");
    // The controller's cache of OcrServices, without their managed fields: nothing here
    // reads them, and at a thousand objects they were a quarter of the operator's memory.
    let (ocr_services, ocr_services_writer) = reflector::store();
    let ocr_service_events = watcher(api::<OcrService>(&client, namespace), watcher::Config::default())
        .modify(|ocr: &mut OcrService| ocr.metadata.managed_fields = None)
        .reflect(ocr_services_writer)
        .applied_objects();
    Controller::for_stream(ocr_service_events, ocr_services)
        .owns(api::<Deployment>(&client, namespace), managed.clone())
        .owns(api::<Service>(&client, namespace), managed.clone())
        .owns(api::<HorizontalPodAutoscaler>(&client, namespace), managed.clone())
        .owns(api::<PodDisruptionBudget>(&client, namespace), managed)
        .watches(api::<Pod>(&client, namespace), pods, |pod: Pod| {
            let owner = pod.labels().get(SERVICE_LABEL)?.clone();
            Some(ObjectRef::<OcrService>::new(&owner).within(&pod.namespace()?))
        })
        .with_config(ControllerConfig::default().concurrency(concurrency).debounce(Duration::from_millis(200)))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(ocrservice = %object.name, "reconcile done"),
                Err(error) => debug!(%error, "controller event"),
            }
        })
        .await;
    cache_task.abort();
    info!("the OcrService controller stopped");
}

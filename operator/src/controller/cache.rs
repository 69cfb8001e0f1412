//! In-memory copies of the Deployments and pods the operator looks at, kept current by
//! watches, so a reconcile reads them without a round trip to the API server.
//!
//! A reconcile runs for every pod and child change of every OcrService; with reads over
//! the network each costs several requests, and at a thousand OcrServices the operator's
//! own reads kept the API server busy enough that creation never settled. The controller
//! still watches the same kinds to be triggered: sharing one stream between trigger and
//! cache needs kube's unstable stream API, and a second watch per kind is cheap.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::warn;

use crate::names::SERVICE_LABEL;
use crate::status::{slim_deployment, slim_pod};

/// The watched Deployments (the operator's own) and pods (of any OcrService), slimmed to
/// what reconciles read.
#[derive(Clone)]
pub struct ChildCache {
    deployments: Store<Deployment>,
    pods: Store<Pod>,
}

impl std::fmt::Debug for ChildCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildCache")
            .field("deployments", &self.deployments.len())
            .field("pods", &self.pods.len())
            .finish()
    }
}

impl ChildCache {
    /// The cache and the future that keeps it current (run it for as long as the cache is
    /// used). Reads before [`ChildCache::wait_until_ready`] see an empty cache.
    pub fn start(
        deployments: Api<Deployment>,
        managed: watcher::Config,
        pods: Api<Pod>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (deployment_store, deployment_writer) = reflector::store();
        let (pod_store, pod_writer) = reflector::store();
        let pod_config = watcher::Config::default().labels(SERVICE_LABEL);
        let deployment_stream = watcher(deployments, managed)
            .default_backoff()
            .modify(slim_deployment)
            .reflect(deployment_writer)
            .for_each(|event| async move { log_watch_error("Deployment", event.err()) });
        let pod_stream = watcher(pods, pod_config)
            .default_backoff()
            .modify(slim_pod)
            .reflect(pod_writer)
            .for_each(|event| async move { log_watch_error("Pod", event.err()) });
        let run = async move {
            futures::join!(deployment_stream, pod_stream);
        };
        (Self { deployments: deployment_store, pods: pod_store }, run)
    }

    /// A cache over stores filled by the caller (the controller's tests).
    #[cfg(test)]
    pub fn from_stores(deployments: Store<Deployment>, pods: Store<Pod>) -> Self {
        Self { deployments, pods }
    }

    /// Waits for the first complete listing of both kinds.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.deployments.wait_until_ready().await?;
        self.pods.wait_until_ready().await
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(namespace))
    }

    /// The pods of one OcrService (without their spec), optionally narrowed by more label
    /// equalities.
    pub fn pods_of(&self, namespace: &str, service: &str, labels: &[(&str, &str)]) -> Vec<Pod> {
        self.pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace))
            .filter(|pod| {
                let Some(pod_labels) = pod.metadata.labels.as_ref() else { return false };
                pod_labels.get(SERVICE_LABEL).map(String::as_str) == Some(service)
                    && labels.iter().all(|(k, v)| pod_labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|pod| pod.as_ref().clone())
            .collect()
    }
}

fn log_watch_error(kind: &'static str, error: Option<watcher::Error>) {
    if let Some(error) = error {
        warn!(kind, %error, "watch failed; retrying with backoff");
    }
}

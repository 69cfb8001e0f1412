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
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::warn;

use crate::names::SERVICE_LABEL;

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

// The cache holds what reconciles read and drops the rest: managed fields, the pod
// template's containers beyond their images, and pod specs. At a thousand OcrServices
// those are most of the operator's memory.

/// A Deployment as [`crate::status::StableObservation`] reads it.
fn slim_deployment(deployment: &mut Deployment) {
    deployment.metadata.managed_fields = None;
    if let Some(pod) = deployment.spec.as_mut().and_then(|spec| spec.template.spec.as_mut()) {
        let images = pod
            .containers
            .iter()
            .map(|c| Container { name: c.name.clone(), image: c.image.clone(), ..Container::default() })
            .collect();
        *pod = PodSpec { containers: images, ..PodSpec::default() };
    }
}

/// A pod as [`crate::status::diagnose`] reads it: metadata and status.
fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.spec = None;
}

fn log_watch_error(kind: &'static str, error: Option<watcher::Error>) {
    if let Some(error) = error {
        warn!(kind, %error, "watch failed; retrying with backoff");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::names::{INFERENCE_CONTAINER, MODEL_VERSION_ANNOTATION, REVISION_LABEL};
    use crate::status::{StableObservation, diagnose};

    #[test]
    fn a_slim_deployment_observes_like_the_full_one() {
        let full: Deployment = serde_json::from_value(json!({
            "metadata": {
                "name": "invoices-stable", "generation": 3,
                "managedFields": [{ "manager": "kube-ocr-operator", "operation": "Apply" }],
            },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "x" } },
                "template": {
                    "metadata": {
                        "labels": { REVISION_LABEL: "abc123" },
                        "annotations": { MODEL_VERSION_ANNOTATION: "4.0.0" },
                    },
                    "spec": {
                        "containers": [{
                            "name": INFERENCE_CONTAINER, "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
                            "args": ["--bundle", "/models/ppocr-v4"],
                            "env": [{ "name": "OCR_DEVICE", "value": "cpu" }],
                        }],
                        "volumes": [{ "name": "tmp", "emptyDir": {} }],
                    },
                },
            },
            "status": {
                "observedGeneration": 3, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2,
                "availableReplicas": 1,
                "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }],
            },
        }))
        .unwrap();
        let mut slim = full.clone();
        slim_deployment(&mut slim);
        let observed = StableObservation::from_deployment(&full);
        assert_eq!(observed.image.as_deref(), Some("ghcr.io/kube-ocr/inference-pod:0.1.0"));
        assert!(observed.deadline_exceeded);
        assert_eq!(StableObservation::from_deployment(&slim), observed);
        assert!(slim.metadata.managed_fields.is_none());
        let slim_pod = slim.spec.unwrap().template.spec.unwrap();
        assert!(slim_pod.volumes.is_none() && slim_pod.containers[0].args.is_none());
    }

    #[test]
    fn a_slim_pod_is_diagnosed_like_the_full_one() {
        let full: Pod = serde_json::from_value(json!({
            "metadata": { "name": "invoices-stable-1", "managedFields": [{ "manager": "kubelet" }] },
            "spec": { "containers": [{ "name": INFERENCE_CONTAINER, "image": "nope:1" }] },
            "status": {
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }],
                "containerStatuses": [{
                    "name": INFERENCE_CONTAINER, "image": "nope:1", "imageID": "", "ready": false,
                    "restartCount": 0, "state": { "waiting": { "reason": "ImagePullBackOff", "message": "not found" } },
                }],
            },
        }))
        .unwrap();
        let mut slim = full.clone();
        slim_pod(&mut slim);
        let issues = diagnose(std::slice::from_ref(&full));
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert_eq!(diagnose(&[slim.clone()]), issues);
        assert!(slim.spec.is_none() && slim.metadata.managed_fields.is_none());
    }
}

//! Deployments and pods slimmed to what status reads of them, for the controller's
//! watched caches: managed fields, the pod template's containers beyond their images, and
//! pod specs go. At a thousand OcrServices those are most of the operator's memory.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

/// A Deployment as [`StableObservation`](super::stable::StableObservation) reads it.
pub fn slim_deployment(deployment: &mut Deployment) {
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

/// A pod as [`diagnose`](super::diagnosis::diagnose) reads it: metadata and status.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.spec = None;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::diagnosis::diagnose;
    use super::super::stable::StableObservation;
    use super::*;
    use crate::names::{INFERENCE_CONTAINER, MODEL_VERSION_ANNOTATION, REVISION_LABEL};

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

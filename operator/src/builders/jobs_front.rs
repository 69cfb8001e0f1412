//! `spec.jobs`' front: a small Deployment and Service `<name>-jobs` running the inference
//! image with `--jobs-front`. It takes job submissions (and status, cancels, results)
//! without a model, so jobs can be submitted while the service's pods are at zero. Its
//! pods carry none of the labels the service's Services and the analysis select by: no
//! synchronous call ever reaches them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube_ocr_crds::OcrServiceSpec;
use serde_json::{Value, json};

use super::jobs::jobs_wiring;
use super::owner::Owner;
use super::pod::{RUN_AS_USER, container_security_context, strip_nulls};
use super::shared_cache::shared_cache_wiring;
use crate::names::{GRPC_HEALTH_SERVICE, GRPC_PORT, HTTP_API_PORT, HTTP_API_PORT_NAME, HTTP_PORT, INFERENCE_CONTAINER};

/// The label that selects a service's job front pods.
pub const JOBS_FRONT_LABEL: &str = "kube-ocr.dev/jobs-front";

/// `<name>-jobs`: the front's Deployment and Service.
pub fn jobs_front_name(ocr_service: &str) -> String {
    format!("{ocr_service}-jobs")
}

/// The front's Deployment and Service, when the spec has jobs.
pub fn jobs_front(owner: &Owner, spec: &OcrServiceSpec) -> Option<(Deployment, Service)> {
    let jobs = spec.jobs.as_ref()?;
    let name = jobs_front_name(&owner.name);
    let selector = BTreeMap::from([(JOBS_FRONT_LABEL.to_owned(), owner.name.clone())]);
    let mut pod_labels = selector.clone();
    pod_labels.insert("app.kubernetes.io/name".to_owned(), "ocr-jobs-front".to_owned());
    pod_labels.insert("app.kubernetes.io/instance".to_owned(), owner.name.clone());
    let mut wiring = shared_cache_wiring(owner, spec);
    wiring.extend(jobs_wiring(owner, spec));
    let mut args = vec![
        "--jobs-front".to_owned(),
        format!("--grpc-port={GRPC_PORT}"),
        format!("--http-api-port={HTTP_API_PORT}"),
        format!("--http-port={HTTP_PORT}"),
        "--log-format=json".to_owned(),
    ];
    args.extend(wiring.args);
    let mut mounts = vec![json!({ "name": "tmp", "mountPath": "/tmp" })];
    mounts.extend(wiring.mounts);
    let mut volumes = vec![json!({ "name": "tmp", "emptyDir": {} })];
    volumes.extend(wiring.volumes);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.child_meta(name.clone(), selector.clone()),
        "spec": {
            "replicas": jobs.front_replicas,
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": HTTP_PORT.to_string(), "prometheus.io/path": "/metrics",
                } },
                "spec": {
                    // The service's node pool, as its pods (without their GPUs).
                    "nodeSelector": if spec.node_selector.is_empty() { Value::Null } else { json!(spec.node_selector) },
                    "tolerations": if spec.tolerations.is_empty() { Value::Null } else { json!(spec.tolerations) },
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": INFERENCE_CONTAINER,
                        "image": spec.image,
                        "args": args,
                        "env": if wiring.env.is_empty() { Value::Null } else { json!(wiring.env) },
                        "ports": [
                            { "name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP" },
                            { "name": HTTP_API_PORT_NAME, "containerPort": HTTP_API_PORT, "protocol": "TCP" },
                            { "name": "http", "containerPort": HTTP_PORT, "protocol": "TCP" },
                        ],
                        // No model: a few tens of megabytes and next to no CPU.
                        "resources": {
                            "requests": { "cpu": "50m", "memory": "64Mi" },
                            "limits": { "memory": "512Mi" },
                        },
                        "readinessProbe": {
                            "grpc": { "port": GRPC_PORT, "service": GRPC_HEALTH_SERVICE },
                            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2,
                        },
                        "livenessProbe": {
                            "httpGet": { "path": "/healthz", "port": "http" },
                            "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3,
                        },
                        "securityContext": container_security_context(),
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.child_meta(name, BTreeMap::new()),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                { "name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c" },
                { "name": HTTP_API_PORT_NAME, "port": HTTP_API_PORT, "targetPort": HTTP_API_PORT_NAME, "protocol": "TCP" },
            ],
        },
    });
    let deployment = serde_json::from_value(strip_nulls(deployment)).expect("the front has the Deployment shape");
    let service = serde_json::from_value(service).expect("the front's Service has the Service shape");
    Some((deployment, service))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ocr_service;
    use super::*;
    use crate::names::SERVICE_LABEL;

    fn front(spec: Value) -> Option<(Deployment, Service)> {
        let ocr = ocr_service(spec);
        jobs_front(&Owner::of(&ocr).unwrap(), &ocr.spec)
    }

    #[test]
    fn only_a_service_with_jobs_has_a_front() {
        assert!(front(json!({})).is_none());
    }

    #[test]
    fn the_front_takes_jobs_with_the_pods_queue_and_bucket_and_is_never_selected_for_ocr() {
        let (deployment, service) = front(json!({
            "cache": { "redis": { "url": "redis://cache:6379", "secretRef": { "name": "redis-auth" } } },
            "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3:8333", "secretRef": { "name": "s3-auth" } } },
        }))
        .unwrap();
        assert_eq!(deployment.metadata.name.as_deref(), Some("invoices-jobs"));
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let template = spec.template;
        let labels = template.metadata.unwrap().labels.unwrap();
        assert!(!labels.contains_key(SERVICE_LABEL), "the service's Services must not select the front: {labels:?}");
        let container = &template.spec.unwrap().containers[0];
        let args = container.args.clone().unwrap();
        assert_eq!(args[0], "--jobs-front");
        for flag in
            ["--redis-url=redis://cache:6379", "--redis-key-prefix=kube-ocr:team-a:invoices", "--jobs-bucket=ocr-jobs"]
        {
            assert!(args.contains(&flag.to_owned()), "{flag} in {args:?}");
        }
        assert!(!args.iter().any(|arg| arg.starts_with("--bundle")), "a front loads no model: {args:?}");
        let env = serde_json::to_string(&container.env).unwrap();
        assert!(env.contains("redis-auth") && env.contains("s3-auth"), "{env}");
        let selector = service.spec.unwrap().selector.unwrap();
        assert_eq!(selector.get(JOBS_FRONT_LABEL).map(String::as_str), Some("invoices"));
        assert_eq!(service.metadata.owner_references.unwrap()[0].kind, "OcrService");
    }
}

//! Shape of the generated CRD, defaults, and the drift of the checked-in copies.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;

fn schema() -> Value {
    let crd = OcrService::crd();
    serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

fn rules(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|r| r.iter().map(|r| r["rule"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn crd_is_namespaced_with_short_name_and_status_subresource() {
    let crd = OcrService::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("ocrservices.kube-ocr.dev"));
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["ocrs".to_string()][..]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, VERSION);
    assert!(version.served && version.storage);
    let subresources = version.subresources.as_ref().unwrap();
    assert!(subresources.status.is_some());
    assert!(subresources.scale.is_none(), "the HPA owns replicas; a scale subresource would be a second writer");
}

#[test]
fn printer_columns_are_the_documented_ones() {
    let crd = OcrService::crd();
    let names: Vec<&str> =
        crd.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Phase", "Stable", "Canary", "Weight", "Accuracy", "P95", "Jobs", "Ready", "Age"]);
}

#[test]
fn every_spec_and_status_field_is_documented() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = node["properties"].as_object() {
            for (name, child) in properties {
                let child_path = format!("{path}.{name}");
                if child["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(child_path.clone());
                }
                // Kubernetes' own types carry upstream docs; ours must carry ours.
                if ["resources", "tolerations", "conditions"].contains(&name.as_str()) {
                    continue;
                }
                walk(child, &child_path, missing);
                walk(&child["items"], &format!("{child_path}[]"), missing);
            }
        }
    }
    let mut missing = Vec::new();
    let schema = schema();
    walk(&schema["properties"]["spec"], "spec", &mut missing);
    walk(&schema["properties"]["status"], "status", &mut missing);
    assert!(missing.is_empty(), "fields without doc comments: {missing:?}");
}

#[test]
fn admission_rules_cover_what_ranges_cannot_say() {
    let spec = &schema()["properties"]["spec"];
    let steps = rules(&spec["properties"]["rollout"]["properties"]["steps"]);
    assert!(steps.iter().any(|r| r.contains("== 100")), "{steps:?}");
    assert!(steps.iter().any(|r| r.contains("isSorted")), "{steps:?}");
    assert_eq!(spec["properties"]["rollout"]["properties"]["steps"]["items"]["maximum"], json!(100.0));
    assert!(rules(&spec["properties"]["replicas"]).iter().any(|r| r == "self.min <= self.max"));
    assert!(rules(&spec["properties"]["device"]).iter().any(|r| r.contains("self.gpus >= 1")));
    assert_eq!(rules(&spec["properties"]["model"]["properties"]["uri"]).len(), 4);
    let traffic = &spec["properties"]["rollout"]["properties"]["traffic"];
    // gatewayAPI needs a route of either kind, or both; a message naming only one would
    // send a user with an HTTPRoute the wrong way.
    assert_eq!(
        rules(traffic),
        ["self.provider != 'gatewayAPI' || has(self.grpcRoute) || has(self.httpRoute)"],
        "{traffic}"
    );
    let message = traffic["x-kubernetes-validations"][0]["message"].as_str().unwrap();
    assert!(message.contains("grpcRoute") && message.contains("httpRoute"), "{message}");
    for field in ["grpcRoute", "httpRoute"] {
        let route = &traffic["properties"][field];
        assert_eq!((&route["minLength"], &route["maxLength"]), (&json!(1), &json!(253)), "{field}: {route}");
    }
    let golden = &spec["properties"]["rollout"]["properties"]["analysis"]["properties"]["golden"]["properties"];
    assert_eq!(golden["minAccuracy"]["maximum"], json!(1.0));
}

#[test]
fn a_minimal_spec_gets_the_documented_defaults() {
    let spec: OcrServiceSpec = serde_json::from_value(json!({
        "model": { "uri": "file:///models/ppocr-v4", "version": "4.0.0" },
        "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
    }))
    .unwrap();
    assert_eq!(spec.device.kind, DeviceKind::Cpu);
    assert_eq!(spec.device.gpu_count(), 0);
    assert_eq!((spec.replicas.min, spec.replicas.max), (2, 10));
    assert!(spec.autoscaling.enabled);
    assert_eq!(spec.autoscaling.target_cpu_utilization, 70);
    assert_eq!(spec.rollout.steps, [10, 50, 100]);
    assert_eq!(spec.rollout.analysis.golden.max_accuracy_drop, 0.03);
    assert_eq!(spec.rollout.analysis.latency.max_p95_increase, 0.5);
    assert_eq!(spec.rollout.analysis.errors.max_error_rate_increase, 0.02);
    assert_eq!(spec.startup_timeout_seconds, 300);
    // The API server applies the same defaults from the schema.
    let replicas = &schema()["properties"]["spec"]["properties"]["replicas"];
    assert_eq!(replicas["default"], json!({ "min": 2, "max": 10 }));
}

#[test]
fn precision_is_an_optional_enum_spelled_as_the_pod_flag() {
    let precision = &schema()["properties"]["spec"]["properties"]["model"]["properties"]["precision"];
    assert_eq!(precision["enum"], json!(["fp32", "fp16", "bf16"]));
    let model: ModelSpec =
        serde_json::from_value(json!({ "uri": "file:///models/ppocr-v4", "version": "4.0.0", "precision": "bf16" }))
            .unwrap();
    assert_eq!(model.precision, Some(Precision::Bf16));
    assert_eq!(Precision::Bf16.as_flag(), "bf16");
    assert!(serde_json::from_value::<Precision>(json!("FP16")).is_err(), "spelled as the pod's flag spells it");
    let minimal: ModelSpec =
        serde_json::from_value(json!({ "uri": "file:///models/ppocr-v4", "version": "4.0.0" })).unwrap();
    assert_eq!(minimal.precision, None, "unset leaves the pod's default");
}

#[test]
fn cuda_defaults_to_one_gpu() {
    let device: DeviceSpec = serde_json::from_value(json!({ "kind": "cuda" })).unwrap();
    assert_eq!(device.gpu_count(), 1);
}

#[test]
fn traffic_provider_spells_gateway_api_as_documented() {
    let traffic: TrafficSpec = serde_json::from_value(json!({ "provider": "gatewayAPI", "grpcRoute": "r" })).unwrap();
    assert_eq!(traffic.provider, TrafficProvider::GatewayApi);
    assert_eq!((traffic.grpc_route.as_deref(), traffic.http_route.as_deref()), (Some("r"), None));
}

#[test]
fn traffic_names_an_http_route_beside_or_instead_of_the_grpc_route() {
    let both = json!({ "provider": "gatewayAPI", "grpcRoute": "g", "httpRoute": "h" });
    let traffic: TrafficSpec = serde_json::from_value(both.clone()).unwrap();
    assert_eq!((traffic.grpc_route.as_deref(), traffic.http_route.as_deref()), (Some("g"), Some("h")));
    assert_eq!(serde_json::to_value(&traffic).unwrap(), both, "written back as read");
    let http_only: TrafficSpec = serde_json::from_value(json!({ "provider": "gatewayAPI", "httpRoute": "h" })).unwrap();
    assert_eq!(http_only.grpc_route, None);
    assert!(!serde_json::to_value(&http_only).unwrap().as_object().unwrap().contains_key("grpcRoute"));
}

#[test]
fn checked_in_crd_matches_the_types() {
    let checked_in = include_str!("../generated/ocrservices.kube-ocr.dev.yaml");
    assert!(checked_in == crd_yaml(), "crds/generated/ocrservices.kube-ocr.dev.yaml is stale: run `make generate`");
}

#[test]
fn checked_in_reference_matches_the_types() {
    let checked_in = include_str!("../../docs/ocrservice-reference.md");
    assert!(checked_in == reference_markdown(), "docs/ocrservice-reference.md is stale: run `make generate`");
}

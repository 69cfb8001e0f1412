//! The inference pod template and its revision hash.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_ocr_crds::{DeviceKind, OcrServiceSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::jobs::jobs_wiring;
use super::owner::Owner;
use super::settings::BuildSettings;
use super::shared_cache::shared_cache_wiring;
use crate::model_source::{FETCH_SCRIPT, MODEL_MOUNT_PATH, ModelSource};
use crate::names::{
    FETCH_CONTAINER, GRPC_HEALTH_SERVICE, GRPC_PORT, HTTP_API_PORT, HTTP_API_PORT_NAME, HTTP_PORT, INFERENCE_CONTAINER,
    MODEL_VERSION_ANNOTATION, TRACK_LABEL, Track,
};

/// The extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Non-root user of the pod (the distroless `nonroot` user).
pub const RUN_AS_USER: i64 = 65532;
/// The inference pod drains 5 s and gives in-flight requests 20 s (its defaults); the
/// kubelet must wait longer than both before SIGKILL.
pub const TERMINATION_GRACE_SECONDS: i64 = 35;
const STARTUP_PERIOD_SECONDS: i32 = 2;

/// The pod template of `track` at the current spec, without the revision label (the hash
/// is taken over this, so it cannot include itself).
pub fn pod_template(
    owner: &Owner,
    spec: &OcrServiceSpec,
    model: &ModelSource,
    track: Track,
    settings: &BuildSettings,
) -> PodTemplateSpec {
    let mut labels = owner.labels();
    labels.insert(TRACK_LABEL.to_owned(), track.label_value().to_owned());
    let annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), HTTP_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        (MODEL_VERSION_ANNOTATION.to_owned(), spec.model.version.clone()),
    ]);
    let (volumes, model_mounts, init_containers) = model_volumes(model, settings);
    let mut cache = shared_cache_wiring(owner, spec);
    cache.extend(jobs_wiring(owner, spec));
    let mut mounts = vec![json!({ "name": "tmp", "mountPath": "/tmp" })];
    mounts.extend(model_mounts);
    mounts.extend(cache.mounts);
    let mut volumes = volumes;
    volumes.push(json!({ "name": "tmp", "emptyDir": {} }));
    volumes.extend(cache.volumes);
    let mut args = args(spec, model);
    args.extend(cache.args);
    let mut tolerations: Vec<Value> = spec.tolerations.iter().map(|t| json!(t)).collect();
    if spec.device.kind == DeviceKind::Cuda {
        tolerations.push(json!({ "key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule" }));
    }
    let template = json!({
        "metadata": { "labels": labels, "annotations": annotations },
        "spec": {
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "fsGroup": RUN_AS_USER,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "nodeSelector": if spec.node_selector.is_empty() { Value::Null } else { json!(spec.node_selector) },
            "tolerations": if tolerations.is_empty() { Value::Null } else { json!(tolerations) },
            "topologySpreadConstraints": spread(owner, track),
            "initContainers": if init_containers.is_empty() { Value::Null } else { json!(init_containers) },
            "containers": [{
                "name": INFERENCE_CONTAINER,
                "image": spec.image,
                "args": args,
                "env": if cache.env.is_empty() { Value::Null } else { json!(cache.env) },
                "ports": [
                    { "name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP" },
                    { "name": HTTP_API_PORT_NAME, "containerPort": HTTP_API_PORT, "protocol": "TCP" },
                    { "name": "http", "containerPort": HTTP_PORT, "protocol": "TCP" },
                ],
                "resources": resources(spec),
                "startupProbe": {
                    "grpc": { "port": GRPC_PORT, "service": GRPC_HEALTH_SERVICE },
                    "periodSeconds": STARTUP_PERIOD_SECONDS,
                    "timeoutSeconds": 2,
                    "failureThreshold": startup_failure_threshold(spec.startup_timeout_seconds),
                },
                "readinessProbe": {
                    "grpc": { "port": GRPC_PORT, "service": GRPC_HEALTH_SERVICE },
                    "periodSeconds": 5,
                    "timeoutSeconds": 2,
                    "failureThreshold": 2,
                },
                "livenessProbe": {
                    "httpGet": { "path": "/healthz", "port": "http" },
                    "periodSeconds": 10,
                    "timeoutSeconds": 3,
                    "failureThreshold": 3,
                },
                "securityContext": container_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    });
    serde_json::from_value(strip_nulls(template)).expect("the pod template has the PodTemplateSpec shape")
}

/// Ten hex digits of the SHA-256 of the template: any change to what the pods run makes a
/// new revision, and nothing else does.
pub fn revision_of(template: &PodTemplateSpec) -> String {
    // k8s-openapi serialises struct fields in a fixed order and maps sorted: stable bytes.
    let bytes = serde_json::to_vec(template).expect("a pod template serialises");
    let digest = Sha256::digest(&bytes);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn args(spec: &OcrServiceSpec, model: &ModelSource) -> Vec<String> {
    let device = match spec.device.kind {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Cuda => "cuda",
    };
    // The listen host is left to the image default (0.0.0.0); everything else is explicit
    // so `kubectl describe pod` shows what the server runs with.
    let mut args = vec![
        format!("--bundle={}", model.bundle_path()),
        format!("--device={device}"),
        format!("--grpc-port={GRPC_PORT}"),
        format!("--http-api-port={HTTP_API_PORT}"),
        format!("--http-port={HTTP_PORT}"),
        format!("--max-batch-size={}", spec.batching.max_batch_size),
        format!("--max-queue-delay-ms={}", spec.batching.max_queue_delay_ms),
        format!("--max-queue={}", spec.batching.max_queue),
        "--log-format=json".to_owned(),
    ];
    if let Some(floor) = spec.model.self_test_min_accuracy {
        args.push(format!("--self-test-min-accuracy={floor}"));
    }
    // Unset leaves the pod's default (fp32), so a spec without it renders as before.
    if let Some(precision) = spec.model.precision {
        args.push(format!("--precision={}", precision.as_flag()));
    }
    args
}

fn resources(spec: &OcrServiceSpec) -> ResourceRequirements {
    let mut resources = spec.resources.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("1".into())),
            ("memory".to_owned(), Quantity("2Gi".into())),
        ])),
        ..ResourceRequirements::default()
    });
    let gpus = spec.device.gpu_count();
    if gpus > 0 {
        // Extended resources cannot be overcommitted: requests must equal limits.
        let quantity = Quantity(gpus.to_string());
        resources.limits.get_or_insert_with(BTreeMap::new).insert(GPU_RESOURCE.to_owned(), quantity.clone());
        resources.requests.get_or_insert_with(BTreeMap::new).insert(GPU_RESOURCE.to_owned(), quantity);
    }
    resources
}

pub(super) fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "privileged": false,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Soft spread over zones and nodes: prefer it, never block scheduling on it.
fn spread(owner: &Owner, track: Track) -> Value {
    let selector = json!({ "matchLabels": owner.track_selector(track) });
    json!([
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
    ])
}

fn model_volumes(model: &ModelSource, settings: &BuildSettings) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    match model {
        ModelSource::File { .. } => (Vec::new(), Vec::new(), Vec::new()),
        ModelSource::Pvc { claim, .. } => (
            vec![json!({ "name": "model", "persistentVolumeClaim": { "claimName": claim, "readOnly": true } })],
            vec![json!({ "name": "model", "mountPath": MODEL_MOUNT_PATH, "readOnly": true })],
            Vec::new(),
        ),
        ModelSource::Https { url, sha256 } => (
            vec![json!({ "name": "model", "emptyDir": {} })],
            vec![json!({ "name": "model", "mountPath": MODEL_MOUNT_PATH, "readOnly": true })],
            vec![json!({
                "name": FETCH_CONTAINER,
                "image": settings.fetch_image,
                "command": ["sh", "-c", FETCH_SCRIPT],
                "env": [
                    { "name": "MODEL_URL", "value": url },
                    { "name": "MODEL_SHA256", "value": sha256 },
                    { "name": "MODEL_DIR", "value": MODEL_MOUNT_PATH },
                ],
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } },
                "securityContext": container_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{ "name": "model", "mountPath": MODEL_MOUNT_PATH }],
            })],
        ),
    }
}

fn startup_failure_threshold(timeout_seconds: i32) -> i32 {
    (timeout_seconds + STARTUP_PERIOD_SECONDS - 1) / STARTUP_PERIOD_SECONDS
}

pub(super) fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;
    use serde_json::json;

    use super::super::test_support::ocr_service;
    use super::*;

    fn template_for(spec: Value) -> PodTemplateSpec {
        let ocr = ocr_service(spec);
        let owner = Owner::of(&ocr).unwrap();
        let model = ModelSource::parse(&ocr.spec.model.uri).unwrap();
        pod_template(&owner, &ocr.spec, &model, Track::Stable, &BuildSettings::default())
    }

    fn container(template: &PodTemplateSpec) -> &Container {
        &template.spec.as_ref().unwrap().containers[0]
    }

    #[test]
    fn args_carry_bundle_device_and_batching() {
        let template =
            template_for(json!({ "batching": { "maxBatchSize": 16, "maxQueueDelayMs": 7, "maxQueue": 64 } }));
        let args = container(&template).args.clone().unwrap();
        for expected in [
            "--bundle=/models/ppocr-v4",
            "--device=cpu",
            "--grpc-port=50051",
            "--http-api-port=8000",
            "--http-port=8080",
            "--max-batch-size=16",
            "--max-queue-delay-ms=7",
            "--max-queue=64",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} missing from {args:?}");
        }
        assert!(!args.iter().any(|a| a.starts_with("--listen-host")), "the pod's own default must stay");
        assert!(!args.iter().any(|a| a.starts_with("--self-test-min-accuracy")), "the bundle's floor by default");
        let lowered = template_for(json!({ "model": { "selfTestMinAccuracy": 0.5 } }));
        assert!(container(&lowered).args.as_ref().unwrap().contains(&"--self-test-min-accuracy=0.5".to_owned()));
    }

    #[test]
    fn precision_is_passed_only_when_the_spec_sets_it() {
        let default = template_for(json!({}));
        assert!(!container(&default).args.as_ref().unwrap().iter().any(|a| a.starts_with("--precision")));
        for precision in ["fp32", "fp16", "bf16"] {
            let template = template_for(json!({ "model": { "precision": precision } }));
            let args = container(&template).args.clone().unwrap();
            assert!(args.contains(&format!("--precision={precision}")), "{precision}: {args:?}");
        }
    }

    #[test]
    fn restricted_security_context_on_pod_and_container() {
        let template = template_for(json!({}));
        let pod = template.spec.as_ref().unwrap().security_context.clone().unwrap();
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = container(&template).security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        // A read-only root filesystem still needs a writable /tmp.
        let mounts = container(&template).volume_mounts.clone().unwrap();
        assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));
    }

    #[test]
    fn probes_gate_on_model_load_then_grpc_health_then_liveness() {
        let template = template_for(json!({ "startupTimeoutSeconds": 301 }));
        let c = container(&template);
        let startup = c.startup_probe.clone().unwrap();
        let grpc = startup.grpc.clone().unwrap();
        assert_eq!((grpc.port, grpc.service.as_deref()), (GRPC_PORT, Some("kube_ocr.v1.Ocr")));
        let budget = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
        assert!(budget >= 301, "startup budget {budget}s below the spec's 301s");
        assert!(c.readiness_probe.as_ref().unwrap().grpc.is_some());
        let liveness = c.liveness_probe.as_ref().unwrap().http_get.clone().unwrap();
        assert_eq!(liveness.path.as_deref(), Some("/healthz"));
    }

    #[test]
    fn cuda_requests_gpus_and_tolerates_the_gpu_taint() {
        let template = template_for(json!({ "device": { "kind": "cuda", "gpus": 2 } }));
        let c = container(&template);
        let resources = c.resources.clone().unwrap();
        assert_eq!(resources.limits.unwrap()[GPU_RESOURCE], Quantity("2".into()));
        assert_eq!(resources.requests.unwrap()[GPU_RESOURCE], Quantity("2".into()));
        assert!(c.args.as_ref().unwrap().contains(&"--device=cuda".to_owned()));
        let tolerations = template.spec.unwrap().tolerations.unwrap();
        assert!(tolerations.iter().any(|t| t.key.as_deref() == Some(GPU_RESOURCE)));
    }

    #[test]
    fn cpu_pods_get_default_requests_and_no_gpu() {
        let template = template_for(json!({}));
        let resources = container(&template).resources.clone().unwrap();
        let requests = resources.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity("1".into()), "the HPA's CPU target needs a CPU request");
        assert!(!requests.contains_key(GPU_RESOURCE));
        assert!(template.spec.unwrap().tolerations.is_none());
    }

    #[test]
    fn prometheus_annotations_and_labels() {
        let template = template_for(json!({}));
        let meta = template.metadata.unwrap();
        let annotations = meta.annotations.unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "8080");
        assert_eq!(annotations[MODEL_VERSION_ANNOTATION], "4.0.0");
        let labels = meta.labels.unwrap();
        assert_eq!(labels[TRACK_LABEL], "stable");
        assert_eq!(labels[crate::names::SERVICE_LABEL], "invoices");
    }

    #[test]
    fn topology_spread_is_soft_over_zones_and_nodes() {
        let template = template_for(json!({}));
        let spread = template.spec.unwrap().topology_spread_constraints.unwrap();
        let keys: Vec<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(keys, ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]);
        assert!(spread.iter().all(|c| c.when_unsatisfiable == "ScheduleAnyway"));
    }

    #[test]
    fn pvc_uri_mounts_the_claim_read_only() {
        let template = template_for(json!({ "model": { "uri": "pvc://models/ppocr-v4" } }));
        let spec = template.spec.clone().unwrap();
        let volume = spec.volumes.unwrap().into_iter().find(|v| v.name == "model").unwrap();
        let claim = volume.persistent_volume_claim.unwrap();
        assert_eq!((claim.claim_name.as_str(), claim.read_only), ("models", Some(true)));
        assert!(container(&template).args.as_ref().unwrap().contains(&format!("--bundle={MODEL_MOUNT_PATH}/ppocr-v4")));
        assert!(spec.init_containers.is_none());
    }

    #[test]
    fn https_uri_downloads_and_verifies_in_an_init_container() {
        let sum = "ab".repeat(32);
        let template =
            template_for(json!({ "model": { "uri": format!("https://example.com/m.tar.gz#sha256={sum}") } }));
        let spec = template.spec.clone().unwrap();
        let init = &spec.init_containers.unwrap()[0];
        assert_eq!(init.name, FETCH_CONTAINER);
        assert_eq!(init.image.as_deref(), Some(DEFAULT_FETCH_IMAGE_FOR_TEST));
        let env = init.env.clone().unwrap();
        assert!(env.iter().any(|e| e.name == "MODEL_SHA256" && e.value.as_deref() == Some(sum.as_str())));
        assert!(
            env.iter().any(|e| e.name == "MODEL_URL" && e.value.as_deref() == Some("https://example.com/m.tar.gz"))
        );
        assert!(init.command.as_ref().unwrap()[2].contains("checksum mismatch"));
        assert_eq!(init.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
        assert!(container(&template).args.as_ref().unwrap().contains(&format!("--bundle={MODEL_MOUNT_PATH}")));
    }

    const DEFAULT_FETCH_IMAGE_FOR_TEST: &str = super::super::settings::DEFAULT_FETCH_IMAGE;

    #[test]
    fn fetch_script_verifies_the_checksum_before_unpacking() {
        let dir = tempfile_dir();
        let bundle = dir.join("src");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("bundle.yaml"), "name: test\n").unwrap();
        let archive = dir.join("b.tar.gz");
        let tar = std::process::Command::new("tar")
            .args(["-czf", archive.to_str().unwrap(), "-C", bundle.to_str().unwrap(), "."])
            .status()
            .unwrap();
        assert!(tar.success());
        let sum = String::from_utf8(std::process::Command::new("sha256sum").arg(&archive).output().unwrap().stdout)
            .unwrap()[..64]
            .to_owned();
        let run = |expected: &str, out: &std::path::Path| {
            std::fs::create_dir_all(out).unwrap();
            std::process::Command::new("sh")
                .args(["-c", FETCH_SCRIPT])
                .env("MODEL_URL", format!("file://{}", archive.display()))
                .env("MODEL_SHA256", expected)
                .env("MODEL_DIR", out)
                .output()
                .unwrap()
        };
        let good = run(&sum, &dir.join("good"));
        assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
        assert!(dir.join("good/bundle.yaml").is_file());
        let bad = run(&"0".repeat(64), &dir.join("bad"));
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("checksum mismatch"));
        assert!(!dir.join("bad/bundle.yaml").exists(), "nothing is unpacked from an unverified archive");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kube-ocr-fetch-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

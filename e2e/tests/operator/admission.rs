//! The OcrService CRD on the real API server: it is accepted (its CEL compiles), it
//! defaults a minimal spec, and each invalid spec in the table is refused at admission
//! with a message a user can act on.

use crate::support::{Load, Scenario};
use kube::api::{Api, PostParams};
use kube_ocr_crds::OcrService;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimal_spec_is_admitted_with_the_documented_defaults() {
    let s = Scenario::new("ocrs-defaults", Load::NoPods).await;
    let created = s
        .create(&serde_json::from_value(json!({
            "apiVersion": "kube-ocr.dev/v1alpha1", "kind": "OcrService",
            "metadata": { "name": "minimal" },
            "spec": { "model": { "uri": "file:///models/ppocr-v4", "version": "4.0.0" }, "image": "ghcr.io/kube-ocr/inference-pod:0.1.0" },
        }))
        .unwrap())
        .await;
    let spec = created.spec;
    assert_eq!((spec.replicas.min, spec.replicas.max), (2, 10));
    assert_eq!(spec.rollout.steps, [10, 50, 100]);
    assert_eq!(spec.autoscaling.target_cpu_utilization, 70);
    assert_eq!(spec.rollout.analysis.failure_limit, 2);
    assert_eq!(spec.startup_timeout_seconds, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_at_admission_with_readable_messages() {
    let s = Scenario::new("ocrs-admission", Load::NoPods).await;
    let api: Api<OcrService> = s.api();
    let sum = "a".repeat(64);
    let table = [
        (
            "a cache URL that is not Redis",
            json!({ "cache": { "redis": { "url": "http://cache:6379" } } }),
            "must start with redis:// or rediss://",
        ),
        (
            "a password in the cache URL",
            json!({ "cache": { "redis": { "url": "redis://:hunter2@cache:6379" } } }),
            "put the password in the Secret",
        ),
        (
            "a CA for a plain-text Redis",
            json!({ "cache": { "redis": { "url": "redis://cache:6379", "secretRef": { "name": "r", "caKey": "ca.crt" } } } }),
            "rediss:// (TLS) URLs only",
        ),
        (
            "jobs without a Redis for their queue",
            json!({ "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3:8333", "secretRef": { "name": "s3-auth" } } } }),
            "spec.jobs needs spec.cache.redis",
        ),
        (
            "a bucket endpoint that is not HTTP",
            json!({
                "cache": { "redis": { "url": "redis://cache:6379" } },
                "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "s3://ocr-jobs", "secretRef": { "name": "s3-auth" } } },
            }),
            "must start with http:// or https://",
        ),
        (
            "credentials in the bucket endpoint",
            json!({
                "cache": { "redis": { "url": "redis://cache:6379" } },
                "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "https://key:secret@s3.example.com", "secretRef": { "name": "s3-auth" } } },
            }),
            "put them in the Secret named by jobs.bucket.secretRef",
        ),
        (
            "a bucket name S3 refuses",
            json!({
                "cache": { "redis": { "url": "redis://cache:6379" } },
                "jobs": { "bucket": { "name": "OCR_Jobs", "endpoint": "https://s3.example.com", "secretRef": { "name": "s3-auth" } } },
            }),
            "spec.jobs.bucket.name",
        ),
        (
            "scale to zero without jobs",
            json!({ "replicas": { "min": 0, "max": 2 }, "autoscaling": { "provider": "keda" } }),
            "replicas.min 0 (scale to zero) needs autoscaling.provider keda and spec.jobs",
        ),
        (
            "a pods metric with KEDA",
            json!({ "autoscaling": { "provider": "keda", "podsMetric": { "name": "ocr_queue_depth", "targetAverageValue": "4" } } }),
            "autoscaling.podsMetric applies to provider hpa",
        ),
        ("steps not increasing", json!({ "rollout": { "steps": [50, 10, 100] } }), "strictly increasing"),
        ("steps repeated", json!({ "rollout": { "steps": [10, 10, 100] } }), "strictly increasing"),
        ("steps not ending at 100", json!({ "rollout": { "steps": [10, 50] } }), "must end at 100"),
        ("a step above 100", json!({ "rollout": { "steps": [10, 150] } }), "100"),
        ("min above max", json!({ "replicas": { "min": 5, "max": 2 } }), "replicas.min must not exceed replicas.max"),
        ("cuda with 0 GPUs", json!({ "device": { "kind": "cuda", "gpus": 0 } }), "at least 1 when device.kind is cuda"),
        ("GPUs on cpu", json!({ "device": { "kind": "cpu", "gpus": 1 } }), "applies to device.kind cuda only"),
        (
            "unknown URI scheme",
            json!({ "model": { "uri": "s3://bucket/model" } }),
            "must start with file://, pvc:// or https://",
        ),
        ("relative file URI", json!({ "model": { "uri": "file://models/x" } }), "absolute path"),
        ("pvc without path", json!({ "model": { "uri": "pvc://claim" } }), "pvc://<claim name>/<path"),
        ("https without checksum", json!({ "model": { "uri": "https://example.com/b.tar.gz" } }), "#sha256="),
        (
            "https with short checksum",
            json!({ "model": { "uri": "https://example.com/b.tar.gz#sha256=abc" } }),
            "#sha256=",
        ),
        ("accuracy above 1", json!({ "rollout": { "analysis": { "golden": { "minAccuracy": 1.5 } } } }), "minAccuracy"),
        (
            "negative drop",
            json!({ "rollout": { "analysis": { "golden": { "maxAccuracyDrop": -0.1 } } } }),
            "maxAccuracyDrop",
        ),
        (
            "error rate above 1",
            json!({ "rollout": { "analysis": { "errors": { "maxErrorRateIncrease": 2 } } } }),
            "maxErrorRateIncrease",
        ),
        ("zero failure limit", json!({ "rollout": { "analysis": { "failureLimit": 0 } } }), "failureLimit"),
        ("bad duration", json!({ "rollout": { "stepInterval": "1 minute" } }), "stepInterval"),
        (
            "gatewayAPI without route",
            json!({ "rollout": { "traffic": { "provider": "gatewayAPI" } } }),
            "grpcRoute or rollout.traffic.httpRoute (or both) is required",
        ),
        ("unknown device", json!({ "device": { "kind": "tpu" } }), "Unsupported value"),
        ("CPU target above 100", json!({ "autoscaling": { "targetCPUUtilization": 120 } }), "targetCPUUtilization"),
    ];
    let mut failures = Vec::new();
    for (case, patch, expected) in table {
        let mut spec = json!({
            "model": { "uri": format!("https://example.com/b.tar.gz#sha256={sum}"), "version": "1" },
            "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
        });
        crate::support::merge(&mut spec, patch);
        let object = json!({
            "apiVersion": "kube-ocr.dev/v1alpha1", "kind": "OcrService",
            "metadata": { "name": "bad" }, "spec": spec,
        });
        let ocr: OcrService = match serde_json::from_value(object.clone()) {
            Ok(ocr) => ocr,
            // Shapes the Rust types cannot even hold (an unknown device kind) go as raw JSON.
            Err(_) => {
                let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
                    s.admin.clone(),
                    &s.namespace,
                    &kube::api::ApiResource::erase::<OcrService>(&()),
                );
                let object: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
                match raw.create(&PostParams::default(), &object).await {
                    Ok(_) => failures.push(format!("{case}: admitted")),
                    Err(err) if err.to_string().contains(expected) => {}
                    Err(err) => failures.push(format!("{case}: refused without {expected:?}: {err}")),
                }
                continue;
            }
        };
        match api.create(&PostParams::default(), &ocr).await {
            Ok(_) => {
                failures.push(format!("{case}: admitted"));
                api.delete("bad", &Default::default()).await.unwrap();
            }
            Err(kube::Error::Api(status)) if status.code == 422 && status.message.contains(expected) => {}
            Err(err) => failures.push(format!("{case}: refused without {expected:?}: {err}")),
        }
    }
    // Names: they become Service names (DNS-1035 labels, with -stable/-canary appended).
    for (case, name, expected) in [
        ("name too long", "n".repeat(57), "at most 56 characters"),
        ("name starting with a digit", "1invoices".to_owned(), "start with a letter"),
    ] {
        let ocr: OcrService = serde_json::from_value(json!({
            "apiVersion": "kube-ocr.dev/v1alpha1", "kind": "OcrService",
            "metadata": { "name": name },
            "spec": { "model": { "uri": "file:///models/ppocr-v4", "version": "1" }, "image": "img" },
        }))
        .unwrap();
        match api.create(&PostParams::default(), &ocr).await {
            Ok(_) => failures.push(format!("{case}: admitted")),
            Err(kube::Error::Api(status)) if status.code == 422 && status.message.contains(expected) => {}
            Err(err) => failures.push(format!("{case}: refused without {expected:?}: {err}")),
        }
    }
    assert!(failures.is_empty(), "admission table:\n{}", failures.join("\n"));
}

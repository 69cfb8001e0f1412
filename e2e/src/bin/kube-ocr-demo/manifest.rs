//! The demo's OcrService: the minimal sample as shipped (its image carries the bundle it
//! names), in the demo's namespace, with a rollout fast enough to watch. Pure, so it is
//! unit-tested.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// What the demo changes in the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSettings {
    /// The namespace the OcrService goes to.
    pub namespace: String,
    /// `spec.rollout.stepInterval` (the sample keeps the default, 60s).
    pub step_interval: String,
    /// `spec.rollout.analysis.interval` (default 30s).
    pub analysis_interval: String,
    /// `spec.rollout.progressDeadline` (default 10m).
    pub progress_deadline: String,
    /// `spec.rollout.analysis.latency.maxP95Ms` (default 800, for a release build; the
    /// demo's dev-profile pods on a shared CPU take seconds per document).
    pub max_p95_ms: u32,
    /// `spec.rollout.analysis.latency.maxP95Increase` (default 0.5).
    pub max_p95_increase: f64,
}

/// The OcrService document of `sample` (a YAML stream; other documents are ignored),
/// rewritten with `settings`. Fails when the sample holds no OcrService or lacks the fields
/// the demo relies on, naming what is missing.
pub fn demo_ocr_service(sample: &str, settings: &DemoSettings) -> anyhow::Result<Value> {
    let mut found = None;
    for document in serde_norway::Deserializer::from_str(sample) {
        let value = <Value as serde::Deserialize>::deserialize(document).context("the sample is not valid YAML")?;
        if value.get("kind").and_then(Value::as_str) == Some("OcrService") {
            if found.is_some() {
                bail!("the sample holds more than one OcrService");
            }
            found = Some(value);
        }
    }
    let mut ocr = found.context("the sample holds no OcrService")?;
    if ocr.pointer("/metadata/name").and_then(Value::as_str).is_none() {
        bail!("the sample's OcrService has no metadata.name");
    }
    if ocr.pointer("/spec/model/version").and_then(Value::as_str).is_none() {
        bail!("the sample's OcrService has no spec.model.version");
    }
    ocr["metadata"]["namespace"] = Value::String(settings.namespace.clone());
    merge(
        &mut ocr["spec"],
        json!({ "rollout": {
            "stepInterval": settings.step_interval,
            "progressDeadline": settings.progress_deadline,
            "analysis": {
                "interval": settings.analysis_interval,
                "latency": { "maxP95Ms": settings.max_p95_ms, "maxP95Increase": settings.max_p95_increase },
            },
        }}),
    );
    Ok(ocr)
}

/// The merge patch that rolls out model version `version` (same bundle).
pub fn version_patch(version: &str) -> Value {
    json!({ "spec": { "model": { "version": version } } })
}

/// `name`, `spec.model.version` and the canary steps (the CRD's default when unset).
pub fn summary(ocr: &Value) -> (String, String, Vec<i64>) {
    let text = |pointer: &str| ocr.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let steps = ocr
        .pointer("/spec/rollout/steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_else(|| vec![10, 50, 100]);
    (text("/metadata/name"), text("/spec/model/version"), steps)
}

/// JSON merge patch semantics, without deletions: objects merge key by key, anything else
/// replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DemoSettings {
        DemoSettings {
            namespace: "demo".into(),
            step_interval: "10s".into(),
            analysis_interval: "5s".into(),
            progress_deadline: "3m".into(),
            max_p95_ms: 30000,
            max_p95_increase: 1.0,
        }
    }

    fn shipped_sample() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples/ocrservice-cpu-minimal.yaml");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_shipped_minimal_sample_keeps_its_bundle_and_gets_a_fast_rollout() {
        let ocr = demo_ocr_service(&shipped_sample(), &settings()).unwrap();
        assert_eq!(ocr["metadata"]["name"], "ocr-cpu-minimal");
        assert_eq!(ocr["metadata"]["namespace"], "demo");
        assert_eq!(ocr["spec"]["model"]["uri"], "file:///models/ppocr-v4", "the bundle baked into the image");
        assert_eq!(ocr["spec"]["rollout"]["stepInterval"], "10s");
        assert_eq!(ocr["spec"]["rollout"]["progressDeadline"], "3m");
        assert_eq!(ocr["spec"]["rollout"]["analysis"]["interval"], "5s");
        assert_eq!(ocr["spec"]["rollout"]["analysis"]["latency"], json!({ "maxP95Ms": 30000, "maxP95Increase": 1.0 }));
        // Everything else is the sample's.
        assert_eq!(ocr["spec"]["model"]["version"], "4.0.0");
        assert_eq!(ocr["spec"]["image"], "ghcr.io/kube-ocr/inference-pod:0.1.0");
        assert_eq!(ocr["spec"]["device"]["kind"], "cpu");
        assert_eq!(ocr["spec"]["replicas"], json!({ "min": 1, "max": 1 }));
        // And it is a valid OcrService for the operator's own types.
        let typed: kube_ocr_crds::OcrService = serde_json::from_value(ocr.clone()).unwrap();
        assert_eq!(typed.spec.rollout.step_interval, "10s");
        assert_eq!(typed.spec.rollout.analysis.latency.max_p95_ms, 30000);
        assert_eq!(typed.spec.rollout.analysis.golden.min_accuracy, 0.9, "the accuracy gates keep their defaults");
        assert_eq!(typed.spec.rollout.steps, vec![10, 50, 100]);
        assert_eq!(summary(&ocr), ("ocr-cpu-minimal".to_owned(), "4.0.0".to_owned(), vec![10, 50, 100]));
    }

    #[test]
    fn rollout_settings_of_the_sample_survive_unless_the_demo_sets_them() {
        let sample = "apiVersion: kube-ocr.dev/v1alpha1\nkind: OcrService\nmetadata: {name: x, namespace: prod}\n\
                      spec:\n  model: {uri: 'file:///m', version: '1'}\n  rollout:\n    steps: [25, 100]\n    \
                      analysis: {failureLimit: 3, interval: 1m}\n";
        let ocr = demo_ocr_service(sample, &settings()).unwrap();
        assert_eq!(ocr["metadata"]["namespace"], "demo");
        assert_eq!(ocr["spec"]["rollout"]["steps"], json!([25, 100]));
        assert_eq!(
            ocr["spec"]["rollout"]["analysis"],
            json!({ "failureLimit": 3, "interval": "5s", "latency": { "maxP95Ms": 30000, "maxP95Increase": 1.0 } })
        );
        assert_eq!(summary(&ocr).2, vec![25, 100]);
    }

    #[test]
    fn other_documents_are_skipped_and_missing_pieces_are_named() {
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\n";
        let ocr = "apiVersion: kube-ocr.dev/v1alpha1\nkind: OcrService\nmetadata: {name: x}\nspec:\n  model: {uri: 'file:///m', version: '1'}\n";
        let both = format!("{route}---\n{ocr}");
        assert_eq!(demo_ocr_service(&both, &settings()).unwrap()["metadata"]["name"], "x");

        let error = |sample: &str| demo_ocr_service(sample, &settings()).unwrap_err().to_string();
        assert_eq!(error(route), "the sample holds no OcrService");
        assert_eq!(error(&format!("{ocr}---\n{ocr}")), "the sample holds more than one OcrService");
        assert!(error("kind: OcrService\nmetadata: {name: x}\nspec: {}\n").contains("spec.model.version"));
        assert!(error("kind: OcrService\nspec: {model: {}}\n").contains("metadata.name"));
        assert!(error("kind: [").contains("not valid YAML"));
    }

    #[test]
    fn the_version_patch_changes_only_the_model_version() {
        assert_eq!(version_patch("4.0.1"), json!({ "spec": { "model": { "version": "4.0.1" } } }));
    }
}

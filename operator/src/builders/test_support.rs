//! What the tests of every module build OcrServices with.

use kube_ocr_crds::{OcrService, OcrServiceSpec};
use serde_json::json;

/// An admitted OcrService (name, namespace, uid) with the given spec JSON merged over
/// a minimal one.
pub fn ocr_service(spec: serde_json::Value) -> OcrService {
    let mut base = json!({
        "model": { "uri": "file:///models/ppocr-v4", "version": "4.0.0" },
        "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
    });
    merge(&mut base, spec);
    let spec: OcrServiceSpec = serde_json::from_value(base).unwrap();
    let mut ocr = OcrService::new("invoices", spec);
    ocr.metadata.namespace = Some("team-a".into());
    ocr.metadata.uid = Some("0f1e2d3c-0000-4000-8000-000000000001".into());
    ocr.metadata.generation = Some(1);
    ocr
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

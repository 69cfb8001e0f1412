//! What the canary scenarios share: a healthy OcrService to start from, a model change
//! (a bundle of models/ and its version), and the Warning events a rollout leaves.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

use super::{Scenario, TIMEOUT, workspace_root};

pub async fn warning_notes(s: &Scenario, name: &str, reason: &str) -> Vec<String> {
    let events: Api<Event> = s.api();
    let list = events.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.note)
        .collect()
}

pub fn bundle_uri(name: &str) -> String {
    let path = workspace_root().join("models").join(name).canonicalize().expect("models/: run `make setup`");
    format!("file://{}", path.display())
}

/// Starts an OcrService on the standard bundle and waits until stable serves.
pub async fn healthy_service(s: &Scenario, name: &str, rollout: serde_json::Value) -> String {
    s.create_golden_config_map("golden-small").await;
    s.create(&s.ocr_service(name, rollout)).await;
    s.wait_status(name, "Healthy", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::Healthy) && status.ready_replicas == Some(1))
            .then(|| status.stable_revision.clone())
            .flatten()
    })
    .await
}

pub async fn change_model(s: &Scenario, name: &str, bundle: &str, version: &str) {
    let patch = json!({ "spec": { "model": { "uri": bundle_uri(bundle), "version": version } } });
    s.api::<OcrService>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

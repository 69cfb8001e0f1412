//! What the canary scenarios share: a healthy OcrService to start from, a model change
//! (a bundle of models/ and its version), and the Warning events a rollout leaves.

use kube::api::{Patch, PatchParams};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

use super::{MODELS_CLAIM, Scenario, TIMEOUT};

/// The notes of the Warning events with `reason` about `name`, once there is at least one:
/// the operator records an event beside the status it writes, so a scenario that has just
/// seen the status may look before the event lands. Empty if none comes within 30 s.
pub async fn warning_notes(s: &Scenario, name: &str, reason: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let notes: Vec<String> = s
            .events_about(name)
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note)
            .collect();
        if !notes.is_empty() || std::time::Instant::now() >= deadline {
            return notes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A bundle of the workspace's `models/` through the scenario's models claim (create it
/// first with [`Scenario::models_claim`]).
pub fn bundle_uri(name: &str) -> String {
    format!("pvc://{MODELS_CLAIM}/{name}")
}

/// Starts an OcrService on the standard bundle and waits until stable serves; the models
/// claim is there for a later model change.
pub async fn healthy_service(s: &Scenario, name: &str, rollout: serde_json::Value) -> String {
    s.models_claim().await;
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

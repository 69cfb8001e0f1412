//! A fingerprint of a desired state, so the controller can tell an unchanged state from
//! one it must apply again without sending it.

use sha2::{Digest, Sha256};

use super::desired::DesiredState;

/// Fingerprint of everything applied for one OcrService. It includes the owner reference
/// (the uid), so a re-created OcrService of the same name is applied afresh.
pub fn fingerprint(desired: &DesiredState) -> String {
    let mut hasher = Sha256::new();
    let parts = [
        serde_json::to_vec(&desired.stable),
        serde_json::to_vec(&desired.services),
        serde_json::to_vec(&desired.autoscaler),
        serde_json::to_vec(&desired.keda.as_ref().map(|keda| (&keda.scaled_object, &keda.trigger_authentication))),
        serde_json::to_vec(&desired.disruption_budget),
        serde_json::to_vec(&desired.jobs_front),
    ];
    for part in parts {
        hasher.update(part.expect("k8s-openapi objects serialise"));
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::desired::desired_state;
    use super::super::settings::BuildSettings;
    use super::super::test_support::ocr_service;
    use super::*;

    #[test]
    fn the_same_state_has_the_same_fingerprint_and_a_new_owner_a_new_one() {
        let settings = BuildSettings::default();
        let ocr = ocr_service(json!({}));
        let a = fingerprint(&desired_state(&ocr, &settings).unwrap());
        assert_eq!(a, fingerprint(&desired_state(&ocr, &settings).unwrap()));
        assert_eq!(a.len(), 64);
        let mut recreated = ocr.clone();
        recreated.metadata.uid = Some("0f1e2d3c-0000-4000-8000-000000000002".into());
        assert_ne!(a, fingerprint(&desired_state(&recreated, &settings).unwrap()), "a re-created OcrService");
    }
}

//! The PodDisruptionBudget over both tracks.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owner::Owner;
use crate::names::disruption_budget_name;

/// At most one pod of the service voluntarily disrupted at a time. `maxUnavailable` (not
/// `minAvailable`) so a single-replica service never blocks node drains forever, and
/// unhealthy pods may always be evicted so a crash-looping pod cannot block them either.
pub fn disruption_budget(owner: &Owner) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.child_meta(disruption_budget_name(&owner.name), Default::default()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(owner.selector()), ..LabelSelector::default() }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            min_available: None,
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::ocr_service;
    use super::*;

    #[test]
    fn one_disruption_at_a_time_over_both_tracks() {
        let pdb = disruption_budget(&Owner::of(&ocr_service(json!({}))).unwrap());
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        let selector = spec.selector.unwrap().match_labels.unwrap();
        assert_eq!(selector.len(), 1, "both tracks: {selector:?}");
        assert_eq!(pdb.metadata.name.as_deref(), Some("invoices"));
    }
}

//! Everything the operator applies for one OcrService at its current spec.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube_ocr_crds::OcrService;

use super::deployment::deployment;
use super::hpa::autoscaler;
use super::jobs_front::jobs_front;
use super::owner::Owner;
use super::pdb::disruption_budget;
use super::pod::{pod_template, revision_of};
use super::scaled_object::{KedaObjects, keda_objects};
use super::service::services;
use super::settings::BuildSettings;
use crate::error::OperatorError;
use crate::model_source::ModelSource;
use crate::names::Track;

/// Everything the operator applies for one OcrService at its current spec.
#[derive(Debug, Clone)]
pub struct DesiredState {
    /// Hash of the pod template: changes exactly when the pods must change.
    pub revision: String,
    pub stable: Deployment,
    /// Shared, stable and canary Services.
    pub services: Vec<Service>,
    /// `None` when `spec.autoscaling.enabled` is false or KEDA scales: an existing one is
    /// deleted.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// The ScaledObject (and TriggerAuthentication) of `autoscaling.provider: keda`.
    pub keda: Option<KedaObjects>,
    /// The job front's Deployment and Service (with `spec.jobs`).
    pub jobs_front: Option<(Deployment, Service)>,
    pub disruption_budget: PodDisruptionBudget,
    pub model: ModelSource,
}

/// Builds the desired state. The first revision goes straight to stable, and (until the
/// canary rollout of issue #6 lands) a later revision rolls the stable Deployment.
pub fn desired_state(ocr: &OcrService, settings: &BuildSettings) -> Result<DesiredState, OperatorError> {
    let owner = Owner::of(ocr)?;
    let model = ModelSource::parse(&ocr.spec.model.uri)?;
    let template = pod_template(&owner, &ocr.spec, &model, Track::Stable, settings);
    let revision = revision_of(&template);
    // The HPA owns replicas when enabled: leaving the field out of the applied object is
    // what keeps the operator from ever writing it.
    let replicas = (!ocr.spec.autoscaling.enabled).then_some(ocr.spec.replicas.min);
    let stable = deployment(&owner, &ocr.spec, Track::Stable, template, &revision, replicas);
    let keda = keda_objects(&owner, &ocr.spec);
    let autoscaler = (ocr.spec.autoscaling.enabled && keda.is_none()).then(|| autoscaler(&owner, &ocr.spec));
    Ok(DesiredState {
        revision,
        stable,
        services: services(&owner),
        autoscaler,
        keda,
        jobs_front: jobs_front(&owner, &ocr.spec),
        disruption_budget: disruption_budget(&owner),
        model,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::super::test_support::ocr_service;
    use super::*;
    use crate::names::{REVISION_LABEL, TRACK_LABEL};

    #[test]
    fn every_rollout_setting_is_built() {
        let gateway = ocr_service(json!({ "rollout": { "traffic": { "provider": "gatewayAPI", "grpcRoute": "r" } } }));
        assert!(desired_state(&gateway, &BuildSettings::default()).is_ok(), "gatewayAPI is implemented");
        let dynamic = ocr_service(json!({ "rollout": { "dynamicStableScale": true } }));
        assert!(desired_state(&dynamic, &BuildSettings::default()).is_ok(), "dynamicStableScale is implemented");
        assert!(desired_state(&ocr_service(json!({})), &BuildSettings::default()).is_ok());
    }

    #[test]
    fn children_are_owned_by_the_ocr_service_as_controller() {
        let state = desired_state(&ocr_service(json!({})), &BuildSettings::default()).unwrap();
        let metas = [
            &state.stable.metadata,
            &state.services[0].metadata,
            &state.autoscaler.as_ref().unwrap().metadata,
            &state.disruption_budget.metadata,
        ];
        for meta in metas {
            let owner = &meta.owner_references.as_ref().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("OcrService", "invoices"));
            assert_eq!(owner.api_version, "kube-ocr.dev/v1alpha1");
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("team-a"));
        }
    }

    #[test]
    fn without_uid_there_is_no_owner_and_no_state() {
        let mut ocr = ocr_service(json!({}));
        ocr.metadata.uid = None;
        assert!(matches!(
            desired_state(&ocr, &BuildSettings::default()),
            Err(OperatorError::ReadMetadata { field: "uid" })
        ));
    }

    #[test]
    fn the_operator_never_writes_replicas_where_the_hpa_owns_them() {
        let autoscaled = desired_state(&ocr_service(json!({})), &BuildSettings::default()).unwrap();
        assert_eq!(autoscaled.stable.spec.as_ref().unwrap().replicas, None);
        let applied = serde_json::to_value(&autoscaled.stable).unwrap();
        assert!(applied["spec"].get("replicas").is_none(), "replicas must be absent from the applied object");
        let hpa = autoscaled.autoscaler.unwrap();
        assert_eq!(hpa.spec.scale_target_ref.name, "invoices-stable");

        let fixed = ocr_service(json!({ "autoscaling": { "enabled": false }, "replicas": { "min": 3, "max": 3 } }));
        let fixed = desired_state(&fixed, &BuildSettings::default()).unwrap();
        assert_eq!(fixed.stable.spec.as_ref().unwrap().replicas, Some(3));
        assert!(fixed.autoscaler.is_none());
    }

    #[test]
    fn revision_changes_with_the_pod_template_only() {
        let settings = BuildSettings::default();
        let base = desired_state(&ocr_service(json!({})), &settings).unwrap().revision;
        let same = desired_state(&ocr_service(json!({ "replicas": { "min": 4, "max": 9 } })), &settings).unwrap();
        assert_eq!(base, same.revision, "replica bounds do not change pods");
        for change in [
            json!({ "model": { "version": "4.0.1" } }),
            json!({ "model": { "uri": "file:///models/other" } }),
            json!({ "image": "ghcr.io/kube-ocr/inference-pod:0.2.0" }),
            json!({ "batching": { "maxBatchSize": 16 } }),
            json!({ "resources": { "requests": { "cpu": "2" } } }),
            json!({ "device": { "kind": "cuda" } }),
            json!({ "model": { "precision": "bf16" } }),
        ] {
            let changed = desired_state(&ocr_service(change.clone()), &settings).unwrap().revision;
            assert_ne!(base, changed, "{change} must make a new revision");
        }
        assert_eq!(base.len(), 10);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn selector_is_track_scoped_and_revision_free() {
        let state = desired_state(&ocr_service(json!({})), &BuildSettings::default()).unwrap();
        let spec = state.stable.spec.unwrap();
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector.get(TRACK_LABEL).map(String::as_str), Some("stable"));
        assert!(!selector.contains_key(REVISION_LABEL), "selectors are immutable; revisions change");
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(template_labels[REVISION_LABEL], state.revision);
        for (key, value) in &selector {
            assert_eq!(template_labels.get(key), Some(value), "the template must match the selector");
        }
        assert_eq!(state.stable.metadata.name.as_deref(), Some("invoices-stable"));
        assert_eq!(state.stable.metadata.labels.unwrap()[REVISION_LABEL], state.revision);
    }

    #[test]
    fn rolling_update_never_drops_serving_pods() {
        let state = desired_state(&ocr_service(json!({ "startupTimeoutSeconds": 60 })), &BuildSettings::default());
        let spec = state.unwrap().stable.spec.unwrap();
        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        assert_eq!(spec.progress_deadline_seconds, Some(180));
    }

    #[test]
    fn dynamic_stable_scale_rolls_stable_in_place() {
        let ocr = ocr_service(json!({ "rollout": { "dynamicStableScale": true } }));
        let state = desired_state(&ocr, &BuildSettings::default()).unwrap();
        let rolling = state.stable.spec.unwrap().strategy.unwrap().rolling_update.unwrap();
        assert_eq!(
            (rolling.max_surge, rolling.max_unavailable),
            (Some(IntOrString::Int(0)), Some(IntOrString::Int(1)))
        );
        let owner = Owner::of(&ocr).unwrap();
        let model = ModelSource::parse(&ocr.spec.model.uri).unwrap();
        let template = pod_template(&owner, &ocr.spec, &model, Track::Canary, &BuildSettings::default());
        let canary = deployment(&owner, &ocr.spec, Track::Canary, template, "abc", Some(1));
        let rolling = canary.spec.unwrap().strategy.unwrap().rolling_update.unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)), "the canary still surges");
    }
}

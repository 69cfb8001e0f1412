//! Pure desired-state builders: an `OcrService` in, the objects the operator applies out.
//! No I/O here; every function is unit-tested.

mod deployment;
mod hpa;
mod pdb;
mod pod;
mod service;
mod stable_share;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube_ocr_crds::OcrService;

use crate::error::OperatorError;
use crate::model_source::ModelSource;
use crate::names::{FIELD_MANAGER, SERVICE_LABEL, Track};

pub use deployment::deployment;
pub use hpa::autoscaler;
pub use pdb::disruption_budget;
pub use pod::{pod_template, revision_of};
pub use service::{services, shared_service, track_service};
pub use stable_share::{owned_stable_replicas, share_stable};

/// Operator-wide settings the builders need besides the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Image of the init container that downloads `https://` bundles; it needs `sh`,
    /// `curl` or `wget`, `sha256sum` and `tar`.
    pub fetch_image: String,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self { fetch_image: DEFAULT_FETCH_IMAGE.to_owned() }
    }
}

/// Default [`BuildSettings::fetch_image`]: small, non-root, has curl, sha256sum and tar.
pub const DEFAULT_FETCH_IMAGE: &str = "curlimages/curl:8.11.1";

/// Who the children belong to: name, namespace and the controller owner reference that
/// lets the garbage collector delete them with the `OcrService`.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub reference: OwnerReference,
}

impl Owner {
    pub fn of(ocr: &OcrService) -> Result<Self, OperatorError> {
        let name = ocr.metadata.name.clone().ok_or(OperatorError::ReadMetadata { field: "name" })?;
        let namespace = ocr.metadata.namespace.clone().ok_or(OperatorError::ReadMetadata { field: "namespace" })?;
        let mut reference = ocr.controller_owner_ref(&()).ok_or(OperatorError::ReadMetadata { field: "uid" })?;
        // Foreground deletion of the OcrService then waits for its children.
        reference.block_owner_deletion = Some(true);
        Ok(Self { name, namespace, reference })
    }

    /// Labels on every child: the app.kubernetes.io set plus the OcrService label the
    /// operator selects by.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "ocr-inference".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
            ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
            (SERVICE_LABEL.to_owned(), self.name.clone()),
        ])
    }

    /// Selects the pods of both tracks.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(SERVICE_LABEL.to_owned(), self.name.clone())])
    }

    /// Selects the pods of one track.
    pub fn track_selector(&self, track: Track) -> BTreeMap<String, String> {
        let mut selector = self.selector();
        selector.insert(crate::names::TRACK_LABEL.to_owned(), track.label_value().to_owned());
        selector
    }

    /// Metadata of a child called `name`, owned by the OcrService.
    pub fn child_meta(&self, name: String, extra_labels: BTreeMap<String, String>) -> ObjectMeta {
        let mut labels = self.labels();
        labels.extend(extra_labels);
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Everything the operator applies for one OcrService at its current spec.
#[derive(Debug, Clone)]
pub struct DesiredState {
    /// Hash of the pod template: changes exactly when the pods must change.
    pub revision: String,
    pub stable: Deployment,
    /// Shared, stable and canary Services.
    pub services: Vec<Service>,
    /// `None` when `spec.autoscaling.enabled` is false: an existing one is deleted.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
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
    let autoscaler = ocr.spec.autoscaling.enabled.then(|| autoscaler(&owner, &ocr.spec));
    Ok(DesiredState {
        revision,
        stable,
        services: services(&owner),
        autoscaler,
        disruption_budget: disruption_budget(&owner),
        model,
    })
}

#[cfg(test)]
pub(crate) mod test_support {
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::ocr_service;
    use super::*;

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
        ] {
            let changed = desired_state(&ocr_service(change.clone()), &settings).unwrap().revision;
            assert_ne!(base, changed, "{change} must make a new revision");
        }
        assert_eq!(base.len(), 10);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

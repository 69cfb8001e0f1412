//! The Deployment of one track.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_ocr_crds::OcrServiceSpec;

use super::owner::Owner;
use crate::names::{MODEL_VERSION_ANNOTATION, REVISION_LABEL, TRACK_LABEL, Track};

/// The track's Deployment running `template` at `revision`. `replicas` is `None` when the
/// HorizontalPodAutoscaler owns the count: the field is then absent from what the operator
/// applies, so server-side apply never takes it back from the autoscaler.
pub fn deployment(
    owner: &Owner,
    spec: &OcrServiceSpec,
    track: Track,
    mut template: PodTemplateSpec,
    revision: &str,
    replicas: Option<i32>,
) -> Deployment {
    let revision_labels = BTreeMap::from([
        (TRACK_LABEL.to_owned(), track.label_value().to_owned()),
        (REVISION_LABEL.to_owned(), revision.to_owned()),
    ]);
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta.labels.get_or_insert_with(BTreeMap::new).insert(REVISION_LABEL.to_owned(), revision.to_owned());
    let mut metadata = owner.child_meta(track.object_name(&owner.name), revision_labels);
    metadata.annotations = Some(BTreeMap::from([(MODEL_VERSION_ANNOTATION.to_owned(), spec.model.version.clone())]));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas,
            // Immutable after creation: never put the revision in here.
            selector: LabelSelector { match_labels: Some(owner.track_selector(track)), ..LabelSelector::default() },
            template,
            strategy: Some(strategy(spec, track)),
            revision_history_limit: Some(3),
            // A pod may need the whole startup budget; give the rollout two more minutes
            // before the Deployment reports ProgressDeadlineExceeded.
            progress_deadline_seconds: Some(spec.startup_timeout_seconds + 120),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Surge one pod at a time and keep every serving pod until its replacement is Ready: no
/// capacity dip while a model loads. Except for stable under `dynamicStableScale`: stable
/// only rolls at a promotion, when the canary holds the rest of the capacity (all the GPUs,
/// on a cluster that needs this setting), so a surge pod would never schedule. Stable then
/// replaces its pods in place, one at a time, while the canary serves the new revision.
fn strategy(spec: &OcrServiceSpec, track: Track) -> DeploymentStrategy {
    let in_place = track == Track::Stable && spec.rollout.dynamic_stable_scale;
    let (surge, unavailable) = if in_place { (0, 1) } else { (1, 0) };
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::settings::BuildSettings;
    use super::super::test_support::ocr_service;
    use super::*;

    #[test]
    fn canary_track_gets_its_own_name_and_selector() {
        let ocr = ocr_service(json!({}));
        let owner = Owner::of(&ocr).unwrap();
        let model = crate::model_source::ModelSource::parse(&ocr.spec.model.uri).unwrap();
        let template =
            super::super::pod::pod_template(&owner, &ocr.spec, &model, Track::Canary, &BuildSettings::default());
        let canary = deployment(&owner, &ocr.spec, Track::Canary, template, "abc", Some(1));
        assert_eq!(canary.metadata.name.as_deref(), Some("invoices-canary"));
        let spec = canary.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.selector.match_labels.unwrap()[TRACK_LABEL], "canary");
    }
}

//! The stable Deployment as the operator observes it.

use k8s_openapi::api::apps::v1::Deployment;

use crate::names::{INFERENCE_CONTAINER, MODEL_VERSION_ANNOTATION, REVISION_LABEL};

/// The stable Deployment as observed after applying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StableObservation {
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// `spec.replicas` (the HPA's choice when it owns them; Kubernetes defaults it to 1).
    pub desired: i32,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    /// Revision label and model version of the Deployment's pod template.
    pub revision: Option<String>,
    pub model_version: Option<String>,
    pub image: Option<String>,
    /// The Deployment's Progressing condition says ProgressDeadlineExceeded.
    pub deadline_exceeded: bool,
}

impl StableObservation {
    pub fn from_deployment(deployment: &Deployment) -> Self {
        let spec = deployment.spec.as_ref();
        let template = spec.map(|s| &s.template);
        let template_meta = template.and_then(|t| t.metadata.as_ref());
        let status = deployment.status.clone().unwrap_or_default();
        Self {
            generation: deployment.metadata.generation,
            observed_generation: status.observed_generation,
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            replicas: status.replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            revision: template_meta.and_then(|m| m.labels.as_ref()?.get(REVISION_LABEL).cloned()),
            model_version: template_meta.and_then(|m| m.annotations.as_ref()?.get(MODEL_VERSION_ANNOTATION).cloned()),
            image: template
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.iter().find(|c| c.name == INFERENCE_CONTAINER))
                .and_then(|c| c.image.clone()),
            deadline_exceeded: status.conditions.iter().flatten().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }),
        }
    }

    /// `kubectl rollout status` says done: every pod at the current template and available.
    pub fn rolled_out(&self, desired_revision: &str) -> bool {
        self.observed_generation >= self.generation
            && self.revision.as_deref() == Some(desired_revision)
            && self.updated >= self.desired
            && self.replicas == self.updated
            && self.available >= self.desired
    }
}

//! Names and labels of the objects the operator creates for an `OcrService`.

/// Label on every pod saying which track serves it.
pub const TRACK_LABEL: &str = "kube-ocr.dev/track";
/// Label naming the owning `OcrService`.
pub const SERVICE_LABEL: &str = "kube-ocr.dev/ocrservice";
/// Label carrying the revision (hash of the pod template) of a pod and its Deployment.
pub const REVISION_LABEL: &str = "kube-ocr.dev/revision";
/// Annotation carrying the model version a pod serves.
pub const MODEL_VERSION_ANNOTATION: &str = "kube-ocr.dev/model-version";
/// The one field manager of everything the operator applies (children and status).
pub const FIELD_MANAGER: &str = "kube-ocr-operator";
/// Name of the container that runs `ocr-inference-pod`.
pub const INFERENCE_CONTAINER: &str = "inference";
/// Name of the init container that downloads an `https://` model bundle.
pub const FETCH_CONTAINER: &str = "fetch-model";
/// gRPC port of the inference pod (`ocr-inference-pod --grpc-port`).
pub const GRPC_PORT: i32 = 50051;
/// HTTP/JSON API port of the inference pod (`ocr-inference-pod --http-api-port`).
pub const HTTP_API_PORT: i32 = 8000;
/// Name of [`HTTP_API_PORT`] on the container and the Services.
pub const HTTP_API_PORT_NAME: &str = "http-api";
/// HTTP port of the inference pod: `/healthz`, `/readyz`, `/metrics`.
pub const HTTP_PORT: i32 = 8080;
/// gRPC health service name of the OCR API.
pub const GRPC_HEALTH_SERVICE: &str = "kube_ocr.v1.Ocr";

/// The two Deployments a rollout moves traffic between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Stable,
    Canary,
}

impl Track {
    /// Value of [`TRACK_LABEL`] on this track's pods.
    pub fn label_value(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
        }
    }

    /// `<name>-stable` / `<name>-canary`: the track's Deployment and its own Service.
    pub fn object_name(self, ocr_service: &str) -> String {
        format!("{ocr_service}-{}", self.label_value())
    }
}

/// The Service clients call: both tracks behind one name, the `OcrService`'s own.
pub fn shared_service_name(ocr_service: &str) -> String {
    ocr_service.to_owned()
}

/// The HorizontalPodAutoscaler of the stable Deployment, named after it.
pub fn autoscaler_name(ocr_service: &str) -> String {
    Track::Stable.object_name(ocr_service)
}

/// The PodDisruptionBudget covering both tracks.
pub fn disruption_budget_name(ocr_service: &str) -> String {
    ocr_service.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_name_their_deployments_after_the_ocr_service() {
        assert_eq!(Track::Stable.object_name("invoices"), "invoices-stable");
        assert_eq!(Track::Canary.object_name("invoices"), "invoices-canary");
        assert_eq!(shared_service_name("invoices"), "invoices");
    }

    #[test]
    fn track_label_values_are_distinct_lowercase_words() {
        assert_ne!(Track::Stable.label_value(), Track::Canary.label_value());
        for track in [Track::Stable, Track::Canary] {
            assert!(track.label_value().chars().all(|c| c.is_ascii_lowercase()));
        }
    }
}

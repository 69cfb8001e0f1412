//! Spec and status of `OcrService`. This first cut carries the model reference and the
//! image; serving, autoscaling and rollout settings arrive with the operator.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An OCR inference service: a TorchScript OCR model bundle served over gRPC by GPU (or CPU)
/// pods, rolled out by canary with automatic rollback.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kube-ocr.dev",
    version = "v1alpha1",
    kind = "OcrService",
    namespaced,
    shortname = "ocrs",
    status = "OcrServiceStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OcrServiceSpec {
    /// The model bundle to serve. A change here starts a new revision.
    pub model: ModelSpec,
    /// Container image of the inference pod.
    pub image: String,
}

/// Where the model bundle comes from and which version it is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Bundle location: `file:///path` (in the image or a mounted volume),
    /// `pvc://claim/path`, or `https://host/path#sha256=<hex>`.
    pub uri: String,
    /// Version label of the bundle, shown in status and metrics.
    pub version: String,
}

/// Observed state, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OcrServiceStatus {
    /// Where the service stands in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Lifecycle phase of an `OcrService`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Children are being created; no revision is serving yet.
    Pending,
    /// A canary of a new revision is being analysed.
    Progressing,
    /// The stable revision is serving and passes its checks.
    Healthy,
    /// Serving, but a check fails; the conditions say which.
    Degraded,
    /// The last canary failed analysis and was rolled back.
    RolledBack,
}

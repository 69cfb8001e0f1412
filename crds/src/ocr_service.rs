//! The `OcrService` resource: its spec. Sub-structures live in their own modules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::batching::BatchingSpec;
use crate::cache::CacheSpec;
use crate::device::DeviceSpec;
use crate::jobs::JobsSpec;
use crate::model::ModelSpec;
use crate::rollout::RolloutSpec;
use crate::scaling::{AutoscalingSpec, ReplicasSpec};
use crate::status::OcrServiceStatus;

/// An OCR inference service: a TorchScript OCR model bundle served over gRPC by GPU (or
/// CPU) pods, autoscaled, and rolled out by canary with automatic rollback.
///
/// There is no `scale` subresource on purpose: the HorizontalPodAutoscaler the operator
/// creates owns the stable replica count between `replicas.min` and `replicas.max`, and a
/// second writer (`kubectl scale`, another autoscaler) would fight it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kube-ocr.dev",
    version = "v1alpha1",
    kind = "OcrService",
    namespaced,
    shortname = "ocrs",
    category = "kube-ocr",
    status = "OcrServiceStatus",
    // Children are Services named `<name>-stable` / `<name>-canary`: DNS-1035 labels of at
    // most 63 characters.
    validation = Rule::new("size(self.metadata.name) <= 56").message(
        "OcrService names are at most 56 characters: the operator names Services <name>-stable and <name>-canary"
    ),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message(
        "OcrService names start with a letter (they name Services, which must be DNS-1035 labels)"
    ),
    validation = Rule::new("!has(self.spec.jobs) || (has(self.spec.cache) && has(self.spec.cache.redis))").message(
        "spec.jobs needs spec.cache.redis: the job queue lives in that Redis"
    ),
    // At zero pods only jobs are taken (by the job front) and wake the pods; a synchronous
    // call would find nobody.
    validation = Rule::new("self.spec.replicas.min >= 1 || (self.spec.autoscaling.provider == 'keda' && self.spec.autoscaling.enabled && has(self.spec.jobs))").message(
        "replicas.min 0 (scale to zero) needs autoscaling.provider keda and spec.jobs: only jobs wait (taken by the job front) until a pod wakes; a synchronous call would find no pod"
    ),
    validation = Rule::new("self.spec.autoscaling.provider != 'keda' || !has(self.spec.autoscaling.podsMetric)").message(
        "autoscaling.podsMetric applies to provider hpa; keda scales on in-flight requests and the job backlog (autoscaling.keda)"
    ),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Stable","type":"string","jsonPath":".status.stableVersion","description":"Model version of the stable revision"}"#,
    printcolumn = r#"{"name":"Canary","type":"string","jsonPath":".status.canaryVersion","description":"Model version on the canary, during a rollout"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canary.weight","description":"Canary traffic weight, percent"}"#,
    printcolumn = r#"{"name":"Accuracy","type":"number","jsonPath":".status.lastAnalysis.stable.accuracy","description":"Golden-set accuracy of stable, latest measurement"}"#,
    printcolumn = r#"{"name":"P95","type":"number","jsonPath":".status.lastAnalysis.stable.p95Ms","description":"P95 latency of stable in ms, latest measurement"}"#,
    printcolumn = r#"{"name":"Jobs","type":"integer","jsonPath":".status.jobs.queued","priority":1,"description":"Document jobs waiting for a pod"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas","priority":1,"description":"Ready stable pods"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OcrServiceSpec {
    /// The model bundle to serve. A change here starts a new revision.
    pub model: ModelSpec,
    /// Container image of the inference pod (`ocr-inference-pod`), e.g.
    /// `ghcr.io/kube-ocr/inference-pod:0.1.0`. A change here starts a new revision.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// CPU or CUDA, and GPUs per pod.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Resources of the inference container. Default: requests of 1 CPU and 2Gi memory
    /// (the autoscaler's CPU target is relative to the CPU request). With `device.kind`
    /// cuda, `nvidia.com/gpu` is added to requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Fewest and most stable pods.
    #[serde(default)]
    pub replicas: ReplicasSpec,
    /// The HorizontalPodAutoscaler on the stable Deployment.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// The dynamic batcher of each pod.
    #[serde(default)]
    pub batching: BatchingSpec,
    /// The result cache shared by the pods (Redis).
    #[serde(default, skip_serializing_if = "is_default")]
    pub cache: CacheSpec,
    /// Asynchronous document jobs (needs `cache.redis`, where their queue lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsSpec>,
    /// How long a pod may take to load the model, warm up and pass its golden self-test
    /// before it is restarted, in seconds (default 300; a few seconds on CPU, minutes on
    /// a cold GPU node).
    #[serde(default = "default_startup_timeout")]
    #[schemars(range(min = 10, max = 3600))]
    pub startup_timeout_seconds: i32,
    /// Node labels the pods must match (e.g. a GPU node pool).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Extra tolerations for the pods (the `nvidia.com/gpu` taint is tolerated on cuda
    /// already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Canary rollout of new revisions.
    #[serde(default)]
    pub rollout: RolloutSpec,
}

fn is_default(cache: &CacheSpec) -> bool {
    *cache == CacheSpec::default()
}

fn default_startup_timeout() -> i32 {
    300
}

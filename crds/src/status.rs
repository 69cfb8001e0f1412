//! `status`: written by the operator only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of an OcrService.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OcrServiceStatus {
    /// Where the service stands: Pending, Progressing, Healthy, Degraded or RolledBack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Revision (hash of the pod template) the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_revision: Option<String>,
    /// Revision the stable Deployment serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Model version of the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_version: Option<String>,
    /// Revision on the canary, while a rollout runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Model version of the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_version: Option<String>,
    /// The last revision rolled back; not retried until the spec changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// Pods of the stable Deployment (all revisions while it rolls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Ready pods of the stable Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Stable pods already at the stable Deployment's current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Progress of the running canary, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// The latest measurement of stable (and canary, during a rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<AnalysisStatus>,
    /// The autoscaler the operator applied last: `hpa` or `keda` (so that it removes
    /// KEDA's objects when the spec stops asking for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<String>,
    /// The job backlog (with `spec.jobs`), read from the stable pods every 30 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsStatus>,
    /// Available, Progressing and Degraded, with reasons and messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The service's document jobs as its pods last reported them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsStatus {
    /// Jobs waiting for a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    /// Age of the oldest unfinished job (queued or running), in seconds; 0 when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_seconds: Option<i64>,
    /// When the numbers were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Time>,
    /// Why the numbers could not be read, when they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Lifecycle phase of an OcrService.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// No revision is serving yet: children are being created or pods are starting.
    Pending,
    /// A new revision is rolling out.
    Progressing,
    /// The stable revision is serving with every pod at the current revision.
    Healthy,
    /// Something needs attention; the Degraded condition says what.
    Degraded,
    /// The last canary failed analysis and was rolled back.
    RolledBack,
}

/// Where a canary rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Index into `spec.rollout.steps` of the current step.
    pub step: u32,
    /// Canary traffic weight in percent.
    pub weight: i32,
    /// When the current step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Failed analyses in this rollout so far.
    #[serde(default)]
    pub failed_checks: u32,
    /// Ready canary pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Since when every canary pod of this step is Ready: a step lasts `stepInterval` of
    /// serving, not of waiting for pods to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Time>,
    /// With `spec.rollout.dynamicStableScale`: the stable replicas when this rollout
    /// started. The canary runs about this × weight / 100 pods and stable the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_replicas: Option<i32>,
    /// With `spec.rollout.dynamicStableScale`, after the promotion: the canary pods left.
    /// One fewer each time stable's pods are all Ready, until stable holds them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_canary_replicas: Option<i32>,
}

/// One analysis: both tracks measured in the same window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// End of the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Numbers of the stable track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<TrackMeasurement>,
    /// Numbers of the canary track (during rollouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<TrackMeasurement>,
    /// `Pass` or `Fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Why it failed, one line per failed gate, with the numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Measurements of one track over one window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackMeasurement {
    /// Golden-set accuracy, 1 − CER clipped at 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// P95 latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Share of requests that ended in a server-side gRPC error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Requests the numbers rest on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
}

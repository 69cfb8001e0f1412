//! `spec.rollout`: how a new revision is proven on a canary before it takes all traffic.
//! The operator's state machine (operator/src/rollout/) reads these settings.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration: digits followed by `ms`, `s`, `m` or `h`, combinable (`90s`, `1m30s`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Canary rollout of a new revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Canary traffic weights in percent, strictly increasing and ending at 100
    /// (default `[10, 50, 100]`). Reaching 100 promotes the canary to stable.
    #[serde(default = "default_steps")]
    #[schemars(length(min = 1, max = 10), inner(range(min = 1, max = 100)))]
    #[x_kube(
        validation = Rule::new("self[size(self) - 1] == 100").message("rollout.steps must end at 100, e.g. [10, 50, 100]"),
        validation = Rule::new("self.isSorted() && self.all(x, self.filter(y, y == x).size() == 1)")
            .message("rollout.steps must be strictly increasing, e.g. [10, 50, 100]")
    )]
    pub steps: Vec<i32>,
    /// How long each step runs with passing analysis before the next (default `60s`).
    #[serde(default = "default_step_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub step_interval: String,
    /// How long a canary may take to become Ready before it is rolled back (default `10m`).
    #[serde(default = "default_progress_deadline")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub progress_deadline: String,
    /// How the weight reaches clients.
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// Shrink stable as the canary grows, so a cluster whose GPUs stable fills can roll out
    /// at all (default false: stable stays full, and a rollback is instant). When true,
    /// the two tracks share the pods stable had when the rollout started: at weight w the
    /// canary runs about that × w / 100 and stable the rest, at least one each. Stable's
    /// share is set through the HPA's min/maxReplicas, never its replicas; the spec's
    /// bounds return when the rollout ends. After the promotion stable replaces its pods in
    /// place, then takes the canary's pods back one at a time. The trade-off: a rollback
    /// waits for stable's pods to start again.
    #[serde(default)]
    pub dynamic_stable_scale: bool,
    /// The checks that decide whether the canary advances or is rolled back.
    #[serde(default)]
    pub analysis: AnalysisSpec,
}

fn default_steps() -> Vec<i32> {
    vec![10, 50, 100]
}

fn default_step_interval() -> String {
    "60s".into()
}

fn default_progress_deadline() -> String {
    "10m".into()
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            step_interval: default_step_interval(),
            progress_deadline: default_progress_deadline(),
            traffic: TrafficSpec::default(),
            dynamic_stable_scale: false,
            analysis: AnalysisSpec::default(),
        }
    }
}

/// How canary weights reach clients.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'gatewayAPI' || has(self.grpcRoute) || has(self.httpRoute)")
        .message("rollout.traffic.grpcRoute or rollout.traffic.httpRoute (or both) is required when provider is gatewayAPI")
)]
pub struct TrafficSpec {
    /// `replicas` (default): the weight is the canary's share of the Ready pods behind the
    /// shared Service (approximate). `gatewayAPI`: the weights of the backendRefs of the
    /// named GRPCRoute and/or HTTPRoute (the same weights on both).
    #[serde(default)]
    pub provider: TrafficProvider,
    /// Name of the GRPCRoute (same namespace) whose backendRefs to the Services
    /// `<name>-stable` and `<name>-canary` (port 50051, gRPC) get the weights; it needs a
    /// rule with a backendRef to `<name>-stable`, and one to `<name>-canary` is added if
    /// missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub grpc_route: Option<String>,
    /// Name of the HTTPRoute (same namespace) whose backendRefs to the Services
    /// `<name>-stable` and `<name>-canary` (port 8000, the HTTP/JSON API) get the weights;
    /// it needs a rule with a backendRef to `<name>-stable`, and one to `<name>-canary` is
    /// added if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub http_route: Option<String>,
}

/// The traffic provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TrafficProvider {
    /// Weight by pod count behind the shared Service.
    #[default]
    #[serde(rename = "replicas")]
    Replicas,
    /// Weight on a Gateway API GRPCRoute and/or HTTPRoute.
    #[serde(rename = "gatewayAPI")]
    GatewayApi,
}

/// Canary analysis: canary and stable are measured in the same window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// How often canary and stable are measured during a rollout (default `30s`).
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub interval: String,
    /// Failed measurements that roll the canary back (default 2).
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_limit: u32,
    /// Golden-set accuracy gate.
    #[serde(default)]
    pub golden: GoldenSpec,
    /// P95 latency gate.
    #[serde(default)]
    pub latency: LatencySpec,
    /// gRPC server-error gate.
    #[serde(default)]
    pub errors: ErrorsSpec,
}

fn default_interval() -> String {
    "30s".into()
}

fn default_failure_limit() -> u32 {
    2
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            failure_limit: default_failure_limit(),
            golden: GoldenSpec::default(),
            latency: LatencySpec::default(),
            errors: ErrorsSpec::default(),
        }
    }
}

/// Golden-set accuracy (1 − CER) of canary and stable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GoldenSpec {
    /// ConfigMaps of this namespace holding golden sets (images and truth). Empty: the
    /// default set built into the operator. A named ConfigMap that does not exist makes
    /// the OcrService Degraded (reason `GoldenSetMissing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub config_maps: Vec<String>,
    /// Lowest canary accuracy accepted, 0–1 (default 0.90).
    #[serde(default = "default_min_accuracy")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_accuracy: f64,
    /// Largest accuracy drop of canary below stable accepted, 0–1 (default 0.03 = 3 points).
    #[serde(default = "default_max_accuracy_drop")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_accuracy_drop: f64,
    /// How often stable is checked against the golden set outside rollouts (default `5m`).
    #[serde(default = "default_stable_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub stable_interval: String,
}

fn default_min_accuracy() -> f64 {
    0.90
}

fn default_max_accuracy_drop() -> f64 {
    0.03
}

fn default_stable_interval() -> String {
    "5m".into()
}

impl Default for GoldenSpec {
    fn default() -> Self {
        Self {
            config_maps: Vec::new(),
            min_accuracy: default_min_accuracy(),
            max_accuracy_drop: default_max_accuracy_drop(),
            stable_interval: default_stable_interval(),
        }
    }
}

/// P95 latency of canary and stable, from the pods' `/metrics` histograms.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LatencySpec {
    /// Highest canary P95 accepted, in milliseconds (default 800).
    #[serde(default = "default_max_p95_ms")]
    #[schemars(range(min = 1, max = 600000))]
    pub max_p95_ms: u32,
    /// Largest relative P95 increase of canary over stable accepted (default 0.5 = +50%).
    #[serde(default = "default_max_p95_increase")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub max_p95_increase: f64,
}

fn default_max_p95_ms() -> u32 {
    800
}

fn default_max_p95_increase() -> f64 {
    0.5
}

impl Default for LatencySpec {
    fn default() -> Self {
        Self { max_p95_ms: default_max_p95_ms(), max_p95_increase: default_max_p95_increase() }
    }
}

/// gRPC server-side error rate (INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, ...).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsSpec {
    /// Largest increase of canary error rate over stable accepted, 0–1 (default 0.02 =
    /// 2 points).
    #[serde(default = "default_max_error_rate_increase")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate_increase: f64,
}

fn default_max_error_rate_increase() -> f64 {
    0.02
}

impl Default for ErrorsSpec {
    fn default() -> Self {
        Self { max_error_rate_increase: default_max_error_rate_increase() }
    }
}

//! `spec.replicas` and `spec.autoscaling`.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How many stable pods run. With autoscaling on, the HorizontalPodAutoscaler moves the
/// count between `min` and `max` and the operator never writes it; with autoscaling off,
/// `min` pods run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("replicas.min must not exceed replicas.max"))]
pub struct ReplicasSpec {
    /// Fewest stable pods (default 2, so one can be disrupted while the other serves). 0
    /// (scale to zero when idle) needs `autoscaling.provider: keda` and `spec.jobs`: the
    /// job front takes submissions while no pod runs, and a queued job wakes the pods; a
    /// synchronous call at zero would find nobody.
    #[serde(default = "default_min")]
    #[schemars(range(min = 0, max = 1000))]
    pub min: i32,
    /// Most stable pods the autoscaler may run (default 10).
    #[serde(default = "default_max")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
}

fn default_min() -> i32 {
    2
}

fn default_max() -> i32 {
    10
}

impl Default for ReplicasSpec {
    fn default() -> Self {
        Self { min: default_min(), max: default_max() }
    }
}

/// The HorizontalPodAutoscaler (autoscaling/v2) on the stable Deployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Create the autoscaler (default true). When false, `replicas.min` pods run.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Target average CPU utilisation of the stable pods, in percent of their CPU request
    /// (default 70).
    #[serde(default = "default_cpu", rename = "targetCPUUtilization")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: i32,
    /// An additional per-pod metric (type `Pods`), e.g. `ocr_queue_depth`. Needs a metrics
    /// adapter (such as prometheus-adapter) serving the custom metrics API. `hpa` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_metric: Option<PodsMetricSpec>,
    /// `hpa` (default): a HorizontalPodAutoscaler on CPU. `keda`: a KEDA ScaledObject that
    /// scales on the pods' in-flight requests and on the job backlog, down to zero for a
    /// job-only service (`replicas.min: 0`). KEDA is your own installation.
    #[serde(default, skip_serializing_if = "is_hpa")]
    pub provider: AutoscalingProvider,
    /// Settings of the `keda` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keda: Option<KedaSpec>,
}

/// Who scales the stable Deployment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalingProvider {
    #[default]
    Hpa,
    Keda,
}

fn is_hpa(provider: &AutoscalingProvider) -> bool {
    *provider == AutoscalingProvider::Hpa
}

/// How KEDA scales the stable pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaSpec {
    /// Seconds between KEDA's looks at the triggers (default 15).
    #[serde(default = "default_polling_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub polling_interval_seconds: i32,
    /// How long the load must stay low before pods are removed, e.g. `10m` (the default)
    /// or `90s`, at most `1h`: the scale-down stabilization of the HPA KEDA makes (and
    /// KEDA's cooldown).
    #[serde(default = "default_idle_after")]
    #[schemars(regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"), length(min = 2, max = 16))]
    pub idle_after: String,
    /// Jobs waiting per pod: the backlog trigger's target (default 5). Needs `spec.jobs`.
    #[serde(default = "default_jobs_per_replica")]
    #[schemars(range(min = 1, max = 10_000))]
    pub jobs_per_replica: i32,
    /// In-flight requests per pod, averaged over the pods: the load trigger's target
    /// (default 4). Only for services with `replicas.min` of 1 or more (at zero pods
    /// there is nothing to measure).
    #[serde(default = "default_in_flight_per_replica")]
    #[schemars(range(min = 1, max = 10_000))]
    pub in_flight_per_replica: i32,
}

impl Default for KedaSpec {
    fn default() -> Self {
        Self {
            polling_interval_seconds: default_polling_interval(),
            idle_after: default_idle_after(),
            jobs_per_replica: default_jobs_per_replica(),
            in_flight_per_replica: default_in_flight_per_replica(),
        }
    }
}

fn default_polling_interval() -> i32 {
    15
}

fn default_idle_after() -> String {
    "10m".to_owned()
}

fn default_jobs_per_replica() -> i32 {
    5
}

fn default_in_flight_per_replica() -> i32 {
    4
}

fn default_true() -> bool {
    true
}

fn default_cpu() -> i32 {
    70
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            target_cpu_utilization: default_cpu(),
            pods_metric: None,
            provider: AutoscalingProvider::Hpa,
            keda: None,
        }
    }
}

/// A per-pod custom metric and its target average value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSpec {
    /// Metric name as the custom metrics API serves it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Target average value per pod, a Kubernetes quantity (e.g. `20` or `500m`).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|Ki|Mi|Gi)?$"))]
    pub target_average_value: String,
}

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
    /// Fewest stable pods (default 2, so one can be disrupted while the other serves).
    #[serde(default = "default_min")]
    #[schemars(range(min = 1, max = 1000))]
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
    /// adapter (such as prometheus-adapter) serving the custom metrics API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_metric: Option<PodsMetricSpec>,
}

fn default_true() -> bool {
    true
}

fn default_cpu() -> i32 {
    70
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self { enabled: true, target_cpu_utilization: default_cpu(), pods_metric: None }
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

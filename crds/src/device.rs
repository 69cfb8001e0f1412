//! `spec.device`: CPU or CUDA, and how many GPUs a pod gets.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the model runs on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.kind != 'cuda' || !has(self.gpus) || self.gpus >= 1")
        .message("device.gpus must be at least 1 when device.kind is cuda"),
    validation = Rule::new("self.kind != 'cpu' || !has(self.gpus) || self.gpus == 0")
        .message("device.gpus applies to device.kind cuda only; remove it or set kind: cuda")
)]
pub struct DeviceSpec {
    /// `cpu`, or `cuda` (pods request `nvidia.com/gpu` and tolerate the usual GPU node
    /// taint).
    #[serde(default)]
    pub kind: DeviceKind,
    /// GPUs per pod when `kind` is `cuda` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub gpus: Option<u32>,
}

impl DeviceSpec {
    /// GPUs each pod requests: 0 on CPU, `gpus` (default 1) on CUDA.
    pub fn gpu_count(&self) -> u32 {
        match self.kind {
            DeviceKind::Cpu => 0,
            DeviceKind::Cuda => self.gpus.unwrap_or(1),
        }
    }
}

/// The device family.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// libtorch on CPU.
    #[default]
    Cpu,
    /// libtorch on an NVIDIA GPU.
    Cuda,
}

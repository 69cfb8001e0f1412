//! `spec.batching`: the inference pod's dynamic batcher.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The dynamic batcher of each pod. A change here starts a new revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchingSpec {
    /// Most items per model forward pass (default 8).
    #[serde(default = "default_max_batch_size")]
    #[schemars(range(min = 1, max = 256))]
    pub max_batch_size: u32,
    /// Upper bound, in milliseconds, on holding a partial batch open for more items
    /// (default 5). The batcher never waits while the model is idle: it takes what is
    /// queued at once. Only after a full batch, when items arrive as fast as the model
    /// takes them, may it hold the next batch open up to this long.
    #[serde(default = "default_max_queue_delay_ms")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_queue_delay_ms: u32,
    /// Items that may wait per model stage; more are refused with RESOURCE_EXHAUSTED
    /// (default 256).
    #[serde(default = "default_max_queue")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_queue: u32,
}

fn default_max_batch_size() -> u32 {
    8
}

fn default_max_queue_delay_ms() -> u32 {
    5
}

fn default_max_queue() -> u32 {
    256
}

impl Default for BatchingSpec {
    fn default() -> Self {
        Self {
            max_batch_size: default_max_batch_size(),
            max_queue_delay_ms: default_max_queue_delay_ms(),
            max_queue: default_max_queue(),
        }
    }
}

//! What an optional feature of the spec adds to the inference container and its pod.

use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
pub(super) struct ContainerWiring {
    pub args: Vec<String>,
    pub env: Vec<Value>,
    pub volumes: Vec<Value>,
    pub mounts: Vec<Value>,
}

impl ContainerWiring {
    pub(super) fn extend(&mut self, other: ContainerWiring) {
        self.args.extend(other.args);
        self.env.extend(other.env);
        self.volumes.extend(other.volumes);
        self.mounts.extend(other.mounts);
    }
}

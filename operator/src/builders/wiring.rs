//! What an optional feature of the spec adds to the inference container and its pod.

use serde_json::{Value, json};

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

/// A key of a user's Secret as a read-only file, and the flag that names it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SecretFile<'a> {
    pub secret: &'a str,
    pub key: &'a str,
    pub volume: &'static str,
    pub dir: &'static str,
    pub file: &'static str,
    pub flag: &'static str,
}

/// An environment variable from a key of a user's Secret (never an argument, which
/// `kubectl describe` shows).
pub(super) fn secret_env(variable: &str, secret: &str, key: &str, optional: bool) -> Value {
    json!({
        "name": variable,
        "valueFrom": { "secretKeyRef": { "name": secret, "key": key, "optional": optional } },
    })
}

impl ContainerWiring {
    pub(super) fn mount_secret_file(&mut self, file: SecretFile<'_>) {
        self.args.push(format!("--{}={}/{}", file.flag, file.dir, file.file));
        self.volumes.push(json!({
            "name": file.volume,
            "secret": { "secretName": file.secret, "items": [{ "key": file.key, "path": file.file }] },
        }));
        self.mounts.push(json!({ "name": file.volume, "mountPath": file.dir, "readOnly": true }));
    }
}

//! The node agent's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the local node agent.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    /// An `--image-map` entry is not `image=path`.
    #[error("image map entry {entry:?} is not `image=path`")]
    ImageMapEntry { entry: String },

    /// The pod IP range is not a loopback CIDR the pool can allocate from.
    #[error("pod IP range {range:?} is invalid: {reason}")]
    PodIpRange { range: String, reason: String },

    /// A container's environment could not be built (missing ConfigMap/Secret key,
    /// unsupported field path, ...). Reported on the container as CreateContainerConfigError.
    #[error("{0}")]
    ContainerConfig(String),

    /// A volume could not be prepared (missing ConfigMap/Secret, unsupported kind, ...).
    #[error("volume {volume:?}: {reason}")]
    Volume { volume: String, reason: String },

    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: std::time::Duration },

    /// A local file or process operation failed.
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NodeAgentError {
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube { action: action.into(), source }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}

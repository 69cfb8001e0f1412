//! The control plane's error type: one variant per operation that can fail, each naming
//! what it was doing, so a failed test says which component and which step broke.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong starting, using or stopping a [`super::LocalControlPlane`].
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// etcd, kube-apiserver, ... are not where `make setup` puts them.
    #[error("Kubernetes binaries missing in {dir}: {missing}; run `make setup` (or point KUBE_OCR_K8S_BIN at them)", dir = dir.display(), missing = missing.join(", "))]
    LocateBinaries { dir: PathBuf, missing: Vec<String> },

    /// The cluster directory could not be prepared or cleaned.
    #[error("{action} {path}: {source}", path = path.display())]
    ClusterDir {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another live process owns the fixed cluster directory.
    #[error("{dir} is in use by a running control plane (pid {pid}); stop it first (`make cluster-down`)", dir = dir.display())]
    ClusterDirInUse { dir: PathBuf, pid: i32 },

    /// No free loopback port could be reserved.
    #[error("reserve free loopback ports: {0}")]
    ReservePorts(#[source] std::io::Error),

    /// A certificate or key could not be generated.
    #[error("generate {what}: {source}")]
    GenerateCertificate {
        what: String,
        #[source]
        source: rcgen::Error,
    },

    /// A component's process could not be started.
    #[error("spawn {component}: {reason}")]
    SpawnComponent { component: &'static str, reason: String },

    /// A component exited while the control plane was starting or running.
    #[error("{component} exited ({status}) during start-up; last lines of {log}:\n{tail}", log = log.display())]
    ComponentExited { component: &'static str, status: String, log: PathBuf, tail: String },

    /// A component did not become ready in time.
    #[error("{component} not ready after {waited:?} ({last_error}); last lines of {log}:\n{tail}", log = log.display())]
    ComponentNotReady { component: &'static str, waited: Duration, last_error: String, log: PathBuf, tail: String },

    /// A generated kubeconfig could not be turned into a client configuration.
    #[error("load kubeconfig for {user}: {source}")]
    LoadKubeconfig {
        user: String,
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A kube client could not be built.
    #[error("create a client for {user}: {source}")]
    CreateClient {
        user: String,
        #[source]
        source: kube::Error,
    },

    /// A test namespace could not be created or did not get its default ServiceAccount.
    #[error("create namespace {namespace}: {reason}")]
    CreateNamespace { namespace: String, reason: String },

    /// A ServiceAccount token could not be requested.
    #[error("request a token for ServiceAccount {namespace}/{name}: {reason}")]
    RequestToken { namespace: String, name: String, reason: String },

    /// The shared control plane of this process failed to start (the first caller's error).
    #[error("the shared control plane failed to start: {0}")]
    StartShared(String),
}

impl ControlPlaneError {
    pub(crate) fn dir(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::ClusterDir { action, path: path.into(), source }
    }

    pub(crate) fn cert(what: impl Into<String>, source: rcgen::Error) -> Self {
        Self::GenerateCertificate { what: what.into(), source }
    }

    /// A component lost the race for its port between our reservation and its bind: worth
    /// another attempt with fresh ports rather than a failure.
    pub(crate) fn is_port_clash(&self) -> bool {
        matches!(self, Self::ComponentExited { tail, .. } if tail.contains("address already in use"))
    }
}

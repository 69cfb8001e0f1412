//! The real nodes' error type: one variant per operation, each naming the process, its log
//! and, where there is one, the likely fix.

use std::path::PathBuf;
use std::time::Duration;

use crate::control_plane::ControlPlaneError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// kubelet, containerd, ... are not where `make setup` puts them.
    #[error("node binaries missing in {dir}: {missing}; run `make setup` (or point KUBE_OCR_K8S_BIN at them)", dir = dir.display(), missing = missing.join(", "))]
    LocateBinaries { dir: PathBuf, missing: Vec<String> },

    /// A host program the nodes need is not installed.
    #[error("{program} not found on PATH; run `make setup` (it installs the Debian package {package})")]
    MissingHostProgram { program: &'static str, package: &'static str },

    #[error("{action} {path}: {source}", path = path.display())]
    Dir {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A built image's archive is not what buildah writes (see `oci_layout`).
    #[error("read the image archive {archive}: {reason}", archive = archive.display())]
    ImageLayout { archive: PathBuf, reason: String },

    /// A short command (ip, nsenter, ctr, buildah) failed.
    #[error("{command}: {reason}")]
    Command { command: String, reason: String },

    #[error("start {process}: {source}")]
    StartProcess {
        process: &'static str,
        #[source]
        source: Box<ControlPlaneError>,
    },

    #[error("{process} exited ({status}); last lines of {log}:\n{tail}", log = log.display())]
    Exited { process: &'static str, status: String, log: PathBuf, tail: String },

    #[error("{process} not ready after {waited:?} ({last_error}); last lines of {log}:\n{tail}", log = log.display())]
    NotReady { process: &'static str, waited: Duration, last_error: String, log: PathBuf, tail: String },

    /// A credential or kubeconfig of the control plane could not be made.
    #[error("{what}: {source}")]
    ControlPlane {
        what: String,
        #[source]
        source: Box<ControlPlaneError>,
    },

    /// A call to the apiserver about the node failed.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl NodeError {
    pub(crate) fn dir(action: &'static str, path: &std::path::Path, source: std::io::Error) -> NodeError {
        NodeError::Dir { action, path: path.to_owned(), source }
    }

    pub(crate) fn command(command: impl Into<String>, reason: impl Into<String>) -> NodeError {
        NodeError::Command { command: command.into(), reason: reason.into() }
    }
}

//! The demo cluster in the background: `kube-ocr-cluster up --detach` in the demo's own
//! directory, with two real nodes (one per zone, one pretend GPU each) that hold the
//! project's images, built from this checkout. It stays up after the demo, like
//! `make cluster`, until `kube-ocr-cluster down` (`make demo-down`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube_ocr_e2e::cluster_state::{self, ClusterState};

/// The nodes the demo cluster starts: node-a in zone-a, node-b in zone-b.
pub const NODES: u8 = 2;
/// `kube-ocr-cluster up`'s own log in the demo directory.
pub const CLUSTER_LOG: &str = "cluster.log";

/// The binaries the demo needs beside it: the cluster, and what the images are built from.
pub const REQUIRED_BINARIES: [&str; 4] = ["kube-ocr-cluster", "ocr-inference-pod", "ocr-pdf-render", "ocr-operator"];

/// The demo cluster of `dir`, while its `up` process runs.
pub fn running(dir: &Path) -> Option<ClusterState> {
    cluster_state::running(dir)
}

/// Starts the cluster in the background and returns once it is ready, with the images on
/// every node; fails with `up`'s own message (it names the component and its log).
pub fn start(bin_dir: &Path, dir: &Path, k8s_bin: &Path) -> anyhow::Result<ClusterState> {
    let output = cluster_command(bin_dir)
        .args(["up", "--detach", "--workspace-images"])
        .arg("--dir")
        .arg(dir)
        .arg("--k8s-bin")
        .arg(k8s_bin)
        .args(["--nodes", &NODES.to_string(), "--gpus-per-node", "1"])
        .output()
        .context("run kube-ocr-cluster")?;
    if !output.status.success() {
        bail!("kube-ocr-cluster up: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    running(dir).with_context(|| format!("kube-ocr-cluster up returned, but no cluster runs in {}", dir.display()))
}

/// Stops the demo cluster of `dir`, if one runs; returns whether one did.
pub fn stop(bin_dir: &Path, dir: &Path, timeout: Duration) -> anyhow::Result<bool> {
    if cluster_state::read(dir).is_none() {
        return Ok(false);
    }
    let output = cluster_command(bin_dir)
        .arg("down")
        .arg("--dir")
        .arg(dir)
        .args(["--timeout-secs", &timeout.as_secs().to_string()])
        .output()
        .context("run kube-ocr-cluster")?;
    if !output.status.success() {
        bail!("kube-ocr-cluster down: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(true)
}

fn cluster_command(bin_dir: &Path) -> Command {
    let mut command = Command::new(cluster_binary(bin_dir));
    // The demo's own settings must not leak into the cluster's flags.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KUBE_OCR_CLUSTER_") {
            command.env_remove(name);
        }
    }
    command
}

pub fn cluster_binary(bin_dir: &Path) -> PathBuf {
    bin_dir.join("kube-ocr-cluster")
}

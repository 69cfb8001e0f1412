//! `<dir>/state.json` of `kube-ocr-cluster up`: which process runs the cluster in a directory
//! and its components, so that `down` (another process) can stop it, `up --detach` can tell
//! when it is ready, and the demo can tell whether its cluster runs.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    /// The `kube-ocr-cluster up` process that owns the cluster.
    pub pid: i32,
    pub ready: bool,
    pub apiserver_url: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub bin_dir: PathBuf,
    pub components: Vec<ComponentState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentState {
    pub name: String,
    pub pid: i32,
    pub process_group: i32,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Written whole and renamed into place, so a reader never sees half a file.
pub fn write(dir: &Path, state: &ClusterState) -> anyhow::Result<()> {
    let tmp = dir.join("state.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(state)?).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path(dir)).with_context(|| format!("write {}", path(dir).display()))
}

pub fn read(dir: &Path) -> Option<ClusterState> {
    serde_json::from_slice(&fs::read(path(dir)).ok()?).ok()
}

pub fn remove(dir: &Path) {
    let _ = fs::remove_file(path(dir));
}

/// The state of a cluster whose `up` process still runs in `dir`.
pub fn running(dir: &Path) -> Option<ClusterState> {
    read(dir).filter(|state| crate::control_plane::is_alive(state.pid) && runs(state.pid, "kube-ocr-cluster"))
}

/// Whether `pid` runs a program whose command line contains `needle`: a pid in a stale state
/// file may since belong to anything.
pub fn runs(pid: i32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
        .unwrap_or(false)
}

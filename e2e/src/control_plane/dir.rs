//! The directory a control plane lives in: etcd's data, certificates, kubeconfigs, logs and
//! the components' pidfiles. Either a fresh temp dir (tests) or a fixed one (`make cluster`).
//!
//! Each holds `owner.pid`, the pid of the process that started the control plane. When a
//! test process dies without dropping its control plane (killed, or the shared one in a
//! static, which is never dropped), etcd's watchdog removes the temp dir after etcd is gone;
//! should that fail too, the next start removes dirs whose owner and components are gone.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tracing::{debug, info};

use super::ControlPlaneError;
use super::process::is_alive;

const TEMP_PREFIX: &str = "kube-ocr-cp-";
const OWNER_FILE: &str = "owner.pid";
/// What a start creates in a fixed dir, wiped before a start and removed by a stop. Logs are
/// wiped before a start but kept after a stop, for post-mortems; anything else (the
/// `make cluster` log, state files of the binary) is left alone.
const GENERATED: &[&str] = &["etcd", "pki", "run", "kubeconfigs", "kubeconfig", OWNER_FILE];
const LOGS: &str = "logs";

#[derive(Debug)]
pub(crate) enum ClusterDir {
    Temp(Option<TempDir>),
    Fixed(PathBuf),
}

impl ClusterDir {
    /// A fresh temp dir, or `fixed` emptied of a previous (stopped) control plane's files.
    pub(crate) fn prepare(fixed: Option<&Path>) -> Result<ClusterDir, ControlPlaneError> {
        let dir = match fixed {
            None => {
                sweep_orphans(&std::env::temp_dir());
                let temp = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .tempdir()
                    .map_err(|e| ControlPlaneError::dir("create a temp dir in", std::env::temp_dir(), e))?;
                ClusterDir::Temp(Some(temp))
            }
            Some(path) => {
                fs::create_dir_all(path).map_err(|e| ControlPlaneError::dir("create", path, e))?;
                if let Some(pid) = owner(path).filter(|pid| *pid != std::process::id() as i32 && is_alive(*pid)) {
                    return Err(ControlPlaneError::ClusterDirInUse { dir: path.to_owned(), pid });
                }
                remove_all(path, GENERATED.iter().chain([&LOGS]))?;
                ClusterDir::Fixed(path.to_owned())
            }
        };
        for sub in ["run", LOGS, "kubeconfigs"] {
            let path = dir.path().join(sub);
            fs::create_dir_all(&path).map_err(|e| ControlPlaneError::dir("create", &path, e))?;
        }
        let owner_file = dir.path().join(OWNER_FILE);
        fs::write(&owner_file, std::process::id().to_string())
            .map_err(|e| ControlPlaneError::dir("write", &owner_file, e))?;
        Ok(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(Some(temp)) => temp.path(),
            // Only after `remove`, which consumes the control plane's use of it.
            ClusterDir::Temp(None) => Path::new(""),
            ClusterDir::Fixed(path) => path,
        }
    }

    /// Removes what the control plane created; call once its processes are gone.
    pub(crate) fn remove(&mut self) -> Result<(), ControlPlaneError> {
        match self {
            ClusterDir::Temp(temp) => match temp.take() {
                Some(temp) => {
                    let path = temp.path().to_owned();
                    match temp.close() {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            Err(ControlPlaneError::dir("remove", path, e))
                        }
                        _ => Ok(()),
                    }
                }
                None => Ok(()),
            },
            ClusterDir::Fixed(path) => remove_all(path, GENERATED.iter()),
        }
    }
}

fn owner(dir: &Path) -> Option<i32> {
    fs::read_to_string(dir.join(OWNER_FILE)).ok()?.trim().parse().ok()
}

fn remove_all<'a>(dir: &Path, names: impl Iterator<Item = &'a &'a str>) -> Result<(), ControlPlaneError> {
    for name in names {
        let path = dir.join(name);
        let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ControlPlaneError::dir("remove", path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes temp dirs left by control planes whose owner and components are all gone.
fn sweep_orphans(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry.file_name().to_str().is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !is_ours || !path.is_dir() {
            continue;
        }
        // No owner file: still being created, or not ours to judge.
        let Some(owner_pid) = owner(&path) else { continue };
        if is_alive(owner_pid) || component_pids(&path).into_iter().any(is_alive) {
            debug!(dir = %path.display(), owner_pid, "control plane dir still in use");
            continue;
        }
        info!(dir = %path.display(), owner_pid, "removing the dir of a control plane whose owner died");
        let _ = fs::remove_dir_all(&path);
    }
}

/// The pids in `<dir>/run/*.pid`, written by the components' watchdogs.
pub(crate) fn component_pids(dir: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir(dir.join("run")) else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pid"))
        .filter_map(|entry| fs::read_to_string(entry.path()).ok()?.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_dir_is_wiped_before_and_after_but_keeps_logs_and_other_files() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cluster");
        fs::create_dir_all(path.join("etcd")).unwrap();
        fs::write(path.join("cluster.log"), "from make").unwrap();
        let mut dir = ClusterDir::prepare(Some(&path)).unwrap();
        assert!(!path.join("etcd").exists());
        fs::write(path.join("logs/etcd.log"), "x").unwrap();
        dir.remove().unwrap();
        assert!(path.join("cluster.log").exists());
        assert!(path.join("logs/etcd.log").exists());
        assert!(!path.join(OWNER_FILE).exists());
        assert!(!path.join("run").exists());
    }

    #[test]
    fn a_fixed_dir_of_a_live_owner_is_refused() {
        let root = tempfile::tempdir().unwrap();
        // pid 1 is always alive.
        fs::write(root.path().join(OWNER_FILE), "1").unwrap();
        let err = ClusterDir::prepare(Some(root.path())).unwrap_err();
        assert!(matches!(err, ControlPlaneError::ClusterDirInUse { pid: 1, .. }), "{err}");
    }

    #[test]
    fn orphaned_temp_dirs_are_swept_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let orphan = parent.path().join(format!("{TEMP_PREFIX}orphan"));
        let live = parent.path().join(format!("{TEMP_PREFIX}live"));
        for dir in [&orphan, &live] {
            fs::create_dir_all(dir.join("run")).unwrap();
        }
        // A pid far above pid_max's default is never alive.
        fs::write(orphan.join(OWNER_FILE), "2000000000").unwrap();
        fs::write(live.join(OWNER_FILE), std::process::id().to_string()).unwrap();
        sweep_orphans(parent.path());
        assert!(!orphan.exists());
        assert!(live.exists());
    }
}

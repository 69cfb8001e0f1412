//! The demo cluster in the background: one `kube-ocr-demo serve` process owns the local
//! control plane and the node agent, in a fixed directory, so the demo can finish and leave
//! them running (like `make cluster`) until `kube-ocr-demo down`. If that process dies in
//! any way, the components' watchdogs and the agent's orphan guard stop everything.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, LocalControlPlane, is_alive};
use kube_ocr_e2e::node_agent::{ImageMap, NodeAgent, NodeAgentConfig};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

/// The node the agent registers.
pub const NODE_NAME: &str = "kube-ocr-demo-node";
const STATE_FILE: &str = "state.json";
/// The serve process's own log.
pub const SERVE_LOG: &str = "cluster.log";
/// Pod directories and container logs.
pub const AGENT_DIR: &str = "node-agent";

/// `<dir>/state.json`: who runs the demo cluster and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoState {
    /// The `kube-ocr-demo serve` process.
    pub pid: i32,
    pub ready: bool,
    pub kubeconfig: Option<PathBuf>,
    pub apiserver_url: Option<String>,
    pub pod_ip_range: Option<String>,
    /// (name, pid, process group) of each control plane component.
    pub components: Vec<(String, i32, i32)>,
}

pub fn read_state(dir: &Path) -> Option<DemoState> {
    serde_json::from_slice(&fs::read(dir.join(STATE_FILE)).ok()?).ok()
}

fn write_state(dir: &Path, state: &DemoState) -> anyhow::Result<()> {
    let tmp = dir.join("state.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(state)?).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(STATE_FILE)).with_context(|| format!("write {}", dir.join(STATE_FILE).display()))
}

fn remove_state(dir: &Path) {
    let _ = fs::remove_file(dir.join(STATE_FILE));
}

/// Whether `pid` runs a program whose command line contains `needle` (a pid in a stale
/// state file may since belong to anything).
fn runs(pid: i32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
}

/// The state of a demo cluster whose serve process still runs in `dir`.
pub fn running(dir: &Path) -> Option<DemoState> {
    read_state(dir).filter(|s| is_alive(s.pid) && runs(s.pid, "kube-ocr-demo"))
}

/// `kube-ocr-demo serve`: starts the control plane and the node agent, writes the state
/// when both are ready, and runs until SIGTERM/SIGINT (SIGHUP is ignored: it runs detached).
pub async fn serve(dir: &Path, k8s_bin: PathBuf, bin_dir: &Path) -> anyhow::Result<()> {
    if let Some(state) = running(dir) {
        bail!("a demo cluster already runs in {} (pid {}); `kube-ocr-demo down` first", dir.display(), state.pid);
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut state = DemoState {
        pid: std::process::id() as i32,
        ready: false,
        kubeconfig: None,
        apiserver_url: None,
        pod_ip_range: None,
        components: Vec::new(),
    };
    write_state(dir, &state)?;
    let result = serve_until_signal(dir, k8s_bin, bin_dir, &mut state).await;
    remove_state(dir);
    result
}

async fn serve_until_signal(dir: &Path, k8s_bin: PathBuf, bin_dir: &Path, state: &mut DemoState) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // Registered so that a hang-up does not kill us without a teardown.
    let mut hangup = signal(SignalKind::hangup())?;
    let options = ControlPlaneOptions { bin_dir: k8s_bin, dir: Some(dir.to_owned()), ..ControlPlaneOptions::default() };
    let mut plane = tokio::select! {
        plane = LocalControlPlane::start(options) => plane?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    // The previous run's pod directories (the pods they belonged to are gone with its etcd).
    let agent_dir = dir.join(AGENT_DIR);
    if agent_dir.exists() {
        fs::remove_dir_all(&agent_dir).with_context(|| format!("remove {}", agent_dir.display()))?;
    }
    let mut config = NodeAgentConfig::new(NODE_NAME, &agent_dir, ImageMap::workspace_defaults(bin_dir));
    config.api_server = Some(plane.apiserver_url().to_owned());
    config.deregister_on_shutdown = false;
    let agent = NodeAgent::start(plane.client()?, config).await?;
    if !agent.pod_ips_routable() {
        agent.shutdown().await;
        bail!(
            "pod IPs would be loopback addresses, which the API server refuses in EndpointSlices, so the demo's \
             Service would get no endpoints; `make setup` adds the route (tools/local-pod-network.sh, needs root)"
        );
    }
    agent.wait_schedulable(Duration::from_secs(120)).await?;
    state.ready = true;
    state.kubeconfig = Some(plane.kubeconfig().to_owned());
    state.apiserver_url = Some(plane.apiserver_url().to_owned());
    state.pod_ip_range = Some(agent.pod_ip_range().to_owned());
    state.components = plane.components().iter().map(|c| (c.name.to_owned(), c.pid, c.process_group)).collect();
    write_state(dir, state)?;
    info!(kubeconfig = %plane.kubeconfig().display(), "demo cluster ready");

    loop {
        tokio::select! {
            _ = terminate.recv() => { info!("SIGTERM; stopping"); break; }
            _ = interrupt.recv() => { info!("SIGINT; stopping"); break; }
            _ = hangup.recv() => info!("ignoring SIGHUP (detached)"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Err(err) = plane.check_running() {
                    error!(error = %err, "a control plane component died; stopping");
                    break;
                }
            }
        }
    }
    agent.shutdown().await;
    let report = tokio::task::spawn_blocking(move || plane.stop()).await?;
    info!(elapsed_ms = report.elapsed.as_millis() as u64, clean = report.clean(), "demo cluster stopped");
    Ok(())
}

/// Starts `<this binary> serve` in its own process group (a Ctrl-C meant for `make` does
/// not reach it), output to `<dir>/cluster.log`; returns once it wrote a ready state, or
/// fails with the log's tail when it exits first or takes longer than `timeout`.
pub fn start_detached(dir: &Path, k8s_bin: &Path, bin_dir: &Path, timeout: Duration) -> anyhow::Result<DemoState> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let log_path = dir.join(SERVE_LOG);
    let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--dir")
        .arg(dir)
        .arg("--k8s-bin")
        .arg(k8s_bin)
        .arg("--bin-dir")
        .arg(bin_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start `kube-ocr-demo serve` in the background")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the demo cluster exited ({status}) before it was ready; last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        if let Some(state) = read_state(dir).filter(|s| s.ready && s.pid == child.id() as i32) {
            return Ok(state);
        }
        if Instant::now() > deadline {
            if let Some(pid) = Pid::from_raw(child.id() as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
            bail!(
                "the demo cluster was not ready after {}s; last lines of {}:\n{}",
                timeout.as_secs(),
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The binaries the node agent runs for the workspace images (the inference pod finds
/// its PDF renderer beside itself, as in its image).
pub const IMAGE_BINARIES: [&str; 3] = ["ocr-inference-pod", "ocr-pdf-render", "ocr-operator"];

/// Hard-links (or, across file systems, copies) the image binaries of `bin_dir` into
/// `images`, replacing what was there: the demo's "images" then stay as they were built
/// while cargo relinks the originals (a rebuild removes them for a while). Returns `images`.
pub fn snapshot_images(bin_dir: &Path, images: &Path) -> anyhow::Result<PathBuf> {
    if images.exists() {
        fs::remove_dir_all(images).with_context(|| format!("remove {}", images.display()))?;
    }
    fs::create_dir_all(images).with_context(|| format!("create {}", images.display()))?;
    for name in IMAGE_BINARIES {
        let (from, to) = (bin_dir.join(name), images.join(name));
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(images.to_owned())
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops the demo cluster of `dir`, if any: SIGTERM to the serve process (it stops the
/// pods, then the control plane), SIGKILL after `timeout`, then kills what is left of
/// the components. Returns whether there was one.
pub fn stop(dir: &Path, timeout: Duration) -> anyhow::Result<bool> {
    let Some(state) = read_state(dir) else { return Ok(false) };
    let owner_alive = || is_alive(state.pid) && runs(state.pid, "kube-ocr-demo");
    let deadline = Instant::now() + timeout;
    if owner_alive() {
        if let Some(pid) = Pid::from_raw(state.pid) {
            kill_process(pid, Signal::TERM).with_context(|| format!("signal pid {}", state.pid))?;
        }
        while owner_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if owner_alive() {
            eprintln!("the demo cluster (pid {}) did not stop in {}s; killing it", state.pid, timeout.as_secs());
            if let Some(pid) = Pid::from_raw(state.pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
    // Components stop with their owner (their watchdogs see it go); kill any stragglers.
    let alive = |(name, pid, _): &&(String, i32, i32)| is_alive(*pid) && runs(*pid, name);
    let stragglers_deadline = Instant::now() + Duration::from_secs(30);
    while state.components.iter().any(|c| alive(&c)) && Instant::now() < stragglers_deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, pid, group) in state.components.iter().filter(alive) {
        eprintln!("{name} (pid {pid}) still runs; killing its process group");
        if let Some(group) = Pid::from_raw(*group) {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
    remove_state(dir);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_binaries_as_they_were_when_cargo_relinks_them() {
        let work = tempfile::tempdir().unwrap();
        let (bin_dir, images) = (work.path().join("debug"), work.path().join("demo/images"));
        fs::create_dir_all(&bin_dir).unwrap();
        for name in IMAGE_BINARIES {
            fs::write(bin_dir.join(name), format!("{name} v1")).unwrap();
        }
        fs::create_dir_all(&images).unwrap();
        fs::write(images.join("stale"), "from the previous run").unwrap();

        assert_eq!(snapshot_images(&bin_dir, &images).unwrap(), images);
        // What cargo does to a rebuilt binary: remove it, link a new one later.
        fs::remove_file(bin_dir.join("ocr-inference-pod")).unwrap();
        assert_eq!(fs::read_to_string(images.join("ocr-inference-pod")).unwrap(), "ocr-inference-pod v1");
        assert_eq!(fs::read_to_string(images.join("ocr-operator")).unwrap(), "ocr-operator v1");
        assert!(!images.join("stale").exists());

        let missing = snapshot_images(&bin_dir, &images).unwrap_err().to_string();
        assert!(missing.contains("ocr-inference-pod"), "{missing}");
    }
}

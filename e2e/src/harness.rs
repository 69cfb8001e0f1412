//! What the e2e scenarios on real nodes share: a cluster per scenario with the host checked
//! before and after, `kubectl` as a user runs it, polling, and the workspace's paths. Test
//! code (it panics with the reason instead of returning errors).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::FutureExt as _;

use crate::control_plane::{ControlPlaneOptions, LocalControlPlane};
use crate::node::host_state::HostState;
use crate::node::{LocalCluster, NodeOptions};

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("/")).to_owned()
}

/// Logs of the scenarios' own code and the harness, to the test's captured output.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,kube_ocr_operator=debug,kube_runtime=warn")
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 250 ms until it returns `Some`, or panics naming `what`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One cluster at a time in a test process: each is a control plane and real nodes on 2
/// cores.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a cluster, runs `scenario` on it, stops it, and fails if the host is not as it was.
/// A failing scenario shows the tail of each node's logs first (they go with the cluster).
pub async fn on_a_cluster<F>(control_plane: ControlPlaneOptions, nodes: Vec<NodeOptions>, scenario: F)
where
    F: AsyncFnOnce(&mut LocalCluster),
{
    init_logging();
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let before = HostState::capture();
    let mut cluster = LocalCluster::start(control_plane, nodes).await.unwrap_or_else(|err| panic!("{err}"));
    let outcome = std::panic::AssertUnwindSafe(scenario(&mut cluster)).catch_unwind().await;
    if let Err(panic) = outcome {
        for node in cluster.nodes() {
            for name in ["kubelet", "containerd", "kube-proxy", "holder"] {
                let path = node.dir().join("logs").join(format!("{name}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail = text.lines().rev().take(15).collect::<Vec<_>>();
                eprintln!("--- last lines of {}:", path.display());
                tail.iter().rev().for_each(|line| eprintln!("{line}"));
            }
        }
        drop(cluster);
        std::panic::resume_unwind(panic);
    }
    drop(cluster);
    let leftovers = before.diff(&HostState::capture());
    assert!(leftovers.is_empty(), "the cluster left this on the host:\n{}", leftovers.join("\n"));
}

/// kubectl with the cluster's admin kubeconfig, as a user would run it.
#[derive(Debug)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(plane: &LocalControlPlane) -> Kubectl {
        Kubectl { program: plane.binaries().kubectl.clone(), kubeconfig: plane.kubeconfig().to_owned() }
    }

    /// `kubectl --namespace <namespace> <args>`: its stdout, or its stderr as the error.
    pub fn run(&self, namespace: &str, args: &[&str]) -> Result<String, String> {
        let output = self.command(namespace).args(args).output().map_err(|e| format!("kubectl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The command, for what runs on (`port-forward`).
    pub fn command(&self, namespace: &str) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(["--namespace", namespace]);
        command
    }
}

/// A free port on the host's loopback, for `kubectl port-forward`.
pub fn free_local_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|err| panic!("no free loopback port: {err}"))
}

//! What the e2e scenarios on real nodes share: a cluster per scenario with the host checked
//! before and after, or one cluster per test binary for scenarios that each take a namespace
//! of it; `kubectl` as a user runs it, polling, and the workspace's paths. Test code (it
//! panics with the reason instead of returning errors).

pub mod operator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::FutureExt as _;

use crate::control_plane::{ControlPlaneOptions, LocalControlPlane};
use crate::node::host_state::HostState;
use crate::node::workspace_images::ImageInputs;
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

/// Starts a cluster, runs `scenario` on it, stops it, and fails if the host is not as it was
/// (leaving aside another cluster's teardown, see [`another_clusters_teardown`]).
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
    let leftovers: Vec<String> =
        before.diff(&HostState::capture()).into_iter().filter(|entry| !another_clusters_teardown(entry)).collect();
    assert!(leftovers.is_empty(), "the cluster left this on the host:\n{}", leftovers.join("\n"));
}

/// Whether a line of [`HostState::diff`] is a local cluster's link, address, route or
/// cgroup that went away. Another cluster's teardown does that: a test binary's shared
/// cluster is stopped by its watchdogs after that binary exits, while the next binary may
/// already run. What a scenario's own cluster leaves is a `+` line, and those all count.
fn another_clusters_teardown(entry: &str) -> bool {
    entry.starts_with("- ") && (entry.contains("kocr") || entry.contains("/kube-ocr"))
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

/// How many `nvidia.com/gpu` the first node of [`shared_cluster`] advertises; the second
/// advertises none, so pods that ask for GPUs all land on the first.
pub const SHARED_CLUSTER_GPUS: u32 = 2;

/// Where each node of [`shared_cluster`] holds a copy of the workspace's `models/` (in the
/// node's own /var/lib, gone with the node), readable by the pods' user: a `hostPath`
/// volume of this path is a models volume on every node, as a node-local disk would be.
pub const SHARED_CLUSTER_MODELS: &str = "/var/lib/kube-ocr-e2e/models";

static SHARED_CLUSTER: OnceLock<Result<&'static LocalCluster, String>> = OnceLock::new();

/// The cluster of this test process, started by the first caller (the others wait): a
/// control plane and two real nodes, `node-a` in `zone-a` with [`SHARED_CLUSTER_GPUS`] GPUs
/// and `node-b` in `zone-b`, CoreDNS, the inference pod's and the operator's images (this
/// checkout's) and the workspace's model bundles ([`SHARED_CLUSTER_MODELS`]) on both.
/// Scenarios isolate themselves with a namespace each and delete it when done.
///
/// It lives in a `static` and is never dropped: when the test process exits, each
/// component's watchdog sees its stdin close and stops it, each node's namespace holder kills
/// what is left in the node's cgroups and removes them, and the image stores' claims end
/// with the holders (see `control_plane::process` and `node::namespace`). A runtime of its
/// own on a thread of its own keeps the nodes' GPU keepers running for as long as the
/// process lives.
pub fn shared_cluster() -> &'static LocalCluster {
    let started = SHARED_CLUSTER.get_or_init(|| {
        init_logging();
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("shared-cluster".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => return drop(sender.send(Err(format!("start a tokio runtime: {err}")))),
            };
            runtime.block_on(async move {
                match start_shared_cluster().await {
                    Ok(cluster) => {
                        let _ = sender.send(Ok(&*Box::leak(Box::new(cluster))));
                        std::future::pending::<()>().await;
                    }
                    Err(err) => drop(sender.send(Err(err))),
                }
            });
        });
        match thread {
            Ok(_) => receiver.recv().unwrap_or_else(|_| Err("the shared cluster's thread panicked".to_owned())),
            Err(err) => Err(format!("start the shared cluster's thread: {err}")),
        }
    });
    started.as_ref().copied().unwrap_or_else(|err| panic!("the shared cluster did not start: {err}"))
}

async fn start_shared_cluster() -> Result<LocalCluster, String> {
    let started = Instant::now();
    // The images build (seconds when nothing changed) while the cluster starts: the
    // inference pod's, and the operator's that scenarios run in the cluster.
    let images = tokio::task::spawn_blocking(move || {
        let inputs = ImageInputs::of_this_checkout()?;
        let mut archives = Vec::new();
        for archive in [inputs.build_inference_pod(), inputs.build_operator()] {
            let archive = archive?;
            tracing::info!(image = %archive.reference, elapsed_ms = started.elapsed().as_millis() as u64, "image built");
            archives.push(archive);
        }
        Ok::<_, crate::node::NodeError>(archives)
    });
    let nodes =
        vec![NodeOptions::new("node-a", "zone-a").with_gpus(SHARED_CLUSTER_GPUS), NodeOptions::new("node-b", "zone-b")];
    let cluster = LocalCluster::start(ControlPlaneOptions::default(), nodes).await.map_err(|e| e.to_string())?;
    let archives = images.await.map_err(|e| format!("the image build panicked: {e}"))?.map_err(|e| e.to_string())?;
    let models = workspace_root().join("models");
    for node in cluster.nodes() {
        for archive in &archives {
            node.import_archive(archive).map_err(|e| e.to_string())?;
        }
        // As root inside the node, which reads the cache the bundles link into.
        let copy = node
            .command("bash")
            .args(["-c", r#"mkdir -p "$2" && cp -rL "$1"/. "$2"/ && chmod -R a+rX "$2""#, "copy"])
            .arg(&models)
            .arg(SHARED_CLUSTER_MODELS)
            .output()
            .map_err(|e| format!("copy the models into {}: {e}", node.name()))?;
        if !copy.status.success() {
            return Err(format!(
                "copy {} into {}:{SHARED_CLUSTER_MODELS}: {}",
                models.display(),
                node.name(),
                String::from_utf8_lossy(&copy.stderr).trim()
            ));
        }
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "shared cluster ready");
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_clusters_entries_that_went_away_are_another_clusters_teardown() {
        assert!(another_clusters_teardown("- link: kocr0"));
        assert!(another_clusters_teardown("- route: 10.88.0.0/24 via 10.87.0.1 dev kocr0 "));
        assert!(another_clusters_teardown("- cgroup: /sys/fs/cgroup/memory/process_api/x/kube-ocr"));
        assert!(!another_clusters_teardown("+ link: kocr0"), "what a cluster leaves always counts");
        assert!(!another_clusters_teardown("- route: default via 192.0.2.1 dev eth0"), "the host's own");
        assert!(!another_clusters_teardown("- sysctl: vm.overcommit_memory = 0"));
    }
}

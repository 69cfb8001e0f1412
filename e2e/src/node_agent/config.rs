//! What a node agent is told at start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::backoff::Backoff;
use super::image_map::ImageMap;

/// The extended resource name of GPUs, as the NVIDIA device plugin advertises it.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "kube-ocr-node-agent";

/// The node's capacity (also its allocatable: nothing is reserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    /// A Kubernetes quantity, e.g. `8`.
    pub cpu: String,
    /// A Kubernetes quantity, e.g. `32Gi`.
    pub memory: String,
    pub pods: u32,
    /// `nvidia.com/gpu`.
    pub gpus: u32,
}

impl Default for NodeCapacity {
    fn default() -> Self {
        Self { cpu: "8".into(), memory: "32Gi".into(), pods: 110, gpus: 4 }
    }
}

/// Configuration of [`super::NodeAgent`].
#[derive(Debug, Clone)]
pub struct NodeAgentConfig {
    pub node_name: String,
    pub capacity: NodeCapacity,
    /// Extra labels on the Node (besides `kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`).
    pub labels: BTreeMap<String, String>,
    pub image_map: ImageMap,
    /// Pod directories (`<ns>_<pod>/`, with the container logs) and claim directories (`pvc/`).
    pub work_dir: PathBuf,
    /// The CIDR pod IPs come from; `None` picks [`super::ROUTABLE_POD_IP_RANGE`] when it
    /// is local on this machine, else loopback (see [`super::choose_pod_ip_range`]).
    pub pod_ip_range: Option<String>,
    /// The API server URL as pods should reach it: written into the kubeconfig the agent
    /// gives pods that mount a ServiceAccount token (`KUBECONFIG`), and split into
    /// `KUBERNETES_SERVICE_HOST`/`_PORT`. `None`: pods get neither.
    pub api_server: Option<String>,
    /// Variables of the agent's own environment passed to every container (a container
    /// image would bring its own PATH; a local process needs the host's).
    pub inherit_env: Vec<String>,
    pub restart_backoff: Backoff,
    /// Node status heartbeat and Lease renewal period.
    pub heartbeat_period: Duration,
    pub lease_duration: Duration,
    /// How long containers get between SIGTERM and SIGKILL when the agent shuts down.
    pub shutdown_grace: Duration,
    /// Delete the Node object in [`super::NodeAgentHandle::shutdown`] (a kubelet does not;
    /// tests sharing a control plane do, so no pod lands on a node nobody runs; the pod
    /// garbage collector then removes the pods that were bound to it).
    pub deregister_on_shutdown: bool,
}

impl NodeAgentConfig {
    /// Defaults: 8 CPUs, 32Gi, 110 pods, 4 GPUs; pod IP range chosen at start; the kubelet's
    /// restart back-off; 10 s heartbeats, 40 s lease; 5 s shutdown grace; PATH, LANG,
    /// LC_ALL, TZ and RUST_BACKTRACE passed through from the agent's environment.
    pub fn new(node_name: impl Into<String>, work_dir: impl Into<PathBuf>, image_map: ImageMap) -> Self {
        Self {
            node_name: node_name.into(),
            capacity: NodeCapacity::default(),
            labels: BTreeMap::new(),
            image_map,
            work_dir: work_dir.into(),
            pod_ip_range: None,
            api_server: None,
            inherit_env: ["PATH", "LANG", "LC_ALL", "TZ", "RUST_BACKTRACE"].map(String::from).to_vec(),
            restart_backoff: Backoff::default(),
            heartbeat_period: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            shutdown_grace: Duration::from_secs(5),
            deregister_on_shutdown: false,
        }
    }
}

//! The agent itself: registers the node, keeps it alive, watches the pods bound to it and
//! runs one worker per pod. [`NodeAgentHandle`] stops it all.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::NodeAgentConfig;
use super::error::NodeAgentError;
use super::heartbeat::{heartbeat_loop, register_node};
use super::ip_pool::{IpPool, ROUTABLE_POD_IP_RANGE, choose_pod_ip_range};
use super::pod_worker::run_pod;
use super::process::{OrphanGuard, ProcessRegistry};
use super::sandbox;

/// What every pod worker shares.
pub(crate) struct AgentContext {
    pub client: kube::Client,
    pub config: NodeAgentConfig,
    pub host_ip: IpAddr,
    pub ip_pool: Mutex<IpPool>,
    pub registry: ProcessRegistry,
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentContext")
            .field("config", &self.config)
            .field("host_ip", &self.host_ip)
            .finish_non_exhaustive()
    }
}

/// The local node agent: our stand-in for the kubelet.
#[derive(Debug)]
pub struct NodeAgent;

impl NodeAgent {
    /// Registers the node (waiting for that to succeed), then starts the heartbeat and the pod
    /// watch in the background. Must be called within a tokio runtime.
    pub async fn start(client: kube::Client, config: NodeAgentConfig) -> Result<NodeAgentHandle, NodeAgentError> {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) ^ std::process::id();
        let (range, endpoint_slices) = choose_pod_ip_range(config.pod_ip_range.as_deref())?;
        if !endpoint_slices {
            warn!(
                %range,
                "pod IPs are loopback addresses, which the API server refuses in EndpointSlices: Services get no \
                 endpoints. Run tools/local-pod-network.sh (once, as root) to use {ROUTABLE_POD_IP_RANGE} instead"
            );
        }
        let pool = IpPool::new(&range, seed)?;
        let mut config = config;
        config.pod_ip_range = Some(range.clone());
        std::fs::create_dir_all(&config.work_dir).map_err(|e| NodeAgentError::io("create", &config.work_dir, e))?;
        let conditions = register_node(&client, &config).await?;
        let shutdown = CancellationToken::new();
        let registry = ProcessRegistry::with_file(config.work_dir.join("process-groups"));
        let guard = OrphanGuard::spawn(&config.work_dir.join("process-groups"))?;
        let context = Arc::new(AgentContext {
            client: client.clone(),
            config: config.clone(),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip_pool: Mutex::new(pool),
            registry: registry.clone(),
            shutdown: shutdown.clone(),
        });
        let heartbeat = tokio::spawn(heartbeat_loop(client.clone(), config.clone(), conditions, shutdown.clone()));
        let pods = tokio::spawn(watch_pods(context));
        info!(node = %config.node_name, work_dir = %config.work_dir.display(), %range, "node agent started");
        Ok(NodeAgentHandle {
            client,
            pod_ip_range: range,
            deregister_on_shutdown: config.deregister_on_shutdown,
            node_name: config.node_name,
            work_dir: config.work_dir,
            shutdown,
            tasks: vec![heartbeat, pods],
            registry,
            guard,
        })
    }
}

/// A running node agent. [`NodeAgentHandle::shutdown`] stops every pod's processes
/// gracefully (SIGTERM, the configured grace, SIGKILL); dropping the handle SIGKILLs them
/// at once. Neither touches the pods in the API; `shutdown` deletes the Node when
/// [`NodeAgentConfig::deregister_on_shutdown`] is set.
pub struct NodeAgentHandle {
    client: kube::Client,
    pod_ip_range: String,
    deregister_on_shutdown: bool,
    node_name: String,
    work_dir: PathBuf,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    registry: ProcessRegistry,
    guard: OrphanGuard,
}

impl NodeAgentHandle {
    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The CIDR pod IPs come from (as chosen at start).
    pub fn pod_ip_range(&self) -> &str {
        &self.pod_ip_range
    }

    /// Whether pod IPs can appear in EndpointSlices (they are not loopback addresses).
    pub fn pod_ips_routable(&self) -> bool {
        !self.pod_ip_range.starts_with("127.")
    }

    /// The agent's work dir.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// A pod's directory: `<work-dir>/<namespace>_<name>`.
    pub fn pod_dir(&self, namespace: &str, name: &str) -> PathBuf {
        sandbox::pod_dir(&self.work_dir, namespace, name)
    }

    /// A container's log file: `<work-dir>/<namespace>_<pod>/<container>.log`.
    pub fn log_path(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        sandbox::log_path(&self.pod_dir(namespace, pod), container)
    }

    /// How many container processes (process groups) are running.
    pub fn running_processes(&self) -> usize {
        self.registry.len()
    }

    /// Waits until the Node is Ready and has no NoSchedule/NoExecute taints (the control
    /// plane removes the `not-ready` taint it adds at registration), i.e. the scheduler can
    /// place pods on it.
    pub async fn wait_schedulable(&self, timeout: Duration) -> Result<(), NodeAgentError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let node = nodes.get_opt(&self.node_name).await.map_err(|e| NodeAgentError::kube("get the node", e))?;
            if node.as_ref().is_some_and(schedulable) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let taints = node.and_then(|n| n.spec).and_then(|s| s.taints).unwrap_or_default();
                let taints: Vec<String> = taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
                return Err(NodeAgentError::Timeout {
                    what: format!("node {} to become schedulable (taints: {taints:?})", self.node_name),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the agent: every container gets SIGTERM, then SIGKILL after the shutdown grace;
    /// returns when all processes are gone (and the Node is deleted, if so configured).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.registry.kill_all();
        self.guard.stop();
        if self.deregister_on_shutdown {
            let nodes: Api<Node> = Api::all(self.client.clone());
            match nodes.delete(&self.node_name, &DeleteParams::default()).await {
                Ok(_) => info!(node = %self.node_name, "node deregistered"),
                Err(error) => warn!(node = %self.node_name, %error, "cannot delete the node"),
            }
        }
        info!(node = %self.node_name, "node agent stopped");
    }
}

impl std::fmt::Debug for NodeAgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgentHandle")
            .field("node_name", &self.node_name)
            .field("work_dir", &self.work_dir)
            .field("running_processes", &self.registry.len())
            .finish_non_exhaustive()
    }
}

fn schedulable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute"));
    ready && !tainted && !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

impl Drop for NodeAgentHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.registry.kill_all();
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct Worker {
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Watches the pods bound to this node (`spec.nodeName`) and feeds one worker per pod UID.
async fn watch_pods(agent: Arc<AgentContext>) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.config.node_name);
    let mut events = watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff().boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            () = agent.shutdown.cancelled() => break,
            event = events.next() => event,
        };
        workers.retain(|_, worker| !worker.task.is_finished());
        match event {
            None => break,
            Some(Err(error)) => warn!(%error, "pod watch failed; retrying"),
            Some(Ok(Event::Init)) => listed.clear(),
            Some(Ok(Event::InitApply(pod))) => {
                listed.insert(pod.uid().unwrap_or_default());
                on_pod(&agent, &mut workers, pod);
            }
            Some(Ok(Event::Apply(pod))) => on_pod(&agent, &mut workers, pod),
            Some(Ok(Event::Delete(pod))) => {
                if let Some(worker) = workers.get(&pod.uid().unwrap_or_default()) {
                    worker.pod.send_replace(None);
                }
            }
            Some(Ok(Event::InitDone)) => {
                for (uid, worker) in &workers {
                    if !listed.contains(uid) {
                        worker.pod.send_replace(None);
                    }
                }
            }
        }
    }
    // Workers see the shutdown token and stop their containers.
    for (_, worker) in workers.drain() {
        let _ = worker.task.await;
    }
}

fn on_pod(agent: &Arc<AgentContext>, workers: &mut HashMap<String, Worker>, pod: Pod) {
    let uid = pod.uid().unwrap_or_default();
    if let Some(worker) = workers.get(&uid) {
        worker.pod.send_replace(Some(pod));
        return;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let terminal = matches!(phase, Some("Succeeded" | "Failed"));
    if pod.metadata.deletion_timestamp.is_some() {
        // Being deleted and not running here (any more): finish the deletion, as the kubelet does.
        let agent = agent.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(agent.client.clone(), &pod.namespace().unwrap_or_default());
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
                ..Default::default()
            };
            let _ = api.delete(&pod.name_any(), &params).await;
        });
        return;
    }
    if terminal {
        return;
    }
    let (sender, receiver) = watch::channel(Some(pod));
    let task = tokio::spawn(run_pod(agent.clone(), receiver));
    workers.insert(uid, Worker { pod: sender, task });
}

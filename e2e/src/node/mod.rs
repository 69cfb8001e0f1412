//! Real Kubernetes nodes on this machine: kubelet, containerd (runc, CNI) and kube-proxy,
//! each node in network and mount namespaces of its own, joined to the control plane over a
//! bridge ([`ClusterNetwork`]). Only the GPU is not real: a node advertises
//! `nvidia.com/gpu` capacity without devices.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kube_ocr_e2e::node::{LocalCluster, NodeOptions};
//! let nodes = vec![NodeOptions::new("node-a", "zone-a").with_gpus(1)];
//! let cluster = LocalCluster::start(Default::default(), nodes).await?;
//! let client = cluster.plane().client()?;
//! # Ok(()) }
//! ```
//!
//! Stopping happens on drop (also while a test panics): each node's daemons get SIGTERM,
//! then the node's namespace holder kills what is left in its cgroups and removes them, and
//! the bridge's holder takes the network with it. Nothing is left on the host; see
//! [`namespace`] and [`network`] for why that holds even if the test process is killed.

pub mod addressing;
mod command;
pub mod config;
pub mod dns;
mod error;
mod gpus;
mod holder;
pub mod host_state;
pub mod image;
pub mod image_store;
mod namespace;
mod network;
pub mod oci_layout;
pub mod workspace_images;

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tracing::info;

pub use error::NodeError;
pub use image::{DockerfileImage, ImageArchive, ScratchImage};
pub use namespace::NodeNamespace;
pub use network::ClusterNetwork;

use crate::control_plane::{Component, ComponentSpec, ControlPlaneOptions, LocalControlPlane};
use config::{CONTAINERD_SOCKET, NodeConfigInputs, SANDBOX_IMAGE};

/// The label of a node's zone, as cloud providers set it.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The extended resource a node advertises for each (pretend) GPU.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Where kubelet, kube-proxy, containerd, its shim, ctr, the CNI plugins and the pause
/// program are (`make setup` builds them beside the control plane's).
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    pub kubelet: PathBuf,
    pub kube_proxy: PathBuf,
    pub containerd: PathBuf,
    pub ctr: PathBuf,
    pub pause: PathBuf,
    pub coredns: PathBuf,
    /// Holds bridge, host-local, loopback and portmap.
    pub cni_dir: PathBuf,
    /// Holds containerd-shim-runc-v2, which containerd finds on PATH.
    pub dir: PathBuf,
}

/// The Debian packages whose programs the nodes run on the host (`make setup` installs them).
const HOST_PROGRAMS: &[(&str, &str)] = &[
    ("runc", "runc"),
    ("buildah", "buildah"),
    ("iptables", "iptables"),
    ("conntrack", "conntrack"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("ip", "iproute2"),
];

impl NodeBinaries {
    /// The binaries in `dir`, failing with a hint to `make setup` when any is missing.
    pub fn locate(dir: &Path) -> Result<NodeBinaries, NodeError> {
        let binaries = NodeBinaries {
            kubelet: dir.join("kubelet"),
            kube_proxy: dir.join("kube-proxy"),
            containerd: dir.join("containerd"),
            ctr: dir.join("ctr"),
            pause: dir.join("pause"),
            coredns: dir.join("coredns"),
            cni_dir: dir.join("cni"),
            dir: dir.to_owned(),
        };
        let required = [
            "kubelet",
            "kube-proxy",
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "pause",
            "coredns",
            "cni/bridge",
            "cni/host-local",
            "cni/loopback",
            "cni/portmap",
        ];
        let missing: Vec<String> =
            required.iter().filter(|name| !dir.join(name).is_file()).map(|name| (*name).to_owned()).collect();
        if !missing.is_empty() {
            return Err(NodeError::LocateBinaries { dir: dir.to_owned(), missing });
        }
        for (program, package) in HOST_PROGRAMS {
            if find_on_path(program).is_none() {
                return Err(NodeError::MissingHostProgram { program, package });
            }
        }
        Ok(binaries)
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// One node to start.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub name: String,
    /// The node's `topology.kubernetes.io/zone`.
    pub zone: String,
    /// How many `nvidia.com/gpu` the node advertises (no devices behind them).
    pub gpus: u32,
    /// How long the node may take to become Ready.
    pub ready_timeout: Duration,
    /// The kubelet's node lease (Kubernetes' default 40 s); shorten it together with the
    /// control plane's `node_monitor_grace_period`.
    pub lease_duration: Duration,
    /// Where the node claims its containerd root (see [`image_store`]): by default in the
    /// cache, so images outlive the cluster.
    pub image_stores: PathBuf,
}

impl NodeOptions {
    pub fn new(name: impl Into<String>, zone: impl Into<String>) -> NodeOptions {
        NodeOptions {
            name: name.into(),
            zone: zone.into(),
            gpus: 0,
            ready_timeout: Duration::from_secs(90),
            lease_duration: Duration::from_secs(40),
            image_stores: image_store::image_store_root(&crate::toolchain::cache_root()),
        }
    }

    pub fn with_gpus(mut self, gpus: u32) -> NodeOptions {
        self.gpus = gpus;
        self
    }
}

/// A running node; dropping it stops the node and removes its cgroups and namespaces.
#[derive(Debug)]
pub struct LocalNode {
    name: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    ctr: PathBuf,
    /// containerd, kubelet, kube-proxy, in start order.
    daemons: Vec<Component>,
    namespace: NodeNamespace,
    /// Advertises the node's GPUs again when the Node loses them; aborted on stop.
    gpu_keeper: Option<tokio::task::JoinHandle<()>>,
}

impl LocalNode {
    /// Starts node number `index` of `network` and waits until it is Ready.
    pub async fn start(
        plane: &LocalControlPlane,
        network: &ClusterNetwork,
        index: u8,
        options: &NodeOptions,
    ) -> Result<LocalNode, NodeError> {
        let started = Instant::now();
        let binaries = NodeBinaries::locate(&plane.binaries().dir)?;
        let addressing = network.addressing();
        let (Some(ip), Some(pod_network)) = (addressing.node_ip(index), addressing.node_pod_network(index)) else {
            return Err(NodeError::command("start a node", format!("node index {index} is past the limit")));
        };
        let dir = plane.dir().join("nodes").join(&options.name);
        // A fixed cluster directory (`make cluster`, the demo) holds the last run's node: its
        // ready file and FIFO must not be taken for this run's.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| NodeError::dir("remove the last run's", &dir, e))?;
        }
        for sub in ["logs", "run", "cni"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| NodeError::dir("create", &dir.join(sub), e))?;
        }
        let cgroup_root = cgroup_root(addressing.slot(), &options.name);
        let grace = Duration::from_secs(15);
        let namespace = NodeNamespace::start(&dir, &options.image_stores, &cgroup_root, grace)?;
        let mut node = LocalNode {
            name: options.name.clone(),
            ip,
            dir: dir.clone(),
            ctr: binaries.ctr.clone(),
            daemons: Vec::new(),
            namespace,
            gpu_keeper: None,
        };
        network.attach_node(index, node.namespace.pid())?;

        let control_plane = |what: &str| {
            let what = what.to_owned();
            move |source| NodeError::ControlPlane { what, source: Box::new(source) }
        };
        let kubelet_kubeconfig = plane
            .write_kubeconfig_for_user(&format!("system:node:{}", options.name), &["system:nodes"])
            .map_err(control_plane("the kubelet's kubeconfig"))?;
        // Bound to the system:node-proxier ClusterRole by Kubernetes' default policy.
        let proxy_kubeconfig = plane
            .write_kubeconfig_for_user("system:kube-proxy", &[])
            .map_err(control_plane("kube-proxy's kubeconfig"))?;
        let resolv_conf = dir.join("resolv.conf");
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        write(&resolv_conf, &host_resolv)?;
        let ca_file = plane.ca_cert_path();
        let runc = find_on_path("runc").expect("checked by NodeBinaries::locate");
        let inputs = NodeConfigInputs {
            name: &options.name,
            ip,
            pod_network,
            cluster_pod_network: addressing.pod_network(),
            cni_bin_dir: &binaries.cni_dir,
            cni_conf_dir: &dir.join("cni"),
            runc: &runc,
            ca_file: &ca_file,
            cgroup_root: &cgroup_root,
            resolv_conf: &resolv_conf,
            kube_proxy_kubeconfig: &proxy_kubeconfig,
            cluster_dns: Some(dns::CLUSTER_DNS_IP),
            node_lease_seconds: u32::try_from(options.lease_duration.as_secs()).unwrap_or(40).max(1),
        };
        write(&dir.join("containerd.toml"), &config::containerd_config(&inputs))?;
        write(&dir.join("cni/10-kube-ocr.conflist"), &config::cni_config(&inputs))?;
        write(&dir.join("kubelet.json"), &config::kubelet_config(&inputs))?;
        write(&dir.join("kube-proxy.json"), &config::kube_proxy_config(&inputs))?;

        let path = format!("{}:{}", binaries.dir.display(), std::env::var("PATH").unwrap_or_default());
        node.spawn_daemon("containerd", Path::new("env"), {
            let mut args: Vec<OsString> = vec![format!("PATH={path}").into(), binaries.containerd.clone().into()];
            args.extend(["--config".into(), dir.join("containerd.toml").into()]);
            args
        })?;
        node.wait_for_containerd().await?;
        node.import_image(&ScratchImage {
            reference: SANDBOX_IMAGE.to_owned(),
            files: vec![(binaries.pause.clone(), "/pause".to_owned())],
            entrypoint: vec!["/pause".to_owned()],
        })?;

        let labels = format!("{ZONE_LABEL}={}", options.zone);
        node.spawn_daemon(
            "kubelet",
            &binaries.kubelet,
            vec![
                os("--config", &dir.join("kubelet.json")),
                os("--kubeconfig", &kubelet_kubeconfig),
                format!("--hostname-override={}", options.name).into(),
                format!("--node-ip={ip}").into(),
                format!("--node-labels={labels}").into(),
            ],
        )?;
        node.spawn_daemon("kube-proxy", &binaries.kube_proxy, vec![os("--config", &dir.join("kube-proxy.json"))])?;

        let client = plane.client().map_err(control_plane("an admin client"))?;
        node.wait_ready(&client, options.ready_timeout).await?;
        if options.gpus > 0 {
            node.advertise_gpus(&client, options.gpus).await?;
            node.gpu_keeper = Some(gpus::keep_advertised(client.clone(), options.name.clone(), options.gpus));
        }
        info!(node = %node.name, %ip, image_store = %node.image_store().display(), elapsed_ms = started.elapsed().as_millis() as u64, "node ready");
        Ok(node)
    }

    fn spawn_daemon(&mut self, name: &'static str, program: &Path, args: Vec<OsString>) -> Result<(), NodeError> {
        let component = Component::spawn(ComponentSpec {
            name,
            program: Path::new("nsenter"),
            args: self.namespace.daemon_args(program, args),
            log: self.dir.join("logs").join(format!("{name}.log")),
            run_dir: &self.dir.join("run"),
            order: self.daemons.len() + 1,
            grace: Duration::from_secs(15),
            orphan_dir: None,
        })
        .map_err(|source| NodeError::StartProcess { process: name, source: Box::new(source) })?;
        self.daemons.push(component);
        Ok(())
    }

    /// Fails with the log tail of the first node process that has exited.
    pub fn check_running(&mut self) -> Result<(), NodeError> {
        self.namespace.check_running()?;
        for daemon in &mut self.daemons {
            if let Some(status) = daemon.exit_status() {
                return Err(NodeError::Exited {
                    process: daemon.name(),
                    status,
                    log: daemon.log().to_owned(),
                    tail: daemon.log_tail(30),
                });
            }
        }
        Ok(())
    }

    fn not_ready(&self, process: &'static str, waited: Duration, last_error: String) -> NodeError {
        let daemon = self.daemons.iter().find(|daemon| daemon.name() == process);
        NodeError::NotReady {
            process,
            waited,
            last_error,
            log: daemon.map(|d| d.log().to_owned()).unwrap_or_default(),
            tail: daemon.map(|d| d.log_tail(30)).unwrap_or_default(),
        }
    }

    async fn wait_for_containerd(&mut self) -> Result<(), NodeError> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            let version = self.ctr_command().arg("version").output();
            match version {
                Ok(output) if output.status.success() => return Ok(()),
                Ok(output) if started.elapsed() > Duration::from_secs(30) => {
                    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                    return Err(self.not_ready("containerd", started.elapsed(), stderr));
                }
                Err(e) => return Err(NodeError::command("nsenter ctr version", e.to_string())),
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn wait_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<(), NodeError> {
        let nodes = Api::<Node>::all(client.clone());
        let started = Instant::now();
        loop {
            self.check_running()?;
            let last_error = match nodes.get_opt(&self.name).await {
                Ok(Some(node)) if is_ready(&node) => return Ok(()),
                Ok(Some(_)) => "registered, not Ready".to_owned(),
                Ok(None) => "not registered".to_owned(),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > timeout {
                return Err(self.not_ready("kubelet", started.elapsed(), last_error));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Patches `nvidia.com/gpu` into the node's capacity and allocatable, as a device
    /// plugin would have the kubelet report it; the scheduler and the kubelet's admission
    /// then count it.
    pub async fn advertise_gpus(&self, client: &kube::Client, gpus: u32) -> Result<(), NodeError> {
        gpus::advertise(client, &self.name, gpus).await
    }

    /// A command that runs inside the node's network and mount namespaces (as a program on
    /// the node itself would), e.g. to reach a Service through the node's kube-proxy rules.
    pub fn command(&self, program: impl Into<PathBuf>) -> std::process::Command {
        self.namespace.command(program)
    }

    /// A `ctr` command against this node's containerd, in the CRI's namespace.
    pub fn ctr_command(&self) -> std::process::Command {
        let mut command = self.namespace.command(&self.ctr);
        command.args(["--address", CONTAINERD_SOCKET, "--namespace", "k8s.io"]);
        command
    }

    /// Builds `image` and imports it into this node's containerd.
    pub fn import_image(&self, image: &ScratchImage) -> Result<(), NodeError> {
        self.import_archive(&image.build(&self.dir.join("images"))?)
    }

    /// Imports a built image into this node's containerd, unless the node already holds
    /// that reference at that digest (its image store outlives clusters). The layer blobs
    /// stay in the content store beside their unpacked snapshots, and the import carries
    /// only the layers the store lacks: a rebuilt image whose libtorch layer did not change
    /// sends the node its new binaries, not 4 GB.
    pub fn import_archive(&self, archive: &ImageArchive) -> Result<(), NodeError> {
        if self.image_digest(&archive.reference)?.as_deref() == Some(archive.digest.as_str()) {
            info!(node = %self.name, image = %archive.reference, digest = %archive.digest, "image already on the node");
            return Ok(());
        }
        let started = Instant::now();
        let listing = command::run(self.ctr_command().args(["content", "list", "--quiet"]))?;
        let present: HashSet<String> = listing.lines().map(|line| line.trim().to_owned()).collect();
        let imports = self.dir.join("images");
        std::fs::create_dir_all(&imports).map_err(|e| NodeError::dir("create", &imports, e))?;
        let layout = oci_layout::thin_layout_path(&imports, &archive.reference);
        let sent = oci_layout::write_thin_layout(&archive.path, &archive.image, &archive.reference, &present, &layout)?;
        let imported = command::run(self.ctr_command().args(["images", "import", "--all-platforms"]).arg(&layout));
        let _ = std::fs::remove_file(&layout);
        imported?;
        match self.image_digest(&archive.reference)? {
            Some(digest) if digest == archive.digest => {}
            other => {
                return Err(NodeError::command(
                    format!("ctr images import {}", archive.path.display()),
                    format!(
                        "the node holds {} at {other:?} after the import, not {}",
                        archive.reference, archive.digest
                    ),
                ));
            }
        }
        let listing = command::run(self.ctr_command().args(["images", "list"]))?;
        let stale = image::stale_references(&listing);
        if !stale.is_empty() {
            // Best effort: what stays is disk, not a wrong image.
            let removed = command::run(self.ctr_command().args(["images", "remove"]).args(&stale));
            if let Err(error) = removed {
                tracing::warn!(node = %self.name, %error, "could not remove the replaced images");
            }
        }
        info!(
            node = %self.name,
            image = %archive.reference,
            replaced = stale.len(),
            layers_sent = sent.layers_sent,
            layers_already_there = sent.layers_left_out,
            bytes_not_sent = sent.bytes_left_out,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "image imported"
        );
        Ok(())
    }

    /// The digest this node's containerd holds `reference` at, if it holds it.
    pub fn image_digest(&self, reference: &str) -> Result<Option<String>, NodeError> {
        let listing = command::run(self.ctr_command().args(["images", "list"]).arg(format!("name=={reference}")))?;
        Ok(image::listed_image_digest(&listing, reference))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The containerd root on disk this node claimed (an image store in the cache).
    pub fn image_store(&self) -> &Path {
        self.namespace.image_store()
    }

    /// The node's files: configs, `logs/` (containerd, kubelet, kube-proxy, holder).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops only the kubelet, as when it crashes or its machine is cut off: containers keep
    /// running, the node stops renewing its lease and turns NotReady.
    pub fn stop_kubelet(&mut self) {
        if let Some(kubelet) = self.daemons.iter_mut().find(|daemon| daemon.name() == "kubelet") {
            kubelet.stop();
        }
    }

    /// Stops the daemons (newest first), then the holder, which clears the node's cgroups.
    pub fn stop(&mut self) {
        if let Some(keeper) = self.gpu_keeper.take() {
            keeper.abort();
        }
        while let Some(mut daemon) = self.daemons.pop() {
            daemon.stop();
        }
        self.namespace.stop();
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node's cgroup root, the same relative path in every hierarchy: below the cgroup this
/// process runs in (in the memory hierarchy, where limits are), so the node's pods are
/// accounted where the test itself is.
fn cgroup_root(slot: u8, name: &str) -> String {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    format!("{}/kube-ocr/s{slot}-{name}", memory_cgroup(&own))
}

/// The memory controller's path in `/proc/<pid>/cgroup` (cgroup v1: `id:controllers:path`),
/// without a trailing slash ("" for the root).
fn memory_cgroup(proc_cgroup: &str) -> &str {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers.split(',').any(|c| c == "memory").then_some(path)
        })
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn os(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(format!("{flag}="));
    arg.push(path);
    arg
}

fn write(path: &Path, contents: &str) -> Result<(), NodeError> {
    std::fs::write(path, contents).map_err(|e| NodeError::dir("write", path, e))
}

/// A control plane and real nodes on their own network: what `make cluster`, the demo and
/// the e2e tests run. Fields drop in order: nodes, then the control plane, then the network.
#[derive(Debug)]
pub struct LocalCluster {
    nodes: Vec<LocalNode>,
    plane: LocalControlPlane,
    network: ClusterNetwork,
    _network_dir: tempfile::TempDir,
}

impl LocalCluster {
    /// Claims a network slot, starts the control plane listening on it, then each node.
    pub async fn start(control_plane: ControlPlaneOptions, nodes: Vec<NodeOptions>) -> Result<LocalCluster, NodeError> {
        let network_dir = tempfile::Builder::new()
            .prefix("kube-ocr-network-")
            .tempdir()
            .map_err(|e| NodeError::dir("create", &std::env::temp_dir(), e))?;
        let network = ClusterNetwork::create(network_dir.path(), control_plane.stop_grace)?;
        let options = ControlPlaneOptions { listen_address: network.host_ip(), ..control_plane };
        let plane = LocalControlPlane::start(options).await.map_err(|source| NodeError::ControlPlane {
            what: "start the control plane".to_owned(),
            source: Box::new(source),
        })?;
        let mut cluster = LocalCluster { nodes: Vec::new(), plane, network, _network_dir: network_dir };
        // The nodes start side by side: most of a start is waiting (containerd's socket, the
        // kubelet's registration, Ready). One that fails drops the others, which stops them.
        let starts = nodes.iter().enumerate().map(|(index, node)| {
            let index = u8::try_from(index).unwrap_or(u8::MAX);
            LocalNode::start(&cluster.plane, &cluster.network, index, node)
        });
        cluster.nodes = futures::future::try_join_all(starts).await?;
        if !cluster.nodes.is_empty() {
            cluster.install_dns().await?;
        }
        Ok(cluster)
    }

    /// CoreDNS on every node's image list, then as a Deployment (a replica on each of up to
    /// two nodes) behind `kube-dns`.
    async fn install_dns(&self) -> Result<(), NodeError> {
        let started = Instant::now();
        let binaries = NodeBinaries::locate(&self.plane.binaries().dir)?;
        let archive = ScratchImage {
            reference: dns::COREDNS_IMAGE.to_owned(),
            files: vec![(binaries.coredns.clone(), "/coredns".to_owned())],
            entrypoint: vec!["/coredns".to_owned()],
        }
        .build(&self.plane.dir().join("images"))?;
        for node in &self.nodes {
            node.import_archive(&archive)?;
        }
        let client = self.plane.client().map_err(|source| NodeError::ControlPlane {
            what: "an admin client".to_owned(),
            source: Box::new(source),
        })?;
        let replicas = i32::try_from(self.nodes.len().min(2)).unwrap_or(2);
        dns::install(&client, replicas, Duration::from_secs(60)).await?;
        info!(replicas, elapsed_ms = started.elapsed().as_millis() as u64, "cluster DNS ready");
        Ok(())
    }

    pub fn plane(&self) -> &LocalControlPlane {
        &self.plane
    }

    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [LocalNode] {
        &mut self.nodes
    }

    pub fn network(&self) -> &ClusterNetwork {
        &self.network
    }

    /// Fails with the log tail of the first control-plane component or node process that
    /// has exited.
    pub fn check_running(&mut self) -> Result<(), NodeError> {
        self.plane.check_running().map_err(|source| NodeError::ControlPlane {
            what: "the control plane".to_owned(),
            source: Box::new(source),
        })?;
        self.nodes.iter_mut().try_for_each(LocalNode::check_running)
    }

    /// Stops the nodes, then the control plane (whose report this returns), then the network.
    pub fn stop(self) -> crate::control_plane::StopReport {
        let LocalCluster { nodes, plane, network, _network_dir } = self;
        drop(nodes);
        let report = plane.stop();
        drop(network);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_cgroup_root_sits_below_the_memory_cgroup_of_this_process() {
        let nested = "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n";
        assert_eq!(memory_cgroup(nested), "/process_api/abc");
        assert_eq!(memory_cgroup("7:cpuacct,memory:/\n"), "");
        assert_eq!(memory_cgroup("0::/user.slice\n"), "");
    }
}

//! The network a cluster's real nodes share with the host.
//!
//! A bridge lives in a network namespace of its own, held by one process; the host joins it
//! through one veth pair (`kocr<slot>` on the host, with the address the control plane
//! listens on), and every node through another (its `eth0`). The host routes each node's
//! pod range to that node over its `kocr<slot>` link, so tests reach pods as clients in the
//! cluster would.
//!
//! Everything this changes on the host hangs off that one link: when the bridge's holder
//! exits (a clean stop, or the watchdog after the test process died) its namespace goes,
//! the veth pair with it, and the link's address and routes with the link. No iptables rule
//! or sysctl of the host is touched.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::NodeError;
use super::addressing::{ClusterAddressing, MAX_SLOTS};
use super::command::run;
use crate::control_plane::{Component, ComponentSpec};

/// Sets up the bridge inside the holder's fresh network namespace, then waits for a signal
/// without a child process. `$1` is the ready file.
const BRIDGE_HOLDER: &str = r#"
set -euo pipefail
ip link set lo up
ip link add br0 type bridge
ip link set br0 up
trap 'exit 0' TERM INT HUP
touch "$1"
fifo=$1.fifo
mkfifo "$fifo"
exec 3<>"$fifo"
while :; do read -r -u 3 _ || :; done
"#;

/// The running bridge of one cluster, and the slot it took.
#[derive(Debug)]
pub struct ClusterNetwork {
    addressing: ClusterAddressing,
    holder: Component,
    stopped: bool,
}

impl ClusterNetwork {
    /// Starts the bridge's namespace in `dir` and links the host to it, in the first free
    /// slot (another cluster may hold the others).
    pub fn create(dir: &Path, grace: Duration) -> Result<ClusterNetwork, NodeError> {
        std::fs::create_dir_all(dir.join("run")).map_err(|e| NodeError::dir("create", dir, e))?;
        let ready = dir.join("bridge.ready");
        let mut holder = Component::spawn(ComponentSpec {
            name: "bridge",
            program: Path::new("unshare"),
            args: ["--net", "--", "bash", "-c", BRIDGE_HOLDER, "bridge"]
                .into_iter()
                .map(Into::into)
                .chain([ready.clone().into_os_string()])
                .collect(),
            log: dir.join("bridge.log"),
            run_dir: &dir.join("run"),
            order: 0,
            grace,
            // If the test process dies, the watchdog removes the directory after the holder.
            orphan_dir: Some(dir),
        })
        .map_err(|source| NodeError::StartProcess {
            process: "the bridge's namespace holder",
            source: Box::new(source),
        })?;
        super::holder::wait_for_ready_file(&mut holder, "bridge", &ready, Duration::from_secs(10))?;
        let holder_pid = holder.pid().to_string();

        // The first slot whose host link does not exist yet; creating it claims the slot.
        let mut last_error = String::new();
        for slot in 0..MAX_SLOTS {
            let addressing = ClusterAddressing::new(slot).expect("slot below MAX_SLOTS");
            let link = addressing.host_link();
            let created = Command::new("ip")
                .args(["link", "add", &link, "type", "veth", "peer", "name", "uplink", "netns", &holder_pid])
                .output()
                .map_err(|e| NodeError::command("ip link add", e.to_string()))?;
            if !created.status.success() {
                last_error = String::from_utf8_lossy(&created.stderr).trim().to_owned();
                if last_error.contains("File exists") {
                    continue;
                }
                return Err(NodeError::command(format!("ip link add {link}"), last_error));
            }
            let network = ClusterNetwork { addressing, holder, stopped: false };
            let host_address = format!("{}/{}", addressing.host_ip(), addressing.node_network().prefix);
            run(Command::new("ip").args(["addr", "add", &host_address, "dev", &link]))?;
            run(Command::new("ip").args(["link", "set", &link, "up"]))?;
            run(network.in_bridge_namespace("ip").args(["link", "set", "uplink", "master", "br0", "up"]))?;
            return Ok(network);
        }
        Err(NodeError::command("claim a network slot", format!("all {MAX_SLOTS} are taken ({last_error})")))
    }

    pub fn addressing(&self) -> ClusterAddressing {
        self.addressing
    }

    /// The host's address on the node network: where the control plane must listen.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.addressing.host_ip()
    }

    /// Links node `index`, whose namespaces `node_pid` holds, to the bridge: its `eth0` gets
    /// the node's address, a default route to the host and a route to every other node's
    /// pods; the host routes the node's pods to it.
    pub(crate) fn attach_node(&self, index: u8, node_pid: i32) -> Result<(), NodeError> {
        let a = self.addressing;
        let (Some(ip), Some(pods)) = (a.node_ip(index), a.node_pod_network(index)) else {
            return Err(NodeError::command("attach a node", format!("node index {index} is past the limit")));
        };
        let link = a.node_link(index);
        let node = node_pid.to_string();
        let in_node = || {
            let mut command = Command::new("nsenter");
            command.args([format!("--target={node}"), "--net".into(), "--".into(), "ip".into()]);
            command
        };
        run(Command::new("ip").args(["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &node]))?;
        run(Command::new("ip").args(["link", "set", &link, "netns", &self.holder.pid().to_string()]))?;
        run(self.in_bridge_namespace("ip").args(["link", "set", &link, "master", "br0", "up"]))?;
        let address = format!("{ip}/{}", a.node_network().prefix);
        run(in_node().args(["addr", "add", &address, "dev", "eth0"]))?;
        run(in_node().args(["link", "set", "eth0", "up"]))?;
        run(in_node().args(["route", "add", "default", "via", &a.host_ip().to_string()]))?;
        for other in (0..super::addressing::MAX_NODES).filter(|other| *other != index) {
            let (Some(other_ip), Some(other_pods)) = (a.node_ip(other), a.node_pod_network(other)) else { continue };
            run(in_node().args(["route", "add", &other_pods.to_string(), "via", &other_ip.to_string()]))?;
        }
        run(Command::new("ip").args([
            "route",
            "add",
            &pods.to_string(),
            "via",
            &ip.to_string(),
            "dev",
            &a.host_link(),
        ]))?;
        Ok(())
    }

    fn in_bridge_namespace(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--target={}", self.holder.pid())).args(["--net", "--"]).arg(program);
        command
    }

    /// Removes the host link and the bridge's namespace, and with them every link and route
    /// above. The link goes first and explicitly: the kernel dismantles a namespace in the
    /// background, and the host should be clean when this returns (and the slot free only
    /// once it is). Idempotent.
    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let link = self.addressing.host_link();
            if let Ok(output) = Command::new("ip").args(["link", "del", &link]).output() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                if !output.status.success() && !stderr.contains("Cannot find device") {
                    tracing::warn!(%link, error = %stderr.trim(), "could not delete the host link");
                }
            }
        }
        self.holder.stop();
    }
}

impl Drop for ClusterNetwork {
    fn drop(&mut self) {
        self.stop();
    }
}

//! A node's namespaces and cgroups, held by one long-lived process.
//!
//! The holder runs in a network and mount namespace of its own (`unshare`); every node
//! process (containerd, kubelet, kube-proxy, `ctr`) enters both with `nsenter`, so the
//! node has its own address, routes and iptables, and its own view of the paths the kubelet
//! and containerd write to (tmpfs over /run, /var/lib and /var/log). Why each mount:
//! - /sys: a sysfs of the node's network namespace (the host's lists the host's links).
//!   Mounting it hides the cgroup hierarchies beneath, so they are moved back on top.
//! - /proc/sys files: see [`super::config::KUBELET_KERNEL_TUNABLES`].
//! - /var/lib/containerd: a directory on disk that outlives the cluster (an image store,
//!   see [`super::image_store`]), so image layers do not fill memory and are imported once.
//!   The holder claims it, and holds the claim until it exits.
//!
//! The holder also owns the node's cgroup tree (the kubelet's `cgroupRoot`, and `system`
//! below it for the node's daemons). On SIGTERM, which its watchdog sends once the daemons
//! have been stopped (or when the test process died), it kills whatever is left in that
//! tree (runc shims, containers) and removes it, then exits; the namespaces go with their
//! last process. That is what leaves nothing behind even after a crash.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::NodeError;
use super::config::KUBELET_KERNEL_TUNABLES;
use crate::control_plane::{Component, ComponentSpec};

/// `$0` is "holder"; `$1` the node's state directory, `$2` the image stores' root, `$3`
/// the cgroup root (relative to each hierarchy's mount point), the rest `key=value`
/// kernel tunables. Claims an image store (its path to `$1/image-store`), and writes
/// `$1/ready` when set up. Runs after [`super::image_store::claim_function`].
const HOLDER: &str = r#"
set -euo pipefail
state=$1 image_stores=$2 cgroup_root=$3
shift 3

# The node's own sysfs, with the cgroup hierarchies moved back on top of it.
keep=$state/cgroup-mounts
mkdir -p "$keep"
mount --rbind /sys/fs/cgroup "$keep"
mount -t sysfs sysfs /sys
mount --move "$keep" /sys/fs/cgroup
rmdir "$keep"

for dir in /run /var/lib /var/log; do mount -t tmpfs -o mode=755 tmpfs "$dir"; done
# Held on fd 9 until this shell exits, after everything else of the node.
claim_image_store "$image_stores"
echo "$image_store" >"$state/image-store"
mkdir -p /var/lib/containerd
mount --bind "$image_store" /var/lib/containerd

for tunable in "$@"; do
  file=$state/sysctl/${tunable%%=*}
  mkdir -p "${file%/*}"
  echo "${tunable#*=}" >"$file"
  mount --bind "$file" "/proc/sys/${tunable%%=*}"
done
# Namespaced: the node routes for its pods, and bridged pod traffic passes iptables
# (a Service's reply from a pod on the same bridge must be un-NATed).
echo 1 >/proc/sys/net/ipv4/ip_forward
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
ip link set lo up

hierarchies() {
  local dir
  for dir in /sys/fs/cgroup/*/; do [[ -e $dir/cgroup.procs ]] && echo "${dir%/}"; done
}
# A new cpuset cgroup starts with no CPUs and no memory nodes: copy its parent's.
make_cgroup() { # hierarchy path
  local dir=$1 part
  for part in ${2//\// }; do
    dir=$dir/$part
    [[ -d $dir ]] && continue
    mkdir "$dir"
    if [[ -e $dir/cpuset.cpus ]]; then
      cat "${dir%/*}/cpuset.cpus" >"$dir/cpuset.cpus"
      cat "${dir%/*}/cpuset.mems" >"$dir/cpuset.mems"
    fi
  done
}
for h in $(hierarchies); do make_cgroup "$h" "$cgroup_root/system"; done

cleanup() {
  trap '' TERM INT HUP
  local round pids h
  for ((round = 0; round < 100; round++)); do
    pids=$(for h in $(hierarchies); do
      [[ -d $h/$cgroup_root ]] && find "$h/$cgroup_root" -name cgroup.procs -exec cat {} +
    done | sort -u)
    [[ -z $pids ]] && break
    kill -KILL $pids 2>/dev/null || :
    sleep 0.1
  done
  for h in $(hierarchies); do
    [[ -d $h/$cgroup_root ]] && find "$h/$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null
    # The shared kube-ocr level above the node's root, once no other node uses it.
    parent=$h/${cgroup_root%/*}
    [[ ${parent##*/} == kube-ocr ]] && rmdir "$parent" 2>/dev/null || :
  done
  exit 0
}
trap cleanup TERM INT HUP

touch "$state/ready"
# Wait without a child process (a `sleep` would outlive a SIGKILLed holder and keep the
# namespaces): a read on a FIFO we hold both ends of never returns, except for a signal.
mkfifo "$state/holder.fifo"
exec 3<>"$state/holder.fifo"
while :; do read -r -u 3 _ || :; done
"#;

/// Moves itself into the node's `system` cgroup in every hierarchy, then runs the command.
const JOIN_SYSTEM_CGROUP: &str = r#"
cgroup_root=$1
shift
for dir in /sys/fs/cgroup/*/; do
  [[ -e $dir$cgroup_root/system/cgroup.procs ]] && echo $$ >"$dir$cgroup_root/system/cgroup.procs"
done
exec "$@"
"#;

/// The running holder of one node's namespaces.
#[derive(Debug)]
pub struct NodeNamespace {
    holder: Component,
    cgroup_root: String,
    image_store: PathBuf,
}

impl NodeNamespace {
    /// Starts the holder and waits until its mounts and cgroups are in place; the holder
    /// claims one of the image stores under `image_stores`.
    pub(crate) fn start(
        state_dir: &Path,
        image_stores: &Path,
        cgroup_root: &str,
        grace: Duration,
    ) -> Result<NodeNamespace, NodeError> {
        let script = format!("{}\n{HOLDER}", super::image_store::claim_function());
        let mut args: Vec<OsString> = ["--net", "--mount", "--propagation", "private", "--", "bash", "-c"]
            .into_iter()
            .map(OsString::from)
            .collect();
        args.extend([OsString::from(script), "holder".into()]);
        args.push(state_dir.into());
        args.push(image_stores.into());
        args.push(cgroup_root.trim_start_matches('/').into());
        args.extend(KUBELET_KERNEL_TUNABLES.iter().map(|(key, value)| OsString::from(format!("{key}={value}"))));
        let mut holder = Component::spawn(ComponentSpec {
            name: "holder",
            program: Path::new("unshare"),
            args,
            log: state_dir.join("logs/holder.log"),
            run_dir: &state_dir.join("run"),
            order: 0,
            grace,
            orphan_dir: None,
        })
        .map_err(|source| NodeError::StartProcess { process: "the namespace holder", source: Box::new(source) })?;

        super::holder::wait_for_ready_file(&mut holder, "holder", &state_dir.join("ready"), Duration::from_secs(20))?;
        let store_file = state_dir.join("image-store");
        let image_store = std::fs::read_to_string(&store_file).map_err(|e| NodeError::dir("read", &store_file, e))?;
        Ok(NodeNamespace {
            holder,
            cgroup_root: cgroup_root.trim_start_matches('/').to_owned(),
            image_store: PathBuf::from(image_store.trim_end()),
        })
    }

    /// The image store the holder claimed: containerd's root.
    pub fn image_store(&self) -> &Path {
        &self.image_store
    }

    /// The holder's pid: `/proc/<pid>/ns/{net,mnt}` are the node's namespaces.
    pub fn pid(&self) -> i32 {
        self.holder.pid()
    }

    /// The arguments of `nsenter` that run `program args` inside the node, as a daemon of
    /// the node (in its `system` cgroup, so the holder's clean-up finds it).
    pub(crate) fn daemon_args(&self, program: &Path, args: Vec<OsString>) -> Vec<OsString> {
        let mut all = self.enter_args();
        all.extend(["bash", "-c", JOIN_SYSTEM_CGROUP, "join"].map(OsString::from));
        all.push(self.cgroup_root.clone().into());
        all.push(program.into());
        all.extend(args);
        all
    }

    /// `nsenter` arguments up to the command: both namespaces of the node.
    pub(crate) fn enter_args(&self) -> Vec<OsString> {
        vec![format!("--target={}", self.pid()).into(), "--net".into(), "--mount".into(), "--".into()]
    }

    /// A command that runs inside the node's namespaces (not as a daemon).
    pub(crate) fn command(&self, program: impl Into<PathBuf>) -> std::process::Command {
        let mut command = std::process::Command::new("nsenter");
        command.args(self.enter_args()).arg(program.into());
        command
    }

    /// Whether the holder still runs; its log tail otherwise.
    pub(crate) fn check_running(&mut self) -> Result<(), NodeError> {
        match self.holder.exit_status() {
            None => Ok(()),
            Some(status) => Err(NodeError::Exited {
                process: "holder",
                status,
                log: self.holder.log().to_owned(),
                tail: self.holder.log_tail(20),
            }),
        }
    }

    /// Stops the holder: it kills what is left in the node's cgroups and removes them.
    pub(crate) fn stop(&mut self) -> crate::control_plane::StopOutcome {
        self.holder.stop()
    }
}

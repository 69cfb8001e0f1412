//! The configuration files of a real node's containerd, CNI, kubelet and kube-proxy: pure
//! functions of the node's addresses and paths, no IO.
//!
//! What differs from a cloud node is what this machine needs (see e2e/README.md): cgroup v1
//! with the cgroupfs driver, no CAP_SYS_RESOURCE (containerd must not lower a sandbox's OOM
//! score), and nothing changed outside the node's own namespaces (kube-proxy leaves the
//! machine-wide conntrack table and `route_localnet` alone; the kubelet's kernel tunables are
//! answered by files bound over /proc/sys in the node's mount namespace, see
//! [`KUBELET_KERNEL_TUNABLES`]).

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::json;

use super::addressing::Cidr;

/// The sandbox ("pause") image containerd starts every pod with; the node imports our own
/// build of it under this name, so nothing is pulled.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10.1";

/// containerd's socket, inside the node's mount namespace.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// The kubelet's port for logs, exec and port-forward (the apiserver dials the node's IP).
pub const KUBELET_PORT: u16 = 10250;

/// The sysctls the kubelet sets at start (`setupKernelTunables`) unless they already hold
/// these values. They are machine-wide, so the node's mount namespace binds a file with the
/// value over each: the kubelet reads what it wants and writes nothing.
pub const KUBELET_KERNEL_TUNABLES: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

/// What the files are made from.
#[derive(Debug, Clone, Copy)]
pub struct NodeConfigInputs<'a> {
    pub name: &'a str,
    pub ip: Ipv4Addr,
    /// This node's pods.
    pub pod_network: Cidr,
    /// Every pod of the cluster.
    pub cluster_pod_network: Cidr,
    pub cni_bin_dir: &'a Path,
    pub cni_conf_dir: &'a Path,
    pub runc: &'a Path,
    /// The cluster CA: the kubelet trusts client certificates it signed (the apiserver's).
    pub ca_file: &'a Path,
    /// The kubelet's cgroup root in every cgroup v1 hierarchy, e.g. `/kube-ocr/s0-node-a`.
    pub cgroup_root: &'a str,
    pub resolv_conf: &'a Path,
    pub kube_proxy_kubeconfig: &'a Path,
    /// The cluster DNS Service's address, once the cluster has one.
    pub cluster_dns: Option<Ipv4Addr>,
    /// The kubelet's node lease; it renews it every quarter of that.
    pub node_lease_seconds: u32,
}

/// containerd's config (version 3): CRI with runc under cgroupfs and the node's CNI.
pub fn containerd_config(inputs: &NodeConfigInputs<'_>) -> String {
    let cri = "plugins.'io.containerd.cri.v1.runtime'";
    let images = "plugins.'io.containerd.cri.v1.images'";
    format!(
        r#"version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "{socket}"

[{cri}]
  # This machine lacks CAP_SYS_RESOURCE: runc may only raise a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true

[{cri}.cni]
  bin_dirs = [{cni_bin}]
  conf_dir = {cni_conf}

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = {runc}

[{images}]
  snapshotter = "overlayfs"

[{images}.pinned_images]
  sandbox = "{sandbox}"
"#,
        socket = CONTAINERD_SOCKET,
        cni_bin = toml_string(inputs.cni_bin_dir),
        cni_conf = toml_string(inputs.cni_conf_dir),
        runc = toml_string(inputs.runc),
        sandbox = SANDBOX_IMAGE,
    )
}

/// A TOML basic string: paths here are ours, but quote them properly all the same.
fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("a string serializes")
}

/// The pod network: a bridge in the node's namespace, the node as each pod's gateway, and
/// host ports through portmap.
pub fn cni_config(inputs: &NodeConfigInputs<'_>) -> String {
    let config = json!({
        "cniVersion": "1.0.0",
        "name": "kube-ocr",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                // Pods keep their addresses on the way out: the host routes the pod networks
                // to the nodes, so no address translation is needed.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": inputs.pod_network.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

/// The kubelet's configuration file (JSON, which the kubelet reads like YAML).
pub fn kubelet_config(inputs: &NodeConfigInputs<'_>) -> String {
    let config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        // This machine has cgroup v1 only.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": inputs.cgroup_root,
        "containerRuntimeEndpoint": format!("unix://{CONTAINERD_SOCKET}"),
        "address": inputs.ip.to_string(),
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": inputs.ca_file },
        },
        "authorization": { "mode": "Webhook" },
        "protectKernelDefaults": false,
        "failSwapOn": false,
        "resolvConf": inputs.resolv_conf,
        "clusterDomain": "cluster.local",
        "clusterDNS": inputs.cluster_dns.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
        "rotateCertificates": false,
        "serializeImagePulls": false,
        // No registry is reachable: an image collected as garbage could not come back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        // The machine's disk is shared with builds: evict for memory only.
        "evictionHard": { "memory.available": "100Mi", "nodefs.available": "0%", "imagefs.available": "0%" },
        "nodeStatusReportFrequency": "10s",
        "nodeLeaseDurationSeconds": inputs.node_lease_seconds,
    });
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

/// kube-proxy in iptables mode, inside the node's network namespace.
pub fn kube_proxy_config(inputs: &NodeConfigInputs<'_>) -> String {
    let config = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "hostnameOverride": inputs.name,
        "bindAddress": inputs.ip.to_string(),
        "clusterCIDR": inputs.cluster_pod_network.to_string(),
        "clientConnection": { "kubeconfig": inputs.kube_proxy_kubeconfig },
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        // The conntrack table size and timeouts are machine-wide: leave them as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        // Node ports on 127.0.0.1 need net.ipv4.conf.all.route_localnet.
        "iptables": { "localhostNodePorts": false },
    });
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    struct Paths {
        cni_bin: PathBuf,
        cni_conf: PathBuf,
        runc: PathBuf,
        ca: PathBuf,
        resolv: PathBuf,
        proxy_kubeconfig: PathBuf,
    }

    fn paths() -> Paths {
        Paths {
            cni_bin: PathBuf::from("/cache/k8s/bin/cni"),
            cni_conf: PathBuf::from("/cluster/nodes/node-a/cni \"conf\""),
            runc: PathBuf::from("/usr/sbin/runc"),
            ca: PathBuf::from("/cluster/pki/ca.crt"),
            resolv: PathBuf::from("/cluster/nodes/node-a/resolv.conf"),
            proxy_kubeconfig: PathBuf::from("/cluster/nodes/node-a/kube-proxy.kubeconfig"),
        }
    }

    fn inputs(paths: &Paths) -> NodeConfigInputs<'_> {
        NodeConfigInputs {
            name: "node-a",
            ip: Ipv4Addr::new(10, 87, 0, 1),
            pod_network: Cidr { address: Ipv4Addr::new(10, 88, 0, 0), prefix: 24 },
            cluster_pod_network: Cidr { address: Ipv4Addr::new(10, 88, 0, 0), prefix: 22 },
            cni_bin_dir: &paths.cni_bin,
            cni_conf_dir: &paths.cni_conf,
            runc: &paths.runc,
            ca_file: &paths.ca,
            cgroup_root: "/kube-ocr/s0-node-a",
            resolv_conf: &paths.resolv,
            kube_proxy_kubeconfig: &paths.proxy_kubeconfig,
            cluster_dns: None,
            node_lease_seconds: 40,
        }
    }

    #[test]
    fn containerd_never_lowers_oom_scores_and_starts_pods_with_the_imported_pause_image() {
        let paths = paths();
        let config = containerd_config(&inputs(&paths));
        assert!(config.contains("restrict_oom_score_adj = true"), "{config}");
        assert!(config.contains(&format!("sandbox = \"{SANDBOX_IMAGE}\"")), "{config}");
        assert!(config.contains("SystemdCgroup = false"), "{config}");
        // A quote in a path stays inside its TOML string.
        assert!(config.contains(r#"conf_dir = "/cluster/nodes/node-a/cni \"conf\"""#), "{config}");
    }

    #[test]
    fn the_kubelet_runs_on_cgroup_v1_under_the_nodes_own_root() {
        let paths = paths();
        let config: Value = serde_json::from_str(&kubelet_config(&inputs(&paths))).unwrap();
        assert_eq!(config["failCgroupV1"], false);
        assert_eq!(config["cgroupDriver"], "cgroupfs");
        assert_eq!(config["cgroupRoot"], "/kube-ocr/s0-node-a");
        assert_eq!(config["protectKernelDefaults"], false);
        assert_eq!(config["address"], "10.87.0.1");
        assert_eq!(config["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(config["clusterDNS"], json!([]));
        let with_dns = NodeConfigInputs { cluster_dns: Some(Ipv4Addr::new(10, 0, 0, 10)), ..inputs(&paths) };
        let config: Value = serde_json::from_str(&kubelet_config(&with_dns)).unwrap();
        assert_eq!(config["clusterDNS"], json!(["10.0.0.10"]));
    }

    #[test]
    fn kube_proxy_leaves_machine_wide_settings_alone() {
        let paths = paths();
        let config: Value = serde_json::from_str(&kube_proxy_config(&inputs(&paths))).unwrap();
        assert_eq!(config["conntrack"]["maxPerCore"], 0);
        assert_eq!(config["conntrack"]["tcpEstablishedTimeout"], "0s");
        assert_eq!(config["iptables"]["localhostNodePorts"], false);
        assert_eq!(config["clusterCIDR"], "10.88.0.0/22");
    }

    #[test]
    fn pods_get_addresses_from_the_nodes_own_range() {
        let paths = paths();
        let config: Value = serde_json::from_str(&cni_config(&inputs(&paths))).unwrap();
        assert_eq!(config["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/24");
    }

    #[test]
    fn every_kernel_tunable_is_a_plain_proc_sys_path() {
        for (key, value) in KUBELET_KERNEL_TUNABLES {
            assert!(!key.starts_with('/') && !key.contains(".."), "{key}");
            assert!(value.parse::<u64>().is_ok(), "{key}={value}");
        }
    }
}

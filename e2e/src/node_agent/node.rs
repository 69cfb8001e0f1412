//! The Node object, its status and its Lease, as the kubelet registers and renews them.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::config::{GPU_RESOURCE, NodeAgentConfig, NodeCapacity};

/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The version the agent reports as its kubelet version.
pub fn agent_version() -> String {
    format!("{}-kube-ocr-node-agent", crate::toolchain::KUBERNETES_VERSION)
}

/// Capacity and allocatable.
pub fn node_resources(capacity: &NodeCapacity) -> BTreeMap<String, Quantity> {
    [
        ("cpu".to_owned(), Quantity(capacity.cpu.clone())),
        ("memory".to_owned(), Quantity(capacity.memory.clone())),
        ("pods".to_owned(), Quantity(capacity.pods.to_string())),
        ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
        (GPU_RESOURCE.to_owned(), Quantity(capacity.gpus.to_string())),
    ]
    .into()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node the agent registers: labels, no taints, and a Ready status.
pub fn node_object(config: &NodeAgentConfig, now: Timestamp) -> Node {
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname".to_owned(), config.node_name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), go_arch().to_owned()),
    ]
    .into();
    labels.extend(config.labels.clone());
    Node {
        metadata: ObjectMeta { name: Some(config.node_name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(config, &[], now)),
    }
}

/// The node status: Ready (plus the pressure conditions False), addresses, capacity, info.
/// Transition times of unchanged conditions are kept from `previous`.
pub fn node_status(config: &NodeAgentConfig, previous: &[NodeCondition], now: Timestamp) -> NodeStatus {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(last_transition_time),
        }
    };
    let resources = node_resources(&config.capacity);
    NodeStatus {
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kube-ocr node agent is posting ready status"),
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: "127.0.0.1".into() },
            NodeAddress { type_: "Hostname".into(), address: config.node_name.clone() },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().to_owned(),
            operating_system: "linux".to_owned(),
            os_image: "kube-ocr local node agent (processes, no containers)".to_owned(),
            kernel_version: String::new(),
            container_runtime_version: "kube-ocr-process://0.1".to_owned(),
            kubelet_version: agent_version(),
            kube_proxy_version: String::new(),
            boot_id: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The node's Lease in `kube-node-lease`, held by the node and owned by its Node object.
pub fn node_lease(node_name: &str, node_uid: Option<&str>, lease_duration: Duration, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_owned()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_owned()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node_name.to_owned(),
                    uid: uid.to_owned(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.to_owned()),
            lease_duration_seconds: Some(lease_duration.as_secs().try_into().unwrap_or(i32::MAX)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::node_agent::ImageMap;

    fn config() -> NodeAgentConfig {
        NodeAgentConfig::new("node-a", PathBuf::from("/w"), ImageMap::default())
    }

    #[test]
    fn the_node_advertises_gpus_and_is_ready_without_taints() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let node = node_object(&config(), now);
        assert_eq!(node.metadata.name.as_deref(), Some("node-a"));
        assert_eq!(node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"], "node-a");
        assert!(node.spec.as_ref().unwrap().taints.is_none());
        let status = node.status.unwrap();
        assert_eq!(status.capacity.as_ref().unwrap()[GPU_RESOURCE], Quantity("4".into()));
        assert_eq!(status.allocatable.as_ref().unwrap()["pods"], Quantity("110".into()));
        let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.1");
    }

    #[test]
    fn heartbeats_keep_transition_times() {
        let first: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let previous = node_status(&config(), &[], first).conditions.unwrap();
        let ready = node_status(&config(), &previous, later)
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.last_transition_time, Some(Time(first)));
        assert_eq!(ready.last_heartbeat_time, Some(Time(later)));
    }

    #[test]
    fn the_lease_is_held_by_the_node() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let lease = node_lease("node-a", Some("uid-1"), Duration::from_secs(40), now);
        assert_eq!(lease.metadata.namespace.as_deref(), Some(NODE_LEASE_NAMESPACE));
        let spec = lease.spec.unwrap();
        assert_eq!((spec.holder_identity.as_deref(), spec.lease_duration_seconds), (Some("node-a"), Some(40)));
        assert_eq!(lease.metadata.owner_references.unwrap()[0].uid, "uid-1");
    }
}

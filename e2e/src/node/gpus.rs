//! A node's pretend GPUs. On a GPU node a device plugin makes the kubelet report
//! `nvidia.com/gpu`; here the count is patched into the Node's status instead, and patched
//! again whenever the Node shows up without it (deleted and registered anew by its kubelet,
//! or its status replaced), so the scheduler always sees what the node was configured with.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use tracing::{info, warn};

use super::{GPU_RESOURCE, NodeError};

/// Patches `gpus` × `nvidia.com/gpu` into the node's capacity and allocatable.
pub async fn advertise(client: &kube::Client, node: &str, gpus: u32) -> Result<(), NodeError> {
    let quantity = serde_json::Value::String(gpus.to_string());
    let patch = serde_json::json!({
        "status": {
            "capacity": { GPU_RESOURCE: quantity },
            "allocatable": { GPU_RESOURCE: quantity },
        }
    });
    Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError::Api { what: format!("advertise {gpus} GPUs on {node}"), source })?;
    Ok(())
}

/// Watches the Node and advertises its GPUs again whenever they are missing, until aborted.
pub fn keep_advertised(client: kube::Client, node: String, gpus: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let mut nodes =
            std::pin::pin!(watcher(Api::<Node>::all(client.clone()), config).default_backoff().applied_objects());
        while let Some(event) = nodes.next().await {
            match event {
                Ok(seen) if !advertises(&seen, gpus) => match advertise(&client, &node, gpus).await {
                    Ok(()) => info!(%node, gpus, "GPUs advertised again"),
                    Err(err) => warn!(%node, %err, "could not advertise the node's GPUs again"),
                },
                Ok(_) => {}
                Err(err) => warn!(%node, %err, "watching the node for its GPUs"),
            }
        }
    })
}

/// Whether the Node's capacity and allocatable both carry `gpus` GPUs.
fn advertises(node: &Node, gpus: u32) -> bool {
    let expected = gpus.to_string();
    let Some(status) = node.status.as_ref() else { return false };
    [&status.capacity, &status.allocatable]
        .into_iter()
        .all(|list| list.as_ref().and_then(|l| l.get(GPU_RESOURCE)).is_some_and(|q| q.0 == expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(capacity: Option<&str>, allocatable: Option<&str>) -> Node {
        let list =
            |count: Option<&str>| serde_json::json!(count.map(|c| serde_json::json!({ GPU_RESOURCE: c, "cpu": "2" })));
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "n" },
            "status": { "capacity": list(capacity), "allocatable": list(allocatable) },
        }))
        .unwrap()
    }

    #[test]
    fn a_node_advertises_its_gpus_only_with_the_count_in_capacity_and_allocatable() {
        assert!(advertises(&node(Some("2"), Some("2")), 2));
        assert!(!advertises(&node(Some("2"), None), 2), "a re-registered node's allocatable lacks them");
        assert!(!advertises(&node(None, None), 2));
        assert!(!advertises(&node(Some("1"), Some("1")), 2));
        assert!(!advertises(&Node::default(), 1));
    }
}

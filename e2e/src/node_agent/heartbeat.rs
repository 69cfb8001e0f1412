//! Registering the Node and keeping it alive: its status (Ready, heartbeat times) and its
//! Lease in `kube-node-lease`, renewed every heartbeat period.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::{FIELD_MANAGER, NodeAgentConfig};
use super::error::NodeAgentError;
use super::node::{NODE_LEASE_NAMESPACE, node_lease, node_object, node_status};

/// Creates or updates the Node (labels by server-side apply, status by strategic merge) and
/// its Lease; returns the Node's conditions as written.
pub(crate) async fn register_node(
    client: &kube::Client,
    config: &NodeAgentConfig,
) -> Result<Vec<NodeCondition>, NodeAgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut node = node_object(config, Timestamp::now());
    node.status = None;
    let applied = nodes
        .patch(&config.node_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&node))
        .await
        .map_err(|e| NodeAgentError::kube(format!("register node {}", config.node_name), e))?;
    let previous = applied.status.and_then(|s| s.conditions).unwrap_or_default();
    let conditions = post_status(&nodes, config, &previous).await?;
    renew_lease(client, config, applied.metadata.uid.as_deref()).await?;
    info!(node = %config.node_name, capacity = ?config.capacity, "node registered");
    Ok(conditions)
}

async fn post_status(
    nodes: &Api<Node>,
    config: &NodeAgentConfig,
    previous: &[NodeCondition],
) -> Result<Vec<NodeCondition>, NodeAgentError> {
    let status = node_status(config, previous, Timestamp::now());
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let patched = nodes
        .patch_status(&config.node_name, &params, &Patch::Strategic(serde_json::json!({ "status": status })))
        .await
        .map_err(|e| NodeAgentError::kube(format!("update the status of node {}", config.node_name), e))?;
    Ok(patched.status.and_then(|s| s.conditions).unwrap_or_default())
}

async fn renew_lease(
    client: &kube::Client,
    config: &NodeAgentConfig,
    node_uid: Option<&str>,
) -> Result<(), NodeAgentError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let lease = node_lease(&config.node_name, node_uid, config.lease_duration, Timestamp::now());
    leases
        .patch(&config.node_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&lease))
        .await
        .map_err(|e| NodeAgentError::kube(format!("renew the lease of node {}", config.node_name), e))?;
    Ok(())
}

/// Renews the Lease and the Ready condition every heartbeat period until `stop`.
pub(crate) async fn heartbeat_loop(
    client: kube::Client,
    config: NodeAgentConfig,
    mut conditions: Vec<NodeCondition>,
    stop: CancellationToken,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.heartbeat_period) => {}
            () = stop.cancelled() => return,
        }
        let uid = match nodes.get_opt(&config.node_name).await {
            Ok(Some(node)) => node.metadata.uid,
            Ok(None) => {
                warn!(node = %config.node_name, "node object deleted; registering again");
                match register_node(&client, &config).await {
                    Ok(registered) => conditions = registered,
                    Err(error) => warn!(%error, "cannot register the node again"),
                }
                continue;
            }
            Err(error) => {
                warn!(node = %config.node_name, %error, "heartbeat: cannot read the node");
                continue;
            }
        };
        if let Err(error) = renew_lease(&client, &config, uid.as_deref()).await {
            warn!(%error, "heartbeat failed");
        }
        match post_status(&nodes, &config, &conditions).await {
            Ok(posted) => conditions = posted,
            Err(error) => warn!(%error, "heartbeat failed"),
        }
        debug!(node = %config.node_name, "heartbeat");
    }
}

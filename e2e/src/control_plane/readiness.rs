//! What "ready" means for each component, as checks against the apiserver. Each returns
//! why it is not ready yet, which ends up in the timeout error.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::Api;

/// `/readyz` says `ok`: etcd reachable, RBAC bootstrap roles and priority classes created,
/// every post-start hook done.
pub(crate) async fn apiserver_ready(client: kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz").body(Vec::new()).map_err(|e| e.to_string())?;
    match client.request_text(request).await {
        Ok(body) if body.trim() == "ok" => Ok(()),
        Ok(body) => Err(format!("/readyz: {body}")),
        Err(e) => Err(format!("/readyz: {e}")),
    }
}

/// The controller manager holds its lease, and its controllers work: the `default`
/// ServiceAccount and the `kube-root-ca.crt` ConfigMap exist in `default` (pods need both).
pub(crate) async fn controller_manager_ready(client: kube::Client) -> Result<(), String> {
    lease_held(&client, "kube-controller-manager").await?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "default");
    accounts.get_opt("default").await.map_err(|e| e.to_string())?.ok_or("no default ServiceAccount yet")?;
    let config_maps = Api::<ConfigMap>::namespaced(client, "default");
    config_maps
        .get_opt("kube-root-ca.crt")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no kube-root-ca.crt ConfigMap yet")?;
    Ok(())
}

/// The scheduler holds its lease.
pub(crate) async fn scheduler_ready(client: kube::Client) -> Result<(), String> {
    lease_held(&client, "kube-scheduler").await
}

async fn lease_held(client: &kube::Client, name: &str) -> Result<(), String> {
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    let lease = leases.get_opt(name).await.map_err(|e| e.to_string())?.ok_or(format!("no {name} lease yet"))?;
    match lease.spec.and_then(|spec| spec.holder_identity) {
        Some(holder) if !holder.is_empty() => Ok(()),
        _ => Err(format!("the {name} lease has no holder")),
    }
}

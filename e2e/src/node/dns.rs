//! The cluster's DNS add-on: CoreDNS (built by `make setup` from its pinned module) as a
//! Deployment in kube-system behind the `kube-dns` Service at [`CLUSTER_DNS_IP`], as kubeadm
//! installs it, so pods resolve `<service>.<namespace>.svc`. Names outside the cluster are not
//! forwarded anywhere: this machine reaches no DNS upstream that pods should depend on.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::NodeError;

/// The `kube-dns` Service's ClusterIP, the kubelets' `clusterDNS` (the tenth address of the
/// Service range, as kubeadm picks it).
pub const CLUSTER_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
/// The image the nodes import for CoreDNS.
pub const COREDNS_IMAGE: &str = "kube-ocr.local/coredns:v1.14.2";

const NAMESPACE: &str = "kube-system";
const FIELD_MANAGER: &str = "kube-ocr-e2e";

/// Cluster names only; `ready` answers the readiness probe once the kubernetes plugin has
/// synced, `health` the liveness probe.
const COREFILE: &str = ".:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loop
    loadbalance
}
";

/// The add-on's objects, in apply order: RBAC, its Corefile, the Deployment, the Service.
pub fn manifests(replicas: i32) -> Vec<Value> {
    let labels = json!({ "k8s-app": "kube-dns" });
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": "coredns", "namespace": NAMESPACE },
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": { "name": "system:coredns" },
            "rules": [
                { "apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"] },
                { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"] },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "system:coredns" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns" },
            "subjects": [{ "kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE }],
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "coredns", "namespace": NAMESPACE },
            "data": { "Corefile": COREFILE },
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "coredns", "namespace": NAMESPACE, "labels": labels },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        // CoreDNS itself resolves nothing through the cluster.
                        "dnsPolicy": "Default",
                        "topologySpreadConstraints": [{
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": { "matchLabels": labels },
                        }],
                        // Replaced soon after its node is lost (the default waits 300 s).
                        "tolerations": [
                            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5 },
                            { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5 },
                        ],
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                { "name": "dns", "containerPort": 53, "protocol": "UDP" },
                                { "name": "dns-tcp", "containerPort": 53, "protocol": "TCP" },
                            ],
                            "readinessProbe": { "httpGet": { "path": "/ready", "port": 8181 }, "periodSeconds": 1 },
                            "livenessProbe": { "httpGet": { "path": "/health", "port": 8080 }, "periodSeconds": 10 },
                            "resources": { "requests": { "cpu": "10m", "memory": "32Mi" }, "limits": { "memory": "170Mi" } },
                            "volumeMounts": [{ "name": "config", "mountPath": "/etc/coredns", "readOnly": true }],
                        }],
                        "volumes": [{ "name": "config", "configMap": { "name": "coredns" } }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "kube-dns", "namespace": NAMESPACE, "labels": labels },
            "spec": {
                "clusterIP": CLUSTER_DNS_IP.to_string(),
                "selector": labels,
                "ports": [
                    { "name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53 },
                    { "name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53 },
                ],
            },
        }),
    ]
}

/// Applies the add-on (server-side apply) and waits until every replica is ready.
pub async fn install(client: &kube::Client, replicas: i32, timeout: Duration) -> Result<(), NodeError> {
    for manifest in manifests(replicas) {
        match manifest["kind"].as_str() {
            Some("ServiceAccount") => {
                apply(Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE), manifest).await?
            }
            Some("ClusterRole") => apply(Api::<ClusterRole>::all(client.clone()), manifest).await?,
            Some("ClusterRoleBinding") => apply(Api::<ClusterRoleBinding>::all(client.clone()), manifest).await?,
            Some("ConfigMap") => apply(Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE), manifest).await?,
            Some("Deployment") => apply(Api::<Deployment>::namespaced(client.clone(), NAMESPACE), manifest).await?,
            Some("Service") => apply(Api::<Service>::namespaced(client.clone(), NAMESPACE), manifest).await?,
            other => unreachable!("no manifest of kind {other:?}"),
        }
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    loop {
        let deployment = deployments
            .get("coredns")
            .await
            .map_err(|source| NodeError::Api { what: "read the coredns Deployment".to_owned(), source })?;
        let ready = deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        if ready >= replicas {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(NodeError::command(
                "install the cluster DNS",
                format!("{ready} of {replicas} CoreDNS replicas ready after {timeout:?}; see the coredns pods' events"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn apply<K>(api: Api<K>, manifest: Value) -> Result<(), NodeError>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
{
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let what = || format!("apply {} {name}", K::kind(&()));
    let object: K = serde_json::from_value(manifest)
        .map_err(|e| NodeError::command(what(), format!("the manifest does not parse: {e}")))?;
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|source| NodeError::Api { what: what(), source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_parses_as_its_kind() {
        for manifest in manifests(2) {
            let kind = manifest["kind"].as_str().unwrap().to_owned();
            let parsed = match kind.as_str() {
                "ServiceAccount" => serde_json::from_value::<ServiceAccount>(manifest).map(|_| ()),
                "ClusterRole" => serde_json::from_value::<ClusterRole>(manifest).map(|_| ()),
                "ClusterRoleBinding" => serde_json::from_value::<ClusterRoleBinding>(manifest).map(|_| ()),
                "ConfigMap" => serde_json::from_value::<ConfigMap>(manifest).map(|_| ()),
                "Deployment" => serde_json::from_value::<Deployment>(manifest).map(|_| ()),
                "Service" => serde_json::from_value::<Service>(manifest).map(|_| ()),
                other => panic!("unexpected kind {other}"),
            };
            parsed.unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn the_image_tag_is_the_coredns_version_the_go_module_pins() {
        let go_mod = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s-tools/coredns/go.mod")).unwrap();
        let pinned = go_mod
            .lines()
            .find_map(|line| line.trim().strip_prefix("github.com/coredns/coredns "))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("go.mod requires github.com/coredns/coredns");
        assert_eq!(COREDNS_IMAGE.rsplit_once(':').map(|(_, tag)| tag), Some(pinned));
    }

    #[test]
    fn the_service_sits_at_the_kubelets_cluster_dns_address() {
        let service = manifests(1).into_iter().find(|m| m["kind"] == "Service").unwrap();
        assert_eq!(service["spec"]["clusterIP"], CLUSTER_DNS_IP.to_string());
        assert!(
            super::super::addressing::Cidr { address: Ipv4Addr::new(10, 0, 0, 0), prefix: 16 }.contains(CLUSTER_DNS_IP)
        );
    }
}

//! The operator run as users run it: the image `deploy/docker/operator.Dockerfile` builds
//! from this checkout's `ocr-operator` ([`OPERATOR_IMAGE`], imported into the nodes), in a
//! Deployment of one namespace, under a ServiceAccount bound to exactly the generated
//! ClusterRole. It reaches the API server through the `kubernetes` Service and kube-proxy,
//! and the host reaches its HTTP port at its pod IP. The operator scenarios and the operator
//! benchmark both run it so.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Kubectl, wait_for};
use crate::control_plane::LocalControlPlane;
use crate::node::workspace_images::OPERATOR_IMAGE;
use crate::plain_http;

/// The ServiceAccount the operator runs as, as the chart names it.
pub const OPERATOR_ACCOUNT: &str = "kube-ocr-operator";
/// The container's variable holding its pod name (the Downward API): `--identity=$(POD_NAME)`
/// makes it the Lease identity, as the chart does.
pub const POD_NAME_VARIABLE: &str = "POD_NAME";
/// The container port of `/metrics`, `/healthz` and `/readyz` (the operator's default).
const HTTP_PORT: u16 = 8080;
const NAME_LABEL: &str = "app.kubernetes.io/name";
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// How long an operator pod may take to be Ready, or to be gone.
const TIMEOUT: Duration = Duration::from_secs(150);

/// Binds [`OPERATOR_ACCOUNT`] in `namespace` to `cluster_role` (applied as given) by a
/// RoleBinding, as the chart does with `watchNamespace`: idempotent, for several operators.
pub async fn bind_operator_account(client: &kube::Client, namespace: &str, cluster_role: &ClusterRole) {
    let apply = PatchParams::apply("kube-ocr-e2e").force();
    let role_name = cluster_role.metadata.name.clone().expect("the ClusterRole has a name");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles.patch(&role_name, &apply, &Patch::Apply(cluster_role)).await.unwrap();
    let account = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": OPERATOR_ACCOUNT } });
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts.patch(OPERATOR_ACCOUNT, &apply, &Patch::Apply(&account)).await.unwrap();
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": OPERATOR_ACCOUNT },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name },
        "subjects": [{ "kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": namespace }],
    });
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    bindings.patch(OPERATOR_ACCOUNT, &apply, &Patch::Apply(&binding)).await.unwrap();
}

/// One operator Deployment (one replica) in a namespace whose [`OPERATOR_ACCOUNT`] is bound.
#[derive(Debug)]
pub struct InClusterOperator {
    name: String,
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    kubectl: Kubectl,
    namespace: String,
}

impl InClusterOperator {
    /// Creates Deployment `name` in `namespace` running the operator with `args` (its flags)
    /// and waits until its pod is Ready (`/readyz`: its caches are synced).
    pub async fn start(plane: &LocalControlPlane, namespace: &str, name: &str, args: Vec<String>) -> Self {
        let labels = json!({ NAME_LABEL: "kube-ocr-operator", INSTANCE_LABEL: name });
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "serviceAccountName": OPERATOR_ACCOUNT,
                        "terminationGracePeriodSeconds": 10,
                        "containers": [{
                            "name": "operator",
                            "image": OPERATOR_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": args,
                            "env": [{
                                "name": POD_NAME_VARIABLE,
                                "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } },
                            }],
                            "ports": [{ "name": "http", "containerPort": HTTP_PORT }],
                            "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "periodSeconds": 1 },
                            "resources": { "requests": { "cpu": "50m", "memory": "64Mi" } },
                        }],
                    },
                },
            },
        }))
        .expect("a valid Deployment");
        let client = plane.client().unwrap_or_else(|err| panic!("{err}"));
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        deployments.create(&PostParams::default(), &deployment).await.unwrap();
        let operator = Self {
            name: name.to_owned(),
            deployments,
            pods: Api::namespaced(client, namespace),
            kubectl: Kubectl::new(plane),
            namespace: namespace.to_owned(),
        };
        operator.ready_pod(None).await;
        operator
    }

    fn selector(&self) -> String {
        format!("{INSTANCE_LABEL}={},{NAME_LABEL}=kube-ocr-operator", self.name)
    }

    /// Waits for a Ready, live pod of this operator other than `not`; returns its name and IP.
    async fn ready_pod(&self, not: Option<&str>) -> (String, String) {
        let selector = self.selector();
        let what = format!("operator {} to be Ready", self.name);
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Ok(list) = self.pods.list(&ListParams::default().labels(&selector)).await {
                    let ready = list.items.into_iter().find_map(|pod| {
                        let name = pod.metadata.name.clone()?;
                        let status = pod.status.as_ref()?;
                        let ready =
                            status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
                        (ready && pod.metadata.deletion_timestamp.is_none() && Some(name.as_str()) != not)
                            .then(|| Some((name, status.pod_ip.clone()?)))
                            .flatten()
                    });
                    if let Some(ready) = ready {
                        return ready;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?} waiting for {what}; its logs:\n{}", self.logs()))
    }

    /// The name of its Ready pod: its Lease identity.
    pub async fn pod_name(&self) -> String {
        self.ready_pod(None).await.0
    }

    /// Where the host reaches its HTTP port: the Ready pod's IP.
    pub async fn http_addr(&self) -> SocketAddr {
        let (_, ip) = self.ready_pod(None).await;
        SocketAddr::new(ip.parse().expect("a pod IP"), HTTP_PORT)
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        let address = self.http_addr().await;
        let (status, body) = plain_http::get(address.ip(), address.port(), "/metrics").await.unwrap();
        assert_eq!(status, 200, "GET /metrics of operator {}: {body}", self.name);
        body
    }

    /// Its last log lines (`kubectl logs`), or why they could not be read.
    pub fn logs(&self) -> String {
        let deployment = format!("deployment/{}", self.name);
        self.kubectl.run(&self.namespace, &["logs", &deployment, "--tail=200"]).unwrap_or_else(|err| err)
    }

    /// The whole log of its Ready pod, through the API (as `kubectl logs` reads it).
    pub async fn full_log(&self) -> String {
        let (pod, _) = self.ready_pod(None).await;
        self.pods.logs(&pod, &LogParams::default()).await.unwrap_or_else(|err| panic!("the logs of {pod}: {err}"))
    }

    /// Deletes its pod as a node drain or an eviction would (a graceful stop: it releases
    /// its Lease) and waits until the replacement the Deployment makes is Ready.
    pub async fn restart(&self) {
        let (old, _) = self.ready_pod(None).await;
        self.pods.delete(&old, &DeleteParams::default()).await.unwrap();
        self.ready_pod(Some(&old)).await;
    }

    /// Stops it: the Deployment and its pods are deleted (gracefully: a leader hands its
    /// Lease over) and gone when this returns, so nothing is reconciled after.
    pub async fn shutdown(self) {
        let background = DeleteParams::background();
        self.deployments.delete(&self.name, &background).await.unwrap();
        let selector = self.selector();
        wait_for(&format!("operator {}'s pods to be gone", self.name), TIMEOUT, async || {
            self.pods.list(&ListParams::default().labels(&selector)).await.ok()?.items.is_empty().then_some(())
        })
        .await;
    }
}

//! Shared by the `operator_*` scenarios: the CRD, the operator running in-process under
//! its own ServiceAccount bound to exactly its generated ClusterRole, an optional node
//! agent, and polling helpers. Each scenario gets its own namespace, operator (watching
//! only that namespace) and node.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod canary;
pub mod gateway_api;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::LocalControlPlane;
pub use kube_ocr_e2e::harness::wait_for;
use kube_ocr_e2e::node_agent::{
    Backoff, ImageMap, NodeAgent, NodeAgentConfig, NodeAgentHandle, NodeCapacity, cargo_bin_dir,
};
use kube_ocr_operator::{Operator, OperatorConfig, rbac};
use serde_json::json;

pub const TIMEOUT: Duration = Duration::from_secs(150);
pub const OPERATOR_ACCOUNT: &str = "kube-ocr-operator";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,kube_ocr_operator=debug,kube_ocr_e2e=info,kube_runtime=warn")
        .with_test_writer()
        .try_init();
}

/// Installs the OcrService CRD (server-side apply, idempotent) and waits until it is
/// Established and its schema is served.
pub async fn install_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = OcrService::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(&name, &PatchParams::apply("kube-ocr-e2e").force(), &Patch::Apply(&crd))
        .await
        .unwrap_or_else(|err| panic!("the API server refused the OcrService CRD: {err}"));
    wait_for("the OcrService CRD to be Established", TIMEOUT, async || {
        let crd = crds.get(&name).await.ok()?;
        let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

/// A namespace with the CRD installed and an operator ServiceAccount bound (by a
/// RoleBinding in the namespace) to the generated ClusterRole, nothing more.
pub struct Scenario {
    pub cluster: &'static LocalControlPlane,
    pub admin: kube::Client,
    pub namespace: String,
}

impl Scenario {
    pub async fn new(prefix: &str) -> Self {
        init_logging();
        let cluster = LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"));
        let admin = cluster.client().unwrap();
        install_crd(&admin).await;
        let namespace = cluster.create_namespace(prefix).await.unwrap();
        Self { cluster, admin, namespace }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// A client with the operator's ServiceAccount token and only its ClusterRole.
    pub async fn operator_client(&self) -> kube::Client {
        let roles: Api<ClusterRole> = Api::all(self.admin.clone());
        roles
            .patch(
                rbac::CLUSTER_ROLE_NAME,
                &PatchParams::apply("kube-ocr-e2e").force(),
                &Patch::Apply(rbac::cluster_role()),
            )
            .await
            .unwrap();
        let account: ServiceAccount =
            serde_json::from_value(json!({ "metadata": { "name": OPERATOR_ACCOUNT } })).unwrap();
        self.api::<ServiceAccount>().create(&PostParams::default(), &account).await.unwrap();
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": OPERATOR_ACCOUNT },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac::CLUSTER_ROLE_NAME },
            "subjects": [{ "kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": self.namespace }],
        }))
        .unwrap();
        self.api::<RoleBinding>().create(&PostParams::default(), &binding).await.unwrap();
        self.cluster.client_for_service_account(&self.namespace, OPERATOR_ACCOUNT).await.unwrap()
    }

    /// The operator configuration of a scenario: this namespace only, the Lease in it,
    /// HTTP on a free loopback port, short rechecks so tests do not wait on defaults.
    pub fn operator_config(&self) -> OperatorConfig {
        let mut config = OperatorConfig::defaults();
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.watch_namespace = Some(self.namespace.clone());
        config.lease_namespace = self.namespace.clone();
        config.identity = Some(format!("{}-operator", self.namespace));
        config.settling_recheck_secs = 2;
        config.lease_retry_secs = 1;
        config.lease_duration_secs = 5;
        config
    }

    /// Starts the operator in-process under its ServiceAccount.
    pub async fn start_operator(&self) -> Operator {
        let client = self.operator_client().await;
        Operator::start(client, self.operator_config()).await.unwrap()
    }

    /// A node agent whose Node is named after the namespace; workspace images (the
    /// inference pod) from the test's target dir.
    pub async fn start_agent(&self) -> (NodeAgentHandle, tempfile::TempDir) {
        self.start_agent_with_gpus(NodeCapacity::default().gpus).await
    }

    /// [`Self::start_agent`] with a Node that advertises `gpus` × `nvidia.com/gpu`: the
    /// real scheduler then keeps pods that ask for more Pending (Unschedulable).
    pub async fn start_agent_with_gpus(&self, gpus: u32) -> (NodeAgentHandle, tempfile::TempDir) {
        let bin_dir = cargo_bin_dir().expect("the test runs from target/<profile>");
        let server = bin_dir.join("ocr-inference-pod");
        assert!(server.is_file(), "{} is missing: `cargo build -p kube-ocr-inference` first", server.display());
        let work_dir = tempfile::Builder::new().prefix("kube-ocr-agent-").tempdir().unwrap();
        let mut config = NodeAgentConfig::new(
            self.node_name(),
            work_dir.path().join("agent"),
            ImageMap::workspace_defaults(&bin_dir),
        );
        config.capacity.gpus = gpus;
        config.api_server = Some(self.cluster.apiserver_url().to_owned());
        config.shutdown_grace = Duration::from_secs(3);
        config.restart_backoff =
            Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(4), ..Backoff::default() };
        config.deregister_on_shutdown = true;
        let agent = NodeAgent::start(self.admin.clone(), config).await.unwrap();
        agent.wait_schedulable(TIMEOUT).await.unwrap();
        (agent, work_dir)
    }

    /// A small golden set (a few clean lines and one document of the default set) as a
    /// ConfigMap in this namespace, so canary analyses take seconds, not minutes.
    pub async fn create_golden_config_map(&self, name: &str) {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube_ocr_golden::config_map::split_into_config_maps;
        let full = kube_ocr_golden::GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
        let ids = ["line-en-001-clean", "line-zh-003-clean", "line-mix-002-clean", "line-num-004-clean"];
        let set = kube_ocr_golden::GoldenSet {
            root: full.root.clone(),
            items: full.items.iter().filter(|i| ids.contains(&i.id.as_str())).cloned().collect(),
        };
        let parts = split_into_config_maps(&set, name, kube_ocr_golden::config_map::DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(parts.len(), 1);
        let map: ConfigMap = serde_json::from_value(parts[0].to_manifest(Some(&self.namespace), name)).unwrap();
        self.api::<ConfigMap>().create(&PostParams::default(), &map).await.unwrap();
    }

    /// Rollout settings that walk a canary in seconds, judged on `golden` (a ConfigMap).
    pub fn fast_rollout(golden: &str) -> serde_json::Value {
        json!({ "rollout": {
            "steps": [50, 100],
            "stepInterval": "4s",
            "progressDeadline": "90s",
            "analysis": {
                "interval": "3s",
                "failureLimit": 2,
                "golden": { "configMaps": [golden], "minAccuracy": 0.9, "maxAccuracyDrop": 0.03 },
                "latency": { "maxP95Ms": 20000, "maxP95Increase": 0.5 },
                "errors": { "maxErrorRateIncrease": 0.02 },
            },
        }})
    }

    pub fn node_name(&self) -> String {
        format!("{}-node", self.namespace)
    }

    /// An OcrService spec pinned to this scenario's node, serving the exported PP-OCRv4
    /// bundle from this machine, small requests; `extra` is merged over it.
    pub fn ocr_service(&self, name: &str, extra: serde_json::Value) -> OcrService {
        let bundle =
            workspace_root().join("models/ppocr-v4").canonicalize().expect("models/ppocr-v4: run `make setup`");
        let mut spec = json!({
            "model": { "uri": format!("file://{}", bundle.display()), "version": "4.0.0" },
            "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
            "replicas": { "min": 1, "max": 3 },
            "resources": { "requests": { "cpu": "100m", "memory": "256Mi" } },
            "nodeSelector": { "kubernetes.io/hostname": self.node_name() },
            "startupTimeoutSeconds": 120,
        });
        merge(&mut spec, extra);
        serde_json::from_value(json!({
            "apiVersion": "kube-ocr.dev/v1alpha1",
            "kind": "OcrService",
            "metadata": { "name": name, "namespace": self.namespace },
            "spec": spec,
        }))
        .unwrap()
    }

    pub async fn create(&self, ocr: &OcrService) -> OcrService {
        self.api::<OcrService>().create(&PostParams::default(), ocr).await.unwrap()
    }

    /// The Ready addresses behind Service `service`, from its EndpointSlices, sorted and
    /// without repeats: what a Kubernetes-aware client (or KEDA's endpoint aggregation)
    /// finds. Empty when they cannot be read.
    pub async fn ready_addresses(&self, service: &str) -> Vec<String> {
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        let selector = format!("kubernetes.io/service-name={service}");
        let Ok(list) = self.api::<EndpointSlice>().list(&kube::api::ListParams::default().labels(&selector)).await
        else {
            return Vec::new();
        };
        let mut addresses: Vec<String> = list
            .items
            .iter()
            .flat_map(|slice| slice.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// Polls the OcrService until `check` accepts its status.
    pub async fn wait_status<T>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&OcrService) -> Option<T>,
    ) -> T {
        let api = self.api::<OcrService>();
        let mut last = None;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(current) = api.get(name).await {
                if let Some(found) = check(&current) {
                    return found;
                }
                last = Some(current);
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for OcrService {name}: {what}; last status: {:#?}",
                last.and_then(|o| o.status)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub fn condition(ocr: &OcrService, type_: &str) -> Option<(String, String, String)> {
    let c = ocr.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// One `GET` on its own connection: the status and the body (a pod's `/metrics`).
pub async fn http_get(address: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((address, port))).await??;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no header block"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// One `POST` to the inference pod's HTTP API on its own connection (`Connection: close`):
/// the status and the body. No proxy in between, as the other clients here dial pod IPs.
pub async fn http_post(
    address: &str,
    port: u16,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((address, port))).await??;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no header block"))?;
    let status_line = String::from_utf8_lossy(&response[..split]).lines().next().unwrap_or_default().to_owned();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, response[split + 4..].to_vec()))
}

//! Shared by the operator scenarios: the CRD, the operator running in the cluster from its
//! image under its own ServiceAccount bound to exactly its generated ClusterRole
//! (`kube_ocr_e2e::harness::operator`), KEDA one scenario at a time, the test binary's
//! cluster of two real nodes (`harness::shared_cluster`) whose kubelets run the inference pod's
//! image, turns on the machine's cores ([`Load`]), and polling helpers. Each scenario gets
//! its own namespace, operator (watching only that namespace), and deletes the namespace
//! when done.

pub mod canary;
pub mod gateway_api;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::LocalControlPlane;
pub use kube_ocr_e2e::harness::operator::{InClusterOperator, OPERATOR_ACCOUNT};
use kube_ocr_e2e::harness::operator::{POD_NAME_VARIABLE, bind_operator_account};
use kube_ocr_e2e::harness::{Kubectl, SHARED_CLUSTER_MODELS, shared_cluster};
pub use kube_ocr_e2e::harness::{init_logging, wait_for, workspace_root};
use kube_ocr_e2e::keda::Keda;
use kube_ocr_e2e::node::LocalCluster;
/// The host reaches pod IPs as clients in the cluster do (the cluster network routes each
/// node's pod range to its node), so scenarios call pods directly.
pub use kube_ocr_e2e::plain_http::{get as http_get, post as http_post};
use kube_ocr_operator::OperatorConfig;
use serde_json::json;

pub const TIMEOUT: Duration = Duration::from_secs(150);
/// The latency criterion of a scenario whose verdict is about speed (merged over
/// [`Scenario::fast_rollout`]): a canary whose P95 exceeds stable's by half fails.
pub fn latency_judged() -> serde_json::Value {
    json!({ "rollout": { "analysis": { "latency": { "maxP95Ms": 20000, "maxP95Increase": 0.5 } } } })
}
/// The PersistentVolumeClaim [`Scenario::models_claim`] makes.
pub const MODELS_CLAIM: &str = "models";

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
/// What a scenario asks of the machine's two cores. The scenarios share one cluster and
/// run two at a time (the test harness's threads); this says which may run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Runs alone (beside scenarios that run no pods): its verdict compares latencies closely
    /// ([`latency_judged`]: pods of another scenario on the same cores would decide the
    /// rollout), or it needs all of node-a's GPUs, or its own callers fill the cores.
    Judged,
    /// Runs inference pods, but no verdict depends on their speed (its rollouts use
    /// [`Scenario::fast_rollout`]'s loose latency bound): beside one more such scenario, or
    /// one that runs no pods.
    Pods,
    /// Runs no pod (they stay Pending, or the operator makes none): beside anything.
    NoPods,
}

impl Load {
    fn cores(self) -> u32 {
        match self {
            Load::Judged => MACHINE_CORES,
            Load::Pods => 1,
            Load::NoPods => 0,
        }
    }
}

const MACHINE_CORES: u32 = 2;
/// Fair (first come, first served): a Judged scenario waiting for both is not overtaken.
static CORES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MACHINE_CORES as usize);

/// One KEDA at a time on the shared cluster ([`Scenario::start_keda`]).
static KEDA_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running KEDA and the turn it holds; dropping it stops KEDA (unregistering the external
/// metrics API), then gives the turn back.
pub struct KedaTurn {
    keda: Option<Keda>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl KedaTurn {
    /// Stops KEDA but keeps the turn, so that what KEDA left behind can be checked before
    /// another scenario's KEDA starts.
    pub fn stop(&mut self) {
        if let Some(keda) = self.keda.take() {
            keda.stop();
        }
    }
}

impl Drop for KedaTurn {
    fn drop(&mut self) {
        if let Some(keda) = &self.keda
            && std::thread::panicking()
        {
            eprintln!("KEDA's logs:\n{}", keda.log_tails(40));
        }
    }
}

pub struct Scenario {
    pub cluster: &'static LocalCluster,
    pub admin: kube::Client,
    pub namespace: String,
    /// Whether [`Self::finish`] ran; a scenario that panicked cleans up on drop.
    finished: bool,
    load: Load,
    /// How long it waited for its cores, and when it got them: logged at the end, as the
    /// test binary's time is the sum of the Judged scenarios' times.
    waited: Duration,
    started: Instant,
    /// Released after the cleanup (fields drop after `Drop::drop`), so the next scenario
    /// finds the cores free of this one's pods.
    _cores: Option<tokio::sync::SemaphorePermit<'static>>,
}

impl Scenario {
    pub async fn new(prefix: &str, load: Load) -> Self {
        init_logging();
        let queued = Instant::now();
        let cores = match load.cores() {
            0 => None,
            n => Some(CORES.acquire_many(n).await.expect("the semaphore is never closed")),
        };
        let (waited, started) = (queued.elapsed(), Instant::now());
        let cluster = shared_cluster();
        let admin = cluster.plane().client().unwrap();
        install_crd(&admin).await;
        let namespace = cluster.plane().create_namespace(prefix).await.unwrap();
        Self { cluster, admin, namespace, finished: false, load, waited, started, _cores: cores }
    }

    /// A second handle on the same namespace (for a task of its own); only the original
    /// cleans up and holds the turn.
    pub fn share(&self) -> Scenario {
        Scenario {
            cluster: self.cluster,
            admin: self.admin.clone(),
            namespace: self.namespace.clone(),
            finished: true,
            load: Load::NoPods,
            waited: Duration::ZERO,
            started: Instant::now(),
            _cores: None,
        }
    }

    pub fn plane(&self) -> &'static LocalControlPlane {
        self.cluster.plane()
    }

    /// The address pods reach this machine at (the control plane listens there too): where
    /// a scenario's own servers (Redis, S3) listen so that pods and the host both reach them.
    pub fn host_ip(&self) -> std::net::Ipv4Addr {
        self.cluster.network().host_ip()
    }

    /// Ends the scenario: deletes its namespace, and its pods at once rather than after
    /// their grace period, so that the next scenario on the shared cluster has the nodes'
    /// CPU and GPUs (the scheduler counts a terminating pod's requests until it is gone).
    /// Stop the operator first, or it recreates what goes.
    pub async fn finish(mut self) {
        self.finished = true;
        let namespaces: Api<Namespace> = Api::all(self.admin.clone());
        namespaces.delete(&self.namespace, &DeleteParams::default()).await.unwrap();
        let pods = self.api::<Pod>();
        let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
        wait_for("the scenario's pods to be deleted", TIMEOUT, async || {
            let _ = pods.delete_collection(&now, &ListParams::default()).await;
            pods.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
        })
        .await;
        let volumes: Api<PersistentVolume> = Api::all(self.admin.clone());
        let _ = volumes.delete(&self.models_volume(), &DeleteParams::default()).await;
        tracing::info!(
            namespace = %self.namespace,
            load = ?self.load,
            waited_for_cores_s = self.waited.as_secs_f64(),
            ran_s = self.started.elapsed().as_secs_f64(),
            "scenario finished"
        );
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// The operator configuration of a scenario: this namespace only, the Lease in it, the
    /// pod's name as its Lease identity (as the chart sets it), short rechecks so tests do
    /// not wait on defaults, and its debug logs.
    pub fn operator_config(&self) -> OperatorConfig {
        let mut config = OperatorConfig::defaults();
        config.watch_namespace = Some(self.namespace.clone());
        config.lease_namespace = self.namespace.clone();
        config.identity = Some(format!("$({POD_NAME_VARIABLE})"));
        config.settling_recheck_secs = 2;
        config.lease_retry_secs = 1;
        config.lease_duration_secs = 5;
        config.log_filter = "info,kube_ocr_operator=debug".to_owned();
        config
    }

    /// Starts KEDA against the shared cluster, once no other scenario's KEDA runs: KEDA is
    /// cluster-wide (its namespace, CRDs and the external metrics APIService), so two side by
    /// side would answer each other's metrics and the first to stop would unregister the API
    /// the other serves.
    pub async fn start_keda(&self) -> KedaTurn {
        let turn = KEDA_TURN.lock().await;
        let keda = Keda::start(self.plane()).await.unwrap_or_else(|error| panic!("{error}"));
        KedaTurn { keda: Some(keda), _turn: turn }
    }

    /// Starts the operator in the cluster ([`InClusterOperator`]) and waits until it is Ready.
    pub async fn start_operator(&self) -> InClusterOperator {
        self.start_operator_named(OPERATOR_ACCOUNT, &self.operator_config()).await
    }

    /// Starts Deployment `name` of the operator with `config`: several may run side by side.
    pub async fn start_operator_named(&self, name: &str, config: &OperatorConfig) -> InClusterOperator {
        bind_operator_account(&self.admin, &self.namespace, &kube_ocr_operator::rbac::cluster_role()).await;
        InClusterOperator::start(self.plane(), &self.namespace, name, config.to_args()).await
    }

    /// The workspace's `models/` (PP-OCRv4 and the `-slow` and `-degraded` bundles made
    /// from it) as the PersistentVolumeClaim [`MODELS_CLAIM`], bound to a `hostPath`
    /// PersistentVolume of each node's copy. `pvc://models/<bundle>` then names a bundle
    /// (see `canary::bundle_uri`).
    pub async fn models_claim(&self) {
        let models = SHARED_CLUSTER_MODELS;
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": self.models_volume() },
            "spec": {
                "capacity": { "storage": "1Gi" }, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                "hostPath": { "path": models, "type": "Directory" }, "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": { "namespace": self.namespace, "name": MODELS_CLAIM },
            },
        }))
        .unwrap();
        Api::<PersistentVolume>::all(self.admin.clone()).create(&PostParams::default(), &volume).await.unwrap();
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": MODELS_CLAIM },
            "spec": {
                "accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": self.models_volume(),
                "resources": { "requests": { "storage": "1Gi" } },
            },
        }))
        .unwrap();
        self.api::<PersistentVolumeClaim>().create(&PostParams::default(), &claim).await.unwrap();
    }

    fn models_volume(&self) -> String {
        format!("{}-models", self.namespace)
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
    ///
    /// The latency bound is loose: a canary fails on P95 only at four times stable's. A
    /// canary pod that has just started, or shares the cores with another scenario's pods,
    /// can be 1.5 times slower than stable for a few dozen samples (a lifecycle rollout was
    /// rolled back so once), and these scenarios are about rollout mechanics, accuracy and
    /// traffic, not speed. The scenario about latency sets [`latency_judged`] and runs
    /// [`Load::Judged`].
    pub fn fast_rollout(golden: &str) -> serde_json::Value {
        json!({ "rollout": {
            "steps": [50, 100],
            "stepInterval": "4s",
            "progressDeadline": "90s",
            "analysis": {
                "interval": "3s",
                "failureLimit": 2,
                "golden": { "configMaps": [golden], "minAccuracy": 0.9, "maxAccuracyDrop": 0.03 },
                "latency": { "maxP95Ms": 20000, "maxP95Increase": 3.0 },
                "errors": { "maxErrorRateIncrease": 0.02 },
            },
        }})
    }

    /// Spec fields that keep the pods Pending (no node has this label): for scenarios about
    /// objects, conditions and leadership rather than serving, so that their pods take no
    /// CPU from the scenarios beside them that measure latency.
    pub fn unscheduled() -> serde_json::Value {
        json!({ "nodeSelector": { "kube-ocr.dev/e2e-node": "none" } })
    }

    /// An OcrService spec serving the PP-OCRv4 bundle the inference pod's image carries,
    /// small requests; `extra` is merged over it.
    pub fn ocr_service(&self, name: &str, extra: serde_json::Value) -> OcrService {
        let mut spec = json!({
            "model": { "uri": "file:///models/ppocr-v4", "version": "4.0.0" },
            "image": kube_ocr_e2e::node::workspace_images::INFERENCE_POD_IMAGE,
            "replicas": { "min": 1, "max": 3 },
            "resources": { "requests": { "cpu": "100m", "memory": "256Mi" } },
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

    /// The events (events.k8s.io) about the object `name` in this namespace.
    pub async fn events_about(&self, name: &str) -> Vec<Event> {
        let list = self.api::<Event>().list(&ListParams::default()).await.unwrap();
        list.items.into_iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)).collect()
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

impl Drop for Scenario {
    /// A scenario that panicked (or did not call [`Scenario::finish`]): its namespace and
    /// pods go without waiting, through kubectl (no runtime is at hand in a destructor),
    /// after the operator's logs of a panicked one are printed.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let kubectl = Kubectl::new(self.plane());
        if std::thread::panicking() {
            // The operator's side of what went wrong (the test's output shows it on failure).
            let selector = "--selector=app.kubernetes.io/name=kube-ocr-operator";
            match kubectl.run(&self.namespace, &["logs", selector, "--prefix", "--tail=300"]) {
                Ok(logs) => eprintln!("operator logs of {}:\n{logs}", self.namespace),
                Err(err) => eprintln!("no operator logs of {}: {err}", self.namespace),
            }
        }
        let _ = kubectl.run(&self.namespace, &["delete", "namespace", &self.namespace, "--wait=false"]);
        let _ =
            kubectl.run(&self.namespace, &["delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false"]);
        let _ = kubectl.run(&self.namespace, &["delete", "persistentvolume", &self.models_volume(), "--wait=false"]);
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

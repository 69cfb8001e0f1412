//! KEDA against a running local control plane: its operator (`keda`) and its external
//! metrics API server (`keda-adapter`) as processes on this machine, from the binaries and
//! CRDs `make setup` caches (`tools/build-keda.sh`), with the external metrics API
//! registered in the aggregation layer so that the controller manager's HPA controller reads
//! KEDA's metrics as in a real cluster.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_ocr_e2e::keda::KedaError> {
//! use kube_ocr_e2e::control_plane::LocalControlPlane;
//! use kube_ocr_e2e::keda::Keda;
//! let cluster = LocalControlPlane::shared()?;
//! let keda = Keda::start(cluster).await?; // CRDs, namespace `keda`, both processes, APIService
//! // ... create ScaledObjects; KEDA scales their targets ...
//! drop(keda); // unregisters the APIService, stops both
//! # Ok(()) }
//! ```
//!
//! What differs from a KEDA installed by its chart:
//! - Both processes run as one user in `system:masters` (no RBAC of KEDA's own), with leader
//!   election off and no admission webhooks (`keda-admission-webhooks` is not built).
//! - Certificates come from the control plane's CA: the operator serves its gRPC metrics
//!   service (mTLS) with a certificate for `keda-operator.keda.svc.cluster.local` and
//!   127.0.0.1, the adapter dials it at 127.0.0.1 with a client certificate, and serves the
//!   external metrics API with a certificate for `keda-metrics-apiserver.keda.svc`, the name
//!   the apiserver checks. The APIService's `caBundle` is the cluster CA.
//! - The Service `keda/keda-metrics-apiserver` behind the APIService is an ExternalName
//!   Service for 127.0.0.1: EndpointSlices may not hold loopback addresses, and without
//!   `--enable-aggregator-routing` the apiserver dials `<externalName>:<APIService port>`.
//!
//! One `Keda` per control plane at a time (its namespace, CRDs and APIService are
//! cluster-wide; the operator scenarios take turns, `Scenario::start_keda`). Processes log to
//! `<cluster dir>/logs/keda-operator.log` and `keda-adapter.log`; a panicking test's copy
//! goes to `$TMPDIR/kube-ocr-keda-logs-<pid>`. Like the control plane's components each runs
//! under a watchdog that stops it when this process dies, before the apiserver and etcd.

use std::ffi::OsString;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use crate::control_plane::{Component, ComponentSpec, ControlPlaneError, LocalControlPlane};
use crate::toolchain::{KEDA_VERSION, cache_root, keda_bin_dir, keda_crd_dir};

/// The namespace KEDA runs in (`POD_NAMESPACE`, `KEDA_CLUSTER_OBJECT_NAMESPACE`): where the
/// operator looks for the Secrets of ClusterTriggerAuthentications.
pub const KEDA_NAMESPACE: &str = "keda";
/// The APIService KEDA serves.
pub const EXTERNAL_METRICS_API_SERVICE: &str = "v1beta1.external.metrics.k8s.io";
/// The API path the adapter serves, through the apiserver.
pub const EXTERNAL_METRICS_API: &str = "/apis/external.metrics.k8s.io/v1beta1";
/// The Service the APIService points at (the name KEDA's chart gives it).
pub const METRICS_SERVICE: &str = "keda-metrics-apiserver";
/// The name the adapter checks in the operator's gRPC certificate
/// (`--metrics-service-grpc-authority`).
pub const OPERATOR_GRPC_AUTHORITY: &str = "keda-operator.keda.svc.cluster.local";
/// The user both processes run as.
pub const KEDA_USER: &str = "kube-ocr-keda";
const FIELD_MANAGER: &str = "kube-ocr-e2e-keda";
/// Start order of the two processes among the control plane's components (0 to 3): a
/// watchdog waits for those with a higher one, so KEDA stops before the apiserver.
const OPERATOR_ORDER: usize = 10;
const ADAPTER_ORDER: usize = 11;

/// Everything that can go wrong starting KEDA.
#[derive(Debug, thiserror::Error)]
pub enum KedaError {
    /// `keda`, `keda-adapter` or the CRDs are not where `make setup` puts them.
    #[error("KEDA {KEDA_VERSION} missing: {missing}; run `make setup` (or `make keda`)")]
    Missing { missing: String },

    /// A file could not be read or written.
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CRD file is not a CRD.
    #[error("parse the CRD in {path}: {reason}", path = path.display())]
    ParseCrd { path: PathBuf, reason: String },

    /// The apiserver refused a request.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },

    /// Certificates, clients, kubeconfigs, or a process that would not start or exited.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),

    /// A CRD was not Established in time.
    #[error("the CRD {name} is not Established after 30s: {conditions}")]
    CrdNotEstablished { name: String, conditions: String },

    /// KEDA did not become ready in time.
    #[error("KEDA not ready after {waited:?} ({last_error});\n{log_tails}")]
    NotReady { waited: Duration, last_error: String, log_tails: String },
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KedaError {
    let what = what.into();
    move |source| KedaError::Kube { what, source }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KedaError + use<> {
    let path = path.to_owned();
    move |source| KedaError::Io { action, path, source }
}

/// How to start KEDA.
#[derive(Debug, Clone)]
pub struct KedaOptions {
    /// Where `keda` and `keda-adapter` are; see [`KedaOptions::default`].
    pub bin_dir: PathBuf,
    /// Where KEDA's CRD YAMLs are.
    pub crd_dir: PathBuf,
    /// How long KEDA may take to become ready (both processes up, the external metrics API
    /// answering through the apiserver).
    pub ready_timeout: Duration,
    /// How long a process may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_grace: Duration,
}

impl Default for KedaOptions {
    /// `$KUBE_OCR_KEDA_BIN` (and `crds` next to it), else where `make setup` puts KEDA:
    /// `${KUBE_OCR_CACHE:-~/.cache/kube-ocr}/keda-<version>/{bin,crds}`.
    fn default() -> Self {
        let (bin_dir, crd_dir) = match std::env::var_os("KUBE_OCR_KEDA_BIN").filter(|dir| !dir.is_empty()) {
            Some(dir) => {
                let bin = PathBuf::from(dir);
                let crds = bin.parent().unwrap_or(Path::new("/")).join("crds");
                (bin, crds)
            }
            None => (keda_bin_dir(&cache_root(), KEDA_VERSION), keda_crd_dir(&cache_root(), KEDA_VERSION)),
        };
        KedaOptions { bin_dir, crd_dir, ready_timeout: Duration::from_secs(90), stop_grace: Duration::from_secs(10) }
    }
}

/// The loopback ports KEDA listens on.
#[derive(Debug, Clone, Copy)]
pub struct KedaPorts {
    /// The operator's Prometheus metrics.
    pub operator_metrics: u16,
    /// The operator's `/healthz` and `/readyz`.
    pub operator_health: u16,
    /// The operator's gRPC metrics service, which the adapter asks for metric values.
    pub operator_grpc: u16,
    /// The adapter's external metrics API (HTTPS), which the apiserver proxies to.
    pub adapter: u16,
    /// The adapter's Prometheus metrics (it binds all interfaces: `:<port>`).
    pub adapter_metrics: u16,
}

/// A running KEDA; dropping it unregisters the external metrics API and stops both processes.
#[derive(Debug)]
pub struct Keda {
    /// Operator, then adapter.
    components: Vec<Component>,
    admin_config: kube::Config,
    ports: KedaPorts,
    dir: PathBuf,
}

impl Keda {
    /// [`Keda::start_with`] the default options.
    pub async fn start(cluster: &LocalControlPlane) -> Result<Keda, KedaError> {
        Self::start_with(cluster, KedaOptions::default()).await
    }

    /// Installs KEDA's CRDs, creates the namespace `keda`, starts the operator and the
    /// adapter, registers the external metrics API, and returns once the operator is ready
    /// and `GET /apis/external.metrics.k8s.io/v1beta1` answers through the apiserver.
    pub async fn start_with(cluster: &LocalControlPlane, options: KedaOptions) -> Result<Keda, KedaError> {
        let started = Instant::now();
        let operator_bin = options.bin_dir.join("keda");
        let adapter_bin = options.bin_dir.join("keda-adapter");
        let missing = [&operator_bin, &adapter_bin, &options.crd_dir.join("keda.sh_scaledobjects.yaml")]
            .into_iter()
            .filter(|path| !path.is_file())
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(KedaError::Missing { missing: missing.join(", ") });
        }

        let client = cluster.client()?;
        install_crds(&client, &options.crd_dir).await?;
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(KEDA_NAMESPACE.to_owned()), ..Default::default() },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .patch(KEDA_NAMESPACE, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&namespace))
            .await
            .map_err(kube_error("create the namespace keda"))?;

        let dir = cluster.dir().join("keda");
        let operator_certs = dir.join("operator-certs");
        let adapter_certs = dir.join("adapter-certs");
        write_certificates(cluster, &operator_certs, &adapter_certs)?;
        let kubeconfig = cluster.write_kubeconfig_for_user(KEDA_USER, &["system:masters"])?;

        // A port found free may be taken before KEDA binds it: then start again on fresh ones.
        let mut attempt = 1;
        loop {
            let free = free_loopback_ports(5)?;
            let ports = KedaPorts {
                operator_metrics: free[0],
                operator_health: free[1],
                operator_grpc: free[2],
                adapter: free[3],
                adapter_metrics: free[4],
            };
            let mut keda =
                Keda { components: Vec::new(), admin_config: cluster.admin_config().clone(), ports, dir: dir.clone() };
            let operator_args = operator_args(&operator_bin, &kubeconfig, &operator_certs, ports);
            let adapter_args = adapter_args(&adapter_bin, &kubeconfig, &adapter_certs, ports);
            let outcome = async {
                keda.spawn(cluster, "keda-operator", OPERATOR_ORDER, operator_args, options.stop_grace)?;
                keda.spawn(cluster, "keda-adapter", ADAPTER_ORDER, adapter_args, options.stop_grace)?;
                register_api_service(&client, &cluster.pki().ca_pem(), ports.adapter).await?;
                keda.wait_ready(&client, options.ready_timeout).await
            }
            .await;
            match outcome {
                Ok(()) => {
                    info!(elapsed_ms = started.elapsed().as_millis() as u64, ?ports, "KEDA ready");
                    return Ok(keda);
                }
                Err(KedaError::ControlPlane(err)) if err.is_port_clash() && attempt < 3 => {
                    warn!(attempt, error = %err, "KEDA lost a port; retrying with fresh ports");
                    attempt += 1;
                }
                // Dropping `keda` stops what was started.
                Err(err) => return Err(err),
            }
        }
    }

    fn spawn(
        &mut self,
        cluster: &LocalControlPlane,
        name: &'static str,
        order: usize,
        args: Vec<OsString>,
        grace: Duration,
    ) -> Result<(), KedaError> {
        // `env` sets KEDA's variables and execs the binary, keeping the pid.
        let component = Component::spawn(ComponentSpec {
            name,
            program: Path::new("env"),
            args,
            log: cluster.log_dir().join(format!("{name}.log")),
            run_dir: &cluster.dir().join("run"),
            order,
            grace,
            orphan_dir: None,
        })?;
        self.components.push(component);
        Ok(())
    }

    async fn wait_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<(), KedaError> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            let last_error = match self.ready(client).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if started.elapsed() > timeout {
                return Err(KedaError::NotReady {
                    waited: started.elapsed(),
                    last_error,
                    log_tails: self.log_tails(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The operator's `/readyz` says ok and the apiserver serves the external metrics API's
    /// discovery from the adapter.
    async fn ready(&self, client: &kube::Client) -> Result<(), String> {
        let (status, body) = crate::plain_http::get(Ipv4Addr::LOCALHOST, self.ports.operator_health, "/readyz").await?;
        if status != 200 {
            return Err(format!("operator /readyz: {status} {body}"));
        }
        let request = http::Request::get(EXTERNAL_METRICS_API).body(Vec::new()).map_err(|e| e.to_string())?;
        let body = client.request_text(request).await.map_err(|e| format!("GET {EXTERNAL_METRICS_API}: {e}"))?;
        if !body.contains("\"APIResourceList\"") {
            return Err(format!("GET {EXTERNAL_METRICS_API}: {body}"));
        }
        Ok(())
    }

    /// Fails with the log tail of KEDA's first process that has exited.
    pub fn check_running(&mut self) -> Result<(), KedaError> {
        for component in &mut self.components {
            if let Some(status) = component.exit_status() {
                return Err(component.exited_error(status).into());
            }
        }
        Ok(())
    }

    pub fn ports(&self) -> KedaPorts {
        self.ports
    }

    /// The operator's log.
    pub fn operator_log(&self) -> &Path {
        self.components[0].log()
    }

    /// The adapter's log.
    pub fn adapter_log(&self) -> &Path {
        self.components[1].log()
    }

    /// The last `lines` lines of both logs (`--- <name> (<path>):` before each), for a
    /// test's failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        self.components
            .iter()
            .map(|c| format!("--- {} ({}):\n{}", c.name(), c.log().display(), c.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Where KEDA's certificates are (inside the cluster dir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unregisters the external metrics API (so that the apiserver's discovery stays whole)
    /// and stops the adapter, then the operator.
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.components.is_empty() {
            return;
        }
        if std::thread::panicking() {
            self.keep_logs();
        }
        unregister_api_service(self.admin_config.clone());
        for mut component in self.components.drain(..).rev() {
            let outcome = component.stop();
            if outcome.killed {
                warn!(component = outcome.component, "needed SIGKILL");
            }
        }
    }

    fn keep_logs(&self) {
        let kept = std::env::temp_dir().join(format!("kube-ocr-keda-logs-{}", std::process::id()));
        if std::fs::create_dir_all(&kept).is_ok() {
            for component in &self.components {
                if let Some(name) = component.log().file_name() {
                    let _ = std::fs::copy(component.log(), kept.join(name));
                }
            }
            eprintln!("KEDA: a test panicked; its logs kept in {}", kept.display());
        }
    }
}

impl Drop for Keda {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The operator: no leader election, no certificate rotation (the harness writes the
/// certificates), every port on loopback.
fn operator_args(program: &Path, kubeconfig: &Path, cert_dir: &Path, ports: KedaPorts) -> Vec<OsString> {
    let mut args = env_args(program);
    args.extend(flags([
        ("kubeconfig", p(kubeconfig)),
        ("metrics-bind-address", s(format!("127.0.0.1:{}", ports.operator_metrics))),
        ("health-probe-bind-address", s(format!("127.0.0.1:{}", ports.operator_health))),
        ("metrics-service-bind-address", s(format!("127.0.0.1:{}", ports.operator_grpc))),
        ("leader-elect", s("false")),
        ("enable-cert-rotation", s("false")),
        ("cert-dir", p(cert_dir)),
        ("zap-encoder", s("console")),
        ("zap-time-encoding", s("rfc3339nano")),
    ]));
    args
}

/// The adapter: the external metrics API on loopback, the operator's gRPC service at
/// 127.0.0.1, and the cluster's kubeconfig for its lister, its delegated authentication and
/// authorization, and its controller-runtime client.
fn adapter_args(program: &Path, kubeconfig: &Path, cert_dir: &Path, ports: KedaPorts) -> Vec<OsString> {
    let mut args = env_args(program);
    args.extend(flags([
        ("secure-port", s(ports.adapter)),
        ("bind-address", s("127.0.0.1")),
        ("cert-dir", p(cert_dir)),
        ("tls-cert-file", p(&cert_dir.join("serving.crt"))),
        ("tls-private-key-file", p(&cert_dir.join("serving.key"))),
        ("kubeconfig", p(kubeconfig)),
        ("lister-kubeconfig", p(kubeconfig)),
        ("authentication-kubeconfig", p(kubeconfig)),
        ("authorization-kubeconfig", p(kubeconfig)),
        ("metrics-service-address", s(format!("127.0.0.1:{}", ports.operator_grpc))),
        ("metrics-service-grpc-authority", s(OPERATOR_GRPC_AUTHORITY)),
        ("port", s(ports.adapter_metrics)),
        ("zap-encoder", s("console")),
        ("zap-time-encoding", s("rfc3339nano")),
    ]));
    args
}

/// `env` arguments: KEDA's variables (every namespace watched), then the program.
fn env_args(program: &Path) -> Vec<OsString> {
    let mut args = vec![
        OsString::from("WATCH_NAMESPACE="),
        OsString::from(format!("KEDA_CLUSTER_OBJECT_NAMESPACE={KEDA_NAMESPACE}")),
        OsString::from(format!("POD_NAMESPACE={KEDA_NAMESPACE}")),
    ];
    args.push(program.as_os_str().to_owned());
    args
}

fn flags<const N: usize>(pairs: [(&str, OsString); N]) -> Vec<OsString> {
    pairs
        .into_iter()
        .map(|(flag, value)| {
            let mut arg = OsString::from(format!("--{flag}="));
            arg.push(value);
            arg
        })
        .collect()
}

fn s(value: impl ToString) -> OsString {
    value.to_string().into()
}

fn p(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

/// `ca.crt`, `tls.crt` and `tls.key` in each `--cert-dir`, as KEDA reads them: the operator's
/// gRPC serving certificate, and the adapter's gRPC client certificate, both from the
/// cluster CA, which each side trusts. The adapter's serving certificate for the apiserver
/// is `serving.crt`/`serving.key`.
fn write_certificates(cluster: &LocalControlPlane, operator: &Path, adapter: &Path) -> Result<(), KedaError> {
    let pki = cluster.pki();
    let names = |service: &str| {
        vec![
            format!("{service}.{KEDA_NAMESPACE}.svc.cluster.local"),
            format!("{service}.{KEDA_NAMESPACE}.svc"),
            format!("{service}.{KEDA_NAMESPACE}"),
            service.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ]
    };
    let grpc_server = pki.issue_serving("keda-operator", &names("keda-operator"))?;
    let grpc_client = pki.issue_client("keda-metrics-apiserver", &[])?;
    let serving = pki.issue_serving(METRICS_SERVICE, &names(METRICS_SERVICE))?;
    let files: [(&Path, &str, &str); 7] = [
        (operator, "ca.crt", &pki.ca_pem()),
        (operator, "tls.crt", &grpc_server.cert_pem),
        (operator, "tls.key", &grpc_server.key_pem),
        (adapter, "ca.crt", &pki.ca_pem()),
        (adapter, "tls.crt", &grpc_client.cert_pem),
        (adapter, "tls.key", &grpc_client.key_pem),
        (adapter, "serving.crt", &serving.cert_pem),
    ];
    for dir in [operator, adapter] {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    }
    for (dir, name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(io_error("write", &path))?;
    }
    let key = adapter.join("serving.key");
    std::fs::write(&key, &serving.key_pem).map_err(io_error("write", &key))?;
    Ok(())
}

/// Applies every CRD in `dir` (server-side, idempotent) and waits until each is Established.
/// All of them, `eventing.keda.sh` included: the operator runs the CloudEventSource
/// controllers too and exits without their CRDs.
async fn install_crds(client: &kube::Client, dir: &Path) -> Result<(), KedaError> {
    let mut paths = std::fs::read_dir(dir)
        .map_err(io_error("read", dir))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect::<Vec<_>>();
    paths.sort();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
        let crd: CustomResourceDefinition = serde_norway::from_str(&text)
            .map_err(|e| KedaError::ParseCrd { path: path.clone(), reason: e.to_string() })?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .map_err(kube_error(format!("apply the CRD {name}")))?;
        names.push(name);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = crds.get(&name).await.map_err(kube_error(format!("get the CRD {name}")))?;
            let conditions = crd.status.and_then(|status| status.conditions).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
                break;
            }
            if Instant::now() > deadline {
                return Err(KedaError::CrdNotEstablished { name, conditions: format!("{conditions:?}") });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The Service `keda/keda-metrics-apiserver` (ExternalName 127.0.0.1) and the APIService
/// `v1beta1.external.metrics.k8s.io` on it, trusting the cluster CA.
async fn register_api_service(client: &kube::Client, ca_pem: &str, port: u16) -> Result<(), KedaError> {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": METRICS_SERVICE, "namespace": KEDA_NAMESPACE },
        "spec": {
            "type": "ExternalName",
            "externalName": "127.0.0.1",
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        },
    }))
    .expect("a valid Service");
    Api::<Service>::namespaced(client.clone(), KEDA_NAMESPACE)
        .patch(METRICS_SERVICE, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&service))
        .await
        .map_err(kube_error(format!("apply the Service {KEDA_NAMESPACE}/{METRICS_SERVICE}")))?;
    let mut api_service: APIService = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": { "name": EXTERNAL_METRICS_API_SERVICE, "labels": { "app.kubernetes.io/part-of": "keda-operator" } },
        "spec": {
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": { "namespace": KEDA_NAMESPACE, "name": METRICS_SERVICE, "port": port },
        },
    }))
    .expect("a valid APIService");
    if let Some(spec) = api_service.spec.as_mut() {
        spec.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    Api::<APIService>::all(client.clone())
        .patch(EXTERNAL_METRICS_API_SERVICE, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&api_service))
        .await
        .map_err(kube_error(format!("apply the APIService {EXTERNAL_METRICS_API_SERVICE}")))?;
    Ok(())
}

/// Deletes the APIService and its Service, best effort, from a thread of its own (this runs
/// in `drop`, maybe inside a runtime, maybe after the control plane has gone): an APIService
/// nobody serves makes the apiserver's discovery incomplete, which stalls the controller
/// manager's namespace deletion and garbage collection.
fn unregister_api_service(admin_config: kube::Config) {
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let client = kube::Client::try_from(admin_config).map_err(|e| e.to_string())?;
            let delete = async {
                let api_services = Api::<APIService>::all(client.clone());
                api_services.delete(EXTERNAL_METRICS_API_SERVICE, &DeleteParams::default()).await.map(|_| ())?;
                let services = Api::<Service>::namespaced(client, KEDA_NAMESPACE);
                services.delete(METRICS_SERVICE, &DeleteParams::default()).await.map(|_| ())
            };
            match tokio::time::timeout(Duration::from_secs(5), delete).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("timed out after 5s".to_owned()),
            }
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the thread panicked".to_owned()));
    if let Err(err) = outcome {
        warn!(error = %err, "could not unregister KEDA's external metrics APIService");
    }
}

/// `count` distinct ports that were free on 127.0.0.1 a moment ago (every listener is held
/// until all are reserved).
fn free_loopback_ports(count: usize) -> Result<Vec<u16>, KedaError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ControlPlaneError::ReservePorts)?;
    Ok(listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ControlPlaneError::ReservePorts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_get_keda_variables_and_loopback_ports() {
        let ports =
            KedaPorts { operator_metrics: 1, operator_health: 2, operator_grpc: 3, adapter: 4, adapter_metrics: 5 };
        let operator = operator_args(Path::new("/b/keda"), Path::new("/k"), Path::new("/c"), ports);
        assert_eq!(operator[0], OsString::from("WATCH_NAMESPACE="));
        assert_eq!(operator[3], OsString::from("/b/keda"));
        assert!(operator.contains(&OsString::from("--metrics-service-bind-address=127.0.0.1:3")));
        assert!(operator.contains(&OsString::from("--leader-elect=false")));
        let adapter = adapter_args(Path::new("/b/keda-adapter"), Path::new("/k"), Path::new("/c"), ports);
        assert!(adapter.contains(&OsString::from("--metrics-service-address=127.0.0.1:3")));
        assert!(adapter.contains(&OsString::from("--secure-port=4")));
        assert!(adapter.contains(&OsString::from("--tls-cert-file=/c/serving.crt")));
    }
}

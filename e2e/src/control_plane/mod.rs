//! A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC and the Node
//! authorizer, kubeadm's admission plugins), kube-controller-manager and kube-scheduler, from
//! the binaries `make setup` builds. The nodes are `crate::node`'s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_ocr_e2e::control_plane::ControlPlaneError> {
//! use kube_ocr_e2e::control_plane::LocalControlPlane;
//! // One control plane per test binary, isolated by namespace:
//! let cluster = LocalControlPlane::shared()?;
//! let namespace = cluster.create_namespace("my-test").await?;
//! let client = cluster.client()?;
//! # Ok(()) }
//! ```
//!
//! Stopping is synchronous and happens on drop (also while a test panics) or through
//! [`LocalControlPlane::stop`]; components never outlive the process (see `process`).

mod components;
mod dir;
mod error;
mod kubeconfig;
mod pki;
mod ports;
mod process;
mod readiness;
mod shared;

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

pub use components::{Binaries, SERVICE_ACCOUNT_ISSUER, SERVICE_CIDR, default_bin_dir};
pub use error::ControlPlaneError;
pub use kubeconfig::{CLUSTER_NAME, Credentials};
pub use pki::{APISERVER_KUBELET_CLIENT, APISERVER_SANS, IssuedCertificate, Pki};
pub use process::{StopOutcome, is_alive};

use components::Ports;
use dir::ClusterDir;
pub(crate) use process::{Component, ComponentSpec};

/// The identity of the admin kubeconfig: `system:masters` bypasses RBAC.
pub const ADMIN_USER: &str = "kube-ocr-admin";
const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
const SCHEDULER_USER: &str = "system:kube-scheduler";

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Where etcd, kube-apiserver, ... are; see [`default_bin_dir`].
    pub bin_dir: PathBuf,
    /// A fixed directory (reused, wiped first), or `None` for a fresh temp dir.
    pub dir: Option<PathBuf>,
    /// Where the apiserver listens and what it advertises: loopback for host processes
    /// only, the host's address on the node network for real nodes
    /// ([`crate::node::ClusterNetwork::host_ip`]). etcd and the controllers stay on loopback.
    pub listen_address: Ipv4Addr,
    /// How long a node may go without renewing its lease before it is NotReady (the
    /// controller manager's `--node-monitor-grace-period`); `None` keeps Kubernetes' default.
    /// Node-loss tests shorten it, with a kubelet lease to match.
    pub node_monitor_grace_period: Option<Duration>,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
    /// How long a component may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_grace: Duration,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            bin_dir: default_bin_dir(),
            dir: None,
            listen_address: Ipv4Addr::LOCALHOST,
            node_monitor_grace_period: None,
            ready_timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(15),
        }
    }
}

/// A component's process, for tests and state files.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub name: &'static str,
    pub pid: i32,
    /// The process group of the component and its watchdog.
    pub process_group: i32,
    pub log: PathBuf,
}

/// What stopping took.
#[derive(Debug, Clone)]
pub struct StopReport {
    pub elapsed: Duration,
    /// In stop order (the reverse of the start order).
    pub components: Vec<StopOutcome>,
}

impl StopReport {
    /// Every component exited on SIGTERM within its grace period.
    pub fn clean(&self) -> bool {
        self.components.iter().all(|c| !c.killed)
    }
}

/// A running control plane; dropping it stops every component and removes what it wrote.
#[derive(Debug)]
pub struct LocalControlPlane {
    options: ControlPlaneOptions,
    binaries: Binaries,
    dir: ClusterDir,
    pki: Pki,
    apiserver_url: String,
    kubeconfig: PathBuf,
    admin_config: kube::Config,
    /// In start order.
    components: Vec<Component>,
}

impl LocalControlPlane {
    /// Starts etcd, the apiserver, the controller manager and the scheduler, and returns once
    /// the apiserver is ready, both controllers hold their leases and the controller manager
    /// has created the `default` ServiceAccount and the root CA ConfigMap. Retries with fresh
    /// ports if a component lost its port to another process in the meantime.
    pub async fn start(options: ControlPlaneOptions) -> Result<LocalControlPlane, ControlPlaneError> {
        let binaries = Binaries::locate(&options.bin_dir)?;
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match Self::start_once(&options, &binaries).await {
                Err(err) if err.is_port_clash() && attempt < 3 => {
                    warn!(attempt, error = %err, "a component lost its port; retrying with fresh ports");
                    attempt += 1;
                }
                Err(err) => return Err(err),
                Ok(plane) => {
                    info!(
                        dir = %plane.dir().display(),
                        apiserver = %plane.apiserver_url,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "control plane ready"
                    );
                    return Ok(plane);
                }
            }
        }
    }

    async fn start_once(options: &ControlPlaneOptions, binaries: &Binaries) -> Result<Self, ControlPlaneError> {
        let dir = ClusterDir::prepare(options.dir.as_deref())?;
        let pki = Pki::generate(&dir.path().join("pki"), &[options.listen_address.to_string()])?;
        let ports = Ports::from_free(&ports::free_loopback_ports(Ports::COUNT)?);
        let apiserver_url = format!("https://{}:{}", options.listen_address, ports.apiserver);
        let kubeconfig = dir.path().join("kubeconfig");
        let admin = kubeconfig::render(
            &apiserver_url,
            &pki.ca_pem(),
            ADMIN_USER,
            &Credentials::ClientCertificate(pki.issue_client(ADMIN_USER, &["system:masters"])?),
        );
        kubeconfig::write(&kubeconfig, &admin)?;
        let admin_config = kubeconfig::client_config(ADMIN_USER, &admin).await?;
        // From here on, dropping `plane` on any error stops what was started.
        let mut plane = LocalControlPlane {
            options: options.clone(),
            binaries: binaries.clone(),
            dir,
            pki,
            apiserver_url,
            kubeconfig,
            admin_config,
            components: Vec::new(),
        };

        let data_dir = plane.dir().join("etcd");
        plane.spawn("etcd", &binaries.etcd, components::etcd_args(&data_dir, ports))?;
        let apiserver_args =
            components::apiserver_args(plane.dir(), options.listen_address, ports, ports.etcd_client, &plane.pki);
        plane.spawn("kube-apiserver", &binaries.kube_apiserver, apiserver_args)?;
        let client = plane.client()?;
        plane.wait_for("kube-apiserver", || readiness::apiserver_ready(client.clone())).await?;

        let kcm_kubeconfig = plane.write_kubeconfig_for_user(CONTROLLER_MANAGER_USER, &[])?;
        let kcm_args =
            components::controller_manager_args(&kcm_kubeconfig, ports, &plane.pki, options.node_monitor_grace_period);
        plane.spawn("kube-controller-manager", &binaries.kube_controller_manager, kcm_args)?;
        let scheduler_kubeconfig = plane.write_kubeconfig_for_user(SCHEDULER_USER, &[])?;
        let scheduler_args = components::scheduler_args(&scheduler_kubeconfig, ports);
        plane.spawn("kube-scheduler", &binaries.kube_scheduler, scheduler_args)?;
        plane.wait_for("kube-controller-manager", || readiness::controller_manager_ready(client.clone())).await?;
        plane.wait_for("kube-scheduler", || readiness::scheduler_ready(client.clone())).await?;
        Ok(plane)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: Vec<std::ffi::OsString>,
    ) -> Result<(), ControlPlaneError> {
        let component = Component::spawn(ComponentSpec {
            name,
            program,
            args,
            log: self.log_dir().join(format!("{name}.log")),
            run_dir: &self.dir().join("run"),
            order: self.components.len(),
            grace: self.options.stop_grace,
            orphan_dir: (self.components.is_empty() && matches!(self.dir, ClusterDir::Temp(_))).then(|| self.dir()),
        })?;
        self.components.push(component);
        Ok(())
    }

    /// Polls `check` until it says ready, failing early if any component exits.
    async fn wait_for<F, Fut>(&mut self, component: &'static str, mut check: F) -> Result<(), ControlPlaneError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let started = Instant::now();
        loop {
            self.check_running()?;
            let last_error = match check().await {
                Ok(()) => {
                    info!(component, elapsed_ms = started.elapsed().as_millis() as u64, "ready");
                    return Ok(());
                }
                Err(err) => err,
            };
            if started.elapsed() > self.options.ready_timeout {
                let (log, tail) = self
                    .components
                    .iter()
                    .find(|c| c.name() == component)
                    .map(|c| (c.log().to_owned(), c.log_tail(30)))
                    .unwrap_or_default();
                return Err(ControlPlaneError::ComponentNotReady {
                    component,
                    waited: started.elapsed(),
                    last_error,
                    log,
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails with the log tail of the first component that has exited.
    pub fn check_running(&mut self) -> Result<(), ControlPlaneError> {
        for component in &mut self.components {
            if let Some(status) = component.exit_status() {
                return Err(component.exited_error(status));
            }
        }
        Ok(())
    }

    /// A client with the admin kubeconfig's identity (`system:masters`). Call it inside the
    /// tokio runtime that will use the client: a kube client is bound to the runtime it was
    /// created in, so a shared control plane hands out clients rather than holding one.
    pub fn client(&self) -> Result<kube::Client, ControlPlaneError> {
        kube::Client::try_from(self.admin_config.clone())
            .map_err(|source| ControlPlaneError::CreateClient { user: ADMIN_USER.to_owned(), source })
    }

    /// The admin client configuration, e.g. to adjust timeouts before building a client.
    pub fn admin_config(&self) -> &kube::Config {
        &self.admin_config
    }

    /// A client authenticated as `user` in `groups` by a fresh client certificate. With no
    /// RBAC bindings it may do what `system:authenticated` may: discovery, self reviews.
    pub async fn client_for_user(&self, user: &str, groups: &[&str]) -> Result<kube::Client, ControlPlaneError> {
        let credentials = Credentials::ClientCertificate(self.pki.issue_client(user, groups)?);
        self.client_with(user, &credentials).await
    }

    /// A client with the token of ServiceAccount `namespace/name` (TokenRequest API, one hour),
    /// as a pod running under that ServiceAccount would have.
    pub async fn client_for_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, ControlPlaneError> {
        let token = self.service_account_token(namespace, name).await?;
        self.client_with(&format!("system:serviceaccount:{namespace}:{name}"), &Credentials::Token(token)).await
    }

    /// A token for ServiceAccount `namespace/name`, valid for an hour.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, ControlPlaneError> {
        let token_error = |reason: String| ControlPlaneError::RequestToken {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reason,
        };
        let accounts = Api::<ServiceAccount>::namespaced(self.client()?, namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..TokenRequestSpec::default() }),
            ..TokenRequest::default()
        };
        let response = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| token_error(e.to_string()))?;
        response
            .status
            .and_then(|status| status.token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| token_error("the TokenRequest came back without a token".to_owned()))
    }

    async fn client_with(&self, user: &str, credentials: &Credentials) -> Result<kube::Client, ControlPlaneError> {
        let text = kubeconfig::render(&self.apiserver_url, &self.pki.ca_pem(), user, credentials);
        let config = kubeconfig::client_config(user, &text).await?;
        kube::Client::try_from(config)
            .map_err(|source| ControlPlaneError::CreateClient { user: user.to_owned(), source })
    }

    /// Writes a kubeconfig for `user` in `groups` (for kubectl, helm or a node's kubelet, e.g.
    /// `system:node:<name>` in `system:nodes`) and returns its path, inside the cluster dir.
    pub fn write_kubeconfig_for_user(&self, user: &str, groups: &[&str]) -> Result<PathBuf, ControlPlaneError> {
        let credentials = Credentials::ClientCertificate(self.pki.issue_client(user, groups)?);
        self.write_kubeconfig(user, &credentials)
    }

    /// Writes a kubeconfig with the given credentials and returns its path.
    pub fn write_kubeconfig(&self, user: &str, credentials: &Credentials) -> Result<PathBuf, ControlPlaneError> {
        let file_name =
            user.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>();
        let path = self.dir().join("kubeconfigs").join(format!("{file_name}.kubeconfig"));
        kubeconfig::write(&path, &kubeconfig::render(&self.apiserver_url, &self.pki.ca_pem(), user, credentials))?;
        Ok(path)
    }

    /// Creates a namespace named `<prefix>-<random>` and waits for its `default`
    /// ServiceAccount (pods are refused until it exists). Tests sharing a control plane each
    /// work in their own.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, ControlPlaneError> {
        let namespaces = Api::<Namespace>::all(self.client()?);
        let template = Namespace {
            metadata: ObjectMeta { generate_name: Some(format!("{prefix}-")), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        let namespace_error = |namespace: &str, reason: String| ControlPlaneError::CreateNamespace {
            namespace: namespace.to_owned(),
            reason,
        };
        let created = namespaces
            .create(&PostParams::default(), &template)
            .await
            .map_err(|e| namespace_error(&format!("{prefix}-*"), e.to_string()))?;
        let name = created.metadata.name.unwrap_or_default();
        let accounts = Api::<ServiceAccount>::namespaced(self.client()?, &name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match accounts.get_opt("default").await {
                Ok(Some(_)) => return Ok(name),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(None) => return Err(namespace_error(&name, "no default ServiceAccount after 30s".into())),
                Err(e) => return Err(namespace_error(&name, e.to_string())),
            }
        }
    }

    /// The admin kubeconfig (`<dir>/kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://<listen address>:<port>`.
    pub fn apiserver_url(&self) -> &str {
        &self.apiserver_url
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The CA certificate every client of this control plane trusts.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.pki.ca_cert_path()
    }

    /// The cluster directory: etcd data, pki, kubeconfigs, logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<component>.log` for each component.
    pub fn log_dir(&self) -> PathBuf {
        self.dir().join("logs")
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The components in start order.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.components
            .iter()
            .map(|c| ComponentInfo {
                name: c.name(),
                pid: c.pid(),
                process_group: c.process_group(),
                log: c.log().to_owned(),
            })
            .collect()
    }

    /// Stops every component (in reverse start order: SIGTERM, SIGKILL after the grace
    /// period) and removes the cluster dir (for a fixed dir, all but the logs).
    pub fn stop(mut self) -> StopReport {
        self.teardown()
    }

    fn teardown(&mut self) -> StopReport {
        let started = Instant::now();
        if std::thread::panicking() {
            self.keep_logs();
        }
        let components = self.components.drain(..).rev().map(|mut c| c.stop()).collect::<Vec<_>>();
        if let Err(err) = self.dir.remove() {
            warn!(error = %err, "could not remove the control plane dir");
        }
        let report = StopReport { elapsed: started.elapsed(), components };
        if !report.components.is_empty() {
            info!(elapsed_ms = report.elapsed.as_millis() as u64, clean = report.clean(), "control plane stopped");
        }
        report
    }

    /// A panicking test's temp dir is about to go: keep its logs where the failure message
    /// says.
    fn keep_logs(&self) {
        if !matches!(self.dir, ClusterDir::Temp(_)) {
            return;
        }
        let kept = std::env::temp_dir().join(format!(
            "kube-ocr-logs-{}-{}",
            std::process::id(),
            self.apiserver_url.rsplit(':').next().unwrap_or("0")
        ));
        if std::fs::create_dir_all(&kept).is_ok() {
            for component in &self.components {
                if let Some(name) = component.log().file_name() {
                    let _ = std::fs::copy(component.log(), kept.join(name));
                }
            }
            eprintln!("kube-ocr control plane: a test panicked; component logs kept in {}", kept.display());
        }
    }
}

impl Drop for LocalControlPlane {
    fn drop(&mut self) {
        self.teardown();
    }
}

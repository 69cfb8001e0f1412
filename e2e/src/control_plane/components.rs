//! The four components' binaries and command lines: the flags a kubeadm cluster runs them
//! with, minus what needs a kubelet, on loopback ports.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ControlPlaneError;
use super::pki::{FRONT_PROXY_CLIENT, Pki};
use crate::toolchain::{KUBERNETES_VERSION, kubernetes_bin_dir};

/// The service CIDR; its first address is the `kubernetes` Service's ClusterIP, which the
/// apiserver certificate names. A /16 because every OcrService takes three ClusterIPs and
/// the operator benchmark creates 1,000 of them.
pub const SERVICE_CIDR: &str = "10.0.0.0/16";
/// The issuer in service-account tokens, as in a default cluster.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Where etcd, kube-apiserver, ..., kubectl and helm are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, failing with a hint to `make setup` when any is missing.
    pub fn locate(dir: &Path) -> Result<Binaries, ControlPlaneError> {
        let binaries = Binaries {
            dir: dir.to_owned(),
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
            kubectl: dir.join("kubectl"),
            helm: dir.join("helm"),
        };
        let missing = [
            &binaries.etcd,
            &binaries.kube_apiserver,
            &binaries.kube_controller_manager,
            &binaries.kube_scheduler,
            &binaries.kubectl,
            &binaries.helm,
        ]
        .into_iter()
        .filter(|path| !path.is_file())
        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
        if missing.is_empty() {
            Ok(binaries)
        } else {
            Err(ControlPlaneError::LocateBinaries { dir: dir.to_owned(), missing })
        }
    }
}

/// `$KUBE_OCR_K8S_BIN`, else where `make setup` builds the pinned release:
/// `${KUBE_OCR_CACHE:-~/.cache/kube-ocr}/k8s-<version>/bin`.
pub fn default_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBE_OCR_K8S_BIN").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("KUBE_OCR_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kube-ocr"));
    kubernetes_bin_dir(&cache, KUBERNETES_VERSION)
}

/// The loopback ports of one control plane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

impl Ports {
    pub(crate) fn from_free(ports: &[u16]) -> Ports {
        Ports {
            etcd_client: ports[0],
            etcd_peer: ports[1],
            apiserver: ports[2],
            controller_manager: ports[3],
            scheduler: ports[4],
        }
    }

    pub(crate) const COUNT: usize = 5;
}

fn args<const N: usize>(pairs: [(&str, OsString); N]) -> Vec<OsString> {
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

/// A single-member etcd on plain HTTP over loopback (the apiserver's link to it is not what
/// these tests exercise). fsync is off: the data dies with the test, and it makes etcd
/// several times faster on slow disks.
pub(crate) fn etcd_args(data_dir: &Path, ports: Ports) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    args([
        ("name", s("kube-ocr")),
        ("data-dir", p(data_dir)),
        ("listen-client-urls", s(&client)),
        ("advertise-client-urls", s(&client)),
        ("listen-peer-urls", s(&peer)),
        ("initial-advertise-peer-urls", s(&peer)),
        ("initial-cluster", s(format!("kube-ocr={peer}"))),
        ("unsafe-no-fsync", s(true)),
        ("log-level", s("warn")),
    ])
}

/// RBAC and the Node authorizer on, and the default admission plugins (NamespaceLifecycle,
/// LimitRanger, ServiceAccount, PodSecurity, ResourceQuota, the admission webhooks and
/// policies, ...) plus NodeRestriction, as kubeadm enables them.
pub(crate) fn apiserver_args(dir: &Path, listen: Ipv4Addr, ports: Ports, etcd_client: u16, pki: &Pki) -> Vec<OsString> {
    args([
        ("etcd-servers", s(format!("http://127.0.0.1:{etcd_client}"))),
        ("bind-address", s(listen)),
        // The `kubernetes` Service's endpoint: real nodes reach it over their network.
        ("advertise-address", s(listen)),
        // Kubelets (real nodes) serve logs, exec and port-forward on their node IP.
        ("kubelet-client-certificate", p(&pki.apiserver_kubelet_client_cert_path())),
        ("kubelet-client-key", p(&pki.apiserver_kubelet_client_key_path())),
        ("kubelet-preferred-address-types", s("InternalIP,Hostname")),
        ("secure-port", s(ports.apiserver)),
        ("tls-cert-file", p(&pki.apiserver_cert_path())),
        ("tls-private-key-file", p(&pki.apiserver_key_path())),
        ("client-ca-file", p(&pki.ca_cert_path())),
        ("service-account-issuer", s(SERVICE_ACCOUNT_ISSUER)),
        ("service-account-key-file", p(&pki.service_account_public_key_path())),
        ("service-account-signing-key-file", p(&pki.service_account_key_path())),
        ("service-cluster-ip-range", s(SERVICE_CIDR)),
        ("authorization-mode", s("Node,RBAC")),
        ("enable-admission-plugins", s("NodeRestriction")),
        ("allow-privileged", s(true)),
        // Its default, /var/run/kubernetes, is not ours to write; nothing is generated
        // there since the serving certificate is given.
        ("cert-dir", p(&dir.join("apiserver-certs"))),
        // The aggregation layer, as kubeadm configures it, for aggregated API servers such
        // as KEDA's external metrics server (crate::keda): they trust the user the
        // apiserver names in these headers when the request comes with the front-proxy
        // client certificate. Without the flags they see every request as anonymous.
        // No --enable-aggregator-routing: with it the apiserver dials a Service's
        // EndpointSlice addresses, which may not be loopback; without it, an ExternalName
        // Service can send it to 127.0.0.1, where everything here listens.
        ("requestheader-client-ca-file", p(&pki.front_proxy_ca_cert_path())),
        ("requestheader-allowed-names", s(FRONT_PROXY_CLIENT)),
        ("requestheader-extra-headers-prefix", s("X-Remote-Extra-")),
        ("requestheader-group-headers", s("X-Remote-Group")),
        ("requestheader-username-headers", s("X-Remote-User")),
        ("proxy-client-cert-file", p(&pki.front_proxy_client_cert_path())),
        ("proxy-client-key-file", p(&pki.front_proxy_client_key_path())),
    ])
}

/// The controller manager with its own identity (`system:kube-controller-manager`), one
/// ServiceAccount per controller, the CA to sign approved CSRs, and leader election as in a
/// real cluster (a fresh cluster has no lease, so it takes it at once).
pub(crate) fn controller_manager_args(
    kubeconfig: &Path,
    ports: Ports,
    pki: &Pki,
    node_monitor_grace_period: Option<std::time::Duration>,
) -> Vec<OsString> {
    let mut all = args([
        ("kubeconfig", p(kubeconfig)),
        ("authentication-kubeconfig", p(kubeconfig)),
        ("authorization-kubeconfig", p(kubeconfig)),
        ("bind-address", s("127.0.0.1")),
        ("secure-port", s(ports.controller_manager)),
        ("service-account-private-key-file", p(&pki.service_account_key_path())),
        ("root-ca-file", p(&pki.ca_cert_path())),
        ("cluster-signing-cert-file", p(&pki.ca_cert_path())),
        ("cluster-signing-key-file", p(&pki.ca_key_path())),
        ("use-service-account-credentials", s(true)),
        ("leader-elect", s(true)),
    ]);
    if let Some(grace) = node_monitor_grace_period {
        all.extend(args([("node-monitor-grace-period", s(format!("{}s", grace.as_secs().max(1))))]));
    }
    all
}

/// The scheduler as `system:kube-scheduler`.
pub(crate) fn scheduler_args(kubeconfig: &Path, ports: Ports) -> Vec<OsString> {
    args([
        ("kubeconfig", p(kubeconfig)),
        ("authentication-kubeconfig", p(kubeconfig)),
        ("authorization-kubeconfig", p(kubeconfig)),
        ("bind-address", s("127.0.0.1")),
        ("secure-port", s(ports.scheduler)),
        ("leader-elect", s(true)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_make_setup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), "").unwrap();
        let err = Binaries::locate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("make setup"), "{err}");
        assert!(err.contains("kube-apiserver") && !err.contains("etcd,"), "{err}");
    }

    #[test]
    fn flags_are_single_arguments() {
        let ports = Ports::from_free(&[1, 2, 3, 4, 5]);
        let etcd = etcd_args(Path::new("/d/etcd"), ports);
        assert!(etcd.contains(&OsString::from("--listen-client-urls=http://127.0.0.1:1")));
        assert!(etcd.contains(&OsString::from("--initial-cluster=kube-ocr=http://127.0.0.1:2")));
    }
}

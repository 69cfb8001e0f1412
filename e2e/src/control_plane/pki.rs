//! Certificates for one control plane: a CA, the apiserver's serving certificate, the
//! service-account signing key pair, and client certificates for any user and groups.
//!
//! Everything is ECDSA P-256 (rcgen with ring cannot generate RSA keys, and Kubernetes takes
//! EC keys everywhere: TLS, client certificates, ES256 service-account tokens). Validity is
//! rcgen's default (1975 to 4096): these certificates live as long as one test process and
//! a clock jump must not break a running cluster.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::ControlPlaneError;

/// The names the apiserver answers to: loopback, the first address of the service CIDR
/// (the `kubernetes` Service's ClusterIP) and the in-cluster DNS names.
pub const APISERVER_SANS: &[&str] = &[
    "127.0.0.1",
    "10.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The common name of the client certificate the apiserver proxies aggregated API requests
/// with (`--proxy-client-cert-file`); the only name `--requestheader-allowed-names` allows.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// The user the apiserver is to kubelets (`--kubelet-client-certificate`), as kubeadm names it.
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedCertificate {
    // The key stays out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// The control plane's CA and the files the components read, in one directory.
pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Generates the CA, the apiserver certificate (for [`APISERVER_SANS`] and
    /// `extra_sans`), the apiserver's kubelet client certificate and the service-account
    /// keys into `dir`.
    pub(crate) fn generate(dir: &Path, extra_sans: &[String]) -> Result<Pki, ControlPlaneError> {
        fs::create_dir_all(dir).map_err(|e| ControlPlaneError::dir("create", dir, e))?;

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name.push(DnType::CommonName, "kube-ocr-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().map_err(|e| ControlPlaneError::cert("the CA key", e))?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| ControlPlaneError::cert("the CA", e))?;
        let pki = Pki { dir: dir.to_owned(), ca };
        write_public(&pki.ca_cert_path(), &pki.ca.pem())?;
        write_private(&pki.ca_key_path(), &ca_key_pem)?;

        let mut sans = APISERVER_SANS.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        sans.extend(extra_sans.iter().filter(|san| !sans.contains(san)).cloned().collect::<Vec<_>>());
        let apiserver = pki.issue_serving("kube-apiserver", &sans)?;
        write_public(&pki.apiserver_cert_path(), &apiserver.cert_pem)?;
        write_private(&pki.apiserver_key_path(), &apiserver.key_pem)?;

        // What the apiserver presents to kubelets (logs, exec, port-forward); kubelets trust
        // the CA and authorize this user by SubjectAccessReview, which system:masters passes.
        let kubelet_client = pki.issue_client(APISERVER_KUBELET_CLIENT, &["system:masters"])?;
        write_public(&pki.apiserver_kubelet_client_cert_path(), &kubelet_client.cert_pem)?;
        write_private(&pki.apiserver_kubelet_client_key_path(), &kubelet_client.key_pem)?;

        let sa = KeyPair::generate().map_err(|e| ControlPlaneError::cert("the service-account key", e))?;
        write_private(&pki.service_account_key_path(), &sa.serialize_pem())?;
        write_public(&pki.service_account_public_key_path(), &sa.public_key_pem())?;

        pki.generate_front_proxy()?;
        Ok(pki)
    }

    /// The aggregation layer's certificates, as kubeadm makes them: a CA of its own (so that
    /// no client certificate of the cluster CA can assert identities in headers) and the
    /// client certificate the apiserver presents to aggregated API servers (e.g. KEDA's
    /// external metrics server), which they trust through `extension-apiserver-authentication`.
    fn generate_front_proxy(&self) -> Result<(), ControlPlaneError> {
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name.push(DnType::CommonName, "kube-ocr-e2e-front-proxy-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().map_err(|e| ControlPlaneError::cert("the front-proxy CA key", e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| ControlPlaneError::cert("the front-proxy CA", e))?;
        write_public(&self.front_proxy_ca_cert_path(), &ca.pem())?;

        let what = "the front-proxy client certificate";
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, FRONT_PROXY_CLIENT);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| ControlPlaneError::cert(what, e))?;
        let cert = params.signed_by(&key, &*ca).map_err(|e| ControlPlaneError::cert(what, e))?;
        write_public(&self.front_proxy_client_cert_path(), &cert.pem())?;
        write_private(&self.front_proxy_client_key_path(), &key.serialize_pem())
    }

    /// A client certificate for `user` in `groups` (CN = user, O = each group): the identity
    /// the apiserver's x509 authenticator derives, e.g. `system:node:<name>` in `system:nodes`
    /// for a node, or any unprivileged name for RBAC tests.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<IssuedCertificate, ControlPlaneError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params.distinguished_name.push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &format!("a client certificate for {user}"))
    }

    /// A serving certificate signed by the CA, for `sans` (IP addresses or DNS names).
    pub fn issue_serving(&self, common_name: &str, sans: &[String]) -> Result<IssuedCertificate, ControlPlaneError> {
        let what = format!("a serving certificate for {common_name}");
        let mut params = CertificateParams::new(sans.to_vec()).map_err(|e| ControlPlaneError::cert(what.clone(), e))?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, &what)
    }

    fn sign(&self, mut params: CertificateParams, what: &str) -> Result<IssuedCertificate, ControlPlaneError> {
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| ControlPlaneError::cert(what, e))?;
        let cert = params.signed_by(&key, &*self.ca).map_err(|e| ControlPlaneError::cert(what, e))?;
        Ok(IssuedCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM: what every client trusts.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA key; the controller manager signs approved CertificateSigningRequests with it.
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub(crate) fn apiserver_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }

    pub(crate) fn apiserver_key_path(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }

    pub(crate) fn apiserver_kubelet_client_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.crt")
    }

    pub(crate) fn apiserver_kubelet_client_key_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.key")
    }

    pub(crate) fn service_account_key_path(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    pub(crate) fn service_account_public_key_path(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// The CA of the aggregation layer's client certificate (`--requestheader-client-ca-file`).
    pub(crate) fn front_proxy_ca_cert_path(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.crt")
    }

    pub(crate) fn front_proxy_client_cert_path(&self) -> PathBuf {
        self.dir.join("front-proxy-client.crt")
    }

    pub(crate) fn front_proxy_client_key_path(&self) -> PathBuf {
        self.dir.join("front-proxy-client.key")
    }
}

fn write_public(path: &Path, contents: &str) -> Result<(), ControlPlaneError> {
    fs::write(path, contents).map_err(|e| ControlPlaneError::dir("write", path, e))
}

/// Keys are readable by their owner only, as the components' own key loaders expect.
///
/// Atomically: the file is written beside `path` (created `0600`) and renamed over it, so a
/// process reading it (a node's kube-proxy starting while the next node's start rewrites the
/// kube-proxy kubeconfig) sees the old contents or the new, never a half-written file.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), ControlPlaneError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut file = tempfile::Builder::new()
            .prefix(".writing-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        file.write_all(contents.as_bytes())?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| ControlPlaneError::dir("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_files_the_components_read() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &[]).unwrap();
        for path in [
            pki.ca_cert_path(),
            pki.ca_key_path(),
            pki.apiserver_cert_path(),
            pki.apiserver_key_path(),
            pki.service_account_key_path(),
            pki.service_account_public_key_path(),
            pki.front_proxy_ca_cert_path(),
            pki.front_proxy_client_cert_path(),
            pki.front_proxy_client_key_path(),
        ] {
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{} is not PEM", path.display());
        }
        let client = pki.issue_client("system:node:n1", &["system:nodes"]).unwrap();
        assert!(client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    }
}

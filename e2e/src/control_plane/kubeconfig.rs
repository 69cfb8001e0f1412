//! Kubeconfig files for the control plane's users, and `kube::Config`s built from the same
//! text, so that what kubectl, helm and the Rust tests use is one thing.
//!
//! The files are JSON (a kubeconfig is YAML, and JSON is YAML) with the certificates
//! embedded: no quoting pitfalls with names like `system:node:n1`, and a file stays valid
//! when copied elsewhere.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use super::ControlPlaneError;
use super::pki::{IssuedCertificate, write_private};

/// The cluster and context name in every kubeconfig written here.
pub const CLUSTER_NAME: &str = "kube-ocr";

/// How a user proves who they are.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// x509: the apiserver takes the user from CN and the groups from O.
    ClientCertificate(IssuedCertificate),
    /// A bearer token, e.g. a ServiceAccount token from the TokenRequest API.
    Token(String),
}

/// A kubeconfig for `user` against `server`, trusting `ca_pem`.
pub fn render(server: &str, ca_pem: &str, user: &str, credentials: &Credentials) -> String {
    let user_entry = match credentials {
        Credentials::ClientCertificate(cert) => json!({
            "client-certificate-data": BASE64.encode(&cert.cert_pem),
            "client-key-data": BASE64.encode(&cert.key_pem),
        }),
        Credentials::Token(token) => json!({ "token": token }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": { "server": server, "certificate-authority-data": BASE64.encode(ca_pem) },
        }],
        "users": [{ "name": user, "user": user_entry }],
        "contexts": [{ "name": CLUSTER_NAME, "context": { "cluster": CLUSTER_NAME, "user": user } }],
        "current-context": CLUSTER_NAME,
    });
    // A `Value` of strings always serialises.
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// Writes a rendered kubeconfig; owner-only, since it holds a private key or token.
pub fn write(path: &Path, kubeconfig: &str) -> Result<(), ControlPlaneError> {
    write_private(path, kubeconfig)
}

/// The client configuration `kubeconfig` describes, as kube-rs loads it.
pub async fn client_config(user: &str, kubeconfig: &str) -> Result<kube::Config, ControlPlaneError> {
    let load_error = |source| ControlPlaneError::LoadKubeconfig { user: user.to_owned(), source };
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(load_error)?;
    kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await.map_err(load_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kube_reads_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::pki::Pki::generate(dir.path(), &[]).unwrap();
        let text = render("https://127.0.0.1:6443", &pki.ca_pem(), "system:node:n1", &Credentials::Token("t0k".into()));
        let config = client_config("system:node:n1", &text).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert!(text.contains("\"system:node:n1\""));
    }
}

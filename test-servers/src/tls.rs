//! A throwaway CA and a serving certificate for 127.0.0.1 and localhost, for servers that
//! tests run with TLS.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::TestServerError;

/// PEM files in a directory: `ca.crt` (what clients trust), `server.crt`, `server.key`.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn generate(dir: &Path) -> Result<TlsFiles, TestServerError> {
    let certificate = |what| move |source| TestServerError::Certificate { what, source };
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "kube-ocr-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().map_err(certificate("the CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(certificate("the CA"))?;
    let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let mut params = CertificateParams::new(sans).map_err(certificate("the serving certificate"))?;
    params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(certificate("the serving key"))?;
    let cert = params.signed_by(&key, &*ca).map_err(certificate("the serving certificate"))?;
    let files = TlsFiles { ca: dir.join("ca.crt"), cert: dir.join("server.crt"), key: dir.join("server.key") };
    for (path, pem) in [(&files.ca, ca.pem()), (&files.cert, cert.pem()), (&files.key, key.serialize_pem())] {
        std::fs::write(path, pem).map_err(|source| TestServerError::WriteFile { path: path.clone(), source })?;
    }
    Ok(files)
}

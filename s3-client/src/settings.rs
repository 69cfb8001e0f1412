//! What the client is told: where the server is, who it signs as, and how long a call may
//! take; checked once, when the client is made.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use crate::error::S3Error;

/// How a bucket is named in a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: what SeaweedFS, MinIO and Ceph RGW serve by default,
    /// and what works with an IP address or a name without wildcard DNS.
    #[default]
    Path,
    /// `https://bucket.endpoint/key`: what AWS S3 prefers (and requires for buckets made
    /// since 2020 in some cases). Needs wildcard DNS, and for https a wildcard
    /// certificate; a bucket name with dots does not match one.
    VirtualHosted,
}

/// The client's settings.
#[derive(Clone)]
pub struct S3Settings {
    /// `http://host[:port]` or `https://host[:port]`, without a path
    /// (e.g. `https://s3.eu-west-1.amazonaws.com`, `http://seaweedfs:8333`).
    pub endpoint: Uri,
    /// The region requests are signed for (`us-east-1` where the server has none).
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' session token (`x-amz-security-token`).
    pub session_token: Option<String>,
    pub addressing: Addressing,
    /// A PEM file of CA certificates trusted for https beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The longest one call may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("addressing", &self.addressing)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The endpoint, split into what requests are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub https: bool,
    /// `host[:port]` as given: it is both the `Host` header and what is signed.
    pub authority: String,
}

impl Endpoint {
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

impl S3Settings {
    /// The endpoint, once the settings are checked.
    pub(crate) fn check(&self) -> Result<Endpoint, S3Error> {
        let refuse = |reason: String| S3Error::Settings { reason };
        let https = match self.endpoint.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(refuse(format!(
                    "the endpoint {} is not http://host[:port] or https://host[:port]",
                    self.endpoint
                )));
            }
        };
        let authority =
            self.endpoint.authority().ok_or_else(|| refuse(format!("the endpoint {} has no host", self.endpoint)))?;
        if authority.as_str().contains('@') {
            return Err(refuse("the endpoint carries credentials; give them as the access key and secret".to_owned()));
        }
        // A path prefix would be signed as part of every key's path, which no S3 server
        // behind a rewriting proxy would verify the same way: refuse it rather than fail
        // every call with SignatureDoesNotMatch.
        if !matches!(self.endpoint.path(), "" | "/") || self.endpoint.query().is_some() {
            return Err(refuse(format!(
                "the endpoint {} has a path or a query; give only the scheme, host and port",
                self.endpoint
            )));
        }
        if self.addressing == Addressing::VirtualHosted {
            let host = authority.host().trim_start_matches('[').trim_end_matches(']');
            if host.parse::<IpAddr>().is_ok() || host == "localhost" {
                return Err(refuse(format!(
                    "virtual-hosted addressing needs a DNS name, not {host}; use path addressing"
                )));
            }
        }
        if self.region.trim().is_empty() {
            return Err(refuse("the region is empty (use us-east-1 for servers without regions)".to_owned()));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(refuse("the access key ID or the secret access key is empty".to_owned()));
        }
        if self.timeout.is_zero() {
            return Err(refuse("the timeout is zero".to_owned()));
        }
        Ok(Endpoint { https, authority: authority.as_str().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str) -> S3Settings {
        S3Settings {
            endpoint: endpoint.parse().unwrap(),
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("also-secret".into()),
            addressing: Addressing::Path,
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn refusal(settings: &S3Settings) -> String {
        match settings.check() {
            Err(S3Error::Settings { reason }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_redacts_the_secrets() {
        let shown = format!("{:?}", settings("http://127.0.0.1:8333"));
        assert!(!shown.contains("very-secret") && !shown.contains("also-secret"), "{shown}");
        assert!(shown.contains("AKID") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn splits_the_endpoint() {
        assert_eq!(
            settings("http://127.0.0.1:8333").check().unwrap(),
            Endpoint { https: false, authority: "127.0.0.1:8333".into() }
        );
        assert_eq!(
            settings("https://s3.eu-west-1.amazonaws.com/").check().unwrap(),
            Endpoint { https: true, authority: "s3.eu-west-1.amazonaws.com".into() }
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(refusal(&settings("ftp://host")).contains("not http://"));
        assert!(refusal(&settings("/just/a/path")).contains("not http://"));
        assert!(refusal(&settings("http://host/prefix")).contains("has a path"));
        assert!(refusal(&settings("http://host/?x=1")).contains("has a path"));
        assert!(refusal(&settings("http://user:pw@host")).contains("credentials"));
        let virtual_ip = S3Settings { addressing: Addressing::VirtualHosted, ..settings("http://127.0.0.1:8333") };
        assert!(refusal(&virtual_ip).contains("needs a DNS name"));
        assert!(refusal(&S3Settings { region: " ".into(), ..settings("http://h") }).contains("region"));
        assert!(refusal(&S3Settings { secret_access_key: String::new(), ..settings("http://h") }).contains("secret"));
        assert!(refusal(&S3Settings { timeout: Duration::ZERO, ..settings("http://h") }).contains("timeout"));
    }
}

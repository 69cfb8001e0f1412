//! One S3 call as an HTTP request, addressed and signed. Pure: the time is given, and
//! nothing is sent here.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use crate::date::AmzDate;
use crate::settings::{Addressing, Endpoint, S3Settings};
use crate::sigv4::{self, CanonicalParts, SigningKeyInput};

/// Sent, not signed: names the client in the server's logs.
const USER_AGENT: &str = concat!("kube-ocr-s3/", env!("CARGO_PKG_VERSION"));

/// What one call sends.
#[derive(Debug, Clone)]
pub(crate) struct Call<'a> {
    pub method: Method,
    pub bucket: &'a str,
    /// `None`: a call on the bucket itself.
    pub key: Option<&'a str>,
    /// Sub-resources and parameters (`lifecycle`), not encoded; an empty value is sent
    /// as the bare name (`?lifecycle`), as the SDKs do.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers besides `host` and the `x-amz-` ones (`content-type`, `content-md5`),
    /// lower-case names. All are signed, so that a proxy cannot change them.
    pub headers: &'a [(&'static str, &'a str)],
    pub body: Bytes,
    /// Lower-case hex SHA-256 of `body`.
    pub payload_sha256: &'a str,
}

/// Addresses and signs calls for one endpoint and identity.
#[derive(Clone)]
pub(crate) struct Signer {
    endpoint: Endpoint,
    addressing: Addressing,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Signer {
    pub(crate) fn new(settings: &S3Settings, endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            addressing: settings.addressing,
            region: settings.region.clone(),
            access_key_id: settings.access_key_id.clone(),
            secret_access_key: settings.secret_access_key.clone(),
            session_token: settings.session_token.clone(),
        }
    }

    /// The signed request for `call` at `time`. Fails only on a header value HTTP
    /// cannot carry (a content type or session token with a line break).
    pub(crate) fn request(&self, call: &Call<'_>, time: &AmzDate) -> Result<Request<Full<Bytes>>, http::Error> {
        let (host, path) = self.host_and_path(call.bucket, call.key);
        let mut headers: Vec<(&str, &str)> =
            vec![("host", &host), ("x-amz-date", time.as_str()), ("x-amz-content-sha256", call.payload_sha256)];
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token", token));
        }
        headers.extend(call.headers.iter().map(|(name, value)| (*name, *value)));
        let parts = CanonicalParts {
            method: call.method.as_str(),
            path: &path,
            query: call.query,
            headers: &headers,
            payload_sha256: call.payload_sha256,
        };
        let key = SigningKeyInput {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            region: &self.region,
        };
        let authorization = sigv4::authorization(key, time, &parts);
        let query = query_string(call.query);
        let separator = if query.is_empty() { "" } else { "?" };
        let uri = format!("{}://{host}{path}{separator}{query}", self.endpoint.scheme());
        let mut builder = Request::builder().method(call.method.clone()).uri(uri);
        for (name, value) in &headers {
            builder = builder.header(*name, *value);
        }
        builder
            .header("authorization", authorization)
            .header("user-agent", USER_AGENT)
            .body(Full::new(call.body.clone()))
    }

    /// The `Host` header and the encoded path for an object, or for the bucket when `key`
    /// is `None`.
    fn host_and_path(&self, bucket: &str, key: Option<&str>) -> (String, String) {
        let key_path = key.map(|key| format!("/{}", sigv4::uri_encode(key, false)));
        match self.addressing {
            Addressing::Path => (self.endpoint.authority.clone(), format!("/{bucket}{}", key_path.unwrap_or_default())),
            Addressing::VirtualHosted => {
                (format!("{bucket}.{}", self.endpoint.authority), key_path.unwrap_or_else(|| "/".to_owned()))
            }
        }
    }
}

/// The query as sent: encoded like the canonical query, in the caller's order.
fn query_string(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(name, value)| {
            let name = sigv4::uri_encode(name, true);
            if value.is_empty() { name } else { format!("{name}={}", sigv4::uri_encode(value, true)) }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sigv4::EMPTY_PAYLOAD_SHA256;

    fn signer(endpoint: &str, addressing: Addressing, session_token: Option<&str>) -> Signer {
        let settings = S3Settings {
            endpoint: endpoint.parse().unwrap(),
            region: "us-east-1".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
            addressing,
            ca_file: None,
            timeout: Duration::from_secs(1),
        };
        let endpoint = settings.check().unwrap();
        Signer::new(&settings, endpoint)
    }

    fn get(bucket: &'static str, key: Option<&'static str>) -> Call<'static> {
        Call {
            method: Method::GET,
            bucket,
            key,
            query: &[],
            headers: &[],
            body: Bytes::new(),
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        }
    }

    fn header<'r>(request: &'r Request<Full<Bytes>>, name: &str) -> &'r str {
        request.headers().get(name).map(|value| value.to_str().unwrap()).unwrap_or_default()
    }

    #[test]
    fn path_addressing_puts_the_bucket_in_the_path() {
        let signer = signer("http://127.0.0.1:8333", Addressing::Path, None);
        let time = AmzDate::from_unix_seconds(1_369_353_600);
        let request = signer.request(&get("docs", Some("jobs/a b/é+x.pdf")), &time).unwrap();
        assert_eq!(request.uri().to_string(), "http://127.0.0.1:8333/docs/jobs/a%20b/%C3%A9%2Bx.pdf");
        assert_eq!(header(&request, "host"), "127.0.0.1:8333");
        assert_eq!(header(&request, "x-amz-date"), "20130524T000000Z");
        assert_eq!(header(&request, "x-amz-content-sha256"), EMPTY_PAYLOAD_SHA256);
        assert!(header(&request, "authorization").contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
        let bucket = signer.request(&get("docs", None), &time).unwrap();
        assert_eq!(bucket.uri().path(), "/docs");
    }

    #[test]
    fn virtual_hosted_addressing_puts_the_bucket_in_the_host() {
        let signer = signer("https://s3.amazonaws.com", Addressing::VirtualHosted, None);
        let time = AmzDate::from_unix_seconds(1_369_353_600);
        let request = signer.request(&get("examplebucket", Some("test.txt")), &time).unwrap();
        assert_eq!(request.uri().to_string(), "https://examplebucket.s3.amazonaws.com/test.txt");
        assert_eq!(header(&request, "host"), "examplebucket.s3.amazonaws.com");
        let lifecycle = Call { query: &[("lifecycle", "")], ..get("examplebucket", None) };
        let request = signer.request(&lifecycle, &time).unwrap();
        assert_eq!(request.uri().to_string(), "https://examplebucket.s3.amazonaws.com/?lifecycle");
        // The published "GET Bucket Lifecycle" example, signed through the whole builder.
        assert!(
            header(&request, "authorization")
                .ends_with("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        );
    }

    #[test]
    fn signs_the_session_token_and_the_extra_headers() {
        let signer = signer("http://minio:9000", Addressing::Path, Some("token/+="));
        let time = AmzDate::from_unix_seconds(0);
        let call = Call { headers: &[("content-type", "application/pdf")], ..get("docs", Some("k")) };
        let request = signer.request(&call, &time).unwrap();
        assert_eq!(header(&request, "x-amz-security-token"), "token/+=");
        assert_eq!(header(&request, "content-type"), "application/pdf");
        assert!(header(&request, "user-agent").starts_with("kube-ocr-s3/"));
        assert!(
            header(&request, "authorization")
                .contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,")
        );
    }

    #[test]
    fn a_header_http_cannot_carry_is_an_error_not_a_panic() {
        let signer = signer("http://minio:9000", Addressing::Path, None);
        let call = Call { headers: &[("content-type", "text/plain\r\nx-evil: 1")], ..get("docs", Some("k")) };
        assert!(signer.request(&call, &AmzDate::from_unix_seconds(0)).is_err());
    }

    #[test]
    fn query_values_are_encoded_in_the_callers_order() {
        assert_eq!(query_string(&[("prefix", "a b/"), ("lifecycle", "")]), "prefix=a%20b%2F&lifecycle");
    }
}

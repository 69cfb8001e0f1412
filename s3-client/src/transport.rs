//! The IO: hyper's pooled HTTP/1 client over rustls (the ring provider, the system's roots
//! plus an optional CA file), one request sent under the call's deadline, and the answer's
//! body read within a limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::time::Instant;

use crate::error::{CallError, S3Error};
use crate::service_error::ServiceError;
use crate::settings::{Endpoint, S3Settings};

/// How much of an error answer's body is read: S3's are a few hundred bytes, and a proxy's
/// page needs no more to be recognised.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Idle pooled connections are closed after this, before servers and load balancers
/// (which commonly close at 20–60 s) do, so that a request rarely meets a connection
/// closed under it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Transport {
    pub(crate) fn new(settings: &S3Settings, endpoint: &Endpoint) -> Result<Self, S3Error> {
        let roots = if endpoint.https { trust_roots(settings)? } else { RootCertStore::empty() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|source| S3Error::Tls { source })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        // https_or_http below decides the scheme; this connector only opens TCP.
        http.enforce_http(false);
        // A request's head and a small body go out without waiting for an ACK.
        http.set_nodelay(true);
        let connector =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self { client, timeout: settings.timeout })
    }

    /// The longest one call may take, all its tries together.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` and reads the answer, all before `deadline`. A success's body may
    /// be at most `body_limit` bytes; an error status becomes [`CallError::Service`].
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        body_limit: usize,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let head = request.method() == Method::HEAD;
        let exchange = async {
            let response = self.client.request(request).await.map_err(CallError::Transport)?;
            let (parts, body) = response.into_parts();
            if parts.status.is_success() {
                let body = read_limited(body, body_limit, content_length(&parts.headers)).await?;
                Ok(Answer { status: parts.status, body })
            } else {
                let body = read_truncated(body, MAX_ERROR_BODY_BYTES).await;
                Err(CallError::Service(Box::new(ServiceError::from_response(
                    parts.status,
                    &parts.headers,
                    &body,
                    head,
                ))))
            }
        };
        tokio::time::timeout_at(deadline, exchange).await.unwrap_or(Err(CallError::Timeout(self.timeout)))
    }
}

/// The system's roots and the CA file's certificates.
fn trust_roots(settings: &S3Settings) -> Result<RootCertStore, S3Error> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    // Some system certificates may not parse (old formats); the rest still serve.
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = &settings.ca_file {
        let ca_error = |reason: String| S3Error::CaFile { path: path.clone(), reason };
        let pem = std::fs::read(path).map_err(|source| S3Error::ReadCaFile { path: path.clone(), source })?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ca_error(error.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("no BEGIN CERTIFICATE block".to_owned()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| ca_error(error.to_string()))?;
        }
    }
    if roots.is_empty() {
        let system_errors = if system.errors.is_empty() {
            "none found".to_owned()
        } else {
            system.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        };
        return Err(S3Error::TrustRoots { system_errors });
    }
    Ok(roots)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The whole body, refused as soon as it is known to exceed `limit`: before reading when
/// the length is announced, else at the first frame past it, so that a large object is
/// never held in memory.
async fn read_limited(mut body: Incoming, limit: usize, announced: Option<u64>) -> Result<Bytes, CallError> {
    if let Some(length) = announced
        && usize::try_from(length).map_or(true, |length| length > limit)
    {
        return Err(CallError::TooLarge { limit, length: Some(length) });
    }
    let announced = announced.and_then(|length| usize::try_from(length).ok()).unwrap_or(0);
    let mut collected = BytesMut::with_capacity(announced.min(limit));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(CallError::ReadBody)?.into_data() else {
            continue; // trailers
        };
        if collected.len() + data.len() > limit {
            return Err(CallError::TooLarge { limit, length: None });
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

/// Up to `limit` bytes of an error body; the rest, and a failure to read, are ignored:
/// the status alone still says what went wrong.
async fn read_truncated(mut body: Incoming, limit: usize) -> Vec<u8> {
    let mut collected = Vec::new();
    while collected.len() < limit
        && let Some(Ok(frame)) = body.frame().await
    {
        if let Ok(data) = frame.into_data() {
            let room = limit - collected.len();
            collected.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    collected
}

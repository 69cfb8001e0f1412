//! Scrapes of the pods' `/metrics`: an HTTP/1.1 GET with hyper's client, bounded in time
//! and size. The exposition is read by the pure [`crate::analysis`] code.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tracing::warn;

use crate::analysis::exposition::parse_exposition;
use crate::analysis::jobs::job_backlog;
use crate::analysis::targets::PodEndpoint;
use crate::analysis::window::PodCounters;

/// The largest body read: a pod's metrics are a few kB; more is not a metrics page.
const MAX_BODY: usize = 16 << 20;

/// Why a GET gave no body.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("GET {url}: not a valid URI: {source}")]
    Uri { url: String, source: http::uri::InvalidUri },
    /// Connecting, sending or receiving the response head failed.
    #[error("GET {url}: {}", causes(source))]
    Request { url: String, source: hyper_util::client::legacy::Error },
    #[error("GET {url}: HTTP {}", status.as_u16())]
    Status { url: String, status: StatusCode },
    /// Reading the body failed, or it was larger than the limit.
    #[error("GET {url}: reading the body: {}", causes(source.as_ref()))]
    Body { url: String, source: Box<dyn StdError + Send + Sync> },
    #[error("GET {url} timed out after {timeout:?}")]
    TimedOut { url: String, timeout: Duration },
}

/// An error and its causes, as one line: hyper's errors name only their kind and keep the
/// reason (e.g. "Connection refused") in their sources.
fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// The job backlog a pod reports (queued, oldest age in whole seconds); `None` when it
/// exports none (a pod without jobs).
pub(crate) async fn scrape_job_backlog(
    pod: &PodEndpoint,
    http_port: u16,
    timeout: Duration,
) -> Result<Option<(i64, i64)>, ScrapeError> {
    let body = http_get(SocketAddr::new(pod.ip, http_port), "/metrics", timeout).await?;
    Ok(job_backlog(&parse_exposition(&body)))
}

/// Cumulative counters of every pod that answered; a pod that did not is left out (its
/// window then starts at its next scrape).
pub(crate) async fn scrape_pods(
    pods: &[PodEndpoint],
    http_port: u16,
    timeout: Duration,
) -> BTreeMap<String, PodCounters> {
    let mut scraped = BTreeMap::new();
    for pod in pods {
        match http_get(SocketAddr::new(pod.ip, http_port), "/metrics", timeout).await {
            Ok(body) => {
                scraped.insert(pod.name.clone(), PodCounters::from_samples(&parse_exposition(&body)));
            }
            Err(error) => warn!(pod = %pod.name, %error, "scraping /metrics failed"),
        }
    }
    scraped
}

/// GETs `path` from `addr` (plain HTTP: the pods' metrics port speaks nothing else) and
/// returns the body of a 200 as text, within `timeout` for the whole exchange.
pub async fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, ScrapeError> {
    let url = format!("http://{addr}{path}");
    let uri: Uri = url.parse().map_err(|source| ScrapeError::Uri { url: url.clone(), source })?;
    // No idle connections are kept: a pod is scraped once per analysis interval, and a
    // pooled connection would outlive the pod it went to.
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http::<Empty<Bytes>>();
    let exchange = async {
        let response = client.get(uri).await.map_err(|source| ScrapeError::Request { url: url.clone(), source })?;
        if response.status() != StatusCode::OK {
            return Err(ScrapeError::Status { url: url.clone(), status: response.status() });
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|source| ScrapeError::Body { url: url.clone(), source })?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| ScrapeError::TimedOut { url: url.clone(), timeout })?
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers each connection with the next of `replies` (raw HTTP).
    async fn serve(replies: Vec<String>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for reply in replies {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await.unwrap();
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        addr
    }

    fn chunked(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    }

    #[tokio::test]
    async fn chunked_bodies_are_joined() {
        let addr =
            serve(vec![chunked("200 OK", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), chunked("200 OK", "zz\r\n")]).await;
        assert_eq!(http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap(), "hello world");
        // A body that is not valid chunked encoding is an error, not an empty page.
        let error = http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(error, ScrapeError::Body { .. }), "{error}");
    }

    #[tokio::test]
    async fn http_get_reads_a_real_server_and_reports_failures() {
        let addr = serve(vec![
            chunked("200 OK", "3\r\nabc\r\n0\r\n\r\n"),
            chunked("503 Service Unavailable", "3\r\nabc\r\n0\r\n\r\n"),
        ])
        .await;
        assert_eq!(http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap(), "abc");
        let error = http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap_err();
        assert!(error.to_string().contains("HTTP 503"), "{error}");
        assert!(matches!(error, ScrapeError::Status { status: StatusCode::SERVICE_UNAVAILABLE, .. }));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let refused = http_get(closed, "/", Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(refused, ScrapeError::Request { .. }), "{refused}");
        assert!(refused.source().is_some(), "the cause is kept as the source");
        assert!(refused.to_string().contains("refused"), "the reason is in the message: {refused}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let error = http_get(addr, "/metrics", Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(error, ScrapeError::TimedOut { .. }), "{error}");
        drop(listener);
    }

    #[tokio::test]
    async fn pods_that_answer_are_scraped_and_the_others_left_out() {
        let body = "ocr_requests_total{code=\"OK\"} 7\nocr_requests_total{code=\"UNAVAILABLE\"} 1\n";
        let addr = serve(vec![format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())]).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // Both "pods" on 127.0.0.1; the port tells them apart, so scrape them one by one.
        let up = PodEndpoint { name: "up".into(), ip: addr.ip() };
        let down = PodEndpoint { name: "down".into(), ip: closed.ip() };
        let mut scraped = scrape_pods(std::slice::from_ref(&up), addr.port(), Duration::from_secs(5)).await;
        scraped.extend(scrape_pods(&[down], closed.port(), Duration::from_secs(5)).await);
        assert_eq!(scraped.keys().collect::<Vec<_>>(), ["up"]);
        assert_eq!(scraped["up"].requests_by_code.get("UNAVAILABLE"), Some(&1.0));
    }
}

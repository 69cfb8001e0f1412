//! The IO of an analysis: scrape a track's pods and send one of them the golden set.
//! Pods are reached at their own addresses (from EndpointSlices or pod status), as gRPC
//! clients do in a cluster; ClusterIPs are never needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use kube_ocr_golden::grpc_eval::{EvalOptions, connect, recognize_set};
use kube_ocr_golden::{GoldenSet, evaluate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use super::exposition::parse_exposition;
use super::numbers::GoldenOutcome;
use super::window::{PodCounters, SERVER_FAULT_CODES};

/// A Ready pod of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEndpoint {
    pub name: String,
    pub ip: std::net::IpAddr,
}

/// Cumulative counters of every pod that answered; a pod that did not is left out (its
/// window then starts at its next scrape).
pub async fn scrape_pods(pods: &[PodEndpoint], http_port: u16, timeout: Duration) -> BTreeMap<String, PodCounters> {
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

/// Latency samples a golden check aims for when real traffic is too thin to judge P95.
pub const MIN_GOLDEN_LATENCY_SAMPLES: usize = 20;

/// Sends every golden item to `pod` (bypassing its result cache) and scores the answers.
///
/// A small set is sent again until there are [`MIN_GOLDEN_LATENCY_SAMPLES`] latencies,
/// and then its first pass only warms up: a freshly started pod specialises its
/// TorchScript graphs on the first inputs of each shape, and timing those would make
/// every new canary look slower than a stable that has served for hours.
pub async fn golden_check(pod: &PodEndpoint, grpc_port: u16, set: &GoldenSet, timeout: Duration) -> GoldenOutcome {
    let endpoint = format!("http://{}", SocketAddr::new(pod.ip, grpc_port));
    let options = EvalOptions { concurrency: 2, timeout, bypass_cache: true };
    let unreachable = GoldenOutcome { calls: set.items.len(), server_failures: set.items.len(), ..Default::default() };
    let client = match connect(&endpoint, timeout).await {
        Ok(client) => client,
        Err(error) => {
            warn!(pod = %pod.name, %error, "golden check could not connect");
            return unreachable;
        }
    };
    let items = set.items.len().max(1);
    let timed_passes = if items >= MIN_GOLDEN_LATENCY_SAMPLES { 0 } else { MIN_GOLDEN_LATENCY_SAMPLES.div_ceil(items) };
    let first = match recognize_set(client.clone(), set, &options, || {}).await {
        Ok(recognized) => recognized,
        Err(error) => {
            warn!(pod = %pod.name, %error, "golden check failed");
            return unreachable;
        }
    };
    let report = evaluate(set, &first.predictions);
    let server_faults = |failures: &[kube_ocr_golden::grpc_eval::RequestFailure]| {
        failures.iter().filter(|f| SERVER_FAULT_CODES.contains(&f.code.as_str())).count()
    };
    let mut outcome = GoldenOutcome {
        accuracy: (!first.latencies.is_empty()).then_some(report.overall.accuracy),
        latencies: if timed_passes == 0 { first.latencies.clone() } else { Vec::new() },
        server_failures: server_faults(&first.failures),
        calls: set.items.len(),
    };
    for _ in 0..timed_passes {
        match recognize_set(client.clone(), set, &options, || {}).await {
            Ok(again) => {
                outcome.latencies.extend(again.latencies);
                outcome.server_failures += server_faults(&again.failures);
                outcome.calls += set.items.len();
            }
            Err(error) => {
                warn!(pod = %pod.name, %error, "golden check failed");
                outcome.server_failures += set.items.len();
                outcome.calls += set.items.len();
            }
        }
    }
    outcome
}

/// A plain HTTP/1.1 GET (the pods' metrics port speaks nothing else), bounded in time
/// and size.
pub async fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    const MAX_BODY: u64 = 16 << 20;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream.take(MAX_BODY).read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response =
        tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("GET {addr}{path} timed out"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("GET {addr}{path}: HTTP {status}"));
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

/// Joins the chunks of a chunked body (sizes in hex, each followed by CRLF).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
        assert_eq!(dechunk("zz\r\n"), "");
    }

    #[tokio::test]
    async fn http_get_reads_a_real_server_and_reports_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await.unwrap();
                let reply = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap(), "abc");
        let error = http_get(addr, "/metrics", Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("HTTP 503"), "{error}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(http_get(closed, "/", Duration::from_secs(5)).await.is_err());
    }
}

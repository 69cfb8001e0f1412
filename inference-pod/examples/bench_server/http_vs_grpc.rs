//! Figure 1b: the HTTP API against gRPC at concurrency 1. Each LINE image goes through
//! both APIs of the same server, one after the other (alternating which goes first), both
//! on a kept-alive connection, so the difference is what each protocol's handling costs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube_ocr_proto::v1::Task as ProtoTask;

use crate::client::{Serving, call};
use crate::golden::Sample;
use crate::report::{Goal, Report};
use crate::stats::{ms, percentile};

/// The goal on HTTP p50 − gRPC p50, in milliseconds (either way).
const P50_DIFFERENCE_GOAL_MS: f64 = 1.0;

#[derive(Debug)]
pub struct ProtocolComparison {
    pub grpc: Vec<Duration>,
    pub http: Vec<Duration>,
    /// Calls whose HTTP text equals the gRPC text.
    pub same_text: usize,
}

impl ProtocolComparison {
    fn difference_p50(&self) -> f64 {
        ms(percentile(&self.http, 0.5)) - ms(percentile(&self.grpc, 0.5))
    }
}

/// Passes over `samples` until `min_time` has passed (at least one).
pub async fn compare(
    serving: &mut Serving,
    samples: &[Sample],
    min_time: Duration,
) -> anyhow::Result<ProtocolComparison> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut result = ProtocolComparison { grpc: Vec::new(), http: Vec::new(), same_text: 0 };
    let started = Instant::now();
    let mut pass = 0;
    while pass == 0 || started.elapsed() < min_time {
        for (index, sample) in samples.iter().enumerate() {
            let http_first = (index + pass).is_multiple_of(2);
            let mut http = None;
            if http_first {
                http = Some(http_call(&client, serving.http_api_addr, sample).await?);
            }
            let (grpc_latency, response) = call(&mut serving.client, sample, ProtoTask::Line).await?;
            if !http_first {
                http = Some(http_call(&client, serving.http_api_addr, sample).await?);
            }
            let (http_latency, http_text) = http.expect("called above");
            result.grpc.push(grpc_latency);
            result.http.push(http_latency);
            result.same_text += usize::from(http_text == response.text);
        }
        pass += 1;
    }
    Ok(result)
}

/// One `POST /v1/ocr` of the raw bytes; its round trip and the text read.
async fn http_call(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    sample: &Sample,
) -> anyhow::Result<(Duration, String)> {
    let request = hyper::Request::post(format!("http://{addr}/v1/ocr?task=line&bypass_cache=true"))
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(sample.bytes.clone())))?;
    let sent = Instant::now();
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let latency = sent.elapsed();
    anyhow::ensure!(status.is_success(), "HTTP {status}: {}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    Ok((latency, json["text"].as_str().unwrap_or_default().to_owned()))
}

pub fn write(report: &mut Report, comparison: &ProtocolComparison) -> anyhow::Result<()> {
    let out = &mut report.body;
    writeln!(out, "## 1b. HTTP API vs gRPC at concurrency 1 (LINE)\n")?;
    writeln!(
        out,
        "Meaning: what answering over HTTP/1.1 with JSON costs against gRPC, on the same server, images and \
         machine state: every line image goes through both APIs, alternating which goes first, each on a \
         kept-alive connection. It does not show throughput, or what a proxy in front adds.\n"
    )?;
    writeln!(
        out,
        "| calls | gRPC p50 ms | HTTP p50 ms | HTTP − gRPC p50 ms | gRPC p95 ms | HTTP p95 ms | same text |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|")?;
    let c = comparison;
    writeln!(
        out,
        "| {} | {:.2} | {:.2} | {:+.2} | {:.2} | {:.2} | {} of {} |\n",
        c.grpc.len(),
        ms(percentile(&c.grpc, 0.5)),
        ms(percentile(&c.http, 0.5)),
        c.difference_p50(),
        ms(percentile(&c.grpc, 0.95)),
        ms(percentile(&c.http, 0.95)),
        c.same_text,
        c.http.len()
    )?;
    report.goal(Goal::at_most(
        "1b. LINE at concurrency 1: |HTTP p50 − gRPC p50|".to_owned(),
        c.difference_p50().abs(),
        P50_DIFFERENCE_GOAL_MS,
        " ms",
    ));
    Ok(())
}

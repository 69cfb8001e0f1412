//! Operator benchmark (issue 5): N OcrServices created at once against a fresh local
//! control plane, with the real `ocr-operator` binary as a separate process and no node
//! agent (pods stay Pending). Measures the wall time until every OcrService has all its
//! children and a status, reconcile p50/p99 (from the operator's histogram), the
//! operator's peak RSS, writes and reconciles per object, and the writes of a 30 s steady
//! state. Writes a Markdown report.
//!
//! `cargo run --release -p kube-ocr-e2e --example operator_bench -- --count 80`
//! (build `ocr-operator` in the same profile first).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, LocalControlPlane, SERVICE_CIDR};
use kube_ocr_e2e::node_agent::cargo_bin_dir;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// OcrServices to create (each needs 3 ClusterIPs of the control plane's service CIDR).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// How long to watch the steady state after everything was created.
    #[arg(long, default_value_t = 30)]
    steady_secs: u64,
    #[arg(long, default_value = "target/bench/operator.md")]
    report: PathBuf,
}

/// ClusterIPs the service CIDR offers (network and broadcast excluded, one for `kubernetes`).
fn cluster_ip_capacity() -> usize {
    let prefix: u32 = SERVICE_CIDR.rsplit('/').next().and_then(|p| p.parse().ok()).unwrap_or(24);
    (1usize << (32 - prefix)).saturating_sub(3)
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The quantile from the histogram's cumulative buckets (upper bound of its bucket).
fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    buckets.iter().find(|(_, count)| *count >= q * total).map(|(le, _)| *le)
}

async fn scrape(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn count<K>(api: &Api<K>) -> anyhow::Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let selector = "app.kubernetes.io/managed-by=kube-ocr-operator";
    Ok(api.list_metadata(&ListParams::default().labels(selector)).await?.items.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let capacity = cluster_ip_capacity() / 3;
    if args.count > capacity {
        bail!(
            "{} OcrServices need {} ClusterIPs; the local control plane's service CIDR {SERVICE_CIDR} offers {}: \
             run with --count {capacity} or widen SERVICE_CIDR in e2e/src/control_plane/components.rs",
            args.count,
            args.count * 3,
            cluster_ip_capacity()
        );
    }
    let operator_bin = cargo_bin_dir().context("locate the target dir")?.join("ocr-operator");
    if !operator_bin.is_file() {
        bail!("{} is missing: cargo build --release -p kube-ocr-operator", operator_bin.display());
    }
    let cluster = LocalControlPlane::start(ControlPlaneOptions::default()).await?;
    let client = cluster.client()?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = OcrService::crd();
    crds.patch("ocrservices.kube-ocr.dev", &PatchParams::apply("bench").force(), &Patch::Apply(&crd)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let namespace = cluster.create_namespace("bench").await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let http = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(cluster.log_dir().join("operator.log"))?;
    let mut operator = tokio::process::Command::new(&operator_bin)
        .env("KUBECONFIG", cluster.kubeconfig())
        .args(["--leader-elect", "false", "--http-addr", &http, "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let pid = operator.id().context("operator pid")?;
    let started_wait = Instant::now();
    while scrape(&http).await.is_err() {
        if started_wait.elapsed() > Duration::from_secs(30) {
            bail!("the operator did not serve /metrics within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let api: Api<OcrService> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    futures::stream::iter(0..args.count)
        .map(|i| {
            let api = api.clone();
            async move {
                let ocr: OcrService = serde_json::from_value(json!({
                    "apiVersion": "kube-ocr.dev/v1alpha1", "kind": "OcrService",
                    "metadata": { "name": format!("ocr-{i:04}") },
                    "spec": {
                        "model": { "uri": "file:///models/ppocr-v4", "version": "4.0.0" },
                        "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
                        "replicas": { "min": 1, "max": 2 },
                        "resources": { "requests": { "cpu": "10m", "memory": "64Mi" } },
                        "nodeSelector": { "kubernetes.io/hostname": "nowhere" },
                    },
                }))?;
                api.create(&PostParams::default(), &ocr).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &namespace);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
    loop {
        let with_status = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|o| o.status.as_ref().and_then(|s| s.observed_generation) == Some(1))
            .count();
        let done = count(&deployments).await? == args.count
            && count(&services).await? == 3 * args.count
            && count(&hpas).await? == args.count
            && count(&pdbs).await? == args.count
            && with_status == args.count;
        if done {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not all children after 600 s ({with_status} statuses)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_children = started.elapsed();
    let metrics = scrape(&http).await?;
    let reconciles = metric_sum(&metrics, "ocr_operator_reconciles_total");
    let writes = metric_sum(&metrics, "ocr_operator_api_writes_total");
    let p50 = histogram_quantile(&metrics, "ocr_operator_reconcile_duration_seconds", 0.5);
    let p99 = histogram_quantile(&metrics, "ocr_operator_reconcile_duration_seconds", 0.99);
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let steady = scrape(&http).await?;
    let steady_writes = metric_sum(&steady, "ocr_operator_api_writes_total") - writes;
    let steady_reconciles = metric_sum(&steady, "ocr_operator_reconciles_total") - reconciles;
    let rss = peak_rss_mib(pid);
    operator.kill().await.ok();

    let n = args.count as f64;
    let ms = |s: Option<f64>| s.map_or("n/a".to_owned(), |s| format!("≤ {:.0} ms", s * 1000.0));
    let report = format!(
        "# Operator benchmark\n\n\
         {count} OcrServices created at once ({create:.1} s to create) against the local control plane, the \
         `ocr-operator` binary as its own process, no node agent (pods Pending).\n\n\
         | measure | value | goal |\n|---|---|---|\n\
         | all children + status, from the first create | {wall:.1} s | ≤ 30 s for 1,000 |\n\
         | reconcile p50 / p99 (histogram buckets) | {p50} / {p99} | |\n\
         | operator peak RSS | {rss} | ≤ 64 MiB |\n\
         | writes (apply, status, delete) per object | {wpo:.1} | |\n\
         | reconciles per object | {rpo:.1} | |\n\
         | writes in {steady_secs} s of steady state ({steady_reconciles:.0} reconciles) | {steady_writes:.0} | 0 |\n",
        count = args.count,
        create = created.as_secs_f64(),
        wall = all_children.as_secs_f64(),
        p50 = ms(p50),
        p99 = ms(p99),
        rss = rss.map_or("n/a".to_owned(), |r| format!("{r:.1} MiB")),
        wpo = writes / n,
        rpo = reconciles / n,
        steady_secs = args.steady_secs,
    );
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.report, &report)?;
    print!("{report}");
    drop(cluster);
    Ok(())
}

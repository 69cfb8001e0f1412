//! Operator benchmark (issue 5): N OcrServices created at once against a fresh local
//! cluster with one real node, the operator running in it from its image (this build's
//! `ocr-operator`) as the chart runs it; the OcrServices' pods stay Pending. Measures the wall time until every OcrService has all its
//! children and a status, reconcile p50/p99 (from the operator's histogram), the
//! operator's peak RSS, writes and reconciles per object, and the writes of a 30 s steady
//! state. Writes a Markdown report.
//!
//! `cargo run --release -p kube-ocr-e2e --example operator_bench -- --count 80`
//! (build `ocr-operator` in the same profile first: the image is made from it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, SERVICE_CIDR};
use kube_ocr_e2e::harness::operator::{InClusterOperator, POD_NAME_VARIABLE, bind_operator_account};
use kube_ocr_e2e::node::workspace_images::ImageInputs;
use kube_ocr_e2e::node::{LocalCluster, NodeOptions};
use kube_ocr_operator::{LogFormat, OperatorConfig, rbac};
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

/// `VmHWM` (peak) or `VmRSS` (now) of a process, in MiB.
fn rss_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Median and maximum of the operator's "status updated" log lines per OcrService.
fn status_writes_per_object(text: &str) -> Option<(usize, usize)> {
    let mut per_object = std::collections::HashMap::<String, usize>::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if entry["message"] == "status updated"
            && let Some(name) = entry["ocrservice"].as_str()
        {
            *per_object.entry(name.to_owned()).or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = per_object.into_values().collect();
    counts.sort_unstable();
    Some((*counts.get(counts.len() / 2)?, *counts.last()?))
}

/// The operator's process as this machine sees it (a node's containers are its processes):
/// its peak RSS and CPU time are read from /proc.
fn operator_pid() -> anyhow::Result<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim_end() == "ocr-operator") {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        pids => bail!("expected one ocr-operator process on this machine, found {pids:?}"),
    }
}

/// User + system CPU seconds of a process (clock ticks are 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds the whole machine spent busy (not idle or waiting) since boot.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle) / 100.0)
}

/// Writes per kind between two scrapes, e.g. `OcrService 12, Deployment 1`.
fn writes_by_kind(before: &str, after: &str) -> String {
    let per_kind = |text: &str| -> std::collections::BTreeMap<String, f64> {
        text.lines()
            .filter(|l| l.starts_with("ocr_operator_api_writes_total{"))
            .filter_map(|l| {
                let kind = l.split("kind=\"").nth(1)?.split('"').next()?.to_owned();
                Some((kind, l.rsplit(' ').next()?.parse().ok()?))
            })
            .collect()
    };
    let before = per_kind(before);
    per_kind(after)
        .into_iter()
        .map(|(kind, n)| (n - before.get(&kind).copied().unwrap_or(0.0), kind))
        .filter(|(n, _)| *n > 0.0)
        .map(|(n, kind)| format!("{kind} {n:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    // One real node: the operator's pod runs there; the OcrServices' pods stay Pending.
    let images = tokio::task::spawn_blocking(|| ImageInputs::of_this_checkout()?.build_operator());
    let nodes = vec![NodeOptions::new("node-a", "zone-a")];
    let cluster = LocalCluster::start(ControlPlaneOptions::default(), nodes).await?;
    let operator_image = images.await??;
    for node in cluster.nodes() {
        node.import_archive(&operator_image)?;
    }
    let plane = cluster.plane();
    let client = plane.client()?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = OcrService::crd();
    crds.patch("ocrservices.kube-ocr.dev", &PatchParams::apply("bench").force(), &Patch::Apply(&crd)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let namespace = plane.create_namespace("bench").await?;
    // The golden set every OcrService names by default: present, as after `helm install`,
    // so the objects are judged on their pods alone (which stay Pending here).
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let golden: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "ocr-golden-default" },
        "data": { "manifest.json": "{}" },
    }))?;
    config_maps.create(&PostParams::default(), &golden).await?;

    // As the chart runs it with `watchNamespace`: its ServiceAccount bound to the generated
    // ClusterRole in the namespace, leader election on, the pod's name as identity.
    let mut config = OperatorConfig::defaults();
    config.watch_namespace = Some(namespace.clone());
    config.lease_namespace = namespace.clone();
    config.identity = Some(format!("$({POD_NAME_VARIABLE})"));
    config.log_format = LogFormat::Json;
    bind_operator_account(&client, &namespace, &rbac::cluster_role()).await;
    let operator = InClusterOperator::start(plane, &namespace, "kube-ocr-operator", config.to_args()).await;
    let http = operator.http_addr().await.to_string();
    let pid = operator_pid()?;

    let api: Api<OcrService> = Api::namespaced(client.clone(), &namespace);
    let machine_before = machine_busy_seconds().unwrap_or(0.0);
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
    let operator_cpu = cpu_seconds(pid);
    let machine_cpu = machine_busy_seconds().map(|busy| busy - machine_before);
    let metrics = scrape(&http).await?;
    let reconciles = metric_sum(&metrics, "ocr_operator_reconciles_total");
    let writes = metric_sum(&metrics, "ocr_operator_api_writes_total");
    let p50 = histogram_quantile(&metrics, "ocr_operator_reconcile_duration_seconds", 0.5);
    let p99 = histogram_quantile(&metrics, "ocr_operator_reconcile_duration_seconds", 0.99);

    // Settling: the cluster keeps changing after the last child exists (pods turn
    // Unschedulable, HPAs fail to get metrics, statuses follow). Quiet = no operator write
    // for 10 s.
    let mut last_writes = writes;
    let mut last_change = Instant::now();
    let settled = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now_writes = metric_sum(&scrape(&http).await?, "ocr_operator_api_writes_total");
        if now_writes != last_writes {
            last_writes = now_writes;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= Duration::from_secs(10) {
            break Some(last_change - started);
        }
        if started.elapsed() > all_children + Duration::from_secs(600) {
            break None;
        }
    };
    let before_steady = scrape(&http).await?;
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let steady = scrape(&http).await?;
    let steady_writes = metric_sum(&steady, "ocr_operator_api_writes_total")
        - metric_sum(&before_steady, "ocr_operator_api_writes_total");
    let steady_reconciles = metric_sum(&steady, "ocr_operator_reconciles_total")
        - metric_sum(&before_steady, "ocr_operator_reconciles_total");
    let steady_kinds = writes_by_kind(&before_steady, &steady);
    let rss = rss_mib(pid, "VmHWM:");
    let rss_now = rss_mib(pid, "VmRSS:");
    let status_writes = status_writes_per_object(&operator.full_log().await);
    operator.shutdown().await;

    let n = args.count as f64;
    let ms = |s: Option<f64>| s.map_or("n/a".to_owned(), |s| format!("≤ {:.0} ms", s * 1000.0));
    let report = format!(
        "# Operator benchmark\n\n\
         {count} OcrServices created at once ({create:.1} s to create) against the local cluster, the operator in it \
         as the chart runs it (its image with the `ocr-operator` of this build, on one real node, under its \
         ServiceAccount, through the `kubernetes` Service). The OcrServices' pods stay Pending (a node selector no node \
         matches): this measures the operator, not kubelets.\n\n\
         | measure | value | goal |\n|---|---|---|\n\
         | all children + status, from the first create | {wall:.1} s | ≤ 30 s for 1,000 |\n\
         | reconcile p50 / p99 (histogram buckets) | {p50} / {p99} | |\n\
         | operator peak RSS (at the end) | {rss} ({rss_now}) | ≤ 64 MiB |\n\
         | status writes per object: median / max (a flapping object would climb) | {status_writes} | |\n\
         | writes (apply, status, delete) per object | {wpo:.1} | |\n\
         | reconciles per object | {rpo:.1} | |\n\
         | quiet (no operator write for 10 s) from the first create | {settled} | |\n\
         | writes in {steady_secs} s of steady state after that ({steady_reconciles:.0} reconciles) | {steady_writes:.0}{steady_kinds} | 0 |\n\
         | operator CPU until all children exist / the machine's busy CPU then | {operator_cpu} / {machine_cpu} | |\n\n\
         The machine has {cores} cores; the API server, etcd, the controller manager, the scheduler, CoreDNS and the \
         node's kubelet, containerd and kube-proxy share them with the operator, so the CPU line says how much of the wall time is the operator's own work.\n",
        count = args.count,
        create = created.as_secs_f64(),
        wall = all_children.as_secs_f64(),
        p50 = ms(p50),
        p99 = ms(p99),
        rss = rss.map_or("n/a".to_owned(), |r| format!("{r:.1} MiB")),
        rss_now = rss_now.map_or("n/a".to_owned(), |r| format!("{r:.1} MiB")),
        status_writes = status_writes.map_or("n/a".to_owned(), |(median, max)| format!("{median} / {max}")),
        wpo = writes / n,
        rpo = reconciles / n,
        steady_secs = args.steady_secs,
        settled = settled.map_or("not within 600 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        steady_kinds = if steady_kinds.is_empty() { String::new() } else { format!(" ({steady_kinds})") },
        operator_cpu = operator_cpu.map_or("n/a".to_owned(), |c| format!("{c:.1} s")),
        machine_cpu = machine_cpu.map_or("n/a".to_owned(), |c| format!("{c:.1} s")),
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.report, &report)?;
    print!("{report}");
    let stopped = cluster.stop();
    if !stopped.clean() {
        eprintln!("the cluster did not stop cleanly: {stopped:?}");
    }
    Ok(())
}

//! `kube-ocr-demo`: the one-command demo (`make demo`, docs/quickstart.md).
//!
//! `run` starts the local cluster in the background (`kube-ocr-cluster up --detach` in a fixed
//! directory: a control plane and two real nodes holding the project's images, built from
//! this checkout), `helm install`s the chart, applies the minimal sample OcrService as
//! shipped, reads a real document over gRPC and HTTP through `kubectl port-forward` to the
//! Service, shows the inference pod's `kubectl logs`, rolls a new model version out as a
//! canary while printing its progression, and leaves the cluster running for the user until
//! `down` (`make demo-down`). A new `run` starts from scratch. Every wait says what it waits
//! for and why; a timeout fails with the last state seen.

mod background;
mod manifest;
mod port_forward;
mod report;
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::{Binaries, default_bin_dir};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task, ocr_client::OcrClient};
use serde_json::json;

use kube_ocr_e2e::node::workspace_images::OPERATOR_IMAGE;
use port_forward::PortForward;
use wait::{Poll, wait_for};

const RELEASE: &str = "kube-ocr";
const OPERATOR_NAMESPACE: &str = "kube-ocr";
const OPERATOR_DEPLOYMENT: &str = "kube-ocr-operator";
const SAMPLE: &str = "deploy/samples/ocrservice-cpu-minimal.yaml";
const CHART: &str = "charts/kube-ocr";
const BUNDLE: &str = "models/ppocr-v4";
/// The Service port the operator names (operator/src/builders/service.rs).
const GRPC_PORT_NAME: &str = "grpc";
/// The Service port of the inference pods' HTTP API.
const HTTP_API_PORT_NAME: &str = "http-api";
/// Labels the operator puts on inference pods (operator/src/names.rs).
const SERVICE_LABEL: &str = "kube-ocr.dev/ocrservice";
const MODEL_VERSION_ANNOTATION: &str = "kube-ocr.dev/model-version";

#[derive(Debug, Parser)]
#[command(about = "The kube-ocr demo on the local control plane: Helm chart, a sample OcrService, gRPC, a canary")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the demo (stopping a previous demo cluster first); leaves the cluster running.
    Run(Box<RunArgs>),
    /// Stop the demo cluster.
    Down(DownArgs),
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The demo cluster's directory: kubeconfig, logs, nodes, state.json.
    #[arg(long, env = "KUBE_OCR_DEMO_DIR", default_value = "target/kube-ocr/demo")]
    dir: PathBuf,
    /// Where etcd, kube-apiserver, kubectl, helm, ... are (default: where `make setup` builds them).
    #[arg(long, env = "KUBE_OCR_K8S_BIN")]
    k8s_bin: Option<PathBuf>,
    /// Where kube-ocr-cluster is, and ocr-inference-pod, ocr-pdf-render and ocr-operator,
    /// which the images are built from (default: next to this binary).
    #[arg(long, env = "KUBE_OCR_DEMO_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The kube-ocr checkout: charts/, deploy/samples/, models/, golden/.
    #[arg(long, env = "KUBE_OCR_DEMO_WORKSPACE", default_value = ".")]
    workspace: PathBuf,
    /// Namespace of the OcrService (the operator goes to `kube-ocr`).
    #[arg(long, env = "KUBE_OCR_DEMO_NAMESPACE", default_value = "demo")]
    namespace: String,
    /// The document image sent over gRPC (relative to the workspace).
    #[arg(long, env = "KUBE_OCR_DEMO_IMAGE", default_value = "golden/data/documents/doc-invoice-01-clean.png")]
    image: PathBuf,
    /// The model version rolled out as a canary (same bundle).
    #[arg(long, env = "KUBE_OCR_DEMO_NEW_VERSION", default_value = "4.0.1")]
    new_version: String,
    /// spec.rollout.stepInterval of the demo (the sample's default is 60s).
    #[arg(long, env = "KUBE_OCR_DEMO_STEP_INTERVAL", default_value = "10s")]
    step_interval: String,
    /// spec.rollout.analysis.interval of the demo (default 30s).
    #[arg(long, env = "KUBE_OCR_DEMO_ANALYSIS_INTERVAL", default_value = "5s")]
    analysis_interval: String,
    /// spec.rollout.progressDeadline of the demo (default 10m).
    #[arg(long, env = "KUBE_OCR_DEMO_PROGRESS_DEADLINE", default_value = "5m")]
    progress_deadline: String,
    /// spec.rollout.analysis.latency.maxP95Ms of the demo (default 800, meant for release
    /// builds; the demo's dev-profile pods on a shared CPU need seconds per document).
    #[arg(long, env = "KUBE_OCR_DEMO_MAX_P95_MS", default_value_t = 30_000)]
    max_p95_ms: u32,
    /// spec.rollout.analysis.latency.maxP95Increase of the demo (default 0.5; CPU contention
    /// on a small machine makes one track's P95 jump).
    #[arg(long, env = "KUBE_OCR_DEMO_MAX_P95_INCREASE", default_value_t = 1.0)]
    max_p95_increase: f64,
    /// Longest wait for any one step (cluster, operator, service, endpoint) in seconds.
    #[arg(long, env = "KUBE_OCR_DEMO_TIMEOUT_SECS", default_value_t = 300)]
    timeout_secs: u64,
    /// Longest wait for the canary rollout to finish, in seconds.
    #[arg(long, env = "KUBE_OCR_DEMO_ROLLOUT_TIMEOUT_SECS", default_value_t = 900)]
    rollout_timeout_secs: u64,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// The demo cluster's directory.
    #[arg(long, env = "KUBE_OCR_DEMO_DIR", default_value = "target/kube-ocr/demo")]
    dir: PathBuf,
    /// How long to wait for an orderly stop before killing what is left, in seconds.
    #[arg(long, env = "KUBE_OCR_DEMO_STOP_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Where kube-ocr-cluster is (default: next to this binary).
    #[arg(long, env = "KUBE_OCR_DEMO_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kube-ocr-demo: start a tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Cmd::Run(args) => return runtime.block_on(run_interruptible(*args)),
        Cmd::Down(args) => down(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kube-ocr-demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn bin_dir(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(std::path::absolute(dir)?),
        None => std::env::current_exe()
            .context("locate this binary")?
            .parent()
            .map(Path::to_owned)
            .context("this binary has no parent directory"),
    }
}

fn down(args: &DownArgs) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir)?;
    let started = Instant::now();
    if background::stop(&bin_dir(args.bin_dir.as_ref())?, &dir, Duration::from_secs(args.timeout_secs))? {
        println!("demo cluster stopped in {:.1} s", started.elapsed().as_secs_f64());
    } else {
        println!("no demo cluster runs in {}", dir.display());
    }
    Ok(())
}

/// `run`, with Ctrl-C stopping the demo cluster it started (after the demo finished, the
/// cluster stays until `down`).
async fn run_interruptible(args: RunArgs) -> ExitCode {
    let (dir, bin_dir) = match (std::path::absolute(&args.cluster.dir), bin_dir(args.cluster.bin_dir.as_ref())) {
        (Ok(dir), Ok(bin_dir)) => (dir, bin_dir),
        (Err(err), _) => {
            eprintln!("kube-ocr-demo: {err}");
            return ExitCode::FAILURE;
        }
        (_, Err(err)) => {
            eprintln!("kube-ocr-demo: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let result = tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => {
            println!("\ninterrupted: stopping the demo cluster");
            match background::stop(&bin_dir, &dir, Duration::from_secs(60)) {
                Ok(_) => println!("demo cluster stopped"),
                Err(err) => eprintln!("kube-ocr-demo: {err:#}"),
            }
            return ExitCode::from(130);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            println!("\nFAILED after {:.0} s: {err:#}", started.elapsed().as_secs_f64());
            if let Some(state) = background::running(&dir) {
                println!("\nThe demo cluster is left running so you can look around:");
                if let Some(kubeconfig) = &state.kubeconfig {
                    println!("  export KUBECONFIG={}", kubeconfig.display());
                }
                println!("  pod logs:           kubectl logs -n <namespace> <pod>");
                println!("  control plane logs: {}", dir.join("logs").display());
                println!(
                    "  node logs:          {}/<node>/logs (kubelet, containerd, kube-proxy)",
                    dir.join("nodes").display()
                );
                println!("  cluster log:        {}", dir.join(background::CLUSTER_LOG).display());
                println!("  stop it:            make demo-down");
            }
            ExitCode::FAILURE
        }
    }
}

/// Everything `run` needs, resolved and checked before anything starts.
struct Demo {
    args: RunArgs,
    dir: PathBuf,
    workspace: PathBuf,
    k8s_bin: PathBuf,
    tools: Binaries,
    bin_dir: PathBuf,
    image: PathBuf,
    started: Instant,
    step: usize,
}

const STEPS: usize = 7;

impl Demo {
    fn prepare(args: RunArgs) -> anyhow::Result<Self> {
        let dir = std::path::absolute(&args.cluster.dir)?;
        let workspace = std::path::absolute(&args.workspace)?;
        for needed in [CHART, SAMPLE] {
            if !workspace.join(needed).exists() {
                bail!(
                    "{} is missing: run the demo from the kube-ocr checkout (`make demo`)",
                    workspace.join(needed).display()
                );
            }
        }
        if !workspace.join(BUNDLE).join("bundle.yaml").is_file() {
            bail!("{} is missing: run `make setup`", workspace.join(BUNDLE).display());
        }
        let image = workspace.join(&args.image);
        if !image.is_file() {
            bail!("{} is missing", image.display());
        }
        let k8s_bin = args.cluster.k8s_bin.clone().unwrap_or_else(default_bin_dir);
        let tools = Binaries::locate(&k8s_bin)?;
        let bin_dir = bin_dir(args.cluster.bin_dir.as_ref())?;
        for binary in background::REQUIRED_BINARIES {
            if !bin_dir.join(binary).is_file() {
                bail!(
                    "{} is missing: build it first (`make demo` does: cargo build -p kube-ocr-e2e -p kube-ocr-inference -p kube-ocr-pdf-render -p kube-ocr-operator)",
                    bin_dir.join(binary).display()
                );
            }
        }
        Ok(Self { args, dir, workspace, k8s_bin, tools, bin_dir, image, started: Instant::now(), step: 0 })
    }

    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}/{STEPS}] {title}   (+{:.0} s)", self.step, self.started.elapsed().as_secs_f64());
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout_secs)
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Runs kubectl or helm against the demo cluster, printing the command line as a user
    /// would type it; returns stdout, or fails with stderr.
    fn tool(&self, program: &Path, args: &[&str]) -> anyhow::Result<String> {
        let name = program.file_name().map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into());
        println!("  $ {name} {}", args.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
        let helm_home = self.dir.join("helm");
        let output = Command::new(program)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .current_dir(&self.workspace)
            .output()
            .with_context(|| format!("run {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "`{name} {}` failed ({}):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `kubectl port-forward` to `port` of `target` (a Service or pod; the Service's ports
    /// are its pods' ports here).
    fn port_forward(&self, target: &str, port: i32) -> anyhow::Result<PortForward> {
        let remote = u16::try_from(port).with_context(|| format!("port {port}"))?;
        let (kubectl, kubeconfig, namespace) = (self.tools.kubectl.clone(), self.kubeconfig(), &self.args.namespace);
        let log = self.dir.join("port-forward.log");
        PortForward::start(&kubectl, &kubeconfig, &log, namespace, target, remote, Duration::from_secs(30))
    }

    fn print_indented(text: &str) {
        for line in text.lines() {
            println!("    {line}");
        }
    }
}

/// A word quoted for a POSIX shell when it needs it, so printed commands can be pasted.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut demo = Demo::prepare(args)?;
    println!("kube-ocr demo: a local Kubernetes control plane, the Helm chart, an OcrService, gRPC, a canary rollout.");
    println!(
        "Everything runs on this machine. Ctrl-C stops the demo and its cluster; once the demo is done the cluster \
         stays up for you until `make demo-down`."
    );

    // 1. The cluster.
    demo.step(
        "Local cluster: a control plane and two real nodes (kubelet, containerd, kube-proxy), the images on them",
    );
    if background::running(&demo.dir).is_some() {
        println!(
            "  a previous demo cluster still runs in {}; stopping it so this run starts clean",
            demo.dir.display()
        );
        let stopping = Instant::now();
        let (bin_dir, dir) = (demo.bin_dir.clone(), demo.dir.clone());
        tokio::task::spawn_blocking(move || background::stop(&bin_dir, &dir, Duration::from_secs(60))).await??;
        println!("  stopped after {:.1} s", stopping.elapsed().as_secs_f64());
    }
    println!(
        "  waiting for the cluster: fresh certificates, etcd, the API server and both controllers ready, then nodes \
         node-a (zone-a) and node-b (zone-b) register and turn Ready, CoreDNS starts; then buildah builds the \
         operator and inference pod images from deploy/docker's Dockerfiles with this checkout's binaries (unchanged \
         layers come from the builder's cache) and each node imports what it does not hold yet (≈30 s here when \
         nothing changed; the first time, the 4 GB libtorch layer takes a few minutes)"
    );
    let cluster_started = Instant::now();
    let (bin_dir, dir, k8s_bin) = (demo.bin_dir.clone(), demo.dir.clone(), demo.k8s_bin.clone());
    let state = tokio::task::spawn_blocking(move || background::start(&bin_dir, &dir, &k8s_bin)).await??;
    println!("  ok: cluster ready after {:.1} s", cluster_started.elapsed().as_secs_f64());
    println!("    API server {}", state.apiserver_url.as_deref().unwrap_or("?"));
    println!("    kubeconfig {}", demo.kubeconfig().display());
    let nodes = demo.tool(&demo.tools.kubectl.clone(), &["get", "nodes", "-L", "topology.kubernetes.io/zone"])?;
    Demo::print_indented(nodes.trim_end());
    let client = client(&demo.kubeconfig()).await?;

    // 2. The chart.
    demo.step("helm install the kube-ocr chart");
    println!(
        "  one operator replica, its image as the nodes hold it ({OPERATOR_IMAGE}, never pulled: no registry is \
         reachable here)"
    );
    let (repository, tag) = OPERATOR_IMAGE.rsplit_once(':').context("the operator image has no tag")?;
    let helm = demo.tools.helm.clone();
    let installed = demo.tool(
        &helm,
        &[
            "upgrade",
            "--install",
            RELEASE,
            CHART,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--set",
            "operator.replicas=1",
            "--set",
            &format!("operator.image.repository={repository}"),
            "--set",
            &format!("operator.image.tag={tag}"),
            "--set",
            "operator.image.pullPolicy=Never",
            "--set",
            "operator.log.format=text",
        ],
    )?;
    Demo::print_indented(installed.split("NOTES:").next().unwrap_or_default().trim_end());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    wait_for(
        "the operator Deployment to be Available",
        "the scheduler binds the operator pod to a node, its kubelet runs the image with containerd and runc; \
         /readyz passes once the operator reached the API server through the `kubernetes` Service (kube-proxy) \
         with its ServiceAccount and found the OcrService CRD (≈5 s here)",
        demo.timeout(),
        async || {
            let available = deployments.get_opt(OPERATOR_DEPLOYMENT).await.ok().flatten().is_some_and(|d| {
                d.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            });
            if available {
                return Poll::Ready(());
            }
            let list = pods.list(&ListParams::default().labels("app.kubernetes.io/component=operator")).await;
            match list.ok().and_then(|l| l.items.into_iter().next()) {
                Some(pod) => Poll::Pending(report::describe_pod(&pod)),
                None => Poll::Pending("no operator pod yet".to_owned()),
            }
        },
    )
    .await?;

    // 3. The sample OcrService.
    demo.step("Apply the minimal sample OcrService");
    let settings = manifest::DemoSettings {
        namespace: demo.args.namespace.clone(),
        step_interval: demo.args.step_interval.clone(),
        analysis_interval: demo.args.analysis_interval.clone(),
        progress_deadline: demo.args.progress_deadline.clone(),
        max_p95_ms: demo.args.max_p95_ms,
        max_p95_increase: demo.args.max_p95_increase,
    };
    let sample = std::fs::read_to_string(demo.workspace.join(SAMPLE)).with_context(|| format!("read {SAMPLE}"))?;
    let ocr = manifest::demo_ocr_service(&sample, &settings).with_context(|| format!("rewrite {SAMPLE}"))?;
    let (name, version, steps) = manifest::summary(&ocr);
    let applied = demo.dir.join("ocrservice-cpu-minimal.yaml");
    std::fs::write(&applied, serde_norway::to_string(&ocr)?).with_context(|| format!("write {}", applied.display()))?;
    println!("  {SAMPLE} as shipped, but for:");
    println!(
        "    spec.rollout: stepInterval {}, analysis.interval {}, progressDeadline {} (defaults 60s, 30s, 10m), so the \
         canary takes a couple of minutes, not a quarter hour",
        settings.step_interval, settings.analysis_interval, settings.progress_deadline
    );
    println!(
        "    spec.rollout.analysis.latency: maxP95Ms {}, maxP95Increase {} (defaults 800, 0.5: meant for release builds; \
         these dev-profile pods on a shared CPU take seconds per document)",
        settings.max_p95_ms, settings.max_p95_increase
    );
    println!("  written to {}", applied.display());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(&settings.namespace).await?.is_none() {
        let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": settings.namespace } }))?;
        namespaces.create(&PostParams::default(), &namespace).await.context("create the demo namespace")?;
    }
    let kubectl = demo.tools.kubectl.clone();
    let out = demo.tool(&kubectl, &["apply", "-f", &applied.to_string_lossy()])?;
    Demo::print_indented(out.trim_end());
    let ocrs: Api<OcrService> = Api::namespaced(client.clone(), &settings.namespace);
    let app_pods: Api<Pod> = Api::namespaced(client.clone(), &settings.namespace);
    let selector = format!("{SERVICE_LABEL}={name}");
    wait_for(
        &format!("OcrService {name} to be Available"),
        "the operator creates the stable Deployment and the Service; a kubelet runs the inference pod image, \
         whose server loads the PP-OCRv4 bundle on the CPU, warms up and passes its golden self-test before its startup \
         probe succeeds (≈20 s here)",
        demo.timeout(),
        async || {
            let ocr = ocrs.get_opt(&name).await.ok().flatten();
            let status = ocr.and_then(|o| o.status).unwrap_or_default();
            let available = status.conditions.iter().find(|c| c.type_ == "Available");
            if available.is_some_and(|c| c.status == "True") {
                return Poll::Ready(());
            }
            let mut phase = status.phase.map_or("no status yet".to_owned(), |p| format!("phase {p:?}"));
            if let Some(why) = report::degraded(&status) {
                phase.push_str(&format!(" ({why})"));
            }
            let pods =
                app_pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
            let pods: Vec<String> = pods.iter().map(report::describe_pod).collect();
            Poll::Pending(if pods.is_empty() {
                format!("{phase}, no pod yet")
            } else {
                format!("{phase}; {}", pods.join("; "))
            })
        },
    )
    .await?;

    // 4. A real document over gRPC and HTTP, from this machine through kubectl port-forward.
    demo.step("Read a document over gRPC and HTTP through `kubectl port-forward` to the Service; the pod's logs");
    let endpoint = ready_endpoint(&demo, &client, &name, &format!("{name}-stable-"), &version).await?;
    // One forward per call: kubectl port-forward gives up on every port once one forwarded
    // connection ends in an error, as a gRPC channel's close can.
    let service = format!("service/{name}");
    let forward = demo.port_forward(&service, endpoint.port)?;
    let read_over_grpc = recognize(&demo, &endpoint.through(i32::from(forward.local_port), endpoint.http_port))
        .await
        .with_context(|| format!("kubectl port-forward said: {}", forward.errors()))?;
    drop(forward);
    let forward = demo.port_forward(&service, endpoint.http_port)?;
    let read_over_http = recognize_over_http(&demo, &endpoint.through(endpoint.port, i32::from(forward.local_port)))
        .await
        .with_context(|| format!("kubectl port-forward said: {}", forward.errors()))?;
    drop(forward);
    if read_over_http != read_over_grpc.text {
        bail!("the HTTP API read {read_over_http:?}, gRPC {:?}: both APIs must answer alike", read_over_grpc.text);
    }
    println!("  ok: both APIs read the same text");
    let logs = demo.tool(&kubectl, &["logs", "-n", &settings.namespace, &endpoint.pod, "--tail", "6"])?;
    Demo::print_indented(logs.trim_end());

    // 5. kubectl get ocrs.
    demo.step("kubectl get ocrs");
    let namespace = settings.namespace.clone();
    let out = demo.tool(&kubectl, &["get", "ocrs", "-n", &namespace])?;
    Demo::print_indented(out.trim_end());

    // 6. A canary.
    let new_version = demo.args.new_version.clone();
    demo.step(&format!("Roll out model version {new_version} as a canary"));
    let patch = serde_json::to_string(&manifest::version_patch(&new_version))?;
    let out = demo.tool(&kubectl, &["patch", "ocrs", &name, "-n", &namespace, "--type", "merge", "-p", &patch])?;
    Demo::print_indented(out.trim_end());
    println!(
        "  a new version changes the pod template, so the operator starts it as a canary beside stable and walks \
         the weights {} %; at each step it measures both tracks in the same window (golden-set accuracy from the \
         chart's ConfigMap, P95 and errors from the pods' metrics) every {}, advances after {} of passing \
         analyses, promotes at 100 %, rolls stable to the new revision and retires the canary. A failing canary \
         would be rolled back instead.",
        steps.iter().map(i64::to_string).collect::<Vec<_>>().join(" -> "),
        settings.analysis_interval,
        settings.step_interval
    );
    watch_rollout(&demo, &ocrs, &name, &new_version, &steps).await?;

    // 7. The new stable.
    demo.step(&format!("Stable serves {new_version}"));
    let endpoint = ready_endpoint(&demo, &client, &name, &format!("{name}-stable-"), &new_version).await?;
    let forward = demo.port_forward(&format!("pod/{}", endpoint.pod), endpoint.port)?;
    let bundle_version = recognize(&demo, &endpoint.through(i32::from(forward.local_port), endpoint.http_port))
        .await
        .with_context(|| format!("kubectl port-forward said: {}", forward.errors()))?
        .version;
    drop(forward);
    if bundle_version != new_version {
        println!(
            "  (the same bundle as before, which reports its own version {bundle_version}; spec.model.version \
             {new_version} is what the operator tracks and the pods carry in their kube-ocr.dev/model-version \
             annotation)"
        );
    }
    let out = demo.tool(&kubectl, &["get", "ocrs", "-n", &namespace])?;
    Demo::print_indented(out.trim_end());

    print_next_steps(&demo, &name, &namespace, &endpoint);
    Ok(())
}

async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = Kubeconfig::read_from(kubeconfig).with_context(|| format!("read {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A Ready endpoint of the Service `service` whose pod's name starts with `pod_prefix` and
/// serves model `version` (per the operator's annotation on the pod).
async fn ready_endpoint(
    demo: &Demo,
    client: &kube::Client,
    service: &str,
    pod_prefix: &str,
    version: &str,
) -> anyhow::Result<Endpoint> {
    let namespace = &demo.args.namespace;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("kubernetes.io/service-name={service}");
    wait_for(
        &format!("a Ready endpoint of Service {service} on a stable pod with model {version}"),
        "the EndpointSlice controller lists Ready pods behind the Service; kube-proxy on each node routes the \
         Service's cluster IP to them (≈1 s)",
        demo.timeout(),
        async || {
            let list = match slices.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list.items,
                Err(err) => return Poll::Pending(format!("cannot list EndpointSlices: {err}")),
            };
            let Some((address, port, pod)) = report::ready_endpoint(&list, GRPC_PORT_NAME, pod_prefix) else {
                return Poll::Pending("no Ready stable endpoint yet".to_owned());
            };
            let Some((_, http_port, _)) = report::ready_endpoint(&list, HTTP_API_PORT_NAME, pod_prefix) else {
                return Poll::Pending(format!("the Service has no {HTTP_API_PORT_NAME} port"));
            };
            let served = pods
                .get_opt(&pod)
                .await
                .ok()
                .flatten()
                .and_then(|p| p.metadata.annotations.and_then(|mut a| a.remove(MODEL_VERSION_ANNOTATION)));
            match served {
                Some(served) if served == version => {
                    Poll::Ready(Endpoint { address, port, http_port, pod, version: served })
                }
                served => Poll::Pending(format!(
                    "endpoint {address}:{port} is pod {pod}, model {}",
                    served.as_deref().unwrap_or("?")
                )),
            }
        },
    )
    .await
}

#[derive(Debug, Clone)]
struct Endpoint {
    address: String,
    port: i32,
    /// The same pod's HTTP API port.
    http_port: i32,
    pod: String,
    version: String,
}

impl Endpoint {
    fn url(&self) -> String {
        format!("http://{}:{}", self.address, self.port)
    }

    /// The same pod, reached on this machine's loopback at these (forwarded) ports.
    fn through(&self, port: i32, http_port: i32) -> Endpoint {
        Endpoint { address: "127.0.0.1".to_owned(), port, http_port, ..self.clone() }
    }
}

/// What a gRPC read returned that the demo uses again.
#[derive(Debug)]
struct Read {
    /// The version the bundle reports.
    version: String,
    text: String,
}

/// Sends the demo's document image to `endpoint` over gRPC and prints what came back.
async fn recognize(demo: &Demo, endpoint: &Endpoint) -> anyhow::Result<Read> {
    let image = std::fs::read(&demo.image).with_context(|| format!("read {}", demo.image.display()))?;
    let shown = demo.image.strip_prefix(&demo.workspace).unwrap_or(&demo.image).display().to_string();
    println!(
        "  gRPC kube_ocr.v1.Ocr/Recognize to {} (pod {}, model version {}): {shown}, {} KB, task DOCUMENT",
        endpoint.url(),
        endpoint.pod,
        endpoint.version,
        image.len() / 1024
    );
    let channel = tonic::transport::Endpoint::from_shared(endpoint.url())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .connect()
        .await
        .with_context(|| format!("connect to {}", endpoint.url()))?;
    let mut ocr = OcrClient::new(channel);
    let sent = Instant::now();
    let response = ocr
        .recognize(RecognizeRequest {
            request_id: format!("kube-ocr-demo-{}", std::process::id()),
            image,
            task: Task::Document as i32,
            options: Some(RecognizeOptions { bypass_cache: true, ..RecognizeOptions::default() }),
        })
        .await
        .with_context(|| format!("Recognize on {}", endpoint.url()))?
        .into_inner();
    let elapsed = sent.elapsed();
    println!("  recognised text ({} lines, confidence per line):", response.lines.len());
    for line in &response.lines {
        println!("    {:.2}  {}", line.confidence, line.text);
    }
    let model = response.model.unwrap_or_default();
    let timings = response.timings.unwrap_or_default();
    println!(
        "  {}x{} image read in {} ms (server: {} ms, of which inference {} ms) by bundle {} {} ({})",
        response.image_width,
        response.image_height,
        elapsed.as_millis(),
        timings.total_us / 1000,
        timings.inference_us / 1000,
        model.name,
        model.version,
        model.variant
    );
    Ok(Read { version: model.version, text: response.text })
}

/// The same document over the HTTP API, as `curl` would send it; returns the text read.
async fn recognize_over_http(demo: &Demo, endpoint: &Endpoint) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let image = std::fs::read(&demo.image).with_context(|| format!("read {}", demo.image.display()))?;
    let shown = demo.image.strip_prefix(&demo.workspace).unwrap_or(&demo.image).display().to_string();
    let (address, port) = (&endpoint.address, endpoint.http_port);
    let path = "/v1/ocr?task=document&format=text&bypass_cache=true";
    println!("  $ curl --data-binary @{shown} -H 'Content-Type: image/png' 'http://{address}:{port}{path}'");
    let sent = Instant::now();
    let mut stream =
        tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect((address.as_str(), port as u16)))
            .await
            .with_context(|| format!("connect to {address}:{port}"))??;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}:{port}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        image.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&image).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut response))
        .await
        .with_context(|| format!("POST {path} on {address}:{port} did not answer in 120 s"))??;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").context("an HTTP response without headers")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = String::from_utf8_lossy(&response[split + 4..]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    if !status.contains(" 200 ") {
        bail!("POST {path} on {address}:{port}: {status}: {body}");
    }
    println!("  {status} in {} ms, text/plain:", sent.elapsed().as_millis());
    for line in body.lines() {
        println!("    {line}");
    }
    Ok(body.trim_end().to_owned())
}

/// Polls the OcrService and prints every change of the rollout until stable serves
/// `version` with the canary gone; fails on a rollback or at the rollout timeout.
async fn watch_rollout(
    demo: &Demo,
    ocrs: &Api<OcrService>,
    name: &str,
    version: &str,
    steps: &[i64],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let timeout = Duration::from_secs(demo.args.rollout_timeout_secs);
    let mut previous = ocrs.get(name).await?.status.unwrap_or_default();
    let mut last_news = Instant::now();
    let mut explained_canary = false;
    let mut explained_promotion = false;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let current = match ocrs.get(name).await {
            Ok(ocr) => ocr.status.unwrap_or_default(),
            Err(err) => {
                println!("    [{:>3} s] cannot read OcrService {name}: {err}", started.elapsed().as_secs());
                continue;
            }
        };
        let at = started.elapsed().as_secs();
        let changes = report::rollout_changes(&previous, &current, steps);
        for line in &changes {
            println!("    [{at:>3} s] {line}");
        }
        if !changes.is_empty() {
            last_news = Instant::now();
        }
        if !explained_canary && current.canary_revision.is_some() && current.canary_revision != current.stable_revision
        {
            explained_canary = true;
            println!(
                "            (the canary pod loads the model and passes its self-test before the first analysis, ≈15-30 s here)"
            );
        }
        if !explained_promotion
            && previous.stable_revision.is_some()
            && current.stable_revision != previous.stable_revision
        {
            explained_promotion = true;
            println!(
                "            (a new stable pod starts beside the old one; the canary keeps serving until it is Ready, ≈15 s here)"
            );
        }
        match report::rollout_outcome(&current, version) {
            Some(Ok(())) => {
                println!("  ok: rollout of {version} finished after {:.1} s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            Some(Err(why)) => bail!("{why}"),
            None => {}
        }
        if last_news.elapsed() >= Duration::from_secs(20) {
            println!("    [{at:>3} s] still: {}", report::short_state(&current));
            last_news = Instant::now();
        }
        if started.elapsed() >= timeout {
            bail!(
                "timed out after {} s waiting for the rollout of {version}; last seen: {}",
                timeout.as_secs(),
                report::short_state(&current)
            );
        }
        previous = current;
    }
}

fn print_next_steps(demo: &Demo, name: &str, namespace: &str, endpoint: &Endpoint) {
    let ocr_cli = demo.bin_dir.join("ocr");
    let ocr_cli = if ocr_cli.is_file() {
        ocr_cli.display().to_string()
    } else {
        "cargo run -p kube-ocr-golden --bin ocr --".to_owned()
    };
    let shown_image = demo.image.strip_prefix(&demo.workspace).unwrap_or(&demo.image).display().to_string();
    println!(
        "\nDone in {:.0} s. The demo cluster keeps running. Use it from this checkout:",
        demo.started.elapsed().as_secs_f64()
    );
    println!("  export KUBECONFIG={}", demo.kubeconfig().display());
    println!("  export PATH={}:$PATH    # kubectl and helm", demo.k8s_bin.display());
    println!("  kubectl get ocrs -n {namespace}");
    println!("  kubectl describe ocrs -n {namespace} {name}      # conditions, canary, last analysis, events");
    println!(
        "  kubectl port-forward -n {namespace} service/{name} {}:{} {}:{} &   # the Service on this machine",
        endpoint.port, endpoint.port, endpoint.http_port, endpoint.http_port
    );
    println!("  {ocr_cli} --endpoint http://127.0.0.1:{} {shown_image}", endpoint.port);
    println!(
        "  curl -F file=@{shown_image} -F task=document http://127.0.0.1:{}/v1/ocr    # the HTTP API",
        endpoint.http_port
    );
    println!(
        "  kubectl patch ocrs -n {namespace} {name} --type merge -p '{{\"spec\":{{\"model\":{{\"version\":\"4.0.2\"}}}}}}'   # another canary"
    );
    println!("  kubectl logs -n {namespace} -l {SERVICE_LABEL}={name}    # the inference pods' logs");
    println!("  node logs (kubelet, containerd, kube-proxy): {}/<node>/logs", demo.dir.join("nodes").display());
    println!("Tear down: make demo-down   (a new `make demo` also starts from scratch)");
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn printed_commands_can_be_pasted_into_a_shell() {
        assert_eq!(shell_word("operator.replicas=1"), "operator.replicas=1");
        assert_eq!(shell_word("/work/kube-ocr/target/x.yaml"), "/work/kube-ocr/target/x.yaml");
        assert_eq!(shell_word("operator.listenHost=$(POD_IP)"), "'operator.listenHost=$(POD_IP)'");
        assert_eq!(
            shell_word(r#"{"spec":{"model":{"version":"4.0.1"}}}"#),
            r#"'{"spec":{"model":{"version":"4.0.1"}}}'"#
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}

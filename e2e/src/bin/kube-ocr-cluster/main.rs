//! `kube-ocr-cluster`: the local cluster for humans (`make cluster`, `make demo`): the control
//! plane and, with `--nodes`, real nodes (kubelet, containerd, kube-proxy; one zone each)
//! with the cluster DNS.
//!
//! `up` runs it in the foreground until SIGTERM/SIGINT/SIGHUP, in a fixed directory holding the
//! kubeconfig, logs and `state.json`; `up --detach` starts that in the background (own
//! process group, output to `<dir>/cluster.log`) and returns once it is ready; `down` asks the
//! `up` process to stop and waits until every component is gone.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, LocalControlPlane, StopReport, default_bin_dir, is_alive};
use kube_ocr_e2e::node::workspace_images::ImageInputs;
use kube_ocr_e2e::node::{ImageArchive, LocalCluster, NodeOptions};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use kube_ocr_e2e::cluster_state::{self as state, ClusterState, ComponentState};

#[derive(Debug, Parser)]
#[command(
    about = "The local Kubernetes cluster: control plane (etcd, kube-apiserver, controller manager, scheduler) and real nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the control plane and run until SIGTERM/SIGINT (or, with --detach, until `down`).
    Up(UpArgs),
    /// Stop the control plane `up` started in the directory.
    Down(DownArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// The cluster directory: kubeconfig, logs, state.json.
    #[arg(long, env = "KUBE_OCR_CLUSTER_DIR", default_value = "target/kube-ocr")]
    dir: PathBuf,
    /// Where etcd, kube-apiserver, ... are (default: where `make setup` builds them).
    #[arg(long, env = "KUBE_OCR_K8S_BIN")]
    k8s_bin: Option<PathBuf>,
    /// How long each component may take to become ready.
    #[arg(long, env = "KUBE_OCR_READY_TIMEOUT_SECS", default_value_t = 120)]
    ready_timeout_secs: u64,
    /// Real nodes to start (node-a in zone-a, node-b in zone-b, ...; needs root); 0 starts
    /// the control plane alone, on loopback.
    #[arg(long, env = "KUBE_OCR_CLUSTER_NODES", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=4))]
    nodes: u8,
    /// `nvidia.com/gpu` each node advertises (there are no devices behind them).
    #[arg(long, env = "KUBE_OCR_CLUSTER_GPUS_PER_NODE", default_value_t = 1)]
    gpus_per_node: u32,
    /// Build the project's images (operator, inference pod) from this checkout's binaries
    /// and `make setup`'s artifacts, and import them into every node (needs --nodes).
    #[arg(long, env = "KUBE_OCR_CLUSTER_WORKSPACE_IMAGES")]
    workspace_images: bool,
    /// Run in the background (output to <dir>/cluster.log) and return once ready; succeed at
    /// once if it already runs.
    #[arg(long, env = "KUBE_OCR_CLUSTER_DETACH")]
    detach: bool,
    /// Keep running when the terminal hangs up (set for the background process by --detach).
    #[arg(long, env = "KUBE_OCR_CLUSTER_IGNORE_HANGUP", hide = true)]
    ignore_hangup: bool,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// The cluster directory given to `up`.
    #[arg(long, env = "KUBE_OCR_CLUSTER_DIR", default_value = "target/kube-ocr")]
    dir: PathBuf,
    /// How long to wait for an orderly stop before killing what is left.
    #[arg(long, env = "KUBE_OCR_STOP_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // kube's client logs every refused /readyz poll during start-up as an error.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        // No colour codes in <dir>/cluster.log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) if args.detach => detach(&args),
        Cmd::Up(args) => {
            tokio::runtime::Runtime::new().context("start a tokio runtime").and_then(|rt| rt.block_on(up(args)))
        }
        Cmd::Down(args) => down(&args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("kube-ocr-cluster: {err:#}");
        ExitCode::FAILURE
    })
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)?;
    if let Some(state) = state::running(&dir) {
        bail!("a cluster already runs in {} (pid {}); `kube-ocr-cluster down` first", dir.display(), state.pid);
    }
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let bin_dir = args.k8s_bin.clone().unwrap_or_else(default_bin_dir);
    let mut state = ClusterState {
        pid: std::process::id() as i32,
        ready: false,
        apiserver_url: None,
        kubeconfig: None,
        bin_dir: bin_dir.clone(),
        components: Vec::new(),
    };
    state::write(&dir, &state)?;
    let options = ControlPlaneOptions {
        bin_dir,
        dir: Some(dir.clone()),
        ready_timeout: Duration::from_secs(args.ready_timeout_secs),
        ..ControlPlaneOptions::default()
    };
    let mut stop_signals = StopSignals::new(args.ignore_hangup)?;
    let started = Instant::now();
    // A signal during the start drops the start future, and with it what was started.
    let cluster = tokio::select! {
        cluster = Cluster::start(options, args.nodes, args.gpus_per_node, args.workspace_images) => cluster,
        signal = stop_signals.next() => {
            info!(signal, "stopping before the cluster was ready");
            state::remove(&dir);
            return Ok(ExitCode::from(130));
        }
    };
    let mut cluster = match cluster {
        Ok(cluster) => cluster,
        Err(err) => {
            state::remove(&dir);
            return Err(err);
        }
    };
    let plane = cluster.plane();
    state.ready = true;
    state.apiserver_url = Some(plane.apiserver_url().to_owned());
    state.kubeconfig = Some(plane.kubeconfig().to_owned());
    state.components = plane
        .components()
        .into_iter()
        .map(|c| ComponentState { name: c.name.to_owned(), pid: c.pid, process_group: c.process_group })
        .collect();
    state::write(&dir, &state)?;
    info!(elapsed_ms = started.elapsed().as_millis() as u64, nodes = args.nodes, "cluster ready");
    print_info(&state, &dir);

    let mut code = ExitCode::SUCCESS;
    loop {
        tokio::select! {
            signal = stop_signals.next() => {
                info!(signal, "stopping");
                break;
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Err(err) = cluster.check_running() {
                    error!(error = %err, "a component died; stopping the cluster");
                    code = ExitCode::FAILURE;
                    break;
                }
            }
        }
    }
    let report = tokio::task::spawn_blocking(move || cluster.stop()).await?;
    state::remove(&dir);
    info!(elapsed_ms = report.elapsed.as_millis() as u64, clean = report.clean(), "cluster stopped");
    Ok(code)
}

/// The control plane alone, or with real nodes.
enum Cluster {
    ControlPlane(LocalControlPlane),
    WithNodes(LocalCluster),
}

impl Cluster {
    async fn start(
        options: ControlPlaneOptions,
        nodes: u8,
        gpus_per_node: u32,
        workspace_images: bool,
    ) -> anyhow::Result<Cluster> {
        if nodes == 0 {
            if workspace_images {
                bail!("--workspace-images needs nodes to import the images into (--nodes 1 or more)");
            }
            return Ok(Cluster::ControlPlane(LocalControlPlane::start(options).await?));
        }
        let nodes = (0..nodes)
            .map(|index| {
                let letter = char::from(b'a' + index);
                NodeOptions::new(format!("node-{letter}"), format!("zone-{letter}")).with_gpus(gpus_per_node)
            })
            .collect();
        let cluster = LocalCluster::start(options, nodes).await?;
        if workspace_images {
            import_workspace_images(&cluster).await?;
        }
        Ok(Cluster::WithNodes(cluster))
    }

    fn plane(&self) -> &LocalControlPlane {
        match self {
            Cluster::ControlPlane(plane) => plane,
            Cluster::WithNodes(cluster) => cluster.plane(),
        }
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Cluster::ControlPlane(plane) => Ok(plane.check_running()?),
            Cluster::WithNodes(cluster) => Ok(cluster.check_running()?),
        }
    }

    fn stop(self) -> StopReport {
        match self {
            Cluster::ControlPlane(plane) => plane.stop(),
            Cluster::WithNodes(cluster) => cluster.stop(),
        }
    }
}

/// Builds the operator and inference pod images (the builder reuses unchanged layers) and
/// imports them into every node that does not hold them yet.
async fn import_workspace_images(cluster: &LocalCluster) -> anyhow::Result<()> {
    let started = Instant::now();
    let inputs = ImageInputs::of_this_checkout()?;
    let archives = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ImageArchive>> {
        Ok(vec![inputs.build_operator()?, inputs.build_inference_pod()?])
    })
    .await??;
    info!(elapsed_ms = started.elapsed().as_millis() as u64, "workspace images built");
    for node in cluster.nodes() {
        for archive in &archives {
            tokio::task::block_in_place(|| node.import_archive(archive))?;
        }
    }
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        images = ?archives.iter().map(|a| a.reference.as_str()).collect::<Vec<_>>(),
        "workspace images on every node"
    );
    Ok(())
}

/// SIGTERM, SIGINT and (unless ignored) SIGHUP. Registering SIGHUP even when ignoring it
/// replaces its default action, which would kill us without a teardown.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    ignore_hangup: bool,
}

impl StopSignals {
    fn new(ignore_hangup: bool) -> anyhow::Result<Self> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
            ignore_hangup,
        })
    }

    async fn next(&mut self) -> &'static str {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
                _ = self.hangup.recv() => {
                    if !self.ignore_hangup {
                        return "SIGHUP";
                    }
                    info!("ignoring SIGHUP (detached)");
                }
            }
        }
    }
}

fn print_info(state: &ClusterState, dir: &Path) {
    let kubeconfig = state.kubeconfig.clone().unwrap_or_else(|| dir.join("kubeconfig"));
    let kubectl = state.bin_dir.join("kubectl");
    println!("kube-ocr cluster ready: apiserver {} (pid {})", state.apiserver_url.as_deref().unwrap_or("?"), state.pid);
    println!("  kubeconfig: {}", kubeconfig.display());
    println!("  logs:       {}", dir.join("logs").display());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  {} --kubeconfig {} get nodes", kubectl.display(), kubeconfig.display());
    println!("  stop it:    make cluster-down");
}

/// Starts `up` in the background and waits until it is ready (or has failed).
fn detach(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)?;
    if let Some(state) = state::running(&dir) {
        println!("already running");
        print_info(&state, &dir);
        return Ok(ExitCode::SUCCESS);
    }
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let log_path = dir.join("cluster.log");
    let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .arg("--ready-timeout-secs")
        .arg(args.ready_timeout_secs.to_string())
        .arg("--nodes")
        .arg(args.nodes.to_string())
        .arg("--gpus-per-node")
        .arg(args.gpus_per_node.to_string())
        .args(args.workspace_images.then_some("--workspace-images"))
        .arg("--ignore-hangup")
        // Or the background process would detach again.
        .env_remove("KUBE_OCR_CLUSTER_DETACH")
        .env_remove("KUBE_OCR_CLUSTER_WORKSPACE_IMAGES")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Out of the terminal's process group: a Ctrl-C meant for `make` does not reach it.
        .process_group(0);
    if let Some(bin) = &args.k8s_bin {
        command.arg("--k8s-bin").arg(bin);
    }
    let mut child = command.spawn().context("start `kube-ocr-cluster up` in the background")?;
    println!("starting the cluster in the background (pid {}, log {})", child.id(), log_path.display());
    // A cold build of the inference pod image (4 GB of libraries) and its first import into
    // each node take minutes.
    let images = if args.workspace_images { Duration::from_secs(900) } else { Duration::ZERO };
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout_secs * 3 + 60) + images;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let tail = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            bail!(
                "the cluster process exited ({status}) before it was ready; last lines of {}:\n{tail}",
                log_path.display()
            );
        }
        if let Some(state) = state::read(&dir).filter(|s| s.ready && s.pid == child.id() as i32) {
            print_info(&state, &dir);
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            if let Some(pid) = Pid::from_raw(child.id() as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
            bail!("the cluster was not ready in time; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn down(args: &DownArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)?;
    let Some(state) = state::read(&dir) else {
        println!("no cluster runs in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let owner_alive = || is_alive(state.pid) && state::runs(state.pid, "kube-ocr-cluster");
    if owner_alive() {
        println!("stopping the cluster (pid {})", state.pid);
        if let Some(pid) = Pid::from_raw(state.pid) {
            kill_process(pid, Signal::TERM).with_context(|| format!("signal pid {}", state.pid))?;
        }
        while owner_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if owner_alive() {
            warn!(pid = state.pid, "no orderly stop in time; killing it");
            if let Some(pid) = Pid::from_raw(state.pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
    // The components stop with their owner (their watchdogs see it go); kill any stragglers,
    // checking each pid still runs what the state says (it may be stale).
    let alive = |c: &&ComponentState| is_alive(c.pid) && state::runs(c.pid, &c.name);
    let straggler_deadline = Instant::now() + Duration::from_secs(30);
    while state.components.iter().any(|c| alive(&c)) && Instant::now() < straggler_deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for component in state.components.iter().filter(alive) {
        warn!(component = component.name, pid = component.pid, "still running; killing its process group");
        if let Some(group) = Pid::from_raw(component.process_group) {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
    state::remove(&dir);
    println!("cluster stopped in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

//! `ocr-node-agent`: the local node agent (our stand-in for the kubelet) as a process, for
//! `make cluster` and humans. Registers a Node, runs the pods bound to it as local
//! processes, and stops them on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_ocr_e2e::node_agent::{Backoff, ImageMap, NodeAgent, NodeAgentConfig, NodeCapacity};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

#[derive(Debug, Parser)]
#[command(about = "The local node agent: registers a Node and runs the pods bound to it as local processes")]
struct Cli {
    /// Kubeconfig of the control plane (admin rights).
    #[arg(long, env = "KUBECONFIG", default_value = "target/kube-ocr/kubeconfig")]
    kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long, env = "KUBE_OCR_NODE_NAME", default_value = "kube-ocr-node")]
    node_name: String,
    /// `nvidia.com/gpu` capacity.
    #[arg(long, env = "KUBE_OCR_NODE_CAPACITY_GPUS", default_value_t = 4)]
    capacity_gpus: u32,
    /// CPU capacity (a Kubernetes quantity).
    #[arg(long, env = "KUBE_OCR_NODE_CAPACITY_CPU", default_value = "8")]
    capacity_cpu: String,
    /// Memory capacity (a Kubernetes quantity).
    #[arg(long, env = "KUBE_OCR_NODE_CAPACITY_MEMORY", default_value = "32Gi")]
    capacity_memory: String,
    /// Pod capacity.
    #[arg(long, env = "KUBE_OCR_NODE_CAPACITY_PODS", default_value_t = 110)]
    capacity_pods: u32,
    /// `image=path` entries (image without tag); they win over the workspace defaults.
    #[arg(long = "image-map", env = "KUBE_OCR_NODE_IMAGE_MAP", value_delimiter = ',')]
    image_map: Vec<String>,
    /// Where `ocr-inference-pod` and `ocr-operator` are, for the default image map
    /// (default: next to this binary).
    #[arg(long, env = "KUBE_OCR_NODE_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Pod directories and logs (`<work-dir>/<namespace>_<pod>/<container>.log`).
    #[arg(long, env = "KUBE_OCR_NODE_WORK_DIR", default_value = "target/kube-ocr/node-agent")]
    work_dir: PathBuf,
    /// The CIDR pod IPs are allocated from (default: 10.244.0.0/16 when it is local on this
    /// machine, see tools/local-pod-network.sh; else 127.0.0.0/16, whose addresses the API
    /// server refuses in EndpointSlices).
    #[arg(long, env = "KUBE_OCR_NODE_POD_IP_BASE")]
    pod_ip_base: Option<String>,
    /// First crash-loop back-off in seconds (doubling up to --backoff-max-secs).
    #[arg(long, env = "KUBE_OCR_NODE_BACKOFF_SECS", default_value_t = 10)]
    backoff_secs: u64,
    /// Longest crash-loop back-off in seconds.
    #[arg(long, env = "KUBE_OCR_NODE_BACKOFF_MAX_SECS", default_value_t = 300)]
    backoff_max_secs: u64,
    /// Seconds containers get between SIGTERM and SIGKILL when the agent stops.
    #[arg(long, env = "KUBE_OCR_NODE_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    shutdown_grace_secs: u64,
    /// Delete the Node object when the agent stops.
    #[arg(long, env = "KUBE_OCR_NODE_DEREGISTER")]
    deregister: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();

    let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig)
        .with_context(|| format!("read kubeconfig {}", cli.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("load kubeconfig {}", cli.kubeconfig.display()))?;
    let api_server = config.cluster_url.to_string().trim_end_matches('/').to_owned();
    let client = kube::Client::try_from(config).context("build the API client")?;

    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("locate this binary")?
            .parent()
            .map(PathBuf::from)
            .context("this binary has no parent directory")?,
    };
    let mut images = ImageMap::workspace_defaults(&bin_dir);
    images.extend(ImageMap::parse_entries(&cli.image_map)?);

    let mut agent_config = NodeAgentConfig::new(cli.node_name, cli.work_dir, images);
    agent_config.capacity = NodeCapacity {
        cpu: cli.capacity_cpu,
        memory: cli.capacity_memory,
        pods: cli.capacity_pods,
        gpus: cli.capacity_gpus,
    };
    agent_config.pod_ip_range = cli.pod_ip_base;
    agent_config.api_server = Some(api_server);
    agent_config.restart_backoff = Backoff {
        initial: Duration::from_secs(cli.backoff_secs.max(1)),
        max: Duration::from_secs(cli.backoff_max_secs.max(cli.backoff_secs)),
        ..Backoff::default()
    };
    agent_config.shutdown_grace = Duration::from_secs(cli.shutdown_grace_secs);
    agent_config.deregister_on_shutdown = cli.deregister;

    let agent = NodeAgent::start(client, agent_config).await?;
    let mut terminate = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM; stopping"),
        _ = interrupt.recv() => info!("SIGINT; stopping"),
    }
    agent.shutdown().await;
    Ok(())
}

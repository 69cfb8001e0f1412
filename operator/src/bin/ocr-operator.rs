//! `ocr-operator`: the kube-ocr operator. Flags and their `OCR_OPERATOR_*` variables:
//! `--help`; docs/operator.md describes them.

use std::process::ExitCode;

use clap::Parser;
use kube_ocr_operator::{LogFormat, OperatorConfig, run};
use tokio::signal::unix::{SignalKind, signal};

fn init_logging(config: &OperatorConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn main_async(config: OperatorConfig) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    };
    run(client, config, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let config = OperatorConfig::parse();
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ocr-operator: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("ocr-operator: {error:#}");
            ExitCode::FAILURE
        }
    }
}

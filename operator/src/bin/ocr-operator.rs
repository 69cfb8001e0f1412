//! `ocr-operator`: the kube-ocr operator. Flags and their `OCR_OPERATOR_*` variables:
//! `--help`; docs/operator.md describes them.

use std::process::ExitCode;

use clap::Parser;
use kube_ocr_operator::{OperatorConfig, run};
use kube_ocr_runtime::run_main;

fn main() -> ExitCode {
    let config = OperatorConfig::parse();
    run_main("ocr-operator", &config.logging(), |shutdown| async move {
        let client = kube::Client::try_default().await?;
        let shutdown = async move {
            let signal = shutdown.received().await;
            tracing::info!(signal, "shutting down");
        };
        run(client, config, shutdown).await?;
        anyhow::Ok(())
    })
}

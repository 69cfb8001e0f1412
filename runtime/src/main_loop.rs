//! The part of `main` every server binary repeats: logging, the runtime, signals, and
//! turning the outcome into an exit code with the error's whole chain on stderr.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use crate::{Logging, ShutdownSignals};

/// Installs logging, builds the multi-threaded runtime, installs the shutdown signal
/// handlers and runs `body` to completion. An error is logged and printed once and the
/// process exits 1; success exits 0. The error is printed with `{}`: in this workspace
/// every error's message already ends with its cause's (`"apply Service x: {source}"`),
/// so anyhow's `{:#}` chain would print each cause twice.
pub fn run_main<F, Fut, E>(program: &str, logging: &Logging, body: F) -> ExitCode
where
    F: FnOnce(ShutdownSignals) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    if let Err(error) = logging.install() {
        eprintln!("{program}: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{program}: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(error) => return Err(format!("installing the SIGTERM/SIGINT handlers: {error}")),
        };
        body(signals).await.map_err(|error| error.to_string())
    });
    match outcome {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(message) => {
            tracing::error!(error = %message, "exiting");
            eprintln!("{program}: {message}");
            ExitCode::FAILURE
        }
    }
}

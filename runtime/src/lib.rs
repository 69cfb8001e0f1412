//! The start-up path every kube-ocr server binary shares (`ocr-inference-pod`,
//! `ocr-operator`): structured logging to stderr, the multi-threaded tokio runtime, SIGTERM
//! and SIGINT as a shutdown request, and one exit code and message for a failed run.
//!
//! A binary parses its own flags (each with its own `env =` names, so only its `main`
//! reads the environment), then hands its async body to [`run_main`]:
//!
//! ```no_run
//! use kube_ocr_runtime::{LogFormat, Logging, run_main};
//!
//! fn main() -> std::process::ExitCode {
//!     let logging = Logging { format: LogFormat::Json, filter: "info".into() };
//!     run_main("my-server", &logging, |shutdown| async move {
//!         // start serving, then:
//!         let signal = shutdown.received().await;
//!         tracing::info!(signal, "shutting down");
//!         Ok::<(), std::io::Error>(())
//!     })
//! }
//! ```
//!
//! It sits beside the leaf crates: it knows nothing of OCR, Kubernetes or libtorch.

mod logging;
mod main_loop;
mod shutdown;

pub use logging::{LogFormat, Logging, LoggingError};
pub use main_loop::run_main;
pub use shutdown::ShutdownSignals;

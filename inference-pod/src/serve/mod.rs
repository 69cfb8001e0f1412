//! The serving layer: the dynamic batcher in front of each model stage, the engine that
//! takes one request through decode → detect → classify → recognise, the result cache,
//! the start-up self-test, the OCR call both APIs share and the gRPC and HTTP APIs around
//! it, the HTTP side port (probes, metrics), serving state and drain, and telemetry (metrics, process and GPU collectors, access log). It
//! runs models only through [`crate::model`] and never names libtorch.

mod admission;
mod api;
mod batcher;
mod cache;
mod engine;
mod error;
mod grpc;
mod http;
mod http_api;
mod jobs;
mod jobs_front;
mod pdf;
mod running;
mod self_test;
mod serving_state;
mod startup;
mod telemetry;

pub use batcher::BatcherConfig;
pub use cache::{SharedCacheError, SharedCacheSettings};
pub use error::ServeError;
pub use http_api::CorsPolicy;
pub use http_api::openapi::document_json as openapi_json;
pub use jobs::{JobError, JobSettings};
pub use jobs_front::{JobsFrontConfig, start_jobs_front};
pub use pdf::{DEFAULT_PDF_DPI, PdfSettings};
pub use running::RunningServer;
pub use self_test::DEFAULT_MAX_PRECISION_ACCURACY_DROP;
pub use startup::{ServerConfig, start};

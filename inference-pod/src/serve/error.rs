use std::net::SocketAddr;
use std::path::PathBuf;

use kube_ocr_golden::GoldenError;
use tokio::task::JoinError;

use crate::model::ModelError;

/// Everything starting, running or stopping the server can fail at, named after the
/// operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },

    #[error("{0}")]
    SelectDevice(#[source] ModelError),

    /// `--torch-threads` could not be applied.
    #[error("setting libtorch's intra-op threads: {0}")]
    SetTorchThreads(#[source] ModelError),

    #[error("loading the model: {0}")]
    LoadModel(#[source] ModelError),

    /// The blocking task that loads the model panicked.
    #[error("loading the model: {0}")]
    JoinModelLoader(#[source] JoinError),

    /// A model stage's batcher thread could not be spawned.
    #[error("loading the model: starting the {stage} worker thread: {source}")]
    StartWorker { stage: &'static str, source: std::io::Error },

    #[error("loading the model: loading self-test samples from {}: {source}", dir.display())]
    LoadSelfTestSamples { dir: PathBuf, source: GoldenError },

    #[error("building gRPC reflection: {0}")]
    BuildReflection(#[source] tonic_reflection::server::Error),

    #[error("gRPC server: {0}")]
    ServeGrpc(#[source] tonic::transport::Error),

    #[error("HTTP API server: {0}")]
    ServeHttpApi(#[source] std::io::Error),

    /// `--http-cors-allow-origins` has an origin that is not a header value.
    #[error("configuring CORS: {0}")]
    ConfigureCors(String),

    /// The shared cache's flags do not describe a usable Redis client.
    #[error("configuring the shared cache: {0}")]
    ConfigureSharedCache(#[from] crate::serve::cache::SharedCacheError),

    /// `--jobs-bucket` without `--redis-url`: the job queue lives in that Redis.
    #[error("jobs need a Redis for their queue: set --redis-url (it also turns the shared result cache on)")]
    JobsWithoutRedis,

    /// The job flags do not describe a usable queue or bucket client.
    #[error("configuring jobs: {0}")]
    ConfigureJobs(#[from] crate::serve::jobs::JobError),

    /// The bundle's files could not be read to fingerprint them for the cache key.
    #[error("fingerprinting the model bundle: {0}")]
    DigestBundle(crate::model::ModelError),

    /// A server task panicked.
    #[error("{what} server: {source}")]
    JoinServer { what: &'static str, source: JoinError },
}

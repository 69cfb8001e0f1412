use std::path::PathBuf;

/// Everything the inference library can fail at, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("reading model bundle file {path}: {source}")]
    ReadBundleFile { path: PathBuf, source: std::io::Error },

    #[error("parsing {path}: {source}")]
    ParseBundleManifest { path: PathBuf, source: serde_norway::Error },

    #[error("invalid model bundle {path}: {reason}")]
    ValidateBundle { path: PathBuf, reason: String },

    #[error("loading TorchScript module {path}: {source}")]
    LoadTorchScript { path: PathBuf, source: tch::TchError },

    #[error("running TorchScript module {module}: {source}")]
    RunTorchScript { module: String, source: tch::TchError },

    #[error("unexpected output of {module}: {reason}")]
    ModelOutputShape { module: String, reason: String },

    #[error("starting the {stage} worker thread: {source}")]
    StartWorker { stage: String, source: std::io::Error },

    #[error("preparing a text line for recognition: {reason}")]
    PrepareLine { reason: String },
}

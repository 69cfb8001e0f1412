use std::path::PathBuf;

use kube_ocr_vision::VisionError;

use crate::model::device::ComputeDevice;
use crate::model::precision::Precision;

/// Everything the model layer can fail at, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading model bundle file {path}: {source}")]
    ReadBundleFile { path: PathBuf, source: std::io::Error },

    #[error("parsing {path}: {source}")]
    ParseBundleManifest { path: PathBuf, source: serde_norway::Error },

    /// The bundle's files disagree with its manifest or with this server (no underlying
    /// error: the reason is the finding).
    #[error("invalid model bundle {path}: {reason}")]
    ValidateBundle { path: PathBuf, reason: String },

    /// `--device cuda:N` names a GPU libtorch cannot see.
    #[error(
        "device cuda:{index} requested but libtorch sees {cuda_devices} CUDA device(s) (driver missing, or GPU not allocated to this pod?)"
    )]
    SelectDevice { index: usize, cuda_devices: usize },

    #[error("loading TorchScript module {path}: {source}")]
    LoadTorchScript { path: PathBuf, source: tch::TchError },

    /// Converting the loaded weights to the requested precision or memory format failed
    /// (a precision this device's libtorch kernels lack, for one).
    #[error("converting TorchScript module {module} to {precision} on {device}: {source}")]
    ConvertTorchScript { module: String, precision: Precision, device: ComputeDevice, source: tch::TchError },

    /// A forward pass failed; precision and device are named because a reduced precision
    /// libtorch has no kernel for on this device fails here, at the first forward.
    #[error("running TorchScript module {module} in {precision} on {device}: {source}")]
    RunTorchScript { module: String, precision: Precision, device: ComputeDevice, source: tch::TchError },

    /// Handing work to the thread that makes every libtorch call failed (`torch_thread`).
    #[error("running on the libtorch thread: {reason}")]
    RunOnTorchThread { reason: String },

    #[error("unexpected output of {module}: {reason}")]
    ModelOutputShape { module: String, reason: String },

    #[error(transparent)]
    PrepareInput(#[from] VisionError),

    /// A crop the classifier input could not be made from (an empty one) reached the stage.
    #[error("preparing a text line for recognition: classifier input has {values} values, expected {expected}")]
    PrepareClassifierInput { values: usize, expected: usize },
}

use kube_ocr_vision::VisionError;
use kube_ocr_vision::image::DecodeError;
use tokio::sync::oneshot::error::RecvError;
use tokio::task::JoinError;

use crate::model::ModelError;
use crate::serve::admission::AdmissionRefusal;
use crate::serve::batcher::BatchError;

/// Why one OCR request failed. The gRPC layer turns each into a status code, once.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OcrError {
    #[error(transparent)]
    Decode(#[from] DecodeError),

    /// Refused before queueing: the deadline cannot be met.
    #[error(transparent)]
    Admit(#[from] AdmissionRefusal),

    #[error(transparent)]
    Batch(#[from] BatchError<ModelError>),

    /// DB post-processing refused the detector's output.
    #[error("internal error: {0}")]
    FindLines(#[source] VisionError),

    /// A stage's worker went away with the request's items still queued.
    #[error("internal error: {stage} stopped")]
    AwaitStage { stage: &'static str, source: RecvError },

    /// A CPU-bound step on tokio's blocking pool panicked or was cancelled.
    #[error("internal error: worker task failed: {0}")]
    RunBlocking(#[source] JoinError),
}

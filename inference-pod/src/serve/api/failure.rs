//! Why a call failed, in the terms both APIs answer in. The layers below return typed
//! errors; here each becomes a [`Failure`] (what the caller can do about it) once, and
//! the gRPC and HTTP boundaries each map a `Failure` to their own status once.

use std::time::Duration;

use kube_ocr_vision::image::PageRangeError;
use kube_ocr_vision::pdf::PdfError;
use tonic::Code;

use crate::serve::admission::AdmissionRefusal;
use crate::serve::batcher::BatchError;
use crate::serve::engine::OcrError;
use crate::serve::pdf::RenderError;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request is malformed: fix it, do not retry it as is.
    InvalidArgument,
    /// The input is over a size limit (bytes, pixels): send less.
    TooLarge,
    /// The server has no room now; `retry_after` says when a retry could be admitted.
    Busy { retry_after: Option<Duration> },
    /// The deadline passed, or cannot be met even by an idle server.
    DeadlineExceeded,
    /// The pod does not serve (starting, failed self-test, draining): try another.
    Unavailable,
    /// A fault of the server.
    Internal,
    /// The caller went away before the answer (a document stream it stopped reading):
    /// the work was stopped, nobody is told.
    Cancelled,
    /// What the call names does not exist (a job id, an s3:// document), or expired.
    NotFound,
    /// The pod's credentials may not read what the call names (an s3:// document).
    PermissionDenied,
    /// The thing named is not in a state that allows this (the result of an unfinished
    /// job, cancelling a finished one).
    FailedPrecondition,
    /// The pod was not started with what this call needs (jobs without a bucket).
    Unimplemented,
}

impl Failure {
    /// The gRPC code the gRPC API answers with and metrics count under (the HTTP API
    /// mirrors it: the same name is in its error body).
    pub(crate) fn code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::TooLarge | Self::Busy { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
            Self::Cancelled => Code::Cancelled,
            Self::NotFound => Code::NotFound,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Unimplemented => Code::Unimplemented,
        }
    }
}

/// A failed call: what it means and the message the caller reads (the same on both APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub failure: Failure,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self { failure, message: message.into() }
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Failure::InvalidArgument, message)
    }
}

impl From<&OcrError> for ApiError {
    fn from(error: &OcrError) -> Self {
        Self::new(failure_of(error), error.to_string())
    }
}

impl From<&RenderError> for ApiError {
    fn from(error: &RenderError) -> Self {
        Self::new(render_failure(error), error.to_string())
    }
}

impl From<&PageRangeError> for ApiError {
    fn from(error: &PageRangeError) -> Self {
        let failure = match error {
            PageRangeError::TooManyPages { .. } => Failure::TooLarge,
            PageRangeError::FirstAfterLast { .. } | PageRangeError::PastTheEnd { .. } => Failure::InvalidArgument,
        };
        Self::new(failure, error.to_string())
    }
}

/// A document the caller can fix (damaged, encrypted, a range past its end) is theirs to
/// fix; one over a size or cost limit is too large, like an image over the pixel limit;
/// a renderer that cannot start or talks nonsense is the server's fault.
fn render_failure(error: &RenderError) -> Failure {
    match error {
        RenderError::Document(PdfError::Range(range)) => ApiError::from(range).failure,
        RenderError::Document(
            PdfError::Encrypted | PdfError::Unreadable | PdfError::NoPages | PdfError::EmptyPage { .. },
        ) => Failure::InvalidArgument,
        RenderError::Document(PdfError::DocumentTooLong { .. } | PdfError::PageTooLarge { .. })
        | RenderError::Died { .. }
        | RenderError::PageTimedOut { .. } => Failure::TooLarge,
        RenderError::Spawn { .. } | RenderError::ReadFrames(_) | RenderError::BadFrame(_) | RenderError::Unexpected => {
            Failure::Internal
        }
    }
}

fn failure_of(error: &OcrError) -> Failure {
    match error {
        OcrError::Decode(decode) if decode.is_resource_limit() => Failure::TooLarge,
        OcrError::Decode(_) => Failure::InvalidArgument,
        OcrError::Admit(refusal @ AdmissionRefusal::Busy { .. }) => {
            Failure::Busy { retry_after: refusal.retry_after() }
        }
        OcrError::Admit(AdmissionRefusal::DeadlineTooShort { .. }) => Failure::DeadlineExceeded,
        OcrError::Batch(BatchError::QueueFull { .. }) => Failure::Busy { retry_after: None },
        OcrError::Batch(BatchError::DeadlineExceeded { .. }) => Failure::DeadlineExceeded,
        OcrError::Batch(BatchError::Stopped { .. }) => Failure::Unavailable,
        OcrError::Batch(BatchError::Compute { .. } | BatchError::MissingOutput { .. })
        | OcrError::FindLines(_)
        | OcrError::AwaitStage { .. }
        | OcrError::RunBlocking(_) => Failure::Internal,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube_ocr_vision::VisionError;
    use kube_ocr_vision::image::{DecodeLimits, decode_image};

    use super::*;
    use crate::model::ModelError;

    fn decode_error(bytes: &[u8], limits: DecodeLimits) -> OcrError {
        OcrError::Decode(decode_image(bytes, limits).unwrap_err())
    }

    #[test]
    fn callers_can_tell_their_mistakes_from_load_and_server_faults() {
        let tiny = DecodeLimits { max_pixels: 1, max_side: 1 };
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(2, 2).write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        let batch = |error: BatchError<ModelError>| OcrError::Batch(error);
        let compute = ModelError::PrepareInput(VisionError::PrepareLine { width: 0, height: 1 });
        let busy = AdmissionRefusal::Busy { expected_ms: 900, left_ms: 500, retry_after_ms: 475 };
        let cases = [
            (decode_error(b"not an image", DecodeLimits::default()), Failure::InvalidArgument),
            (decode_error(&png, tiny), Failure::TooLarge),
            (batch(BatchError::QueueFull { stage: "request", capacity: 1 }), Failure::Busy { retry_after: None }),
            (OcrError::Admit(busy), Failure::Busy { retry_after: Some(Duration::from_millis(475)) }),
            (
                OcrError::Admit(AdmissionRefusal::DeadlineTooShort { left_ms: 10, service_ms: 90 }),
                Failure::DeadlineExceeded,
            ),
            (batch(BatchError::DeadlineExceeded { stage: "detect", waited_ms: 9 }), Failure::DeadlineExceeded),
            (batch(BatchError::Stopped { stage: "detect" }), Failure::Unavailable),
            (batch(BatchError::Compute { stage: "recognize", source: Arc::new(compute) }), Failure::Internal),
            (OcrError::FindLines(VisionError::DetectBoxes { values: 1, width: 2, height: 2 }), Failure::Internal),
        ];
        for (error, failure) in cases {
            let api = ApiError::from(&error);
            assert_eq!(api.failure, failure, "{error}");
            assert_eq!(api.message, error.to_string());
        }
    }

    #[test]
    fn pdf_failures_are_the_callers_to_fix_or_too_large() {
        let range = |error| RenderError::Document(PdfError::Range(error));
        let cases = [
            (RenderError::Document(PdfError::Encrypted), Failure::InvalidArgument),
            (RenderError::Document(PdfError::Unreadable), Failure::InvalidArgument),
            (range(PageRangeError::PastTheEnd { first: 9, page_count: 2 }), Failure::InvalidArgument),
            (range(PageRangeError::TooManyPages { selected: 90, max_pages: 50 }), Failure::TooLarge),
            (
                RenderError::Document(PdfError::DocumentTooLong { page_count: 1 << 20, max_pages: 10_000 }),
                Failure::TooLarge,
            ),
            (
                RenderError::Died { page: Some(1), memory_limit_bytes: 1 << 30, reason: "out of memory".into() },
                Failure::TooLarge,
            ),
            (RenderError::PageTimedOut { page: 3, after: Duration::from_secs(30) }, Failure::TooLarge),
            (RenderError::Unexpected, Failure::Internal),
        ];
        for (error, failure) in cases {
            let api = ApiError::from(&error);
            assert_eq!(api.failure, failure, "{error}");
            assert_eq!(api.message, error.to_string());
        }
    }

    #[test]
    fn size_limits_and_load_share_resource_exhausted_on_grpc() {
        assert_eq!(Failure::TooLarge.code(), Code::ResourceExhausted);
        assert_eq!(Failure::Busy { retry_after: None }.code(), Code::ResourceExhausted);
        assert_eq!(Failure::Unavailable.code(), Code::Unavailable);
    }
}

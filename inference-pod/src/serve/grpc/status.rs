//! The one place where an engine error becomes a gRPC status: the layers below return
//! typed errors, and the code a caller sees is chosen here from what it can do about it.
//! (Requests refused before the engine runs get their status where they are checked, in
//! the service.)

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::serve::admission::AdmissionRefusal;
use crate::serve::batcher::BatchError;
use crate::serve::engine::OcrError;

/// The gRPC status a caller can act on for each way a request fails.
pub(super) fn status_of(error: &OcrError) -> Status {
    let message = error.to_string();
    match error {
        OcrError::Decode(decode) if decode.is_resource_limit() => Status::resource_exhausted(message),
        OcrError::Decode(_) => Status::invalid_argument(message),
        OcrError::Admit(refusal @ AdmissionRefusal::Busy { .. }) => Status::with_error_details(
            Code::ResourceExhausted,
            message,
            ErrorDetails::with_retry_info(refusal.retry_after()),
        ),
        OcrError::Admit(AdmissionRefusal::DeadlineTooShort { .. }) => Status::deadline_exceeded(message),
        OcrError::Batch(BatchError::QueueFull { .. }) => Status::resource_exhausted(message),
        OcrError::Batch(BatchError::DeadlineExceeded { .. }) => Status::deadline_exceeded(message),
        OcrError::Batch(BatchError::Stopped { .. }) => Status::unavailable(message),
        OcrError::Batch(BatchError::Compute { .. } | BatchError::MissingOutput { .. })
        | OcrError::FindLines(_)
        | OcrError::AwaitStage { .. }
        | OcrError::RunBlocking(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube_ocr_vision::VisionError;
    use kube_ocr_vision::image::{DecodeLimits, decode_image};
    use std::time::Duration;

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
        let cases = [
            (decode_error(b"not an image", DecodeLimits::default()), Code::InvalidArgument),
            (decode_error(&png, tiny), Code::ResourceExhausted),
            (batch(BatchError::QueueFull { stage: "request", capacity: 1 }), Code::ResourceExhausted),
            (
                OcrError::Admit(AdmissionRefusal::Busy { expected_ms: 900, left_ms: 500, retry_after_ms: 475 }),
                Code::ResourceExhausted,
            ),
            (
                OcrError::Admit(AdmissionRefusal::DeadlineTooShort { left_ms: 10, service_ms: 90 }),
                Code::DeadlineExceeded,
            ),
            (batch(BatchError::DeadlineExceeded { stage: "detect", waited_ms: 9 }), Code::DeadlineExceeded),
            (batch(BatchError::Stopped { stage: "detect" }), Code::Unavailable),
            (batch(BatchError::Compute { stage: "recognize", source: Arc::new(compute) }), Code::Internal),
            (OcrError::FindLines(VisionError::DetectBoxes { values: 1, width: 2, height: 2 }), Code::Internal),
        ];
        for (error, code) in cases {
            let status = status_of(&error);
            assert_eq!(status.code(), code, "{error}");
            assert_eq!(status.message(), error.to_string());
        }
    }

    #[test]
    fn a_busy_refusal_tells_the_caller_when_to_retry() {
        let busy = OcrError::Admit(AdmissionRefusal::Busy { expected_ms: 900, left_ms: 500, retry_after_ms: 475 });
        let retry = status_of(&busy).get_details_retry_info().expect("RetryInfo in the status details");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(475)));
        let too_short = OcrError::Admit(AdmissionRefusal::DeadlineTooShort { left_ms: 10, service_ms: 90 });
        assert!(status_of(&too_short).get_details_retry_info().is_none(), "retrying the same deadline cannot help");
    }
}

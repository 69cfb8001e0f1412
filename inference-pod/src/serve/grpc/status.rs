//! The one place where a failed call becomes a gRPC status.

use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::serve::api::{ApiError, Failure};

/// The status for `error`: its code, its message, and for a busy server a RetryInfo
/// detail saying when a retry could be admitted.
pub(super) fn status_of(error: &ApiError) -> Status {
    match error.failure {
        Failure::Busy { retry_after: Some(delay) } => Status::with_error_details(
            error.failure.code(),
            error.message.clone(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        failure => Status::new(failure.code(), error.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;

    use super::*;

    #[test]
    fn a_busy_refusal_tells_the_caller_when_to_retry() {
        let busy = ApiError::new(Failure::Busy { retry_after: Some(Duration::from_millis(475)) }, "busy");
        let status = status_of(&busy);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "busy");
        let retry = status.get_details_retry_info().expect("RetryInfo in the status details");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(475)));
        let too_short = ApiError::new(Failure::DeadlineExceeded, "too short");
        assert!(status_of(&too_short).get_details_retry_info().is_none(), "retrying the same deadline cannot help");
        let full = ApiError::new(Failure::Busy { retry_after: None }, "queue full");
        assert!(status_of(&full).get_details_retry_info().is_none());
    }
}

//! Which failures are worth a second try, and how long to wait first. Every call this
//! client makes is idempotent (a PUT of the same bytes, a GET, a DELETE, a HEAD), so a
//! request that may or may not have reached the server can be sent again safely. AWS asks
//! clients to retry 500 and 503 (`SlowDown`) with backoff; a dropped connection is the
//! same kind of passing trouble. All tries share the call's one deadline.

use std::time::Duration;

use crate::error::CallError;

/// Tries in all, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Whether `error` may pass if the call is sent again.
pub(crate) fn is_transient(error: &CallError) -> bool {
    match error {
        CallError::Transport(_) | CallError::ReadBody(_) => true,
        CallError::Service(error) => {
            matches!(error.status.as_u16(), 500 | 502 | 503 | 504)
                // 400 RequestTimeout: the server gave up waiting for the request's bytes.
                || error.code.as_deref() == Some("RequestTimeout")
        }
        CallError::BucketName { .. }
        | CallError::ObjectKey { .. }
        | CallError::BuildRequest(_)
        | CallError::Timeout(_)
        | CallError::TooLarge { .. }
        | CallError::Document(_)
        | CallError::Hash(_) => false,
    }
}

/// The pause before try `attempt + 1`: 100 ms, then 400 ms. Short, because the call's
/// deadline covers every try; growing, so that a server shedding load gets room.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1))))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::service_error::ServiceError;

    fn answered(status: u16, code: &str) -> CallError {
        let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
        let status = StatusCode::from_u16(status).unwrap();
        CallError::Service(Box::new(ServiceError::from_response(status, &HeaderMap::new(), body.as_bytes(), false)))
    }

    #[test]
    fn server_trouble_is_transient_and_refusals_are_not() {
        assert!(is_transient(&answered(500, "InternalError")));
        assert!(is_transient(&answered(503, "SlowDown")));
        assert!(is_transient(&answered(400, "RequestTimeout")));
        assert!(!is_transient(&answered(501, "NotImplemented")));
        assert!(!is_transient(&answered(403, "SignatureDoesNotMatch")));
        assert!(!is_transient(&answered(404, "NoSuchKey")));
        assert!(!is_transient(&CallError::Timeout(Duration::from_secs(1))));
        assert!(!is_transient(&CallError::TooLarge { limit: 1, length: None }));
    }

    #[test]
    fn the_pauses_grow() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert!(backoff(40) >= backoff(2), "no overflow");
    }
}

//! Why an S3 call or the client's setup failed. [`S3Error`]'s variants are named after
//! the operation that failed and carry where (bucket, key); [`CallError`] is why, kept as
//! the source so that logs print the whole chain and callers can match on it.

use std::path::PathBuf;
use std::time::Duration;

use crate::service_error::ServiceError;
use crate::xml::XmlError;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("invalid S3 settings: {reason}")]
    Settings { reason: String },

    #[error("could not read the S3 CA file {}: {source}", path.display())]
    ReadCaFile { path: PathBuf, source: std::io::Error },

    #[error("the S3 CA file {} holds no usable PEM certificate: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    /// https, and neither the system nor `ca_file` gave a root to trust.
    #[error(
        "no trusted root certificates for https (the system's: {system_errors}); install ca-certificates or set ca_file"
    )]
    TrustRoots { system_errors: String },

    #[error("could not set up TLS for S3: {source}")]
    Tls { source: rustls::Error },

    #[error("{input:?} is not an S3 object URI: {reason}")]
    ParseUri { input: String, reason: String },

    /// An [`crate::ExpiryRule`] S3 would refuse.
    #[error("lifecycle rule {id:?} is invalid: {reason}")]
    ExpiryRule { id: String, reason: &'static str },

    #[error("PutObject s3://{bucket}/{key} failed: {source}")]
    PutObject { bucket: String, key: String, source: CallError },

    #[error("GetObject s3://{bucket}/{key} failed: {source}")]
    GetObject { bucket: String, key: String, source: CallError },

    #[error("DeleteObject s3://{bucket}/{key} failed: {source}")]
    DeleteObject { bucket: String, key: String, source: CallError },

    #[error("HeadBucket {bucket} failed: {source}")]
    HeadBucket { bucket: String, source: CallError },

    #[error("GetBucketLifecycleConfiguration {bucket} failed: {source}")]
    GetLifecycle { bucket: String, source: CallError },

    #[error("PutBucketLifecycleConfiguration {bucket} failed: {source}")]
    PutLifecycle { bucket: String, source: CallError },
}

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Refused before sending: S3's naming rules (see the reason).
    #[error("invalid bucket name {bucket:?}: {reason}")]
    BucketName { bucket: String, reason: &'static str },

    #[error("invalid object key: {reason}")]
    ObjectKey { reason: &'static str },

    /// A header value HTTP cannot carry (a content type with a line break, say).
    #[error("could not build the request: {0}")]
    BuildRequest(#[source] http::Error),

    /// Connecting, TLS, or sending failed.
    #[error("could not reach the server: {0}")]
    Transport(#[source] hyper_util::client::legacy::Error),

    #[error("could not read the answer: {0}")]
    ReadBody(#[source] hyper::Error),

    #[error("no complete answer within {0:?}")]
    Timeout(Duration),

    /// The body is longer than the caller accepts; it was not read whole.
    #[error("the object is larger than the {limit} bytes accepted{}", shown_length(*length))]
    TooLarge { limit: usize, length: Option<u64> },

    /// The server refused the call. (Boxed: it is the largest cause, and errors travel by
    /// value through every `Result`.)
    #[error("{0}")]
    Service(Box<ServiceError>),

    /// The answer was not the document S3 sends.
    #[error("the answer does not parse: {0}")]
    Document(#[source] XmlError),

    /// Hashing a large body off the async threads failed (the task panicked or was
    /// cancelled at shutdown).
    #[error("could not hash the body: {0}")]
    Hash(#[source] tokio::task::JoinError),
}

/// ` (N bytes)` when the length is known.
fn shown_length(length: Option<u64>) -> String {
    length.map(|length| format!(" ({length} bytes)")).unwrap_or_default()
}

impl S3Error {
    /// The cause of a failed call, for the operations' variants.
    pub fn call_error(&self) -> Option<&CallError> {
        match self {
            Self::PutObject { source, .. }
            | Self::GetObject { source, .. }
            | Self::DeleteObject { source, .. }
            | Self::HeadBucket { source, .. }
            | Self::GetLifecycle { source, .. }
            | Self::PutLifecycle { source, .. } => Some(source),
            Self::Settings { .. }
            | Self::ReadCaFile { .. }
            | Self::CaFile { .. }
            | Self::TrustRoots { .. }
            | Self::Tls { .. }
            | Self::ParseUri { .. }
            | Self::ExpiryRule { .. } => None,
        }
    }

    /// What the server answered, when it refused the call.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self.call_error() {
            Some(CallError::Service(error)) => Some(error),
            _ => None,
        }
    }

    /// S3's error code (`NoSuchKey`, `AccessDenied`, `SignatureDoesNotMatch`…), when the
    /// server answered with one.
    pub fn code(&self) -> Option<&str> {
        self.service_error().and_then(|error| error.code.as_deref())
    }

    /// The object does not exist (`NoSuchKey`). A missing bucket is not this: it is a
    /// setup problem (`NoSuchBucket`), not an absent object.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("NoSuchKey")
    }

    /// The call ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.call_error(), Some(CallError::Timeout(_)))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn refused(status: StatusCode, code: &str) -> S3Error {
        let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
        let service = ServiceError::from_response(status, &HeaderMap::new(), body.as_bytes(), false);
        S3Error::GetObject { bucket: "b".into(), key: "k".into(), source: CallError::Service(Box::new(service)) }
    }

    #[test]
    fn not_found_means_no_such_key_only() {
        assert!(refused(StatusCode::NOT_FOUND, "NoSuchKey").is_not_found());
        assert!(!refused(StatusCode::NOT_FOUND, "NoSuchBucket").is_not_found());
        assert_eq!(refused(StatusCode::FORBIDDEN, "AccessDenied").code(), Some("AccessDenied"));
    }

    #[test]
    fn the_message_names_the_operation_the_object_and_the_cause() {
        assert_eq!(
            refused(StatusCode::NOT_FOUND, "NoSuchKey").to_string(),
            "GetObject s3://b/k failed: HTTP 404 NoSuchKey: m"
        );
        let large = S3Error::GetObject {
            bucket: "b".into(),
            key: "k".into(),
            source: CallError::TooLarge { limit: 10, length: Some(11) },
        };
        assert_eq!(
            large.to_string(),
            "GetObject s3://b/k failed: the object is larger than the 10 bytes accepted (11 bytes)"
        );
        assert!(!large.is_not_found() && !large.is_timeout());
    }
}

//! Why a job operation failed, named after the operation. The APIs map these to a
//! [`Failure`] once, in [`JobError::api_error`].

use crate::serve::api::{ApiError, Failure};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("could not set up the job queue's Redis connection: {0}")]
    ConnectQueue(#[source] redis::RedisError),
    #[error("could not create the job queue's consumer group: {0}")]
    CreateGroup(#[source] redis::RedisError),
    #[error("could not encode the job request: {0}")]
    EncodeRequest(#[source] serde_json::Error),
    #[error("could not queue the job: {0}")]
    Submit(#[source] redis::RedisError),
    #[error("could not read the job: {0}")]
    ReadRecord(#[source] redis::RedisError),
    #[error("the job's record is damaged: {0}")]
    DamagedRecord(#[source] super::record::RecordError),
    #[error("job {id} has a state this server does not know: {state:?}")]
    UnknownState { id: String, state: String },
    #[error("could not cancel the job: {0}")]
    Cancel(#[source] redis::RedisError),
    #[error("could not read the job queue: {0}")]
    ReadQueue(#[source] redis::RedisError),
    #[error("could not start the job: {0}")]
    Start(#[source] redis::RedisError),
    #[error("could not renew the job's claim: {0}")]
    Heartbeat(#[source] redis::RedisError),
    #[error("could not record the job's progress: {0}")]
    Progress(#[source] redis::RedisError),
    #[error("could not record the job's outcome: {0}")]
    Finish(#[source] redis::RedisError),
    #[error("could not put the job back in the queue: {0}")]
    Release(#[source] redis::RedisError),
    #[error("could not acknowledge the job's queue entry: {0}")]
    Acknowledge(#[source] redis::RedisError),
    #[error("could not read the job backlog: {0}")]
    ReadBacklog(#[source] redis::RedisError),
    #[error("could not store the document in s3://{bucket}/{key}: {source}")]
    StoreDocument { bucket: String, key: String, source: Box<kube_ocr_s3::S3Error> },
    #[error("could not read the document s3://{bucket}/{key}: {source}")]
    ReadDocument { bucket: String, key: String, source: Box<kube_ocr_s3::S3Error> },
    #[error("could not store the result s3://{bucket}/{key}: {source}")]
    StoreResult { bucket: String, key: String, source: Box<kube_ocr_s3::S3Error> },
    #[error("could not read the result s3://{bucket}/{key}: {source}")]
    ReadResult { bucket: String, key: String, source: Box<kube_ocr_s3::S3Error> },
    #[error("could not set the expiry rule of bucket {bucket}: {source}")]
    SetExpiry { bucket: String, source: Box<kube_ocr_s3::S3Error> },
    #[error("could not set up the S3 client: {0}")]
    BuildS3Client(#[source] Box<kube_ocr_s3::S3Error>),
}

impl JobError {
    /// What a caller of the job APIs is told: the queue or the bucket being unreachable
    /// is the service's problem (UNAVAILABLE, retry), a missing document is NOT_FOUND.
    pub(crate) fn api_error(&self) -> ApiError {
        match self {
            Self::ReadDocument { source, .. } if matches!(source.code(), Some("NoSuchKey" | "NoSuchBucket")) => {
                ApiError::new(Failure::NotFound, self.to_string())
            }
            Self::ReadDocument { source, .. }
                if matches!(source.call_error(), Some(kube_ocr_s3::CallError::TooLarge { .. })) =>
            {
                ApiError::new(Failure::TooLarge, format!("{self} (over --max-image-bytes)"))
            }
            Self::ReadDocument { source, .. } if source.code() == Some("AccessDenied") => {
                ApiError::new(Failure::PermissionDenied, self.to_string())
            }
            Self::ReadResult { source, .. } if source.is_not_found() => ApiError::new(
                Failure::NotFound,
                format!("{self} (the result expired with the bucket's lifecycle rule)"),
            ),
            Self::DamagedRecord(_) | Self::UnknownState { .. } | Self::EncodeRequest(_) => {
                ApiError::new(Failure::Internal, self.to_string())
            }
            _ => ApiError::new(Failure::Unavailable, self.to_string()),
        }
    }
}

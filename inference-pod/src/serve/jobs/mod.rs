//! Asynchronous document jobs: a caller submits a document and gets a job id at once;
//! the service's pods work jobs from a durable Redis stream when they have room, store
//! the results in an S3-compatible bucket, and report progress in the job's record.
//!
//! - [`record`] (pure): the job id, states and the record's fields.
//! - [`queue`]: the stream, the consumer group and the records in Redis, every state
//!   change one Lua script that checks ownership.
//! - [`store`]: uploads and results in the bucket, expired by one lifecycle rule.
//! - [`worker`]: the loop that takes, heartbeats, works and finishes jobs.
//!
//! Both APIs call [`Jobs`] (on a serving pod, or on a job front that loads no model);
//! its errors are [`ApiError`]s, as a synchronous call's are.

mod error;
mod queue;
mod record;
mod store;
mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kube_ocr_s3::{S3Client, S3Settings, S3Uri};

pub use error::JobError;
pub(crate) use record::{JobRecord, JobState};
pub(crate) use store::ResultFormat;
pub(crate) use worker::{WorkerHandle, start_worker};

use self::queue::{JobQueue, Submitted};
use self::record::{JobRequest, expiry_days, hex, is_job_id, job_id};
use self::store::JobStore;
use crate::serve::api::{ApiError, CallChecker, CallOptions, Failure};
use crate::serve::cache::image_sha256;
use crate::serve::engine::OcrTask;
use crate::serve::telemetry::job_metrics::JobMetrics;

/// Where jobs live and how pods work them (`--jobs-*` flags).
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub s3: S3Settings,
    /// The bucket uploads and results go to.
    pub bucket: String,
    /// Key prefix of this service's objects in the bucket (the lifecycle rule's filter).
    pub prefix: String,
    /// How long a job, its upload and its result live (S3 rounds up to whole days).
    pub ttl: Duration,
    /// Jobs one pod works at a time.
    pub max_concurrent: usize,
    /// Pages of a job's document in the engine at a time; synchronous calls take 4, so a
    /// synchronous call waits behind at most this many job pages per running job.
    pub pages_in_flight: usize,
    /// A running job not heartbeaten for this long is taken over by another pod.
    pub claim_after: Duration,
    /// Starts of one job before it fails as a job that kills its pods.
    pub max_attempts: u32,
    /// Longest one job may run.
    pub job_timeout: Duration,
    /// The age past which an unfinished job breaks its objective (exported for alerts).
    pub slo: Duration,
    /// This pod's name in the consumer group (unique per process).
    pub consumer: String,
    /// Set the bucket's expiry rule for the prefix at start (needs
    /// s3:PutLifecycleConfiguration); off when the bucket's owner manages it.
    pub manage_expiry: bool,
}

/// Where a submitted document comes from.
#[derive(Debug, Clone)]
pub(crate) enum JobSource {
    Upload(Bytes),
    S3(S3Uri),
}

/// A submit's answer.
#[derive(Debug, Clone)]
pub(crate) struct SubmittedJob {
    pub record: JobRecord,
    pub created: bool,
}

/// The job side of a pod: submits, status, cancels and results; [`worker`] works them.
#[derive(Debug)]
pub(crate) struct Jobs {
    queue: JobQueue,
    store: JobStore,
    settings: JobSettings,
    /// Refuses what a synchronous call would refuse, before anything is stored.
    checker: CallChecker,
    metrics: Arc<JobMetrics>,
}

impl Jobs {
    pub(crate) fn new(
        settings: JobSettings,
        redis: redis::Client,
        redis_prefix: &str,
        redis_timeout: Duration,
        checker: CallChecker,
        metrics: Arc<JobMetrics>,
    ) -> Result<Self, JobError> {
        let client = S3Client::new(settings.s3.clone()).map_err(|error| JobError::BuildS3Client(Box::new(error)))?;
        let store = JobStore::new(client, settings.bucket.clone(), &settings.prefix);
        let queue = JobQueue::new(redis, redis_prefix.to_owned(), settings.consumer.clone(), redis_timeout)?;
        metrics.set_slo(settings.slo);
        Ok(Self { queue, store, settings, checker, metrics })
    }

    /// Checks what the job names, stores the document and queues the job, unless the same
    /// document with the same options is already queued, running or done.
    pub(crate) async fn submit(
        &self,
        source: JobSource,
        task: OcrTask,
        options: CallOptions,
    ) -> Result<SubmittedJob, ApiError> {
        let max_bytes = self.checker.max_image_bytes;
        let document = match source {
            JobSource::Upload(document) => document,
            JobSource::S3(uri) => {
                // One byte over the limit is enough to refuse it with the limit's message.
                self.store.get_referenced(&uri, max_bytes.saturating_add(1)).await.map_err(|error| error.api_error())?
            }
        };
        if document.is_empty() {
            return Err(ApiError::invalid_argument("the document is empty"));
        }
        self.checker.check(&document, task, &options)?;
        let sha256 = image_sha256(&document);
        let request = JobRequest { task: task.into(), options };
        let id = job_id(&sha256, &request);
        if let Some(record) = self.queue.get(&id).await.map_err(|error| error.api_error())?
            && record.state.is_reusable()
        {
            self.metrics.record_submit(false);
            return Ok(SubmittedJob { record, created: false });
        }
        self.store.put_upload(&id, document).await.map_err(|error| error.api_error())?;
        let submitted = self
            .queue
            .submit(&id, &request, &hex(&sha256), now_ms(), self.settings.ttl)
            .await
            .map_err(|error| error.api_error())?;
        let created = submitted == Submitted::Created;
        self.metrics.record_submit(created);
        Ok(SubmittedJob { record: self.get(&id).await?, created })
    }

    pub(crate) async fn get(&self, id: &str) -> Result<JobRecord, ApiError> {
        check_id(id)?;
        self.queue.get(id).await.map_err(|error| error.api_error())?.ok_or_else(|| not_found(id))
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<JobRecord, ApiError> {
        check_id(id)?;
        let before = self.queue.cancel(id, now_ms()).await.map_err(|error| error.api_error())?;
        match before {
            None => Err(not_found(id)),
            Some(state) if state.is_finished() => Err(ApiError::new(
                Failure::FailedPrecondition,
                format!("job {id} already finished ({}); there is nothing to cancel", state.as_str()),
            )),
            Some(_) => self.get(id).await,
        }
    }

    /// A succeeded job's result in `format`.
    pub(crate) async fn result(&self, id: &str, format: ResultFormat) -> Result<Bytes, ApiError> {
        let record = self.get(id).await?;
        if record.state != JobState::Succeeded {
            let detail = match record.state {
                JobState::Failed => format!(": {} {}", record.error_code, record.error_message),
                _ => String::new(),
            };
            return Err(ApiError::new(
                Failure::FailedPrecondition,
                format!("job {id} is {}, not succeeded; it has no result{detail}", record.state.as_str()),
            ));
        }
        self.store.get_result(id, format).await.map_err(|error| error.api_error())
    }

    /// Sets the bucket's expiry rule when this pod manages it; `false` when it should be
    /// tried again (a refusal or an unreachable bucket is logged, not fatal: the bucket's
    /// owner may manage the rule).
    pub(crate) async fn prepare(&self) -> bool {
        if let Err(error) = self.queue.ensure_group().await {
            tracing::warn!(%error, "job queue not ready yet; the worker retries");
        }
        if !self.settings.manage_expiry {
            return true;
        }
        let days = expiry_days(self.settings.ttl);
        let rule_id = expiry_rule_id(&self.settings.prefix);
        match self.store.ensure_expiry(&rule_id, days).await {
            Ok(()) => {
                tracing::info!(bucket = self.store.bucket(), rule = %rule_id, days, "job objects expire by the bucket's lifecycle rule");
                true
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    "could not set the bucket's expiry rule (tried again every minute); uploads and results do not expire until it is set, or until the bucket's owner adds one (--jobs-manage-expiry=false)"
                );
                false
            }
        }
    }
}

/// The lifecycle rule's id for a prefix: stable, readable, within S3's 255 characters.
fn expiry_rule_id(prefix: &str) -> String {
    let mut id = format!("kube-ocr-jobs:{}", prefix.trim_matches('/'));
    id.truncate(255);
    id
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!("{id:?} is not a job id (32 lowercase hex digits)")))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(Failure::NotFound, format!("no job {id}: it was never submitted, or it expired"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_rule_is_named_after_the_prefix() {
        assert_eq!(expiry_rule_id("kube-ocr/ns/svc/"), "kube-ocr-jobs:kube-ocr/ns/svc");
        assert!(expiry_rule_id(&"x".repeat(400)).len() <= 255);
    }

    #[test]
    fn ids_are_checked_before_they_are_looked_up() {
        assert_eq!(check_id("nope").unwrap_err().failure, Failure::InvalidArgument);
        assert!(check_id("0123456789abcdef0123456789abcdef").is_ok());
        assert_eq!(not_found("x").failure, Failure::NotFound);
    }
}

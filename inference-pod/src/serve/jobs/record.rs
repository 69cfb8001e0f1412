//! What a job is, as stored in its Redis hash: pure, so the state rules and the id are
//! tested without Redis.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::serve::api::CallOptions;
use crate::serve::engine::OcrTask;

/// Hex digits of a job id: 128 bits of the sha256, plenty against collisions and short
/// enough for a URL.
const JOB_ID_HEX_DIGITS: usize = 32;

/// Where a job is in its life. Stored as [`JobState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == value)
    }

    /// A finished job does not change any more.
    pub(crate) fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// A submit of the same document and options returns the job in these states;
    /// after a failure or a cancel it starts it again (a retry is what the caller wants).
    pub(crate) fn is_reusable(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Succeeded)
    }
}

/// What a job computes: the task and the options that change its output. Stored as
/// JSON in the job's record so whichever pod works it reads the same request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRequest {
    pub task: JobTask,
    pub options: CallOptions,
}

/// [`OcrTask`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobTask {
    Document,
    Line,
}

impl From<OcrTask> for JobTask {
    fn from(task: OcrTask) -> Self {
        match task {
            OcrTask::Document => Self::Document,
            OcrTask::Line => Self::Line,
        }
    }
}

impl From<JobTask> for OcrTask {
    fn from(task: JobTask) -> Self {
        match task {
            JobTask::Document => Self::Document,
            JobTask::Line => Self::Line,
        }
    }
}

/// The job id: the document's sha256, the task and every option, hashed. The same
/// document with the same options is the same job (submits are idempotent); any option
/// that differs, even one that only changes the answer's shape (`word_boxes`), makes
/// another job, because the stored result differs.
pub(crate) fn job_id(document_sha256: &[u8; 32], request: &JobRequest) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"kube-ocr job v1|");
    hasher.update(document_sha256);
    hasher.update(b"|");
    // serde_json of plain structs is deterministic (field order is declaration order).
    hasher.update(serde_json::to_vec(request).unwrap_or_default());
    let digest = hasher.finalize();
    let mut id = hex(&digest);
    id.truncate(JOB_ID_HEX_DIGITS);
    id
}

/// Whether `id` can be a job id (checked before it goes into a Redis key or S3 path).
pub(crate) fn is_job_id(id: &str) -> bool {
    id.len() == JOB_ID_HEX_DIGITS && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Days of an S3 lifecycle rule that keeps objects at least `ttl`: S3 expires in whole
/// days, so a TTL is rounded up (a job's own record expires in Redis at the exact TTL).
pub(crate) fn expiry_days(ttl: Duration) -> u32 {
    let day = 24 * 3600;
    u32::try_from(ttl.as_secs().div_ceil(day).max(1)).unwrap_or(u32::MAX)
}

/// A job's record as read back from its hash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobRecord {
    pub id: String,
    pub state: JobState,
    pub request: JobRequest,
    pub document_sha256: String,
    pub pages_done: u32,
    pub pages_total: u32,
    pub submitted_ms: i64,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub expires_ms: i64,
    pub attempts: u32,
    pub error_code: String,
    pub error_message: String,
    /// The stream entry that carries it now (a requeue makes a new one).
    pub entry: String,
    /// The pod working it (empty while queued).
    pub owner: String,
}

/// Why a stored hash is not a job record (written by a newer version, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("job {id}: field {field} is missing or unreadable")]
    Field { id: String, field: &'static str },
}

/// Fields of the hash, named once for the writer ([`super::queue`]) and the reader.
pub(crate) mod fields {
    pub(crate) const STATE: &str = "state";
    pub(crate) const REQUEST: &str = "request";
    pub(crate) const DOCUMENT_SHA256: &str = "document_sha256";
    pub(crate) const PAGES_DONE: &str = "pages_done";
    pub(crate) const PAGES_TOTAL: &str = "pages_total";
    pub(crate) const SUBMITTED_MS: &str = "submitted_ms";
    pub(crate) const STARTED_MS: &str = "started_ms";
    pub(crate) const FINISHED_MS: &str = "finished_ms";
    pub(crate) const EXPIRES_MS: &str = "expires_ms";
    pub(crate) const ATTEMPTS: &str = "attempts";
    pub(crate) const ERROR_CODE: &str = "error_code";
    pub(crate) const ERROR_MESSAGE: &str = "error_message";
    pub(crate) const ENTRY: &str = "entry";
    pub(crate) const OWNER: &str = "owner";
}

impl JobRecord {
    /// Reads a record from its hash; `None` for an empty hash (no such job, or expired).
    pub(crate) fn from_hash(id: &str, hash: &HashMap<String, String>) -> Result<Option<Self>, RecordError> {
        if hash.is_empty() {
            return Ok(None);
        }
        let missing = |field| RecordError::Field { id: id.to_owned(), field };
        let text = |field: &'static str| hash.get(field).cloned().unwrap_or_default();
        let number = |field: &'static str| -> Result<i64, RecordError> {
            match hash.get(field) {
                None => Ok(0),
                Some(value) if value.is_empty() => Ok(0),
                Some(value) => value.parse().map_err(|_| missing(field)),
            }
        };
        let count = |field: &'static str| -> Result<u32, RecordError> {
            u32::try_from(number(field)?.max(0)).map_err(|_| missing(field))
        };
        let state = hash.get(fields::STATE).and_then(|state| JobState::parse(state)).ok_or(missing(fields::STATE))?;
        let request = hash
            .get(fields::REQUEST)
            .and_then(|request| serde_json::from_str(request).ok())
            .ok_or(missing(fields::REQUEST))?;
        Ok(Some(Self {
            id: id.to_owned(),
            state,
            request,
            document_sha256: text(fields::DOCUMENT_SHA256),
            pages_done: count(fields::PAGES_DONE)?,
            pages_total: count(fields::PAGES_TOTAL)?,
            submitted_ms: number(fields::SUBMITTED_MS)?,
            started_ms: number(fields::STARTED_MS)?,
            finished_ms: number(fields::FINISHED_MS)?,
            expires_ms: number(fields::EXPIRES_MS)?,
            attempts: count(fields::ATTEMPTS)?,
            error_code: text(fields::ERROR_CODE),
            error_message: text(fields::ERROR_MESSAGE),
            entry: text(fields::ENTRY),
            owner: text(fields::OWNER),
        }))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use kube_ocr_vision::image::PageRange;

    use super::*;

    fn request(min_confidence: f32) -> JobRequest {
        JobRequest { task: JobTask::Document, options: CallOptions { min_confidence, ..CallOptions::default() } }
    }

    #[test]
    fn the_same_document_and_options_make_the_same_job_and_any_difference_another() {
        let document = [7u8; 32];
        let id = job_id(&document, &request(0.5));
        assert!(is_job_id(&id), "{id}");
        assert_eq!(id, job_id(&document, &request(0.5)));
        assert_ne!(id, job_id(&[8u8; 32], &request(0.5)));
        assert_ne!(id, job_id(&document, &request(0.6)));
        let line = JobRequest { task: JobTask::Line, ..request(0.5) };
        assert_ne!(id, job_id(&document, &line));
        let mut pages = request(0.5);
        pages.options.range = PageRange { first: 2, last: 3 };
        assert_ne!(id, job_id(&document, &pages));
    }

    #[test]
    fn job_ids_are_checked_before_they_reach_keys_and_paths() {
        assert!(is_job_id("0123456789abcdef0123456789abcdef"));
        for bad in ["", "0123456789ABCDEF0123456789abcdef", "../../etc/passwd", "0123456789abcdef0123456789abcde:"] {
            assert!(!is_job_id(bad), "{bad}");
        }
    }

    #[test]
    fn s3_expiry_rounds_a_ttl_up_to_whole_days() {
        assert_eq!(expiry_days(Duration::from_secs(1)), 1);
        assert_eq!(expiry_days(Duration::from_secs(24 * 3600)), 1);
        assert_eq!(expiry_days(Duration::from_secs(24 * 3600 + 1)), 2);
        assert_eq!(expiry_days(Duration::from_secs(7 * 24 * 3600)), 7);
    }

    #[test]
    fn states_round_trip_and_only_failures_and_cancels_are_resubmitted() {
        for state in [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("done"), None);
        assert!(JobState::Succeeded.is_reusable() && !JobState::Failed.is_reusable());
        assert!(!JobState::Cancelled.is_reusable() && JobState::Running.is_reusable());
        assert!(JobState::Cancelled.is_finished() && !JobState::Running.is_finished());
    }

    #[test]
    fn a_record_reads_back_from_its_hash_and_a_damaged_one_says_which_field() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(JobRecord::from_hash(id, &HashMap::new()), Ok(None));
        let mut hash: HashMap<String, String> = [
            (fields::STATE, "running"),
            (fields::REQUEST, &serde_json::to_string(&request(0.25)).unwrap()),
            (fields::PAGES_DONE, "3"),
            (fields::PAGES_TOTAL, "50"),
            (fields::ATTEMPTS, "2"),
            (fields::SUBMITTED_MS, "1700000000000"),
            (fields::OWNER, "pod-a"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let record = JobRecord::from_hash(id, &hash).unwrap().unwrap();
        assert_eq!(record.state, JobState::Running);
        assert_eq!(record.request, request(0.25));
        assert_eq!((record.pages_done, record.pages_total, record.attempts), (3, 50, 2));
        assert_eq!(record.owner, "pod-a");
        hash.insert(fields::PAGES_DONE.into(), "three".into());
        assert_eq!(
            JobRecord::from_hash(id, &hash),
            Err(RecordError::Field { id: id.into(), field: fields::PAGES_DONE })
        );
        hash.insert(fields::STATE.into(), "exploded".into());
        assert!(JobRecord::from_hash(id, &hash).is_err());
    }
}

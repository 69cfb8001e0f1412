//! The job RPCs: messages in and out of [`Jobs`].

use bytes::Bytes;
use kube_ocr_proto::v1::{
    GetJobResultRequest, Job, JobResultChunk, JobState as JobStateMessage, ResultFormat as ResultFormatMessage,
    SubmitJobRequest, submit_job_request,
};
use kube_ocr_s3::S3Uri;
use tonic::Status;

use super::service::{call_options, task_from};
use super::status::status_of;
use crate::serve::api::{ApiError, Failure};
use crate::serve::jobs::{JobRecord, JobSource, JobState, Jobs, ResultFormat};

/// A job result's bytes per message: well under gRPC's default 4 MiB receive limit.
const RESULT_CHUNK_BYTES: usize = 1 << 20;

fn configured(jobs: Option<&Jobs>) -> Result<&Jobs, Status> {
    jobs.ok_or_else(|| {
        status_of(&ApiError::new(
            Failure::Unimplemented,
            "this service has no document jobs: they need a bucket and a queue (spec.jobs, or --jobs-bucket)",
        ))
    })
}

pub(super) async fn submit(jobs: Option<&Jobs>, request: SubmitJobRequest) -> Result<Job, Status> {
    let jobs = configured(jobs)?;
    let task = task_from(request.task()).map_err(|error| status_of(&error))?;
    let source = match request.source {
        Some(submit_job_request::Source::Document(document)) => JobSource::Upload(Bytes::from(document)),
        Some(submit_job_request::Source::S3Uri(uri)) => {
            JobSource::S3(S3Uri::parse(&uri).map_err(|error| Status::invalid_argument(error.to_string()))?)
        }
        None => return Err(Status::invalid_argument("a job needs a document: set document or s3_uri")),
    };
    let options = call_options(request.options.unwrap_or_default());
    let submitted = jobs.submit(source, task, options).await.map_err(|error| status_of(&error))?;
    Ok(job_message(&submitted.record, submitted.created))
}

pub(super) async fn get(jobs: Option<&Jobs>, id: &str) -> Result<Job, Status> {
    let record = configured(jobs)?.get(id).await.map_err(|error| status_of(&error))?;
    Ok(job_message(&record, false))
}

pub(super) async fn cancel(jobs: Option<&Jobs>, id: &str) -> Result<Job, Status> {
    let record = configured(jobs)?.cancel(id).await.map_err(|error| status_of(&error))?;
    Ok(job_message(&record, false))
}

pub(super) async fn result(jobs: Option<&Jobs>, request: GetJobResultRequest) -> Result<Vec<JobResultChunk>, Status> {
    let jobs = configured(jobs)?;
    let format = match request.format() {
        ResultFormatMessage::Unspecified | ResultFormatMessage::Json => ResultFormat::Json,
        ResultFormatMessage::Text => ResultFormat::Text,
        ResultFormatMessage::Hocr => ResultFormat::Hocr,
    };
    let body = jobs.result(&request.id, format).await.map_err(|error| status_of(&error))?;
    Ok(chunks(&body, format.content_type()))
}

/// The body in chunks; the first names the media type (an empty body is one chunk).
fn chunks(body: &Bytes, content_type: &str) -> Vec<JobResultChunk> {
    let mut chunks: Vec<JobResultChunk> = body
        .chunks(RESULT_CHUNK_BYTES)
        .map(|chunk| JobResultChunk { content_type: String::new(), data: chunk.to_vec() })
        .collect();
    if chunks.is_empty() {
        chunks.push(JobResultChunk::default());
    }
    chunks[0].content_type = content_type.to_owned();
    chunks
}

pub(super) fn job_message(record: &JobRecord, created: bool) -> Job {
    let state = match record.state {
        JobState::Queued => JobStateMessage::Queued,
        JobState::Running => JobStateMessage::Running,
        JobState::Succeeded => JobStateMessage::Succeeded,
        JobState::Failed => JobStateMessage::Failed,
        JobState::Cancelled => JobStateMessage::Cancelled,
    };
    Job {
        id: record.id.clone(),
        state: state as i32,
        created,
        pages_done: record.pages_done,
        pages_total: record.pages_total,
        submitted_unix_ms: record.submitted_ms,
        started_unix_ms: record.started_ms,
        finished_unix_ms: record.finished_ms,
        error_code: record.error_code.clone(),
        error_message: record.error_message.clone(),
        attempts: record.attempts,
        expires_unix_ms: record.expires_ms,
        document_sha256: record.document_sha256.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_go_out_in_chunks_and_the_first_names_the_media_type() {
        let body = Bytes::from(vec![7u8; RESULT_CHUNK_BYTES * 2 + 5]);
        let chunks = chunks(&body, "application/json");
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].content_type, "application/json");
        assert!(chunks[1].content_type.is_empty());
        assert_eq!(chunks.iter().map(|chunk| chunk.data.len()).sum::<usize>(), body.len());
        let empty = super::chunks(&Bytes::new(), "text/plain");
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].content_type, "text/plain");
    }
}

//! The job endpoints: `POST /v1/jobs` (the document as `POST /v1/ocr` takes it, or
//! `?s3_uri=s3://bucket/key` and no body), `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}`
//! (cancel) and `GET /v1/jobs/{id}/result?format=json|text|hocr`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kube_ocr_http_request::{RawFields, parse_body};
use kube_ocr_s3::S3Uri;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::HttpError;
use super::fields::OcrFields;
use super::handler::{new_request_id, read_body, request_id_from};
use crate::serve::api::{ApiError, Failure};
use crate::serve::jobs::{JobRecord, JobSource, Jobs, ResultFormat};

/// What the job endpoints need, on a serving pod and on a job front (which has no OCR API).
#[derive(Debug, Clone)]
pub(crate) struct JobsHttpState {
    /// `None`: the pod has no jobs configured (501).
    pub jobs: Option<Arc<Jobs>>,
    pub max_body_bytes: usize,
}

/// The query parameter that names a document in S3 instead of a body.
const S3_URI_FIELD: &str = "s3_uri";

/// A job's status, as every job endpoint answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobBody {
    /// 32 hex digits, derived from the document's sha256, the task and the options.
    #[schema(pattern = "^[0-9a-f]{32}$", example = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5")]
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(schema_with = super::openapi::job_state_schema)]
    pub state: String,
    /// False when a submit found this job already there (same document and options).
    pub created: bool,
    /// Pages read so far.
    #[schema(example = 3)]
    pub pages_done: u32,
    /// Pages to read (0 until the document has been opened).
    #[schema(example = 12)]
    pub pages_total: u32,
    /// Milliseconds since the Unix epoch; 0 while not reached.
    #[schema(example = 1_780_000_000_000_i64)]
    pub submitted_unix_ms: i64,
    #[schema(example = 1_780_000_001_500_i64)]
    pub started_unix_ms: i64,
    #[schema(example = 0)]
    pub finished_unix_ms: i64,
    /// When the job, its upload and its result expire.
    #[schema(example = 1_780_086_400_000_i64)]
    pub expires_unix_ms: i64,
    /// How many times a pod started it (more than 1 after a pod stopped while working it).
    #[schema(example = 1)]
    pub attempts: u32,
    /// A failed job: the gRPC code name a synchronous call would have got.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(example = "INVALID_ARGUMENT")]
    pub error_code: String,
    /// A failed job: why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub document_sha256: String,
}

impl JobBody {
    fn new(record: &JobRecord, created: bool) -> Self {
        Self {
            id: record.id.clone(),
            state: record.state.as_str().to_owned(),
            created,
            pages_done: record.pages_done,
            pages_total: record.pages_total,
            submitted_unix_ms: record.submitted_ms,
            started_unix_ms: record.started_ms,
            finished_unix_ms: record.finished_ms,
            expires_unix_ms: record.expires_ms,
            attempts: record.attempts,
            error_code: record.error_code.clone(),
            error_message: record.error_message.clone(),
            document_sha256: record.document_sha256.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultQuery {
    format: Option<String>,
}

fn configured(state: &JobsHttpState) -> Result<&Jobs, HttpError> {
    state.jobs.as_deref().ok_or_else(|| {
        HttpError::from(ApiError::new(
            Failure::Unimplemented,
            "this service has no document jobs: they need a bucket and a queue (spec.jobs, or --jobs-bucket)",
        ))
    })
}

fn job_response(status: StatusCode, record: &JobRecord, created: bool) -> Response {
    (status, axum::Json(JobBody::new(record, created))).into_response()
}

/// The caller's request id, or one made up: error bodies always name one.
fn request_id(headers: &HeaderMap) -> String {
    request_id_from(headers).unwrap_or_else(new_request_id)
}

pub(super) async fn submit(State(state): State<JobsHttpState>, request: Request) -> Response {
    let request_id = request_id(request.headers());
    match submit_job(&state, request).await {
        Ok((record, true)) => job_response(StatusCode::ACCEPTED, &record, true),
        Ok((record, false)) => job_response(StatusCode::OK, &record, false),
        Err(error) => error.into_response(&request_id),
    }
}

async fn submit_job(state: &JobsHttpState, request: Request) -> Result<(JobRecord, bool), HttpError> {
    let jobs = configured(state)?;
    let (parts, body) = request.into_parts();
    let (query, s3_uri) = split_s3_uri(parts.uri.query())?;
    let body = read_body(&parts.headers, body, state.max_body_bytes).await?;
    let query = RawFields::from_query(Some(&query))?;
    let (source, fields) = match s3_uri {
        Some(uri) => {
            if !body.is_empty() {
                return Err(ApiError::invalid_argument(
                    "send the document in the body or name it with s3_uri, not both",
                )
                .into());
            }
            let uri = S3Uri::parse(&uri).map_err(|error| ApiError::invalid_argument(error.to_string()))?;
            (JobSource::S3(uri), query.parse()?)
        }
        None => {
            let content_type =
                parts.headers.get(header::CONTENT_TYPE).map(|value| value.to_str().unwrap_or("(not text)"));
            let parsed = parse_body(content_type, body).await?;
            (JobSource::Upload(parsed.document), query.merge(parsed.fields)?.parse()?)
        }
    };
    let fields = OcrFields::from(fields);
    if fields.timeout.is_some() {
        return Err(ApiError::invalid_argument(
            "timeout_ms does not apply to a job (the server's --jobs-timeout-secs does); leave it out",
        )
        .into());
    }
    let Some(task) = fields.task else {
        return Err(ApiError::invalid_argument(
            "task is required: task=document (find and read every line) or task=line (the image is one line)",
        )
        .into());
    };
    let submitted = jobs.submit(source, task, fields.options).await?;
    Ok((submitted.record, submitted.created))
}

/// The query without `s3_uri`, and `s3_uri` (the OCR fields do not know it).
fn split_s3_uri(query: Option<&str>) -> Result<(String, Option<String>), HttpError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|error| ApiError::invalid_argument(format!("the query string does not parse: {error}")))?;
    let (uris, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(name, _)| name == S3_URI_FIELD);
    if uris.len() > 1 {
        return Err(ApiError::invalid_argument("s3_uri is given more than once").into());
    }
    let rest = serde_urlencoded::to_string(rest)
        .map_err(|error| ApiError::invalid_argument(format!("the query string does not parse: {error}")))?;
    Ok((rest, uris.into_iter().next().map(|(_, uri)| uri)))
}

pub(super) async fn get(State(state): State<JobsHttpState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let request_id = request_id(&headers);
    let result = async { Ok::<_, HttpError>(configured(&state)?.get(&id).await?) }.await;
    match result {
        Ok(record) => job_response(StatusCode::OK, &record, false),
        Err(error) => error.into_response(&request_id),
    }
}

pub(super) async fn cancel(State(state): State<JobsHttpState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let request_id = request_id(&headers);
    let result = async { Ok::<_, HttpError>(configured(&state)?.cancel(&id).await?) }.await;
    match result {
        Ok(record) => job_response(StatusCode::OK, &record, false),
        Err(error) => error.into_response(&request_id),
    }
}

pub(super) async fn result(State(state): State<JobsHttpState>, Path(id): Path<String>, request: Request) -> Response {
    let request_id = request_id(request.headers());
    let query = request.uri().query().unwrap_or("").to_owned();
    let fetched = async {
        let query: ResultQuery = serde_urlencoded::from_str(&query)
            .map_err(|error| ApiError::invalid_argument(format!("the query string does not parse: {error}")))?;
        let format = result_format(query.format.as_deref())?;
        let body: Bytes = configured(&state)?.result(&id, format).await?;
        Ok::<_, HttpError>((format, body))
    }
    .await;
    match fetched {
        Ok((format, body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(error) => error.into_response(&request_id),
    }
}

fn result_format(format: Option<&str>) -> Result<ResultFormat, HttpError> {
    match format {
        None | Some("json") => Ok(ResultFormat::Json),
        Some("text") => Ok(ResultFormat::Text),
        Some("hocr") => Ok(ResultFormat::Hocr),
        Some(other) => {
            Err(ApiError::invalid_argument(format!("format must be json, text or hocr, got {other:?}")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uri_is_taken_out_of_the_query_and_the_rest_kept() {
        let (rest, uri) = split_s3_uri(Some("task=document&s3_uri=s3%3A%2F%2Fb%2Fk%20x&min_confidence=0.5")).unwrap();
        assert_eq!(uri.as_deref(), Some("s3://b/k x"));
        assert_eq!(rest, "task=document&min_confidence=0.5");
        assert_eq!(split_s3_uri(None).unwrap(), (String::new(), None));
        assert!(split_s3_uri(Some("s3_uri=a&s3_uri=b")).is_err());
    }

    #[test]
    fn result_formats_are_named_as_for_ocr_calls() {
        assert_eq!(result_format(None).unwrap(), ResultFormat::Json);
        assert_eq!(result_format(Some("hocr")).unwrap(), ResultFormat::Hocr);
        assert_eq!(result_format(Some("pdf")).unwrap_err().error.failure, Failure::InvalidArgument);
    }
}

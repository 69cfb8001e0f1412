//! `POST /v1/ocr`: read the body within its limit, gather the fields, make the call,
//! write the answer in the format asked for.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use kube_ocr_http_request::{OutputFormat, RawFields, is_request_id, parse_body};

use super::error::HttpError;
use super::fields::OcrFields;
use super::render::render_answer;
use super::{HttpApiState, REQUEST_ID_HEADER};
use crate::serve::api::deadline::request_deadline;
use crate::serve::api::{ApiError, Failure, OcrApi, OcrCall, PAGES_IN_FLIGHT, Protocol, Served};

pub(super) async fn recognize(State(state): State<HttpApiState>, request: Request) -> Response {
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let header_id = request_id_from(&parts.headers);
    let body = match read_body(&parts.headers, body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return refuse(&state.api, header_id.unwrap_or_else(new_request_id), 0, error, received),
    };
    let body_len = body.len();
    let (document, fields) = match gather(&parts, body).await {
        Ok(gathered) => gathered,
        Err(error) => return refuse(&state.api, header_id.unwrap_or_else(new_request_id), body_len, error, received),
    };
    let request_id = fields.request_id.clone().or(header_id).unwrap_or_else(new_request_id);
    let Some(task) = fields.task else {
        let error = ApiError::invalid_argument(
            "task is required: task=document (find and read every line) or task=line (the image is one line), \
             in the query, a form field or the JSON body",
        );
        return refuse(&state.api, request_id, document.len(), error.into(), received);
    };
    let call = OcrCall {
        protocol: Protocol::Http,
        request_id,
        document: Arc::from(document.as_ref()),
        task,
        options: fields.options,
        deadline: request_deadline(received, fields.timeout, state.api.limits().request_timeout),
        pages_in_flight: PAGES_IN_FLIGHT,
    };
    let answered = state.api.call(&call, received).await;
    match answered.result {
        Ok(served) => {
            answer(&state.api, call.request_id, fields.format, served, fields.options.word_boxes, answered.total)
        }
        Err(error) => HttpError::from(error).into_response(&call.request_id),
    }
}

/// The document and its fields from the query string and the body.
async fn gather(parts: &axum::http::request::Parts, body: Bytes) -> Result<(Bytes, OcrFields), HttpError> {
    let query = RawFields::from_query(parts.uri.query())?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).map(|value| value.to_str().unwrap_or("(not text)"));
    let parsed = parse_body(content_type, body).await?;
    let fields = query.merge(parsed.fields)?.parse()?;
    Ok((parsed.document, fields.into()))
}

/// The whole body, refused with 413 when it is (or declares to be) over the limit.
pub(super) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::from(ApiError::new(
            Failure::TooLarge,
            format!(
                "the request body is over {limit} bytes (the --max-image-bytes document limit, plus room for base64 \
                 or multipart framing)"
            ),
        ))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if is_length_limit(&error) {
            too_large()
        } else {
            ApiError::invalid_argument(format!("reading the request body failed: {error}")).into()
        }
    })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

fn refuse(api: &OcrApi, request_id: String, bytes: usize, error: HttpError, received: Instant) -> Response {
    api.refused(Protocol::Http, &request_id, bytes, &error.error, received.elapsed());
    error.into_response(&request_id)
}

fn answer(
    api: &OcrApi,
    request_id: String,
    format: OutputFormat,
    served: Served,
    with_words: bool,
    total: std::time::Duration,
) -> Response {
    let id = HeaderValue::from_str(&request_id).ok();
    let rendered = render_answer(api, request_id, format, served, with_words, total);
    let mut response = ([(header::CONTENT_TYPE, rendered.content_type)], rendered.body).into_response();
    *response.status_mut() = StatusCode::OK;
    if let Some(id) = id {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// The caller's `x-request-id`, when it is usable as one (a proxy's overlong id is
/// replaced rather than refused).
pub(super) fn request_id_from(headers: &HeaderMap) -> Option<String> {
    let id = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?.trim();
    is_request_id(id).then(|| id.to_owned())
}

/// A request id for a caller that sent none: 16 hex digits, unpredictable and unique
/// within the process.
pub(super) fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", std::collections::hash_map::RandomState::new().hash_one(n))
}

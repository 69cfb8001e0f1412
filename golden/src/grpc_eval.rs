//! Collecting predictions from a running OCR service over gRPC (`kube_ocr.v1.Ocr`).
//!
//! Deliberately thin: it turns golden items into `Recognize` calls and responses into
//! [`Predictions`]; scoring is the same [`crate::evaluate`] that `score` uses. A failed
//! call does not abort the run: the item is scored as an empty prediction and the
//! failure is counted by status code, because a pod that errors on some images is
//! exactly what a canary analysis must see rather than crash on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::{RecognizeRequest, RecognizeResponse, Task as ProtoTask, ocr_client::OcrClient};
use tonic::transport::{Channel, Endpoint};

use crate::dataset::{GoldenItem, GoldenSet, Task};
use crate::error::GoldenError;
use crate::predictions::Predictions;

/// How to call the service.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// Deadline of each request, also used as the connect timeout.
    pub timeout: Duration,
    /// Ask the server not to answer from its result cache: canary analysis measures the
    /// model, and cached answers would also hide its latency.
    pub bypass_cache: bool,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions { concurrency: 4, timeout: Duration::from_secs(30), bypass_cache: false }
    }
}

/// One failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    /// The golden item id.
    pub id: String,
    /// The gRPC status code name, e.g. `DEADLINE_EXCEEDED`.
    pub code: String,
    /// The status message.
    pub message: String,
}

/// What a run over the golden set collected.
#[derive(Debug, Clone, Default)]
pub struct Recognized {
    /// One prediction per golden item; failed requests are recorded as empty text.
    pub predictions: Predictions,
    /// Failed requests, in golden-set order.
    pub failures: Vec<RequestFailure>,
    /// Round-trip time of each successful request, in completion order.
    pub latencies: Vec<Duration>,
}

impl Recognized {
    /// Failure counts by status code name, as [`crate::Report::request_errors`] holds them.
    pub fn error_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for failure in &self.failures {
            *counts.entry(failure.code.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`). Failing to connect at all is
/// an error: every request would fail, and the cause is clearer here.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<OcrClient<Channel>, GoldenError> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|source| GoldenError::ParseEndpoint { endpoint: endpoint.to_owned(), source })?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|source| GoldenError::Connect { endpoint: endpoint.to_owned(), source })?;
    // Golden documents can be large scans; tonic's 4 MiB default would reject them.
    Ok(OcrClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20))
}

/// Sends every golden image to the service, `options.concurrency` at a time, and
/// calls `on_done` after each answer (for a progress bar). Images are read up front so
/// that an unreadable file is an input error before any request is made.
pub async fn recognize_set(
    client: OcrClient<Channel>,
    set: &GoldenSet,
    options: &EvalOptions,
    on_done: impl Fn() + Send + Sync + 'static,
) -> Result<Recognized, GoldenError> {
    let requests = set
        .items
        .iter()
        .map(|item| {
            let mut request = request_for(item, set.image_bytes(item)?);
            if options.bypass_cache {
                request.options =
                    Some(kube_ocr_proto::v1::RecognizeOptions { bypass_cache: true, ..Default::default() });
            }
            Ok(request)
        })
        .collect::<Result<Vec<_>, GoldenError>>()?;
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let on_done = Arc::new(on_done);

    // A fixed pool of workers pulling the next index keeps at most `concurrency`
    // requests in flight without a stream combinator crate.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1).min(requests.len().max(1)) {
        let (requests, next, on_done, mut client) = (requests.clone(), next.clone(), on_done.clone(), client.clone());
        let timeout = options.timeout;
        workers.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else { break };
                let sent = std::time::Instant::now();
                let answer = loop {
                    let mut call = tonic::Request::new(request.clone());
                    // Sent as grpc-timeout so the pod can drop the request once it is too
                    // late; the channel's own timeout enforces it on this side.
                    call.set_timeout(timeout.saturating_sub(sent.elapsed()));
                    match client.recognize(call).await {
                        // A busy pod says when to come back; a retry that fits in the
                        // timeout is what any good client does, and a busy canary is not
                        // a wrong one.
                        Err(status) if retry_after(&status).is_some_and(|delay| sent.elapsed() + delay < timeout) => {
                            tokio::time::sleep(retry_after(&status).unwrap_or_default()).await;
                        }
                        answer => {
                            break answer.map(|response| (prediction_text(&response.into_inner()), sent.elapsed()));
                        }
                    }
                };
                answers.push((index, answer));
                on_done();
            }
            answers
        });
    }

    let mut answers: Vec<Option<Result<(String, Duration), tonic::Status>>> = vec![None; requests.len()];
    while let Some(joined) = workers.join_next().await {
        // A worker only panics if tonic does; surface that rather than mis-scoring.
        let worker_answers = joined.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        for (index, answer) in worker_answers {
            answers[index] = Some(answer);
        }
    }

    let mut recognized = Recognized::default();
    for (item, answer) in set.items.iter().zip(answers) {
        let text = match answer {
            Some(Ok((text, latency))) => {
                recognized.latencies.push(latency);
                text
            }
            Some(Err(status)) => {
                recognized.failures.push(RequestFailure {
                    id: item.id.clone(),
                    code: code_name(status.code()).to_owned(),
                    message: status.message().to_owned(),
                });
                String::new()
            }
            None => String::new(),
        };
        recognized.predictions.insert(item.id.clone(), text);
    }
    Ok(recognized)
}

/// How long a refused request should wait before it is sent again: the RetryInfo of a
/// RESOURCE_EXHAUSTED answer (a busy pod's deadline-aware admission), else never.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    tonic_types::StatusExt::get_details_retry_info(status).and_then(|info| info.retry_delay)
}

/// The request for one golden item; the item id doubles as the request id so that the
/// pod's access log can be matched to the report.
pub fn request_for(item: &GoldenItem, image: Vec<u8>) -> RecognizeRequest {
    let task = match item.task {
        Task::Line => ProtoTask::Line,
        Task::Document => ProtoTask::Document,
    };
    RecognizeRequest { request_id: item.id.clone(), image, task: task as i32, options: None }
}

/// The predicted text of a response: `text` (lines joined with `"\n"` by the server),
/// or, if a server leaves it empty, the lines joined here.
pub fn prediction_text(response: &RecognizeResponse) -> String {
    if !response.text.is_empty() || response.lines.is_empty() {
        return response.text.clone();
    }
    response.lines.iter().map(|line| line.text.as_str()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Truth;
    use kube_ocr_proto::v1::TextLine;

    fn item(task: Task) -> GoldenItem {
        GoldenItem {
            id: "doc-1".into(),
            file: "d.png".into(),
            task,
            truth: Truth::Lines(vec![]),
            group: "g".into(),
            variant: "clean".into(),
            tags: vec![],
        }
    }

    #[test]
    fn requests_carry_id_image_and_task() {
        let request = request_for(&item(Task::Document), vec![1, 2]);
        assert_eq!(request.request_id, "doc-1");
        assert_eq!(request.image, [1, 2]);
        assert_eq!(request.task(), ProtoTask::Document);
        assert_eq!(request_for(&item(Task::Line), vec![]).task(), ProtoTask::Line);
    }

    #[test]
    fn prediction_prefers_text_and_falls_back_to_lines() {
        let line = |text: &str| TextLine { text: text.into(), ..Default::default() };
        let both = RecognizeResponse { text: "a\nb".into(), lines: vec![line("a"), line("b")], ..Default::default() };
        assert_eq!(prediction_text(&both), "a\nb");
        let lines_only = RecognizeResponse { lines: vec![line("x"), line("y")], ..Default::default() };
        assert_eq!(prediction_text(&lines_only), "x\ny");
        assert_eq!(prediction_text(&RecognizeResponse::default()), "");
    }

    #[test]
    fn failures_are_counted_by_code() {
        let failure =
            |id: &str, code: &str| RequestFailure { id: id.into(), code: code.into(), message: String::new() };
        let recognized = Recognized {
            predictions: Predictions::new(),
            failures: vec![failure("a", "UNAVAILABLE"), failure("b", "INTERNAL"), failure("c", "UNAVAILABLE")],
            latencies: Vec::new(),
        };
        let counts = recognized.error_counts();
        assert_eq!(counts.get("UNAVAILABLE"), Some(&2));
        assert_eq!(counts.get("INTERNAL"), Some(&1));
    }

    #[tokio::test]
    async fn an_invalid_endpoint_is_a_clear_error() {
        let error = connect("not a uri\n", Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(error, GoldenError::ParseEndpoint { .. }), "{error}");
    }

    #[test]
    fn only_a_busy_refusal_with_retry_info_is_retried() {
        use tonic_types::{ErrorDetails, StatusExt};
        let delay = Duration::from_millis(250);
        let busy = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "busy",
            ErrorDetails::with_retry_info(Some(delay)),
        );
        assert_eq!(retry_after(&busy), Some(delay));
        assert_eq!(retry_after(&tonic::Status::resource_exhausted("the image is too large")), None);
        let wrong_code = tonic::Status::with_error_details(
            tonic::Code::Internal,
            "boom",
            ErrorDetails::with_retry_info(Some(delay)),
        );
        assert_eq!(retry_after(&wrong_code), None);
    }
}

//! `kube_ocr.v1.Ocr` over gRPC: validation, the result cache, deadlines, metrics and the
//! access log around the engine.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::ocr_server::Ocr;
use kube_ocr_proto::v1::{
    GetModelInfoRequest, ModelInfo, ModelRef, RecognizeError, RecognizeRequest, RecognizeResponse,
    RecognizeStreamResponse, Task, recognize_stream_response,
};
use tonic::{Code, Request, Response, Status, Streaming};

use super::deadline::{parse_grpc_timeout, request_deadline};
use super::response::recognize_response;
use super::status::status_of;
use crate::serve::cache::{CacheKey, ResultCache, image_sha256};
use crate::serve::engine::{Engine, OcrOptions, OcrOutput, OcrTask, PhaseTimings};
use crate::serve::serving_state::{Phase, ServingState};
use crate::serve::telemetry::access_log::{AccessRecord, log_access};
use crate::serve::telemetry::metrics::OcrMetrics;

/// Requests of one stream processed at the same time (responses keep request order).
const STREAM_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceLimits {
    /// Longest a request may take in total, whatever the client's deadline.
    pub request_timeout: Duration,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: usize,
}

/// The `kube_ocr.v1.Ocr` service implementation (not to be confused with the `OcrService`
/// custom resource the operator reconciles).
#[derive(Debug, Clone)]
pub(crate) struct OcrGrpcService {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    cache: Arc<ResultCache<OcrOutput>>,
    metrics: Arc<OcrMetrics>,
    serving: ServingState,
    limits: ServiceLimits,
    model: ModelRef,
}

impl OcrGrpcService {
    pub(crate) fn new(
        engine: Arc<Engine>,
        cache: Arc<ResultCache<OcrOutput>>,
        metrics: Arc<OcrMetrics>,
        serving: ServingState,
        limits: ServiceLimits,
    ) -> Self {
        let manifest = &engine.bundle().manifest;
        let model = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            variant: manifest.variant.clone(),
        };
        Self { shared: Arc::new(Shared { engine, cache, metrics, serving, limits, model }) }
    }
}

/// The outcome of one request, before it becomes a gRPC response.
struct Handled {
    result: Result<(OcrOutput, bool), Status>,
    task: Option<OcrTask>,
    sha256: String,
}

impl Shared {
    async fn handle(&self, request: &RecognizeRequest, deadline: Instant) -> Handled {
        let sha256 = image_sha256(&request.image);
        let hex_sha: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
        let task = match request.task() {
            Task::Document => OcrTask::Document,
            Task::Line => OcrTask::Line,
            Task::Unspecified => {
                let status = Status::invalid_argument(
                    "task is required: set TASK_DOCUMENT (find and read every line) or TASK_LINE (the image is one line)",
                );
                return Handled { result: Err(status), task: None, sha256: hex_sha };
            }
        };
        let fail = |status: Status| Handled { result: Err(status), task: Some(task), sha256: hex_sha.clone() };
        let options = request.options.unwrap_or_default();
        if !(0.0..=1.0).contains(&options.min_confidence) {
            return fail(Status::invalid_argument(format!(
                "options.min_confidence must be between 0 and 1, got {}",
                options.min_confidence
            )));
        }
        if request.image.len() > self.limits.max_image_bytes {
            return fail(Status::resource_exhausted(format!(
                "the image is {} bytes; this server accepts at most {} (--max-image-bytes)",
                request.image.len(),
                self.limits.max_image_bytes
            )));
        }
        if let Phase::Starting { .. } | Phase::Failed { .. } = self.serving.phase() {
            return fail(Status::unavailable(format!("the model is not ready ({})", self.serving.phase().describe())));
        }
        let ocr_options =
            OcrOptions { min_confidence: options.min_confidence, skip_orientation: options.skip_orientation };
        let key = CacheKey::new(
            &sha256,
            &format!(
                "{}|{}|{}|{}|{}|{}",
                task.as_str(),
                options.min_confidence,
                options.skip_orientation,
                self.model.name,
                self.model.version,
                self.model.variant
            ),
        );
        if self.cache.is_enabled() && !options.bypass_cache {
            let hit = self.cache.get(&key);
            self.metrics.record_cache_lookup(hit.is_some());
            if let Some(hit) = hit {
                return Handled { result: Ok((hit, true)), task: Some(task), sha256: hex_sha };
            }
        }
        let image: Arc<[u8]> = Arc::from(request.image.as_slice());
        let work = self.engine.recognize(image, task, ocr_options, deadline);
        let result = match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(Ok(output)) => {
                if self.cache.is_enabled() {
                    self.cache.insert(key, output.clone());
                }
                Ok((output, false))
            }
            Ok(Err(error)) => Err(status_of(&error)),
            Err(_) => Err(Status::deadline_exceeded(
                "the request did not finish before its deadline (the client's grpc-timeout or --request-timeout)",
            )),
        };
        Handled { result, task: Some(task), sha256: hex_sha }
    }

    /// Handles one request end to end: metrics, access log, response.
    async fn recognize_one(&self, request: RecognizeRequest, deadline: Instant) -> Result<RecognizeResponse, Status> {
        let received = Instant::now();
        self.metrics.request_started();
        let handled = self.handle(&request, deadline).await;
        let total = received.elapsed();
        let code = match &handled.result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        // A request refused for lacking a task is counted as a document request.
        let task = handled.task.unwrap_or(OcrTask::Document);
        self.metrics.request_finished(task, code, total);
        if let Ok((output, cached)) = &handled.result {
            self.metrics.record_output(task, output.lines.len());
            if !cached {
                self.metrics.observe_phases(task, &output.timings);
            }
        }
        let timings =
            handled.result.as_ref().map(|(o, cached)| if *cached { PhaseTimings::default() } else { o.timings });
        let error = handled.result.as_ref().err().map(|s| s.message().to_owned());
        let output = handled.result.as_ref().ok();
        log_access(&AccessRecord {
            request_id: &request.request_id,
            image_sha256: &handled.sha256,
            task: handled.task.map_or("unspecified", OcrTask::as_str),
            image_bytes: request.image.len(),
            width: output.map_or(0, |(o, _)| o.width),
            height: output.map_or(0, |(o, _)| o.height),
            lines: output.map_or(0, |(o, _)| o.lines.len()),
            cached: output.is_some_and(|(_, cached)| *cached),
            code: code_name(code),
            timings: timings.unwrap_or_default(),
            total,
            error: error.as_deref(),
        });
        let (output, cached) = handled.result?;
        Ok(recognize_response(request.request_id, self.model.clone(), output, cached, total))
    }

    fn deadline_of<T>(&self, request: &Request<T>) -> Instant {
        let client_timeout =
            request.metadata().get("grpc-timeout").and_then(|value| value.to_str().ok()).and_then(parse_grpc_timeout);
        request_deadline(Instant::now(), client_timeout, self.limits.request_timeout)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<RecognizeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Ocr for OcrGrpcService {
    async fn recognize(&self, request: Request<RecognizeRequest>) -> Result<Response<RecognizeResponse>, Status> {
        let deadline = self.shared.deadline_of(&request);
        self.shared.recognize_one(request.into_inner(), deadline).await.map(Response::new)
    }

    type RecognizeStreamStream = ResponseStream;

    /// Many pages over one call: each request gets its own response or error (a bad page
    /// does not end the stream), in request order. The server's time limit applies per
    /// page; the client's deadline applies to the whole stream.
    async fn recognize_stream(
        &self,
        request: Request<Streaming<RecognizeRequest>>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        let stream_deadline = self.shared.deadline_of(&request);
        let has_client_deadline = request.metadata().get("grpc-timeout").is_some();
        let shared = self.shared.clone();
        let responses = request
            .into_inner()
            .map(move |item| {
                let shared = shared.clone();
                async move {
                    let request = item?;
                    let per_page = Instant::now() + shared.limits.request_timeout;
                    let deadline = if has_client_deadline { per_page.min(stream_deadline) } else { per_page };
                    let request_id = request.request_id.clone();
                    let result = match shared.recognize_one(request, deadline).await {
                        Ok(response) => recognize_stream_response::Result::Response(response),
                        Err(status) => recognize_stream_response::Result::Error(RecognizeError {
                            request_id,
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        }),
                    };
                    Ok(RecognizeStreamResponse { result: Some(result) })
                }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(responses)))
    }

    async fn get_model_info(&self, _request: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        let engine = &self.shared.engine;
        Ok(Response::new(ModelInfo {
            model: Some(self.shared.model.clone()),
            device: engine.device().to_string(),
            pipeline: engine.bundle().manifest.pipeline.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
            max_batch_size: u32::try_from(engine.config().batching.max_batch_size).unwrap_or(u32::MAX),
        }))
    }
}

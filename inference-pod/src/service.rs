//! `kube_ocr.v1.Ocr` over gRPC: validation, the result cache, deadlines, metrics and the
//! access log around [`Engine::recognize`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube_ocr_proto::v1::ocr_server::Ocr;
use kube_ocr_proto::v1::{
    GetModelInfoRequest, ModelInfo, ModelRef, Point, RecognizeError, RecognizeRequest, RecognizeResponse,
    RecognizeStreamResponse, Task, TextLine, Timings, recognize_stream_response,
};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::access_log::{AccessRecord, log_access};
use crate::batcher::BatchError;
use crate::cache::{CacheKey, ResultCache, image_sha256};
use crate::engine::{Engine, OcrError, OcrOptions, OcrOutput, OcrTask, PhaseTimings};
use crate::metrics::{ModelLabels, OcrMetrics, PhaseLabel, PhaseLabels, RequestLabels, TaskLabel, TaskLabels};
use crate::request_deadline::{parse_grpc_timeout, request_deadline};
use crate::serving_state::{Phase, ServingState};
use kube_ocr_golden::grpc_eval::code_name;

/// Requests of one stream processed at the same time (responses keep request order).
pub const STREAM_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Longest a request may take in total, whatever the client's deadline.
    pub request_timeout: Duration,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct OcrService {
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

impl OcrService {
    pub fn new(
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
    fn model_labels(&self) -> ModelLabels {
        ModelLabels { model: self.model.name.clone(), version: self.model.version.clone() }
    }

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
        let labels = self.model_labels();
        if self.cache.is_enabled() && !options.bypass_cache {
            if let Some(hit) = self.cache.get(&key) {
                self.metrics.cache_hits.get_or_create(&labels).inc();
                return Handled { result: Ok((hit, true)), task: Some(task), sha256: hex_sha };
            }
            self.metrics.cache_misses.get_or_create(&labels).inc();
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
        let labels = self.model_labels();
        let in_flight = self.metrics.in_flight.get_or_create(&labels).clone();
        in_flight.inc();
        let handled = self.handle(&request, deadline).await;
        in_flight.dec();
        let total = received.elapsed();
        let code = match &handled.result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        let task_label = match handled.task {
            Some(OcrTask::Line) => TaskLabel::line,
            _ => TaskLabel::document,
        };
        let timings =
            handled.result.as_ref().map(|(o, cached)| if *cached { PhaseTimings::default() } else { o.timings });
        self.record_metrics(task_label, code, total, handled.result.as_ref().ok().map(|(o, c)| (o, *c)));
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
        Ok(self.response(request.request_id, output, cached, total))
    }

    fn record_metrics(&self, task: TaskLabel, code: Code, total: Duration, output: Option<(&OcrOutput, bool)>) {
        let (model, version) = (self.model.name.clone(), self.model.version.clone());
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                model: model.clone(),
                version: version.clone(),
                task,
                code: code_name(code).to_owned(),
            })
            .inc();
        let task_labels = TaskLabels { model: model.clone(), version: version.clone(), task };
        self.metrics.request_duration.get_or_create(&task_labels).observe(total.as_secs_f64());
        let Some((output, cached)) = output else { return };
        self.metrics.pages.get_or_create(&task_labels).inc();
        self.metrics.lines.get_or_create(&task_labels).inc_by(output.lines.len() as u64);
        if cached {
            return;
        }
        let phases = [
            (PhaseLabel::queue, output.timings.queue),
            (PhaseLabel::preprocess, output.timings.preprocess),
            (PhaseLabel::inference, output.timings.inference),
            (PhaseLabel::postprocess, output.timings.postprocess),
        ];
        for (phase, duration) in phases {
            let labels = PhaseLabels { model: model.clone(), version: version.clone(), task, phase };
            self.metrics.phase_duration.get_or_create(&labels).observe(duration.as_secs_f64());
        }
    }

    fn response(&self, request_id: String, output: OcrOutput, cached: bool, total: Duration) -> RecognizeResponse {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let text = output.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
        RecognizeResponse {
            request_id,
            lines: output
                .lines
                .into_iter()
                .map(|line| TextLine {
                    text: line.text,
                    confidence: line.confidence,
                    r#box: line.quad.iter().map(|&(x, y)| Point { x, y }).collect(),
                    rotated_180: line.rotated_180,
                })
                .collect(),
            text,
            model: Some(self.model.clone()),
            image_width: output.width,
            image_height: output.height,
            cached,
            timings: Some(Timings {
                queue_us: micros(output.timings.queue),
                preprocess_us: micros(output.timings.preprocess),
                inference_us: micros(output.timings.inference),
                postprocess_us: micros(output.timings.postprocess),
                total_us: micros(total),
            }),
        }
    }

    fn deadline_of<T>(&self, request: &Request<T>) -> Instant {
        let client_timeout =
            request.metadata().get("grpc-timeout").and_then(|value| value.to_str().ok()).and_then(parse_grpc_timeout);
        request_deadline(Instant::now(), client_timeout, self.limits.request_timeout)
    }
}

/// The gRPC status a caller can act on for each way a request fails.
pub fn status_of(error: &OcrError) -> Status {
    match error {
        OcrError::Decode(decode) if decode.is_resource_limit() => Status::resource_exhausted(decode.to_string()),
        OcrError::Decode(decode) => Status::invalid_argument(decode.to_string()),
        OcrError::Batch(batch @ BatchError::QueueFull { .. }) => Status::resource_exhausted(batch.to_string()),
        OcrError::Batch(batch @ BatchError::DeadlineExceeded { .. }) => Status::deadline_exceeded(batch.to_string()),
        OcrError::Batch(batch @ BatchError::Stopped { .. }) => Status::unavailable(batch.to_string()),
        OcrError::Batch(batch @ BatchError::Compute { .. }) => Status::internal(batch.to_string()),
        OcrError::DeadlineExceeded { .. } => Status::deadline_exceeded(error.to_string()),
        OcrError::Internal(_) => Status::internal(error.to_string()),
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<RecognizeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Ocr for OcrService {
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
            device: crate::torchscript::device_name(engine.device()),
            pipeline: engine.bundle().manifest.pipeline.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
            max_batch_size: u32::try_from(engine.config().batching.max_batch_size).unwrap_or(u32::MAX),
        }))
    }
}

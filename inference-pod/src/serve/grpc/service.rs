//! `kube_ocr.v1.Ocr` over gRPC: messages in and out of [`OcrApi`], deadlines from
//! `grpc-timeout`, streams of pages.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use kube_ocr_proto::v1::ocr_server::Ocr;
use kube_ocr_proto::v1::{
    GetModelInfoRequest, ModelInfo, RecognizeError, RecognizeRequest, RecognizeResponse, RecognizeStreamResponse, Task,
    recognize_stream_response,
};
use tonic::{Request, Response, Status, Streaming};

use super::deadline::parse_grpc_timeout;
use super::status::status_of;
use crate::serve::api::deadline::request_deadline;
use crate::serve::api::{ApiError, CallOptions, OcrApi, OcrCall, Protocol, response_message};
use crate::serve::engine::OcrTask;

/// Requests of one stream processed at the same time (responses keep request order).
const STREAM_CONCURRENCY: usize = 8;

/// The `kube_ocr.v1.Ocr` service implementation.
#[derive(Debug, Clone)]
pub(crate) struct OcrGrpcService {
    api: Arc<OcrApi>,
}

impl OcrGrpcService {
    pub(crate) fn new(api: Arc<OcrApi>) -> Self {
        Self { api }
    }
}

fn task_of(request: &RecognizeRequest) -> Result<OcrTask, ApiError> {
    match request.task() {
        Task::Document => Ok(OcrTask::Document),
        Task::Line => Ok(OcrTask::Line),
        Task::Unspecified => Err(ApiError::invalid_argument(
            "task is required: set TASK_DOCUMENT (find and read every line) or TASK_LINE (the image is one line)",
        )),
    }
}

/// Handles one request end to end: the call, its metrics and access log, the response.
async fn recognize_one(
    api: &OcrApi,
    request: RecognizeRequest,
    deadline: Instant,
) -> Result<RecognizeResponse, Status> {
    let received = Instant::now();
    let task = match task_of(&request) {
        Ok(task) => task,
        Err(error) => {
            api.refused(Protocol::Grpc, &request.request_id, request.image.len(), &error, received.elapsed());
            return Err(status_of(&error));
        }
    };
    let options = request.options.unwrap_or_default();
    let call = OcrCall {
        protocol: Protocol::Grpc,
        request_id: request.request_id,
        document: Arc::from(request.image),
        task,
        options: CallOptions {
            min_confidence: options.min_confidence,
            skip_orientation: options.skip_orientation,
            bypass_cache: options.bypass_cache,
            word_boxes: options.word_boxes,
        },
        deadline,
    };
    let answered = api.call(&call, received).await;
    let served = answered.result.map_err(|error| status_of(&error))?;
    let with_words = call.options.word_boxes;
    Ok(response_message(call.request_id, api.model().clone(), served, with_words, answered.total))
}

fn deadline_of<T>(api: &OcrApi, request: &Request<T>) -> Instant {
    let client_timeout =
        request.metadata().get("grpc-timeout").and_then(|value| value.to_str().ok()).and_then(parse_grpc_timeout);
    request_deadline(Instant::now(), client_timeout, api.limits().request_timeout)
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<RecognizeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Ocr for OcrGrpcService {
    async fn recognize(&self, request: Request<RecognizeRequest>) -> Result<Response<RecognizeResponse>, Status> {
        let deadline = deadline_of(&self.api, &request);
        recognize_one(&self.api, request.into_inner(), deadline).await.map(Response::new)
    }

    type RecognizeStreamStream = ResponseStream;

    /// Many pages over one call: each request gets its own response or error (a bad page
    /// does not end the stream), in request order. The server's time limit applies per
    /// page; the client's deadline applies to the whole stream.
    async fn recognize_stream(
        &self,
        request: Request<Streaming<RecognizeRequest>>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        let stream_deadline = deadline_of(&self.api, &request);
        let has_client_deadline = request.metadata().get("grpc-timeout").is_some();
        let api = self.api.clone();
        let responses = request
            .into_inner()
            .map(move |item| {
                let api = api.clone();
                async move {
                    let request = item?;
                    let per_page = Instant::now() + api.limits().request_timeout;
                    let deadline = if has_client_deadline { per_page.min(stream_deadline) } else { per_page };
                    let request_id = request.request_id.clone();
                    let result = match recognize_one(&api, request, deadline).await {
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
        let engine = self.api.engine();
        Ok(Response::new(ModelInfo {
            model: Some(self.api.model().clone()),
            device: engine.device().to_string(),
            pipeline: engine.bundle().manifest.pipeline.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
            max_batch_size: u32::try_from(engine.config().batching.max_batch_size).unwrap_or(u32::MAX),
        }))
    }
}

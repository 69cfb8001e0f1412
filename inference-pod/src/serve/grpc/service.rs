//! `kube_ocr.v1.Ocr` over gRPC: messages in and out of [`OcrApi`], deadlines from
//! `grpc-timeout`, streams of pages.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use kube_ocr_proto::v1::ocr_server::Ocr;
use kube_ocr_proto::v1::{
    CancelJobRequest, GetJobRequest, GetJobResultRequest, GetModelInfoRequest, Job, JobResultChunk, ModelInfo,
    RecognizeDocumentResponse, RecognizeError, RecognizeOptions, RecognizeRequest, RecognizeResponse,
    RecognizeStreamResponse, SubmitJobRequest, Task, recognize_stream_response,
};
use kube_ocr_vision::image::PageRange;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::deadline::parse_grpc_timeout;
use super::jobs as job_rpc;
use super::status::status_of;
use crate::serve::api::deadline::request_deadline;
use crate::serve::api::{
    ApiError, CallOptions, DocumentProgress, OcrApi, OcrCall, PAGES_IN_FLIGHT, Progress, Protocol, page_result,
    response_message, timings_message,
};
use crate::serve::engine::OcrTask;
use crate::serve::jobs::Jobs;

/// Pages of a `RecognizeDocument` call read ahead of a slow reader of the stream.
const DOCUMENT_STREAM_BUFFER: usize = 4;

/// Requests of one stream processed at the same time (responses keep request order).
const STREAM_CONCURRENCY: usize = 8;

/// The `kube_ocr.v1.Ocr` service implementation.
#[derive(Debug, Clone)]
pub(crate) struct OcrGrpcService {
    api: Arc<OcrApi>,
    jobs: Option<Arc<Jobs>>,
}

impl OcrGrpcService {
    pub(crate) fn new(api: Arc<OcrApi>, jobs: Option<Arc<Jobs>>) -> Self {
        Self { api, jobs }
    }
}

fn task_of(request: &RecognizeRequest) -> Result<OcrTask, ApiError> {
    task_from(request.task())
}

pub(super) fn task_from(task: Task) -> Result<OcrTask, ApiError> {
    match task {
        Task::Document => Ok(OcrTask::Document),
        Task::Line => Ok(OcrTask::Line),
        Task::Unspecified => Err(ApiError::invalid_argument(
            "task is required: set TASK_DOCUMENT (find and read every line) or TASK_LINE (the image is one line)",
        )),
    }
}

/// The options as both APIs (and jobs) hold them.
pub(super) fn call_options(options: RecognizeOptions) -> CallOptions {
    CallOptions {
        min_confidence: options.min_confidence,
        skip_orientation: options.skip_orientation,
        bypass_cache: options.bypass_cache,
        word_boxes: options.word_boxes,
        range: PageRange { first: options.first_page, last: options.last_page },
        pdf_dpi: options.pdf_dpi,
        pdf_text_layer: options.pdf_text_layer,
    }
}

/// The call a request asks for; a request without a task is counted, logged and refused.
fn call_of(api: &OcrApi, request: RecognizeRequest, deadline: Instant, received: Instant) -> Result<OcrCall, Status> {
    let task = match task_of(&request) {
        Ok(task) => task,
        Err(error) => {
            api.refused(Protocol::Grpc, &request.request_id, request.image.len(), &error, received.elapsed());
            return Err(status_of(&error));
        }
    };
    Ok(OcrCall {
        protocol: Protocol::Grpc,
        request_id: request.request_id,
        document: Arc::from(request.image),
        task,
        options: call_options(request.options.unwrap_or_default()),
        deadline,
        pages_in_flight: PAGES_IN_FLIGHT,
    })
}

/// Handles one request end to end: the call, its metrics and access log, the response.
async fn recognize_one(
    api: &OcrApi,
    request: RecognizeRequest,
    deadline: Instant,
) -> Result<RecognizeResponse, Status> {
    let received = Instant::now();
    let call = call_of(api, request, deadline, received)?;
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
type DocumentStream = Pin<Box<dyn Stream<Item = Result<RecognizeDocumentResponse, Status>> + Send>>;

/// The plan and then each page as `RecognizeDocument` messages; a failed call ends the
/// stream with its status after the pages sent before it.
fn document_messages(
    call: &OcrCall,
    api: &OcrApi,
    events: mpsc::Receiver<DocumentProgress>,
    finished: oneshot::Receiver<Result<(), Status>>,
) -> DocumentStream {
    let request_id = call.request_id.clone();
    let model = api.model().clone();
    let with_words = call.options.word_boxes;
    let pages = ReceiverStream::new(events).scan((0, 0), move |plan, event| {
        let message = match event {
            DocumentProgress::Planned { document_page_count, pages_to_read } => {
                *plan = (document_page_count, pages_to_read);
                RecognizeDocumentResponse {
                    request_id: request_id.clone(),
                    model: Some(model.clone()),
                    document_page_count,
                    pages_to_read,
                    page: None,
                    timings: None,
                }
            }
            DocumentProgress::Page(page) => {
                let timings = &page.output.timings;
                let spent = timings.queue + timings.preprocess + timings.inference + timings.postprocess;
                RecognizeDocumentResponse {
                    request_id: request_id.clone(),
                    model: Some(model.clone()),
                    document_page_count: plan.0,
                    pages_to_read: plan.1,
                    timings: Some(timings_message(timings, spent)),
                    page: Some(page_result(&page, with_words)),
                }
            }
        };
        std::future::ready(Some(Ok(message)))
    });
    let end = futures::stream::once(finished).filter_map(|finished| {
        std::future::ready(match finished {
            Ok(Ok(())) => None,
            Ok(Err(status)) => Some(Err(status)),
            Err(_) => Some(Err(Status::internal("the document call ended without an answer"))),
        })
    });
    Box::pin(pages.chain(end))
}

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

    type RecognizeDocumentStream = DocumentStream;

    /// One document, its pages streamed in order as they are read.
    async fn recognize_document(
        &self,
        request: Request<RecognizeRequest>,
    ) -> Result<Response<Self::RecognizeDocumentStream>, Status> {
        let received = Instant::now();
        let deadline = deadline_of(&self.api, &request);
        let call = call_of(&self.api, request.into_inner(), deadline, received)?;
        let (events, heard) = mpsc::channel(DOCUMENT_STREAM_BUFFER);
        let (finish, finished) = oneshot::channel();
        let messages = document_messages(&call, &self.api, heard, finished);
        let api = self.api.clone();
        tokio::spawn(async move {
            let progress = Progress::new(events);
            let answered = api.call_with_progress(&call, received, Some(&progress)).await;
            drop(progress);
            let _ = finish.send(answered.result.map(|_| ()).map_err(|error| status_of(&error)));
        });
        Ok(Response::new(messages))
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

    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::submit(self.jobs.as_deref(), request.into_inner()).await.map(Response::new)
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::get(self.jobs.as_deref(), &request.into_inner().id).await.map(Response::new)
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::cancel(self.jobs.as_deref(), &request.into_inner().id).await.map(Response::new)
    }

    type GetJobResultStream = Pin<Box<dyn Stream<Item = Result<JobResultChunk, Status>> + Send>>;

    async fn get_job_result(
        &self,
        request: Request<GetJobResultRequest>,
    ) -> Result<Response<Self::GetJobResultStream>, Status> {
        let chunks = job_rpc::result(self.jobs.as_deref(), request.into_inner()).await?;
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))))
    }
}

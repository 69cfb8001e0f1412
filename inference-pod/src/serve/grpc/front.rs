//! `kube_ocr.v1.Ocr` on a job front: the job RPCs, and a clear refusal of the synchronous
//! ones (a front loads no model; the service's pods answer those).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kube_ocr_proto::v1::ocr_server::Ocr;
use kube_ocr_proto::v1::{
    CancelJobRequest, GetJobRequest, GetJobResultRequest, GetModelInfoRequest, Job, JobResultChunk, ModelInfo,
    RecognizeDocumentResponse, RecognizeRequest, RecognizeResponse, RecognizeStreamResponse, SubmitJobRequest,
};
use tonic::{Request, Response, Status, Streaming};

use super::jobs as job_rpc;
use super::status::status_of;
use crate::serve::api::{ApiError, Failure};
use crate::serve::jobs::Jobs;

#[derive(Debug, Clone)]
pub(crate) struct JobsFrontGrpcService {
    jobs: Arc<Jobs>,
}

impl JobsFrontGrpcService {
    pub(crate) fn new(jobs: Arc<Jobs>) -> Self {
        Self { jobs }
    }
}

fn jobs_only() -> Status {
    status_of(&ApiError::new(
        Failure::Unimplemented,
        "this is the service's job front: it takes document jobs only (SubmitJob, GetJob, CancelJob, GetJobResult); \
         send synchronous calls to the service's pods",
    ))
}

type Empty<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Ocr for JobsFrontGrpcService {
    async fn recognize(&self, _: Request<RecognizeRequest>) -> Result<Response<RecognizeResponse>, Status> {
        Err(jobs_only())
    }

    type RecognizeStreamStream = Empty<RecognizeStreamResponse>;

    async fn recognize_stream(
        &self,
        _: Request<Streaming<RecognizeRequest>>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        Err(jobs_only())
    }

    type RecognizeDocumentStream = Empty<RecognizeDocumentResponse>;

    async fn recognize_document(
        &self,
        _: Request<RecognizeRequest>,
    ) -> Result<Response<Self::RecognizeDocumentStream>, Status> {
        Err(jobs_only())
    }

    async fn get_model_info(&self, _: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        Err(jobs_only())
    }

    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::submit(Some(&self.jobs), request.into_inner()).await.map(Response::new)
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::get(Some(&self.jobs), &request.into_inner().id).await.map(Response::new)
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> Result<Response<Job>, Status> {
        job_rpc::cancel(Some(&self.jobs), &request.into_inner().id).await.map(Response::new)
    }

    type GetJobResultStream = Empty<JobResultChunk>;

    async fn get_job_result(
        &self,
        request: Request<GetJobResultRequest>,
    ) -> Result<Response<Self::GetJobResultStream>, Status> {
        let chunks = job_rpc::result(Some(&self.jobs), request.into_inner()).await?;
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))))
    }
}

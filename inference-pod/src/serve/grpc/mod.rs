//! The gRPC API (`kube_ocr.v1.Ocr`): messages in and out of the shared
//! [`OcrApi`](crate::serve::api::OcrApi), deadlines from `grpc-timeout`, and the mapping
//! from a failed call to a status.

mod deadline;
mod front;
mod jobs;
mod service;
mod status;

pub(crate) use front::JobsFrontGrpcService;
pub(crate) use service::OcrGrpcService;

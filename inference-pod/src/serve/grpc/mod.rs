//! The gRPC API (`kube_ocr.v1.Ocr`): request validation, deadlines, the result cache and
//! metrics around the engine, the response message, and the single mapping from errors to
//! status codes.

pub(crate) mod deadline;
mod response;
mod service;
mod status;

pub(crate) use service::{OcrGrpcService, ServiceLimits};

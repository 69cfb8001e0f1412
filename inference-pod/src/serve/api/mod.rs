//! The OCR call both APIs make: validation, the result cache, the deadline, metrics and
//! the access log around the engine, and the one mapping from engine errors to what a
//! caller can act on. gRPC ([`super::grpc`]) and HTTP ([`super::http_api`]) only
//! translate requests in and results and [`ApiError`]s out, so they answer alike.

mod call;
mod check;
pub(crate) mod deadline;
mod failure;
mod response;
mod service;

pub(crate) use call::{CallOptions, DocumentProgress, OcrCall, Protocol, Served, ServedPage};
pub(crate) use check::CallChecker;
pub(crate) use failure::{ApiError, Failure};
pub(crate) use response::{page_result, response_message, timings_message};
pub(crate) use service::{ApiLimits, OcrApi, PAGES_IN_FLIGHT, Progress};

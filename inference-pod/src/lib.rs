//! The kube-ocr inference pod.
//!
//! Pure pieces (bundle manifest, pre/post-processing) are plain functions with unit tests;
//! libtorch lives behind [`torchscript`], the one module that touches `tch`.

pub mod access_log;
pub mod batcher;
pub mod bundle;
pub mod cache;
pub mod ctc;
pub mod decode;
pub mod document;
pub mod engine;
mod error;
pub mod gpu;
pub mod http;
pub mod line_batches;
pub mod line_input;
pub mod metrics;
pub mod process_metrics;
pub mod recognizer;
pub mod request_deadline;
pub mod self_test;
pub mod server;
pub mod service;
pub mod serving_state;
pub mod stages;
pub mod torchscript;

mod chw;
pub mod classify_input;
mod contours;
pub mod crop;
pub mod db_postprocess;
pub mod detect_input;
pub mod geometry;
pub mod page;
mod perspective;
mod polygon_fill;
pub mod reading_order;

pub use error::InferenceError;

//! The kube-ocr inference pod.
//!
//! Pure pieces (bundle manifest, pre/post-processing) are plain functions with unit tests;
//! libtorch lives behind [`torchscript`], the one module that touches `tch`.

pub mod batcher;
pub mod bundle;
pub mod cache;
pub mod ctc;
pub mod decode;
mod error;
pub mod gpu;
pub mod line_input;
pub mod metrics;
pub mod process_metrics;
pub mod recognizer;
pub mod torchscript;

pub use error::InferenceError;

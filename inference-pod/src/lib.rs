//! The kube-ocr inference pod.
//!
//! Pure pieces (bundle manifest, pre/post-processing) are plain functions with unit tests;
//! libtorch lives behind [`torchscript`], the one module that touches `tch`.

pub mod bundle;
pub mod ctc;
mod error;
pub mod line_input;
pub mod recognizer;
pub mod torchscript;

pub use error::InferenceError;

//! The kube-ocr inference pod, in two layers over the pure `kube-ocr-vision` crate
//! (vision ← model ← serve). [`model`] loads bundles and runs their TorchScript stages as
//! batch processors on a chosen device; it is the only code that names libtorch (`tch`).
//! [`serve`] batches requests onto those stages and serves them over gRPC and HTTP with
//! health, metrics, a result cache and a graceful drain. Exported is what the binary, the
//! integration tests and the examples use.

pub mod model;
pub mod serve;

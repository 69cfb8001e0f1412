//! Canary analysis as pure functions: parse the pods' metrics, take deltas over the
//! window, compute P95 and error rates per track, judge canary against stable, and write
//! the verdict as `status.lastAnalysis`. No IO: scraping pods, golden gRPC calls and
//! reading the golden set are the controller's (`controller/measure.rs` and the files it
//! uses), which hands the results to these functions.

pub(crate) mod exposition;
pub(crate) mod golden_calls;
pub(crate) mod jobs;
pub(crate) mod numbers;
pub(crate) mod record;
pub(crate) mod targets;
pub(crate) mod verdict;
pub(crate) mod window;

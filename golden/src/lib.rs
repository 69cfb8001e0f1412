//! kube-ocr golden sets: the format (images + `truth.jsonl`), accuracy metrics (CER,
//! WER, exact match, 1-NED) and the evaluator behind the `ocr-golden` CLI and the
//! operator's canary analysis.
//!
//! Scoring is pure and synchronous: load a [`GoldenSet`], get [`Predictions`] (from a
//! file or from a live service via [`grpc_eval`]), and [`evaluate`] them into a
//! [`Report`] whose `overall.accuracy` (1 − micro CER, clipped at 0) is what rollouts
//! gate on.

pub mod config_map;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod grpc_eval;
pub mod metrics;
pub mod normalize;
pub mod predictions;
pub mod report;

use std::path::PathBuf;

pub use dataset::{GoldenItem, GoldenSet, TRUTH_FILE, Task, Truth};
pub use error::GoldenError;
pub use evaluate::{ItemResult, Report, evaluate};
pub use metrics::{Consistency, EditCounts, GroupSpread, Summary, TextScore, score_text};
pub use normalize::normalize;
pub use predictions::Predictions;
pub use report::render_text;

/// The default golden set checked into this crate's source tree (`golden/data`).
/// A path on the build machine: meant for tests and local runs, not for deployed
/// binaries, which get their set mounted and passed with `--set`.
pub fn default_set_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// The document golden set checked into this crate's source tree (`golden/documents`):
/// documents as users send them (PDFs with and without a text layer, a multi-page TIFF,
/// turned pages, text on a transparent background). A path on the build machine, like
/// [`default_set_dir`].
pub fn document_set_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("documents")
}

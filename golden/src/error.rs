//! The library's one error type. Every variant is named after the operation that failed
//! and carries the file (and line, where there is one) so that a bad golden set or
//! predictions file can be fixed without guessing.

use std::path::PathBuf;

/// Everything that can go wrong while loading, scoring or collecting OCR results.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// The truth file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read golden truth {}: {source}", path.display())]
    ReadTruth {
        /// The `truth.jsonl` that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A truth line is not a JSON object of the expected shape.
    #[error("{}:{line}: malformed truth entry: {source}", path.display())]
    ParseTruth {
        /// The `truth.jsonl` that was being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde_json objected to.
        source: serde_json::Error,
    },

    /// A truth line parsed but breaks a rule of the format (duplicate id, task/field
    /// mismatch, image outside the folder or missing, empty group ...).
    #[error("{}:{line}: invalid truth entry: {reason}", path.display())]
    ValidateTruth {
        /// The `truth.jsonl` that was being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Which rule was broken, in words.
        reason: String,
    },

    /// The truth file holds no items: there is nothing to score or gate on.
    #[error("{}: golden set has no items", path.display())]
    EmptyTruth {
        /// The `truth.jsonl` that was read.
        path: PathBuf,
    },

    /// An image of the golden set could not be read.
    #[error("cannot read golden image {}: {source}", path.display())]
    ReadImage {
        /// Absolute or root-joined path of the image.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The predictions file could not be read.
    #[error("cannot read predictions {}: {source}", path.display())]
    ReadPredictions {
        /// The predictions JSONL.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A predictions line is not a JSON object of the expected shape.
    #[error("{}:{line}: malformed prediction: {source}", path.display())]
    ParsePredictions {
        /// The predictions JSONL.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde_json objected to.
        source: serde_json::Error,
    },

    /// A predictions line parsed but breaks a rule (duplicate id, empty id, both or
    /// neither of `text`/`lines`).
    #[error("{}:{line}: invalid prediction: {reason}", path.display())]
    ValidatePredictions {
        /// The predictions JSONL.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Which rule was broken, in words.
        reason: String,
    },

    /// The predictions could not be written (`--save-predictions`).
    #[error("cannot write predictions {}: {source}", path.display())]
    WritePredictions {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// Predictions name ids that the golden set does not have. Usually a predictions
    /// file for another set or version; see [`crate::Report::ensure_no_unknown`].
    #[error(
        "{} prediction id(s) are not in the golden set: {}",
        unknown.len(),
        preview(unknown)
    )]
    MatchPredictions {
        /// The unknown ids, sorted.
        unknown: Vec<String>,
    },

    /// The gRPC endpoint is not a valid URI.
    #[error("invalid gRPC endpoint {endpoint:?}: {source}")]
    ParseEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why tonic rejected it.
        source: tonic::transport::Error,
    },

    /// No connection to the gRPC endpoint could be made.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// The first few ids, so that a file with thousands of strays stays readable.
fn preview(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let head = ids.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN { format!("{head}, ... ({} more)", ids.len() - SHOWN) } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ids_are_previewed_not_dumped() {
        let unknown: Vec<String> = (0..8).map(|i| format!("x{i}")).collect();
        let message = GoldenError::MatchPredictions { unknown }.to_string();
        assert_eq!(message, "8 prediction id(s) are not in the golden set: x0, x1, x2, x3, x4, ... (3 more)");
    }

    #[test]
    fn line_errors_name_file_and_line() {
        let error =
            GoldenError::ValidateTruth { path: "set/truth.jsonl".into(), line: 7, reason: "duplicate id a".into() };
        assert_eq!(error.to_string(), "set/truth.jsonl:7: invalid truth entry: duplicate id a");
    }
}

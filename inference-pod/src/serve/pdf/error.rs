//! Why a PDF's pages did not all arrive.

use std::time::Duration;

use kube_ocr_vision::pdf::PdfError;
use kube_ocr_vision::pdf::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("cannot start the PDF renderer {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{0}")]
    Document(PdfError),
    #[error("reading the PDF renderer's output: {0}")]
    ReadFrames(#[source] std::io::Error),
    #[error("the PDF renderer wrote a bad frame: {0}")]
    BadFrame(#[source] WireError),
    #[error("the PDF renderer sent no page after the document")]
    Unexpected,
    /// The renderer died before it finished: a limit stopped it (or it crashed).
    #[error("{}", died_message(*page, memory_limit_bytes, reason))]
    Died { page: Option<usize>, memory_limit_bytes: u64, reason: String },
    #[error(
        "rendering page {page} took longer than {after:?} (--pdf-page-timeout-secs); the document is too costly to render"
    )]
    PageTimedOut { page: usize, after: Duration },
}

fn died_message(page: Option<usize>, memory_limit_bytes: &u64, reason: &str) -> String {
    let what = page.map_or_else(|| "opening the PDF".to_owned(), |page| format!("rendering page {page}"));
    format!(
        "{what} went past the renderer's limits ({reason}; memory {} MiB, --pdf-memory-limit-bytes / \
         --pdf-cpu-seconds): the document is too costly to render",
        memory_limit_bytes >> 20
    )
}

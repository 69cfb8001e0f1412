//! One OCR call as both APIs hand it to [`super::OcrApi`], and what comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_ocr_vision::image::PageRange;

use super::failure::ApiError;
use crate::serve::engine::{OcrOutput, OcrTask};

/// Which API a call came in on (the `protocol` label of the request metrics and a field
/// of the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    Http,
    /// A document job, worked from the queue.
    Job,
}

impl Protocol {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => kube_ocr_proto::contract::protocols::GRPC,
            Self::Http => kube_ocr_proto::contract::protocols::HTTP,
            Self::Job => kube_ocr_proto::contract::protocols::JOB,
        }
    }
}

/// The caller's options, as both APIs spell them (and a job's record stores them).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CallOptions {
    /// Lines below this confidence are left out (0 to 1).
    pub min_confidence: f32,
    /// Skip the 180° direction classifier.
    pub skip_orientation: bool,
    /// Compute even if the result cache holds an answer.
    pub bypass_cache: bool,
    /// Return each line's words with their boxes (computed either way; only the answer
    /// changes, so it is not part of the cache key).
    pub word_boxes: bool,
    /// The pages of a PDF or multi-page TIFF to read.
    pub range: PageRange,
    /// PDF: the resolution to render at; 0 = the server's default.
    pub pdf_dpi: u32,
    /// PDF: answer pages that have a text layer from it.
    pub pdf_text_layer: bool,
}

/// A validated request: the protocol layer has its task and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct OcrCall {
    pub protocol: Protocol,
    pub request_id: String,
    pub document: Arc<[u8]>,
    pub task: OcrTask,
    pub options: CallOptions,
    /// When the answer is due (see [`super::deadline::request_deadline`]).
    pub deadline: Instant,
    /// Pages of a multi-page document in the engine at a time: a job takes fewer than a
    /// synchronous call, so that a synchronous call never waits behind many job pages.
    pub pages_in_flight: usize,
}

/// One page of a document's answer.
#[derive(Debug, Clone)]
pub(crate) struct ServedPage {
    /// 1-based, in the document as sent (a range starts where it starts).
    pub number: u32,
    pub output: OcrOutput,
    /// Answered from the result cache.
    pub cached: bool,
}

/// A successful call's result.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The image's result; for a document of pages, its first page read.
    pub output: OcrOutput,
    /// Answered from the result cache (its timings are then those of the original call);
    /// for a document, every page was.
    pub cached: bool,
    /// Every page read of a PDF or multi-page TIFF, in order; empty for a single image.
    pub pages: Vec<ServedPage>,
    /// Pages in the document (1 for a single image).
    pub document_page_count: u32,
}

impl Served {
    /// A single image's answer.
    pub(crate) fn image(output: OcrOutput, cached: bool) -> Self {
        Self { output, cached, pages: Vec::new(), document_page_count: 1 }
    }

    /// The pages of the answer: every page read of a document, or the one image.
    pub(crate) fn every_page(&self) -> Vec<&OcrOutput> {
        if self.pages.is_empty() { vec![&self.output] } else { self.pages.iter().map(|page| &page.output).collect() }
    }

    /// The whole document's text: each page's lines joined by newlines, pages separated
    /// by a form feed on a line of its own (as pdftotext separates pages).
    pub(crate) fn document_text(&self) -> String {
        self.every_page()
            .iter()
            .map(|page| page.lines.iter().map(|line| line.text.as_str()).collect::<Vec<_>>().join("\n"))
            .collect::<Vec<_>>()
            .join("\n\u{c}\n")
    }
}

/// What a streaming caller hears while its document is read.
#[derive(Debug, Clone)]
pub(crate) enum DocumentProgress {
    /// The document is open: how many pages it has and how many will be read.
    Planned { document_page_count: u32, pages_to_read: u32 },
    /// One page, in page order.
    Page(ServedPage),
}

/// A call's outcome and how long it took from receipt to answer.
#[derive(Debug)]
pub(crate) struct Answered {
    pub result: Result<Served, ApiError>,
    pub total: Duration,
}

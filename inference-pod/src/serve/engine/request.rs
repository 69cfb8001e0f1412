//! What one OCR request asks for and what it gets back.

use std::time::Duration;

use kube_ocr_vision::image::Quad;
use kube_ocr_vision::layout::PageRotation;
use kube_ocr_vision::postprocess::Word;

use crate::serve::batcher::Batched;
use crate::serve::cache::CacheWeight;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OcrTask {
    /// Detect text lines on a page, then read each.
    Document,
    /// The image is one text line: read it.
    Line,
}

impl OcrTask {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Line => "line",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct OcrOptions {
    /// Lines below this confidence are left out (on top of the bundle's own floor).
    pub min_confidence: f32,
    /// Skip the 180° direction classifier (faster when pages are known to be upright).
    pub skip_orientation: bool,
}

/// Where one request's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PhaseTimings {
    pub queue: Duration,
    pub preprocess: Duration,
    pub inference: Duration,
    pub postprocess: Duration,
    /// Model time this request used: each item's share of its batch's compute, summed
    /// (what admission learns a request's cost from).
    pub model_cost: Duration,
}

impl PhaseTimings {
    pub(crate) fn add_stage<O>(&mut self, results: &[Batched<O>]) {
        // Items of one request wait and compute in parallel: the slowest one is what the
        // request experienced.
        self.queue += results.iter().map(|r| r.queue_wait).max().unwrap_or_default();
        self.inference += results.iter().map(|r| r.compute).max().unwrap_or_default();
        self.model_cost += results.iter().map(Batched::compute_share).sum::<Duration>();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OcrLine {
    pub text: String,
    pub confidence: f32,
    /// Corners in page pixels, clockwise from top-left.
    pub quad: Quad,
    pub rotated_180: bool,
    /// The line's words with their boxes on the page (from the CTC time steps).
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OcrOutput {
    pub lines: Vec<OcrLine>,
    pub width: u32,
    pub height: u32,
    /// How the page as sent was turned (boxes are in the page's coordinates as sent).
    pub rotation: PageRotation,
    pub timings: PhaseTimings,
    /// Where the lines came from.
    pub source: TextSource,
}

/// Where a page's lines came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TextSource {
    /// The models read the pixels.
    #[default]
    Ocr,
    /// A PDF page's own text layer.
    PdfTextLayer,
}

/// A page as the engine takes it: bytes still to decode (an image, a TIFF page), or
/// pixels already there (a rendered PDF page).
#[derive(Debug, Clone)]
pub(crate) enum PageImage {
    Encoded(std::sync::Arc<[u8]>),
    Pixels(std::sync::Arc<image::RgbImage>),
}

impl CacheWeight for OcrOutput {
    fn weight_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .lines
                .iter()
                .map(|l| {
                    std::mem::size_of::<OcrLine>()
                        + l.text.len()
                        + l.words.iter().map(|w| std::mem::size_of::<Word>() + w.text.len()).sum::<usize>()
                })
                .sum::<usize>()
    }
}

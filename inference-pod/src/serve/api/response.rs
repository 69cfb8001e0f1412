//! A served call as the `kube_ocr.v1.RecognizeResponse` message: what the gRPC API sends
//! and what the HTTP API writes as JSON, so both answer with the same content.

use std::time::Duration;

use kube_ocr_proto::v1::{ModelRef, PageResult, Point, RecognizeResponse, TextLine, Timings, Word};
use kube_ocr_vision::image::Quad;

use crate::serve::api::{Served, ServedPage};
use crate::serve::engine::{OcrLine, PhaseTimings, TextSource};

fn points(quad: &Quad) -> Vec<Point> {
    quad.iter().map(|&(x, y)| Point { x, y }).collect()
}

fn text_lines(lines: &[OcrLine], with_words: bool) -> Vec<TextLine> {
    lines
        .iter()
        .map(|line| TextLine {
            r#box: points(&line.quad),
            words: if with_words {
                line.words
                    .iter()
                    .map(|word| Word {
                        r#box: points(&word.quad),
                        text: word.text.clone(),
                        confidence: word.confidence,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            text: line.text.clone(),
            confidence: line.confidence,
            rotated_180: line.rotated_180,
        })
        .collect()
}

fn joined(lines: &[OcrLine]) -> String {
    lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
}

/// The response to a served call; `with_words` adds each line's words. For a multi-page
/// document the top-level fields are its first page's, the timings are summed over its
/// pages, and `pages` and `document_text` carry the whole document.
pub(crate) fn response_message(
    request_id: String,
    model: ModelRef,
    served: Served,
    with_words: bool,
    total: Duration,
) -> RecognizeResponse {
    let timings = served.every_page().iter().fold(PhaseTimings::default(), |sum, page| PhaseTimings {
        queue: sum.queue + page.timings.queue,
        preprocess: sum.preprocess + page.timings.preprocess,
        inference: sum.inference + page.timings.inference,
        postprocess: sum.postprocess + page.timings.postprocess,
        model_cost: sum.model_cost + page.timings.model_cost,
    });
    let pages = served.pages.iter().map(|page| page_result(page, with_words)).collect::<Vec<_>>();
    let document_text = if pages.is_empty() { String::new() } else { served.document_text() };
    let output = &served.output;
    RecognizeResponse {
        request_id,
        lines: text_lines(&output.lines, with_words),
        text: joined(&output.lines),
        model: Some(model),
        page_rotation: output.rotation.degrees(),
        image_width: output.width,
        image_height: output.height,
        cached: served.cached,
        timings: Some(timings_message(&timings, total)),
        document_page_count: if pages.is_empty() { 0 } else { served.document_page_count },
        pages,
        document_text,
    }
}

/// One page of a document as the API sends it (in a response, or alone on a stream).
pub(crate) fn page_result(page: &ServedPage, with_words: bool) -> PageResult {
    let output = &page.output;
    PageResult {
        page_number: page.number,
        image_width: output.width,
        image_height: output.height,
        page_rotation: output.rotation.degrees(),
        lines: text_lines(&output.lines, with_words),
        text: joined(&output.lines),
        text_source: match output.source {
            TextSource::Ocr => kube_ocr_proto::v1::TextSource::Ocr,
            TextSource::PdfTextLayer => kube_ocr_proto::v1::TextSource::PdfTextLayer,
        }
        .into(),
        cached: page.cached,
    }
}

/// Server-side time of a call (or a page), in microseconds.
pub(crate) fn timings_message(timings: &PhaseTimings, total: Duration) -> Timings {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Timings {
        queue_us: micros(timings.queue),
        preprocess_us: micros(timings.preprocess),
        inference_us: micros(timings.inference),
        postprocess_us: micros(timings.postprocess),
        total_us: micros(total),
    }
}

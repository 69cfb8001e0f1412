//! A served call as the HTTP API writes it: the JSON object (the fields of
//! `kube_ocr.v1.RecognizeResponse` as proto3 JSON names them), plain text, or hOCR.

use kube_ocr_proto::v1::{Point, RecognizeResponse, TextLine};
use serde::Serialize;
use utoipa::ToSchema;

/// The result of one OCR request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OcrResponseBody {
    /// The request's id (the caller's, or one the server made up).
    pub request_id: String,
    /// Text lines in reading order.
    pub lines: Vec<LineBody>,
    /// Every line's text joined by newlines.
    pub text: String,
    pub model: ModelBody,
    pub image_width: u32,
    pub image_height: u32,
    /// How far the page as sent was turned clockwise from upright: 0, 90, 180 or 270 (it
    /// was read turned back; boxes are in the image as sent).
    pub page_rotation: u32,
    /// Answered from the result cache.
    pub cached: bool,
    /// Summed over the pages of a multi-page document.
    pub timings: TimingsBody,
    /// A document of pages (a PDF, a multi-page TIFF): every page read, in order; the
    /// fields above then describe its first page read. Absent for a single image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<Vec<PageBody>>,
    /// With `pages`: the whole text, pages separated by a line holding a form feed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_text: Option<String>,
    /// With `pages`: how many pages the document has (`first_page`/`last_page` may read fewer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_page_count: Option<u32>,
}

/// One page of a multi-page document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageBody {
    /// 1-based.
    pub page_number: u32,
    pub image_width: u32,
    pub image_height: u32,
    pub page_rotation: u32,
    pub lines: Vec<LineBody>,
    pub text: String,
    /// Where the lines came from: `TEXT_SOURCE_OCR`, or `TEXT_SOURCE_PDF_TEXT_LAYER` (the
    /// PDF page's own text, asked for with `pdf_text_layer`).
    #[schema(example = "TEXT_SOURCE_OCR")]
    pub text_source: &'static str,
    /// Answered from the result cache.
    pub cached: bool,
}

/// One recognised line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LineBody {
    pub text: String,
    /// Mean character confidence, 0 to 1.
    pub confidence: f32,
    /// The line's four corners in image pixels, clockwise from its top-left.
    #[serde(rename = "box")]
    pub corners: Vec<PointBody>,
    /// The line was upside down and was read turned.
    #[serde(rename = "rotated180")]
    pub rotated_180: bool,
    /// With `word_boxes`: the line's words (split at spaces, each CJK character a word).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<WordBody>>,
}

/// One word of a line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WordBody {
    pub text: String,
    /// Mean character confidence, 0 to 1.
    pub confidence: f32,
    /// The word's four corners in image pixels, clockwise from its top-left as read.
    #[serde(rename = "box")]
    pub corners: Vec<PointBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PointBody {
    pub x: f32,
    pub y: f32,
}

/// The model that answered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelBody {
    pub name: String,
    pub version: String,
    pub variant: String,
}

/// Where the time went, in microseconds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimingsBody {
    pub queue_us: u64,
    pub preprocess_us: u64,
    pub inference_us: u64,
    pub postprocess_us: u64,
    pub total_us: u64,
}

impl OcrResponseBody {
    /// The JSON of the gRPC answer `message`: the same content under proto3 JSON names;
    /// `with_words` keeps each line's words.
    pub(crate) fn from_message(message: RecognizeResponse, with_words: bool) -> Self {
        let model = message.model.unwrap_or_default();
        let timings = message.timings.unwrap_or_default();
        let pages = (!message.pages.is_empty()).then(|| {
            message
                .pages
                .into_iter()
                .map(|page| PageBody {
                    page_number: page.page_number,
                    image_width: page.image_width,
                    image_height: page.image_height,
                    page_rotation: page.page_rotation,
                    text_source: page.text_source().as_str_name(),
                    cached: page.cached,
                    lines: line_bodies(page.lines, with_words),
                    text: page.text,
                })
                .collect()
        });
        Self {
            request_id: message.request_id,
            lines: line_bodies(message.lines, with_words),
            text: message.text,
            model: ModelBody { name: model.name, version: model.version, variant: model.variant },
            image_width: message.image_width,
            image_height: message.image_height,
            page_rotation: message.page_rotation,
            cached: message.cached,
            timings: TimingsBody {
                queue_us: timings.queue_us,
                preprocess_us: timings.preprocess_us,
                inference_us: timings.inference_us,
                postprocess_us: timings.postprocess_us,
                total_us: timings.total_us,
            },
            document_text: pages.as_ref().map(|_| message.document_text),
            document_page_count: pages.as_ref().map(|_| message.document_page_count),
            pages,
        }
    }
}

fn points(points: Vec<Point>) -> Vec<PointBody> {
    points.into_iter().map(|p| PointBody { x: p.x, y: p.y }).collect()
}

fn line_bodies(lines: Vec<TextLine>, with_words: bool) -> Vec<LineBody> {
    lines
        .into_iter()
        .map(|line| LineBody {
            words: with_words.then(|| {
                line.words
                    .into_iter()
                    .map(|word| WordBody { corners: points(word.r#box), text: word.text, confidence: word.confidence })
                    .collect()
            }),
            corners: points(line.r#box),
            text: line.text,
            confidence: line.confidence,
            rotated_180: line.rotated_180,
        })
        .collect()
}

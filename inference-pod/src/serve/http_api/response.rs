//! A served call as the HTTP API writes it: the JSON object (the fields of
//! `kube_ocr.v1.RecognizeResponse` as proto3 JSON names them), plain text, or hOCR.

use std::time::Duration;

use kube_ocr_proto::v1::ModelRef;
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::api::Served;

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
    pub timings: TimingsBody,
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

fn points(quad: &kube_ocr_vision::image::Quad) -> Vec<PointBody> {
    quad.iter().map(|&(x, y)| PointBody { x, y }).collect()
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl OcrResponseBody {
    /// The body for a served call; `with_words` adds each line's words.
    pub(crate) fn new(request_id: String, model: &ModelRef, served: Served, with_words: bool, total: Duration) -> Self {
        let output = served.output;
        let text = output.lines.iter().map(|line| line.text.as_str()).collect::<Vec<_>>().join("\n");
        Self {
            request_id,
            text,
            model: ModelBody {
                name: model.name.clone(),
                version: model.version.clone(),
                variant: model.variant.clone(),
            },
            page_rotation: output.rotation.degrees(),
            image_width: output.width,
            image_height: output.height,
            cached: served.cached,
            timings: TimingsBody {
                queue_us: micros(output.timings.queue),
                preprocess_us: micros(output.timings.preprocess),
                inference_us: micros(output.timings.inference),
                postprocess_us: micros(output.timings.postprocess),
                total_us: micros(total),
            },
            lines: output
                .lines
                .into_iter()
                .map(|line| LineBody {
                    corners: points(&line.quad),
                    words: with_words.then(|| {
                        line.words
                            .into_iter()
                            .map(|word| WordBody {
                                corners: points(&word.quad),
                                text: word.text,
                                confidence: word.confidence,
                            })
                            .collect()
                    }),
                    text: line.text,
                    confidence: line.confidence,
                    rotated_180: line.rotated_180,
                })
                .collect(),
        }
    }
}

//! A served call's answer as a body in each output format: what `POST /v1/ocr` answers,
//! and what a finished job stores.

use bytes::Bytes;
use kube_ocr_http_request::OutputFormat;

use super::hocr::{HocrLine, HocrPage, render_hocr};
use super::response::OcrResponseBody;
use crate::serve::api::{OcrApi, Served, response_message};

/// A rendered answer and its media type.
#[derive(Debug, Clone)]
pub(crate) struct RenderedAnswer {
    pub content_type: &'static str,
    pub body: Bytes,
}

pub(crate) fn render_answer(
    api: &OcrApi,
    request_id: String,
    format: OutputFormat,
    served: Served,
    with_words: bool,
    total: std::time::Duration,
) -> RenderedAnswer {
    match format {
        OutputFormat::Json => {
            let message = response_message(request_id, api.model().clone(), served, with_words, total);
            let body = OcrResponseBody::from_message(message, with_words);
            // Serialising plain structs of strings and numbers does not fail.
            let json = serde_json::to_vec(&body).unwrap_or_default();
            RenderedAnswer { content_type: "application/json", body: Bytes::from(json) }
        }
        OutputFormat::Text => {
            let mut text = served.document_text();
            text.push('\n');
            RenderedAnswer { content_type: "text/plain; charset=utf-8", body: Bytes::from(text) }
        }
        OutputFormat::Hocr => {
            let model = api.model();
            let system = format!("kube-ocr {} {}", model.name, model.version);
            let pages: Vec<HocrPage<'_>> = served
                .every_page()
                .iter()
                .map(|page| HocrPage {
                    width: page.width,
                    height: page.height,
                    lines: page
                        .lines
                        .iter()
                        .map(|line| HocrLine {
                            text: &line.text,
                            confidence: line.confidence,
                            quad: &line.quad,
                            words: &line.words,
                        })
                        .collect(),
                })
                .collect();
            RenderedAnswer { content_type: "text/html; charset=utf-8", body: Bytes::from(render_hocr(&system, &pages)) }
        }
    }
}

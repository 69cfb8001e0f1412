//! The HTTP API's JSON answers read back into the gRPC messages (the answer carries
//! `RecognizeResponse`'s fields under their proto3 JSON names), and its error bodies into
//! one line. Lenient: unknown fields are ignored, absent ones are zero, and 64-bit
//! numbers and enums are taken in either of proto3 JSON's spellings. Pure: no IO.

use kube_ocr_proto::v1::{ModelRef, PageResult, Point, RecognizeResponse, TextLine, TextSource, Timings, Word};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ResponseBody {
    request_id: String,
    lines: Vec<LineBody>,
    text: String,
    model: Option<ModelBody>,
    image_width: u32,
    image_height: u32,
    page_rotation: u32,
    cached: bool,
    timings: Option<TimingsBody>,
    pages: Option<Vec<PageBody>>,
    document_text: Option<String>,
    document_page_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PageBody {
    page_number: u32,
    image_width: u32,
    image_height: u32,
    page_rotation: u32,
    lines: Vec<LineBody>,
    text: String,
    #[serde(deserialize_with = "text_source")]
    text_source: i32,
    cached: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LineBody {
    text: String,
    confidence: f32,
    #[serde(rename = "box")]
    corners: Vec<PointBody>,
    #[serde(rename = "rotated180", alias = "rotated_180")]
    rotated_180: bool,
    words: Option<Vec<WordBody>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WordBody {
    text: String,
    confidence: f32,
    #[serde(rename = "box")]
    corners: Vec<PointBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PointBody {
    x: f32,
    y: f32,
}

fn points(corners: Vec<PointBody>) -> Vec<Point> {
    corners.into_iter().map(|p| Point { x: p.x, y: p.y }).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelBody {
    name: String,
    version: String,
    variant: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TimingsBody {
    #[serde(deserialize_with = "uint64")]
    queue_us: u64,
    #[serde(deserialize_with = "uint64")]
    preprocess_us: u64,
    #[serde(deserialize_with = "uint64")]
    inference_us: u64,
    #[serde(deserialize_with = "uint64")]
    postprocess_us: u64,
    #[serde(deserialize_with = "uint64")]
    total_us: u64,
}

/// A uint64 as a number or, as proto3 JSON writes it, a string.
fn uint64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(deserializer)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// A `TextSource` as its name (`TEXT_SOURCE_PDF_TEXT_LAYER`, or without the prefix, any
/// case) or its number; one this client does not know reads as OCR.
fn text_source<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
        serde_json::Value::String(name) => {
            let upper = name.to_ascii_uppercase().replace('-', "_");
            let full = if upper.starts_with("TEXT_SOURCE_") { upper } else { format!("TEXT_SOURCE_{upper}") };
            TextSource::from_str_name(&full).map_or(0, |source| source as i32)
        }
        _ => 0,
    })
}

fn text_lines(lines: Vec<LineBody>) -> Vec<TextLine> {
    lines
        .into_iter()
        .map(|line| TextLine {
            text: line.text,
            confidence: line.confidence,
            r#box: points(line.corners),
            rotated_180: line.rotated_180,
            words: line
                .words
                .unwrap_or_default()
                .into_iter()
                .map(|word| Word { text: word.text, confidence: word.confidence, r#box: points(word.corners) })
                .collect(),
        })
        .collect()
}

/// A `200` answer of `POST /v1/ocr` (format json) as the gRPC message.
pub fn parse_response(body: &[u8]) -> Result<RecognizeResponse, serde_json::Error> {
    let body: ResponseBody = serde_json::from_slice(body)?;
    let timings = body.timings.unwrap_or_default();
    Ok(RecognizeResponse {
        request_id: body.request_id,
        lines: text_lines(body.lines),
        text: body.text,
        model: body.model.map(|m| ModelRef { name: m.name, version: m.version, variant: m.variant }),
        image_width: body.image_width,
        image_height: body.image_height,
        cached: body.cached,
        timings: Some(Timings {
            queue_us: timings.queue_us,
            preprocess_us: timings.preprocess_us,
            inference_us: timings.inference_us,
            postprocess_us: timings.postprocess_us,
            total_us: timings.total_us,
        }),
        page_rotation: body.page_rotation,
        pages: body
            .pages
            .unwrap_or_default()
            .into_iter()
            .map(|page| PageResult {
                page_number: page.page_number,
                image_width: page.image_width,
                image_height: page.image_height,
                page_rotation: page.page_rotation,
                lines: text_lines(page.lines),
                text: page.text,
                text_source: page.text_source,
                cached: page.cached,
            })
            .collect(),
        document_text: body.document_text.unwrap_or_default(),
        document_page_count: body.document_page_count,
    })
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    retry_after_ms: Option<u64>,
}

/// Why a request failed with `status`: `CODE (HTTP 400): message` from the API's JSON
/// error, else the status and the start of whatever body came (a proxy's page).
pub fn error_reason(status: u16, reason_phrase: &str, body: &[u8]) -> String {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        let code = if error.code.is_empty() { "ERROR".to_owned() } else { error.code };
        let retry = error.retry_after_ms.map(|ms| format!(" (retry after {ms} ms)")).unwrap_or_default();
        return format!("{code} (HTTP {status}): {}{retry}", error.message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let shown: String = text.chars().take(200).collect();
    let more = if shown.len() < text.len() { "..." } else { "" };
    if shown.is_empty() {
        format!("HTTP {status} {reason_phrase}")
    } else {
        format!("HTTP {status} {reason_phrase}: {shown}{more}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paged_answer_reads_into_the_grpc_message() {
        let body = br#"{
            "requestId": "fax.tiff", "text": "one", "imageWidth": 10, "imageHeight": 20, "pageRotation": 0,
            "cached": false, "model": {"name": "ppocr", "version": "4", "variant": "standard"},
            "lines": [{"text": "one", "confidence": 0.5, "box": [{"x": 1, "y": 2}], "rotated180": true}],
            "timings": {"queueUs": 1, "preprocessUs": "2", "inferenceUs": 3, "postprocessUs": 4, "totalUs": 10},
            "pages": [
                {"pageNumber": 1, "imageWidth": 10, "imageHeight": 20, "pageRotation": 0, "text": "one",
                 "lines": [{"text": "one", "confidence": 0.5, "box": [], "rotated180": false,
                            "words": [{"text": "one", "confidence": 0.5, "box": [{"x": 0, "y": 0}]}]}]},
                {"pageNumber": 2, "imageWidth": 30, "imageHeight": 40, "pageRotation": 90, "text": "two",
                 "lines": [], "textSource": "TEXT_SOURCE_PDF_TEXT_LAYER", "cached": true, "later": 1}
            ],
            "documentText": "one\n\f\ntwo", "documentPageCount": 3, "somethingNew": {"a": 1}
        }"#;
        let response = parse_response(body).unwrap();
        assert_eq!(response.request_id, "fax.tiff");
        assert_eq!(response.lines[0].r#box, [Point { x: 1.0, y: 2.0 }]);
        assert!(response.lines[0].rotated_180);
        assert_eq!(response.timings.unwrap().preprocess_us, 2);
        assert_eq!(response.model.unwrap().version, "4");
        assert_eq!(response.pages.len(), 2);
        assert_eq!(response.pages[0].lines[0].words[0].text, "one");
        assert_eq!(response.pages[0].text_source, TextSource::Ocr as i32);
        assert_eq!(response.pages[1].text_source, TextSource::PdfTextLayer as i32);
        assert!(response.pages[1].cached);
        assert_eq!((response.document_text.as_str(), response.document_page_count), ("one\n\u{c}\ntwo", 3));
    }

    #[test]
    fn an_image_answer_has_no_pages() {
        let response = parse_response(br#"{"text": "hi", "lines": []}"#).unwrap();
        assert!(response.pages.is_empty() && response.document_text.is_empty());
        assert!(parse_response(b"<html>").is_err());
    }

    #[test]
    fn text_sources_read_in_every_spelling() {
        for (json, expected) in [
            (r#""TEXT_SOURCE_OCR""#, TextSource::Ocr),
            (r#""pdf_text_layer""#, TextSource::PdfTextLayer),
            (r#""pdf-text-layer""#, TextSource::PdfTextLayer),
            ("1", TextSource::PdfTextLayer),
            (r#""SOMETHING_ELSE""#, TextSource::Ocr),
        ] {
            let page: PageBody = serde_json::from_str(&format!(r#"{{"textSource": {json}}}"#)).unwrap();
            assert_eq!(page.text_source, expected as i32, "{json}");
        }
    }

    #[test]
    fn errors_read_as_one_line() {
        let body = br#"{"error": {"code": "INVALID_ARGUMENT", "status": 400, "message": "the image does not decode", "requestId": "x"}}"#;
        assert_eq!(error_reason(400, "Bad Request", body), "INVALID_ARGUMENT (HTTP 400): the image does not decode");
        let busy = br#"{"error": {"code": "RESOURCE_EXHAUSTED", "status": 429, "message": "busy", "requestId": "x", "retryAfterMs": 1200}}"#;
        assert_eq!(
            error_reason(429, "Too Many Requests", busy),
            "RESOURCE_EXHAUSTED (HTTP 429): busy (retry after 1200 ms)"
        );
        assert_eq!(
            error_reason(502, "Bad Gateway", b"<html>bad gateway</html>"),
            "HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
        assert_eq!(error_reason(404, "Not Found", b""), "HTTP 404 Not Found");
        assert!(error_reason(500, "", "x".repeat(500).as_bytes()).ends_with("..."));
    }
}

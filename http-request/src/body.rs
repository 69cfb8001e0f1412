//! A `POST /v1/ocr` body, by its Content-Type: the raw document, multipart/form-data with
//! a `file` part and field parts, or JSON with the document in base64. No IO: the body has
//! been read (within its limit) before it gets here.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::RequestError;
use crate::fields::RawFields;

/// Names the document part of a multipart body may have.
pub const FILE_PARTS: [&str; 3] = ["file", "image", "document"];

/// The document and the fields the body carried.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBody {
    pub document: Bytes,
    pub fields: RawFields,
}

/// A JSON request: the `kube_ocr.v1.RecognizeRequest` message as proto3 JSON writes it
/// (lowerCamelCase; the field names of the .proto are accepted too), plus the HTTP API's
/// `format` and `timeoutMs`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JsonOcrRequest {
    /// The document's bytes in base64 (standard or URL-safe alphabet, padding optional).
    #[serde(alias = "document")]
    pub image: String,
    /// `document` or `line` (or `TASK_DOCUMENT`, `TASK_LINE`).
    #[schema(example = "document")]
    pub task: Option<String>,
    /// Echoed in the response.
    #[serde(alias = "request_id")]
    pub request_id: Option<String>,
    #[serde(default)]
    pub options: JsonOptions,
    /// `json` (default), `text` or `hocr`.
    pub format: Option<String>,
    /// The caller's deadline in milliseconds.
    #[serde(alias = "timeout_ms")]
    pub timeout_ms: Option<u64>,
}

/// `kube_ocr.v1.RecognizeOptions`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JsonOptions {
    /// Leave out lines below this confidence, 0 to 1.
    #[serde(alias = "min_confidence")]
    pub min_confidence: Option<f32>,
    /// Skip the 180° line direction classifier.
    #[serde(alias = "skip_orientation")]
    pub skip_orientation: Option<bool>,
    /// Compute even when the result cache holds an answer.
    #[serde(alias = "bypass_cache")]
    pub bypass_cache: Option<bool>,
    /// Add each line's words with their boxes.
    #[serde(alias = "word_boxes")]
    pub word_boxes: Option<bool>,
    /// PDF or multi-page TIFF: the first page to read, 1-based.
    #[serde(alias = "first_page")]
    #[schema(minimum = 1)]
    pub first_page: Option<u32>,
    /// PDF or multi-page TIFF: the last page to read, inclusive.
    #[serde(alias = "last_page")]
    #[schema(minimum = 1)]
    pub last_page: Option<u32>,
    /// PDF: the resolution pages are rendered at, in dots per inch.
    #[serde(alias = "pdf_dpi")]
    #[schema(minimum = 1)]
    pub pdf_dpi: Option<u32>,
    /// PDF: answer a page that carries its own text from that text instead of OCR.
    #[serde(alias = "pdf_text_layer")]
    pub pdf_text_layer: Option<bool>,
}

/// Raw documents are sent with one of these media types (any `image/*`).
fn is_document_type(media_type: &str) -> bool {
    media_type.starts_with("image/") || media_type == "application/pdf" || media_type == "application/octet-stream"
}

/// Splits `body` into the document and its fields by `content_type`.
///
/// Async only because multer's parser is: it reads `body`, already in memory, and never
/// waits, so any executor runs it (`futures::executor::block_on` will do).
pub async fn parse_body(content_type: Option<&str>, body: Bytes) -> Result<ParsedBody, RequestError> {
    let Some(content_type) = content_type else {
        return Err(RequestError::NoContentType);
    };
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => parse_json(&body),
        "multipart/form-data" => parse_multipart(content_type, body).await,
        raw if is_document_type(raw) => Ok(ParsedBody { document: body, fields: RawFields::default() }),
        _ => Err(RequestError::ContentType { media_type }),
    }
}

fn parse_json(body: &[u8]) -> Result<ParsedBody, RequestError> {
    let request: JsonOcrRequest = serde_json::from_slice(body).map_err(RequestError::JsonBody)?;
    let document = base64_engine()
        .decode(request.image.trim())
        .or_else(|_| url_safe_base64_engine().decode(request.image.trim()))
        .map_err(RequestError::JsonImage)?;
    let fields = RawFields {
        task: request.task,
        min_confidence: request.options.min_confidence.map(|value| value.to_string()),
        skip_orientation: request.options.skip_orientation.map(|value| value.to_string()),
        bypass_cache: request.options.bypass_cache.map(|value| value.to_string()),
        word_boxes: request.options.word_boxes.map(|value| value.to_string()),
        request_id: request.request_id,
        format: request.format,
        timeout_ms: request.timeout_ms.map(|value| value.to_string()),
        first_page: request.options.first_page.map(|value| value.to_string()),
        last_page: request.options.last_page.map(|value| value.to_string()),
        pdf_dpi: request.options.pdf_dpi.map(|value| value.to_string()),
        pdf_text_layer: request.options.pdf_text_layer.map(|value| value.to_string()),
    };
    Ok(ParsedBody { document: Bytes::from(document), fields })
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn url_safe_base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

async fn parse_multipart(content_type: &str, body: Bytes) -> Result<ParsedBody, RequestError> {
    let boundary = multer::parse_boundary(content_type).map_err(RequestError::MultipartBoundary)?;
    let whole = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(whole, boundary);
    let mut document = None;
    let mut fields = RawFields::default();
    while let Some(part) = multipart.next_field().await.map_err(RequestError::MultipartBody)? {
        let name = part.name().unwrap_or("").to_owned();
        if FILE_PARTS.contains(&name.as_str()) {
            if document.is_some() {
                return Err(RequestError::MultipartSecondFile);
            }
            document = Some(part.bytes().await.map_err(RequestError::MultipartBody)?);
        } else {
            let value = part.text().await.map_err(RequestError::MultipartBody)?;
            fields.set(&name, value)?;
        }
    }
    let document = document.ok_or(RequestError::MultipartNoFile)?;
    Ok(ParsedBody { document, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestErrorKind, Task};

    fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedBody, RequestError> {
        futures::executor::block_on(parse_body(content_type, Bytes::copy_from_slice(body)))
    }

    fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
        let boundary = "XyZ-boundary";
        let mut body = Vec::new();
        for (name, filename, content) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = match filename {
                Some(file) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: image/png\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    #[test]
    fn a_raw_body_is_the_document() {
        for content_type in ["image/png", "IMAGE/JPEG; q=1", "application/pdf", "application/octet-stream"] {
            let parsed = parse(Some(content_type), b"\x89PNG...").unwrap();
            assert_eq!(parsed.document.as_ref(), b"\x89PNG...");
            assert_eq!(parsed.fields, RawFields::default());
        }
    }

    #[test]
    fn a_multipart_body_carries_the_file_and_fields() {
        let (content_type, body) = multipart(&[
            ("task", None, b"line"),
            ("file", Some("page.png"), b"\x00\x01binary\r\n--not-a-boundary"),
            ("min_confidence", None, b"0.25"),
        ]);
        let parsed = parse(Some(&content_type), &body).unwrap();
        assert_eq!(parsed.document.as_ref(), b"\x00\x01binary\r\n--not-a-boundary");
        assert_eq!(parsed.fields.task.as_deref(), Some("line"));
        assert_eq!(parsed.fields.min_confidence.as_deref(), Some("0.25"));
    }

    #[test]
    fn multipart_mistakes_are_explained() {
        let (content_type, body) = multipart(&[("task", None, b"line")]);
        assert!(parse(Some(&content_type), &body).unwrap_err().to_string().contains("no file part"));
        let (content_type, body) = multipart(&[("file", Some("a.png"), b"a"), ("image", Some("b.png"), b"b")]);
        assert!(parse(Some(&content_type), &body).unwrap_err().to_string().contains("more than one file part"));
        let (content_type, body) = multipart(&[("file", Some("a.png"), b"a"), ("lang", None, b"en")]);
        assert!(parse(Some(&content_type), &body).unwrap_err().to_string().contains("unknown form field \"lang\""));
        let error = parse(Some("multipart/form-data"), b"x").unwrap_err();
        assert!(error.to_string().contains("boundary"), "{error}");
        let error = parse(Some("multipart/form-data; boundary=b"), b"garbage without boundaries").unwrap_err();
        assert_eq!(error.kind(), RequestErrorKind::InvalidArgument);
    }

    #[test]
    fn a_json_body_carries_base64_and_proto3_json_names() {
        let parsed = parse(
            Some("application/json"),
            br#"{"image": "iVBORw0KGgo", "task": "TASK_LINE", "requestId": "r-9", "options": {"minConfidence": 0.5, "skip_orientation": true}, "timeoutMs": 900}"#,
        )
        .unwrap();
        assert_eq!(parsed.document.as_ref(), b"\x89PNG\r\n\x1a\n");
        let fields = parsed.fields.parse().unwrap();
        assert_eq!(fields.task, Some(Task::Line));
        assert_eq!(fields.request_id.as_deref(), Some("r-9"));
        assert!(fields.options.skip_orientation);
        assert_eq!(fields.options.min_confidence, 0.5);
        assert_eq!(fields.timeout, Some(std::time::Duration::from_millis(900)));
        let url_safe = parse(Some("application/json"), br#"{"document": "-_8"}"#).unwrap();
        assert_eq!(url_safe.document.as_ref(), &[0xfb, 0xff]);
    }

    #[test]
    fn json_mistakes_are_explained() {
        let cases: [(&[u8], &str); 4] = [
            (b"{", "the JSON body does not parse"),
            (br#"{"task": "line"}"#, "missing field `image`"),
            (br#"{"image": "AAAA", "lang": "en"}"#, "unknown field `lang`"),
            (br#"{"image": "not base64!"}"#, "image is not base64"),
        ];
        for (body, expected) in cases {
            let error = parse(Some("application/json"), body).unwrap_err();
            assert_eq!(error.kind(), RequestErrorKind::InvalidArgument);
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn other_content_types_are_unsupported_media() {
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let error = parse(content_type, b"x").unwrap_err();
            assert_eq!(error.kind(), RequestErrorKind::UnsupportedMediaType, "{content_type:?}");
            assert!(error.to_string().contains("curl -F file=@page.png"), "{error}");
        }
    }
}

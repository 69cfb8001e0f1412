//! The request's fields, wherever they arrive (query string, form fields, JSON body),
//! checked into one [`CheckedFields`].

use std::time::Duration;

use serde::Deserialize;

use crate::error::RequestError;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Find every text line on the page, then read each.
    Document,
    /// The image is one text line: read it.
    Line,
}

/// How the result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The response object (`application/json`).
    #[default]
    Json,
    /// The recognised text, one line per line (`text/plain`).
    Text,
    /// hOCR 1.2: the page and its lines with bounding boxes and confidences (`text/html`).
    Hocr,
}

impl OutputFormat {
    fn parse(value: &str) -> Result<Self, RequestError> {
        match value.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" | "txt" => Ok(Self::Text),
            "hocr" => Ok(Self::Hocr),
            other => Err(RequestError::Format { value: other.to_owned() }),
        }
    }
}

/// Request fields as a query string or form fields send them (every value a string).
/// (What each field means is in [`FIELDS`], which the OpenAPI document is built from.)
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFields {
    pub task: Option<String>,
    pub min_confidence: Option<String>,
    pub skip_orientation: Option<String>,
    pub bypass_cache: Option<String>,
    pub word_boxes: Option<String>,
    pub request_id: Option<String>,
    pub format: Option<String>,
    pub timeout_ms: Option<String>,
    pub first_page: Option<String>,
    pub last_page: Option<String>,
    pub pdf_dpi: Option<String>,
    pub pdf_text_layer: Option<String>,
}

/// The names of every field, for error messages.
pub const FIELD_NAMES: &str = "task, min_confidence, skip_orientation, bypass_cache, word_boxes, request_id, \
                               format, timeout_ms, first_page, last_page, pdf_dpi, pdf_text_layer";

/// The type of a field's value, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    OneOf(&'static [&'static str]),
    Fraction,
    Flag,
    RequestId,
    PositiveInteger,
}

/// One request field as the query string and form fields take it.
#[derive(Debug, Clone, Copy)]
pub struct FieldDoc {
    pub name: &'static str,
    pub value: FieldValue,
    pub description: &'static str,
}

/// Every field [`RawFields`] takes (a test checks both agree).
pub const FIELDS: [FieldDoc; 12] = [
    FieldDoc {
        name: "task",
        value: FieldValue::OneOf(&["document", "line", "TASK_DOCUMENT", "TASK_LINE"]),
        description: "`document` (find and read every line) or `line` (the image is one text line). Required: in the query, a form field or the JSON body.",
    },
    FieldDoc {
        name: "min_confidence",
        value: FieldValue::Fraction,
        description: "Leave out lines below this confidence, 0 to 1 (default 0).",
    },
    FieldDoc {
        name: "skip_orientation",
        value: FieldValue::Flag,
        description: "Skip the 180° line direction classifier (default false).",
    },
    FieldDoc {
        name: "bypass_cache",
        value: FieldValue::Flag,
        description: "Compute even when the result cache holds an answer (default false).",
    },
    FieldDoc {
        name: "word_boxes",
        value: FieldValue::Flag,
        description: "Add each line's words with their boxes (`words`; default false). hOCR always has them.",
    },
    FieldDoc {
        name: "request_id",
        value: FieldValue::RequestId,
        description: "Echoed in the response and the access log (else the `x-request-id` header, else one the server makes up).",
    },
    FieldDoc {
        name: "format",
        value: FieldValue::OneOf(&["json", "text", "hocr"]),
        description: "`json` (default), `text` (the lines as plain text) or `hocr` (hOCR 1.2).",
    },
    FieldDoc {
        name: "timeout_ms",
        value: FieldValue::PositiveInteger,
        description: "The caller's deadline in milliseconds; the server's --request-timeout-secs still applies. A request that cannot finish in time is refused at once (504, or 429 with Retry-After when the server is busy).",
    },
    FieldDoc {
        name: "first_page",
        value: FieldValue::PositiveInteger,
        description: "PDF or multi-page TIFF: the first page to read, 1-based (default: the first).",
    },
    FieldDoc {
        name: "last_page",
        value: FieldValue::PositiveInteger,
        description: "PDF or multi-page TIFF: the last page to read, inclusive (default: the last; past the end reads to the end).",
    },
    FieldDoc {
        name: "pdf_dpi",
        value: FieldValue::PositiveInteger,
        description: "PDF: the resolution pages are rendered at, in dots per inch (default: the server's --pdf-dpi; outside --pdf-min-dpi..--pdf-max-dpi is a 400).",
    },
    FieldDoc {
        name: "pdf_text_layer",
        value: FieldValue::Flag,
        description: "PDF: answer a page that carries its own text (a born-digital page) from that text instead of OCR (`text_source`; default false).",
    },
];

impl RawFields {
    /// The query string's fields.
    pub fn from_query(query: Option<&str>) -> Result<Self, RequestError> {
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(RequestError::QueryString)
    }

    /// Sets one field by name (a form field); an unknown name is an error.
    pub fn set(&mut self, name: &str, value: String) -> Result<(), RequestError> {
        let (slot, field) = match name {
            "task" => (&mut self.task, "task"),
            "min_confidence" => (&mut self.min_confidence, "min_confidence"),
            "skip_orientation" => (&mut self.skip_orientation, "skip_orientation"),
            "bypass_cache" => (&mut self.bypass_cache, "bypass_cache"),
            "word_boxes" => (&mut self.word_boxes, "word_boxes"),
            "request_id" => (&mut self.request_id, "request_id"),
            "format" => (&mut self.format, "format"),
            "timeout_ms" => (&mut self.timeout_ms, "timeout_ms"),
            "first_page" => (&mut self.first_page, "first_page"),
            "last_page" => (&mut self.last_page, "last_page"),
            "pdf_dpi" => (&mut self.pdf_dpi, "pdf_dpi"),
            "pdf_text_layer" => (&mut self.pdf_text_layer, "pdf_text_layer"),
            other => return Err(RequestError::FormField { name: other.to_owned() }),
        };
        set_once(slot, field, value)
    }

    /// Adds `other`'s fields; a field given in both is an error (which one would win is
    /// not obvious to a reader of the request).
    pub fn merge(mut self, other: RawFields) -> Result<Self, RequestError> {
        let pairs = [
            (&mut self.task, other.task, "task"),
            (&mut self.min_confidence, other.min_confidence, "min_confidence"),
            (&mut self.skip_orientation, other.skip_orientation, "skip_orientation"),
            (&mut self.bypass_cache, other.bypass_cache, "bypass_cache"),
            (&mut self.word_boxes, other.word_boxes, "word_boxes"),
            (&mut self.request_id, other.request_id, "request_id"),
            (&mut self.format, other.format, "format"),
            (&mut self.timeout_ms, other.timeout_ms, "timeout_ms"),
            (&mut self.first_page, other.first_page, "first_page"),
            (&mut self.last_page, other.last_page, "last_page"),
            (&mut self.pdf_dpi, other.pdf_dpi, "pdf_dpi"),
            (&mut self.pdf_text_layer, other.pdf_text_layer, "pdf_text_layer"),
        ];
        for (slot, value, field) in pairs {
            if let Some(value) = value {
                set_once(slot, field, value)?;
            }
        }
        Ok(self)
    }

    /// Checks every value (in the order of [`FIELDS`], but `request_id` before `format`
    /// and `timeout_ms`: the first bad one is the error).
    pub fn parse(self) -> Result<CheckedFields, RequestError> {
        Ok(CheckedFields {
            task: self.task.as_deref().map(parse_task).transpose()?,
            options: RequestOptions {
                min_confidence: self.min_confidence.as_deref().map(parse_confidence).transpose()?.unwrap_or(0.0),
                skip_orientation: parse_flag("skip_orientation", self.skip_orientation.as_deref())?,
                bypass_cache: parse_flag("bypass_cache", self.bypass_cache.as_deref())?,
                word_boxes: parse_flag("word_boxes", self.word_boxes.as_deref())?,
                first_page: parse_count("first_page", self.first_page.as_deref())?,
                last_page: parse_count("last_page", self.last_page.as_deref())?,
                pdf_dpi: parse_count("pdf_dpi", self.pdf_dpi.as_deref())?,
                pdf_text_layer: parse_flag("pdf_text_layer", self.pdf_text_layer.as_deref())?,
            },
            request_id: self.request_id.map(parse_request_id).transpose()?,
            format: self.format.as_deref().map(OutputFormat::parse).transpose()?.unwrap_or_default(),
            timeout: self.timeout_ms.as_deref().map(parse_timeout).transpose()?,
        })
    }
}

fn set_once(slot: &mut Option<String>, field: &'static str, value: String) -> Result<(), RequestError> {
    if slot.is_some() {
        return Err(RequestError::FieldTwice { field });
    }
    *slot = Some(value);
    Ok(())
}

/// The checked fields of one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckedFields {
    /// Required by the server, but it may come from elsewhere than the fields.
    pub task: Option<Task>,
    pub options: RequestOptions,
    pub request_id: Option<String>,
    pub format: OutputFormat,
    pub timeout: Option<Duration>,
}

/// How to read the document (`kube_ocr.v1.RecognizeOptions`); 0 and false when not given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestOptions {
    /// Lines below this confidence are left out, 0 to 1.
    pub min_confidence: f32,
    pub skip_orientation: bool,
    pub bypass_cache: bool,
    pub word_boxes: bool,
    /// PDF or multi-page TIFF: the first page to read, 1-based; 0 = the first.
    pub first_page: u32,
    /// PDF or multi-page TIFF: the last page to read, inclusive; 0 = the last.
    pub last_page: u32,
    /// PDF: the resolution to render at; 0 = the server's default.
    pub pdf_dpi: u32,
    pub pdf_text_layer: bool,
}

/// `document`/`line`, any case, or the gRPC enum's names (`TASK_DOCUMENT`, as proto3 JSON
/// writes them).
fn parse_task(value: &str) -> Result<Task, RequestError> {
    let lower = value.to_ascii_lowercase();
    match lower.strip_prefix("task_").unwrap_or(&lower) {
        "document" => Ok(Task::Document),
        "line" => Ok(Task::Line),
        _ => Err(RequestError::Task { value: value.to_owned() }),
    }
}

fn parse_confidence(value: &str) -> Result<f32, RequestError> {
    match value.trim().parse::<f32>() {
        Ok(confidence) if (0.0..=1.0).contains(&confidence) => Ok(confidence),
        _ => Err(RequestError::MinConfidence { value: value.to_owned() }),
    }
}

fn parse_flag(field: &'static str, value: Option<&str>) -> Result<bool, RequestError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(RequestError::Flag { field, value: other.to_owned() }),
    }
}

/// A whole number from 1 up (a page number, a resolution); absent is 0, "not given".
fn parse_count(field: &'static str, value: Option<&str>) -> Result<u32, RequestError> {
    match value.map(|value| (value, value.trim().parse::<u32>())) {
        None => Ok(0),
        Some((_, Ok(count))) if count > 0 => Ok(count),
        Some((value, _)) => Err(RequestError::Count { field, value: value.to_owned() }),
    }
}

/// Longest request id accepted (it is echoed in a header and logged).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Printable ASCII, 1 to [`MAX_REQUEST_ID_LEN`] characters: it goes back in a header.
pub fn is_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn parse_request_id(id: String) -> Result<String, RequestError> {
    if is_request_id(&id) { Ok(id) } else { Err(RequestError::RequestId) }
}

fn parse_timeout(value: &str) -> Result<Duration, RequestError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(RequestError::TimeoutMs { value: value.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestErrorKind;

    #[test]
    fn query_fields_parse_into_a_call() {
        let fields = RawFields::from_query(Some(
            "task=LINE&min_confidence=0.5&skip_orientation=true&bypass_cache=1&word_boxes=true&request_id=r-1&format=hocr&timeout_ms=1500\
             &first_page=2&last_page=5&pdf_dpi=300&pdf_text_layer=true",
        ))
        .unwrap()
        .parse()
        .unwrap();
        assert_eq!(fields.task, Some(Task::Line));
        assert_eq!(
            fields.options,
            RequestOptions {
                min_confidence: 0.5,
                skip_orientation: true,
                bypass_cache: true,
                word_boxes: true,
                first_page: 2,
                last_page: 5,
                pdf_dpi: 300,
                pdf_text_layer: true,
            }
        );
        assert_eq!(fields.request_id.as_deref(), Some("r-1"));
        assert_eq!(fields.format, OutputFormat::Hocr);
        assert_eq!(fields.timeout, Some(Duration::from_millis(1500)));
        let defaults = RawFields::from_query(None).unwrap().parse().unwrap();
        assert_eq!(defaults, CheckedFields::default());
    }

    #[test]
    fn the_grpc_enum_names_are_tasks_too() {
        assert_eq!(parse_task("TASK_DOCUMENT").unwrap(), Task::Document);
        assert_eq!(parse_task("task_line").unwrap(), Task::Line);
        assert!(parse_task("TASK_UNSPECIFIED").is_err());
    }

    #[test]
    fn every_bad_value_is_named_in_its_error() {
        let cases = [
            ("task=page", "task must be document"),
            ("min_confidence=1.5", "min_confidence must be a number between 0 and 1"),
            ("min_confidence=NaN", "min_confidence must be a number between 0 and 1"),
            ("skip_orientation=yes", "skip_orientation must be true or false"),
            ("format=pdf", "format must be json, text or hocr"),
            ("timeout_ms=0", "timeout_ms must be a whole number"),
            ("timeout_ms=-5", "timeout_ms must be a whole number"),
            ("first_page=0", "first_page must be a whole number from 1 up"),
            ("last_page=two", "last_page must be a whole number from 1 up"),
            ("pdf_dpi=-72", "pdf_dpi must be a whole number from 1 up"),
            ("pdf_text_layer=maybe", "pdf_text_layer must be true or false"),
            ("request_id=a%0Ab", "request_id must be 1 to 128 printable ASCII characters"),
            ("request_id=", "request_id must be 1 to 128"),
            ("lang=en", "the query string does not parse: unknown field `lang`"),
            ("task=line&task=document", "the query string does not parse"),
        ];
        for (query, expected) in cases {
            let error = RawFields::from_query(Some(query)).and_then(RawFields::parse).unwrap_err();
            assert_eq!(error.kind(), RequestErrorKind::InvalidArgument, "{query}");
            assert!(error.to_string().contains(expected), "{query}: {error}");
        }
    }

    /// The value is quoted as given (counts, numbers) or as compared (flags, format: in
    /// lower case).
    #[test]
    fn a_bad_value_is_quoted_back() {
        let message = |query: &str| RawFields::from_query(Some(query)).unwrap().parse().unwrap_err().to_string();
        assert_eq!(message("first_page=%202x"), "first_page must be a whole number from 1 up, got \" 2x\"");
        assert_eq!(message("word_boxes=YES"), "word_boxes must be true or false, got \"yes\"");
        assert_eq!(message("format=PDF"), "format must be json, text or hocr, got \"pdf\"");
        assert_eq!(
            message("task=Page"),
            "task must be document (find and read every line) or line (the image is one line), got \"Page\""
        );
    }

    #[test]
    fn every_documented_field_is_read_from_the_query_and_the_form() {
        for field in FIELDS {
            let example = match field.value {
                FieldValue::OneOf(values) => values[0],
                FieldValue::Fraction => "0.5",
                FieldValue::Flag => "true",
                FieldValue::RequestId => "abc",
                FieldValue::PositiveInteger => "100",
            };
            let from_query = RawFields::from_query(Some(&format!("{}={example}", field.name))).unwrap();
            let mut from_form = RawFields::default();
            from_form.set(field.name, example.to_owned()).unwrap();
            assert_eq!(from_query, from_form, "{}", field.name);
            assert_ne!(from_query, RawFields::default(), "{}", field.name);
            assert!(from_query.parse().is_ok(), "{}", field.name);
        }
        let names: std::collections::BTreeSet<_> = FIELDS.iter().map(|field| field.name).collect();
        assert_eq!(names.len(), FIELDS.len());
        assert_eq!(FIELD_NAMES, FIELDS.map(|field| field.name).join(", "));
    }

    #[test]
    fn a_field_in_both_the_query_and_the_form_is_refused() {
        let query = RawFields::from_query(Some("task=line")).unwrap();
        let mut form = RawFields::default();
        form.set("task", "document".into()).unwrap();
        let error = query.merge(form).unwrap_err();
        assert!(error.to_string().contains("task is given twice"), "{error}");
        let mut form = RawFields::default();
        assert!(form.set("language", "en".into()).unwrap_err().to_string().contains("unknown form field \"language\""));
    }
}

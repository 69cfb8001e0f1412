//! Untrusted `POST /v1/ocr` requests through everything the HTTP API does with them before
//! the OCR call: the query string's fields, the body by its Content-Type (raw, multipart
//! via multer, JSON with base64), the merge of both and the checks of every field, as the
//! pod's handler runs them.
//!
//! The input's first byte chooses the request's shape: its low three bits one of
//! [`CONTENT_TYPES`] (or none, or a Content-Type line the fuzzer writes), bit 3 whether a
//! query string line comes first. Then come those lines (each up to a `\n`), then the body:
//!
//! ```text
//! [selector] [query string \n]? [Content-Type \n]? body…
//! ```
//!
//! Any panic, hang or allocation over libFuzzer's limits is a bug in the crate; so is a
//! refusal without a message, a 415 for anything but the Content-Type, or an accepted
//! field outside its documented range.

#![no_main]

use bytes::Bytes;
use kube_ocr_http_request::{RawFields, RequestError, RequestErrorKind, Task, is_request_id, parse_body};
use libfuzzer_sys::fuzz_target;

/// The Content-Types the low three bits choose (the multipart ones with the boundary
/// `XyZ-boundary`, as the seeds under `corpus/http_body/` have it); [`FROM_INPUT`] and
/// [`NONE`] are the last two.
const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "multipart/form-data; boundary=XyZ-boundary",
    "Multipart/Form-Data; charset=utf-8; boundary=\"XyZ-boundary\"",
    "image/png",
    "application/pdf",
    "text/plain",
];
const FROM_INPUT: u8 = 6;
const NONE: u8 = 7;
const WITH_QUERY: u8 = 0x08;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let query = if selector & WITH_QUERY != 0 {
        let (line, after) = split_line(rest);
        rest = after;
        // A URI's query is ASCII (the server's `Uri` never holds anything else).
        let Ok(query) = std::str::from_utf8(line) else { return };
        if !query.is_ascii() {
            return;
        }
        Some(query)
    } else {
        None
    };
    let content_type = match selector & 0x07 {
        FROM_INPUT => {
            let (line, after) = split_line(rest);
            rest = after;
            // What the handler passes for a header value that is not visible ASCII.
            Some(match std::str::from_utf8(line) {
                Ok(text) if text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) => text,
                _ => "(not text)",
            })
        }
        NONE => None,
        index => Some(CONTENT_TYPES[usize::from(index)]),
    };
    let body = Bytes::copy_from_slice(rest);

    match read_request(query, content_type, body.clone()) {
        Ok((document, fields)) => {
            let options = &fields.options;
            assert!((0.0..=1.0).contains(&options.min_confidence), "{options:?}");
            assert!(fields.request_id.as_deref().is_none_or(is_request_id), "{:?}", fields.request_id);
            assert!(fields.timeout.is_none_or(|timeout| !timeout.is_zero()), "{:?}", fields.timeout);
            assert!(matches!(fields.task, None | Some(Task::Document | Task::Line)));
            let media_type = content_type.and_then(|value| value.split(';').next()).map(str::trim);
            if media_type.is_some_and(|media| media.eq_ignore_ascii_case("image/png")) {
                assert_eq!(document, body, "a raw body is the document");
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty(), "{error:?} has no message");
            let unsupported = matches!(error, RequestError::NoContentType | RequestError::ContentType { .. });
            assert_eq!(error.kind() == RequestErrorKind::UnsupportedMediaType, unsupported, "{error:?}");
        }
    }
});

/// What the pod's handler does: the query's fields, the body, both merged and checked.
fn read_request(
    query: Option<&str>,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<(Bytes, kube_ocr_http_request::CheckedFields), RequestError> {
    let query = RawFields::from_query(query)?;
    let parsed = futures::executor::block_on(parse_body(content_type, body))?;
    let fields = query.merge(parsed.fields)?.parse()?;
    Ok((parsed.document, fields))
}

/// The bytes up to the first `\n`, and those after it (all of them, and nothing, when
/// there is none).
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

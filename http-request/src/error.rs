//! Why a request cannot be read. Each variant is named after what failed (the body's form,
//! or the field) and its message says what the caller can change; the server answers
//! with that message as it is.

use crate::fields::{FIELD_NAMES, MAX_REQUEST_ID_LEN};

/// How to send a document, for a body this API does not read.
const HOW_TO_SEND: &str = "send the document as the body with Content-Type image/* or application/pdf (curl \
                           --data-binary @page.png -H 'Content-Type: image/png'), as multipart/form-data with a \
                           `file` part (curl -F file=@page.png), or as application/json with the bytes in base64 in \
                           `image`";

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request has no Content-Type header (or one that is not text).
    #[error("no Content-Type: {HOW_TO_SEND}")]
    NoContentType,

    /// The media type (lower case, without parameters) is none this API reads.
    #[error("Content-Type {media_type}: {HOW_TO_SEND}")]
    ContentType { media_type: String },

    #[error("the JSON body does not parse: {0}")]
    JsonBody(#[source] serde_json::Error),

    /// The JSON body's `image` decodes with neither base64 alphabet (the error is the
    /// URL-safe one's, the last tried).
    #[error("image is not base64: {0}")]
    JsonImage(#[source] base64::DecodeError),

    #[error("multipart/form-data without a usable boundary: {0}")]
    MultipartBoundary(#[source] multer::Error),

    #[error("the multipart body does not parse: {0}")]
    MultipartBody(#[source] multer::Error),

    #[error("the multipart body has more than one file part; send one document per request")]
    MultipartSecondFile,

    #[error("the multipart body has no file part: send the document as `file` (curl -F file=@page.png)")]
    MultipartNoFile,

    /// A form part whose name is neither a file part nor a field.
    #[error("unknown form field {name:?} (fields: file, {FIELD_NAMES})")]
    FormField { name: String },

    #[error("the query string does not parse: {0} (fields: {FIELD_NAMES})")]
    QueryString(#[source] serde_urlencoded::de::Error),

    /// A field given twice: in the query and the body, or twice in a form.
    #[error("{field} is given twice; give it once")]
    FieldTwice { field: &'static str },

    #[error("task must be document (find and read every line) or line (the image is one line), got {value:?}")]
    Task { value: String },

    #[error("min_confidence must be a number between 0 and 1, got {value:?}")]
    MinConfidence { value: String },

    /// A true-or-false field (`value` in lower case, as it was compared).
    #[error("{field} must be true or false, got {value:?}")]
    Flag { field: &'static str, value: String },

    /// A page number or a resolution.
    #[error("{field} must be a whole number from 1 up, got {value:?}")]
    Count { field: &'static str, value: String },

    #[error(
        "request_id must be 1 to {MAX_REQUEST_ID_LEN} printable ASCII characters (it is echoed in the x-request-id \
         header)"
    )]
    RequestId,

    #[error("timeout_ms must be a whole number of milliseconds above 0, got {value:?}")]
    TimeoutMs { value: String },

    /// `value` in lower case, as it was compared.
    #[error("format must be json, text or hocr, got {value:?}")]
    Format { value: String },
}

/// How the server answers a [`RequestError`]; both count as INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// 400: the request is malformed.
    InvalidArgument,
    /// 415: the body's Content-Type is none this API reads.
    UnsupportedMediaType,
}

impl RequestError {
    pub fn kind(&self) -> RequestErrorKind {
        match self {
            Self::NoContentType | Self::ContentType { .. } => RequestErrorKind::UnsupportedMediaType,
            Self::JsonBody(_)
            | Self::JsonImage(_)
            | Self::MultipartBoundary(_)
            | Self::MultipartBody(_)
            | Self::MultipartSecondFile
            | Self::MultipartNoFile
            | Self::FormField { .. }
            | Self::QueryString(_)
            | Self::FieldTwice { .. }
            | Self::Task { .. }
            | Self::MinConfidence { .. }
            | Self::Flag { .. }
            | Self::Count { .. }
            | Self::RequestId
            | Self::TimeoutMs { .. }
            | Self::Format { .. } => RequestErrorKind::InvalidArgument,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the server answered with before this crate existed, word for word.
    #[test]
    fn the_messages_are_the_ones_callers_know() {
        let media = RequestError::ContentType { media_type: "text/plain".into() };
        assert_eq!(
            media.to_string(),
            "Content-Type text/plain: send the document as the body with Content-Type image/* or application/pdf \
             (curl --data-binary @page.png -H 'Content-Type: image/png'), as multipart/form-data with a `file` part \
             (curl -F file=@page.png), or as application/json with the bytes in base64 in `image`"
        );
        assert_eq!(media.kind(), RequestErrorKind::UnsupportedMediaType);
        let field = RequestError::FormField { name: "lang".into() };
        assert_eq!(
            field.to_string(),
            "unknown form field \"lang\" (fields: file, task, min_confidence, skip_orientation, bypass_cache, \
             word_boxes, request_id, format, timeout_ms, first_page, last_page, pdf_dpi, pdf_text_layer)"
        );
        assert_eq!(field.kind(), RequestErrorKind::InvalidArgument);
        assert_eq!(
            RequestError::RequestId.to_string(),
            "request_id must be 1 to 128 printable ASCII characters (it is echoed in the x-request-id header)"
        );
    }
}

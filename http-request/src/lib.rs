//! What a `POST /v1/ocr` request says, read from its bytes: [`parse_body`] splits the body
//! by its Content-Type (the raw document, multipart/form-data with a `file` part and field
//! parts, or JSON with the document in base64), [`RawFields`] gathers the fields from the
//! query string and the body, and [`RawFields::parse`] checks them into [`CheckedFields`].
//! Every refusal is a [`RequestError`] whose message tells the caller what to fix and whose
//! [`RequestError::kind`] says whether it is a bad argument (400) or a body this API does
//! not read (415).
//!
//! Pure: no IO, no async runtime (multer's parser is polled over one in-memory chunk), no
//! libtorch, so the inference pod's HTTP layer stays thin and this is fuzzed on its own
//! (`fuzz/`, target `http_body`). [`FIELDS`] and the JSON body's schemas
//! ([`JsonOcrRequest`], derived with utoipa) are what the pod's OpenAPI document is built
//! from.

mod body;
mod error;
mod fields;

pub use body::{FILE_PARTS, JsonOcrRequest, JsonOptions, ParsedBody, parse_body};
pub use error::{RequestError, RequestErrorKind};
pub use fields::{
    CheckedFields, FIELD_NAMES, FIELDS, FieldDoc, FieldValue, MAX_REQUEST_ID_LEN, OutputFormat, RawFields,
    RequestOptions, Task, is_request_id,
};

//! What the server said when it refused a call: the HTTP status, and S3's error code and
//! message from the XML body (`<Error><Code>NoSuchKey</Code><Message>…`), so that logs
//! and callers see `AccessDenied` or `SignatureDoesNotMatch`, not just "403".

use std::fmt;

use http::{HeaderMap, StatusCode};

use crate::xml;

/// How much of a body that is not S3's XML is kept for the message (an HTML page from a
/// proxy, say).
const MAX_RAW_MESSAGE_CHARS: usize = 200;

/// An error answer from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: StatusCode,
    /// S3's code (`NoSuchKey`, `AccessDenied`, `SignatureDoesNotMatch`…); `None` when the
    /// answer had no S3 error body (HEAD answers never have one).
    pub code: Option<String>,
    /// S3's message, or what the status means when there was none.
    pub message: String,
    /// `x-amz-request-id`, or the body's `RequestId`: what the operator of the server
    /// asks for.
    pub request_id: Option<String>,
}

impl ServiceError {
    /// Reads an error answer. `head`: the request was a HEAD, whose answers carry no body,
    /// so the status and headers are all there is to explain.
    pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8], head: bool) -> Self {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let text = String::from_utf8_lossy(body);
        let parsed = xml::parse(&text).ok().filter(|root| root.name == "Error");
        let code = parsed.as_ref().and_then(|root| root.child_text("Code")).filter(|code| !code.is_empty());
        let message = parsed.as_ref().and_then(|root| root.child_text("Message")).filter(|message| !message.is_empty());
        let body_request_id = parsed.as_ref().and_then(|root| root.child_text("RequestId")).map(str::to_owned);
        let message = match message {
            Some(message) => message.to_owned(),
            None if parsed.is_none() && !text.trim().is_empty() => {
                let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let mut shown: String = flat.chars().take(MAX_RAW_MESSAGE_CHARS).collect();
                if shown.len() < flat.len() {
                    shown.push('…');
                }
                format!("not an S3 error body: {shown}")
            }
            None => status_meaning(status, headers, head),
        };
        Self {
            status,
            code: code.map(str::to_owned),
            message,
            request_id: header("x-amz-request-id").or(body_request_id).filter(|id| !id.is_empty()),
        }
    }
}

/// What a bare status means for S3.
fn status_meaning(status: StatusCode, headers: &HeaderMap, head: bool) -> String {
    let region = headers.get("x-amz-bucket-region").and_then(|value| value.to_str().ok());
    match (status.as_u16(), region) {
        (301 | 307 | 400, Some(region)) => format!("the bucket is in region {region}; sign for that region"),
        (403, _) if head => {
            "access denied: the credentials may not read the bucket, or the signature does not match".to_owned()
        }
        (404, _) if head => "not found (for a bucket: it does not exist)".to_owned(),
        _ => status.canonical_reason().unwrap_or("no reason given").to_lowercase(),
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_code_message_and_request_id() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
                     <Message>The request signature we calculated does not match the signature you provided.</Message>\
                     <RequestId>ABC123</RequestId></Error>";
        let error = ServiceError::from_response(StatusCode::FORBIDDEN, &HeaderMap::new(), body, false);
        assert_eq!(error.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error.request_id.as_deref(), Some("ABC123"));
        assert_eq!(
            error.to_string(),
            "HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match the signature you \
             provided. (request id ABC123)"
        );
    }

    #[test]
    fn the_request_id_header_wins() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-request-id", "FROM-HEADER".parse().unwrap());
        let body = b"<Error><Code>NoSuchKey</Code><Message>gone</Message><RequestId>FROM-BODY</RequestId></Error>";
        let error = ServiceError::from_response(StatusCode::NOT_FOUND, &headers, body, false);
        assert_eq!(error.request_id.as_deref(), Some("FROM-HEADER"));
    }

    #[test]
    fn a_head_answer_is_explained_by_its_status() {
        let error = ServiceError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), b"", true);
        assert_eq!(error.code, None);
        assert_eq!(error.to_string(), "HTTP 404: not found (for a bucket: it does not exist)");
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-bucket-region", "eu-west-1".parse().unwrap());
        let moved = ServiceError::from_response(StatusCode::MOVED_PERMANENTLY, &headers, b"", true);
        assert!(moved.message.contains("eu-west-1"), "{moved}");
    }

    #[test]
    fn a_body_that_is_not_s3_xml_is_shown_shortened() {
        let page = format!("<html><body>Bad   gateway {}</body></html>", "x".repeat(500));
        let error = ServiceError::from_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), page.as_bytes(), false);
        assert_eq!(error.code, None);
        assert!(error.message.starts_with("not an S3 error body: <html><body>Bad gateway x"), "{}", error.message);
        assert!(error.message.chars().count() < 250);
        let empty = ServiceError::from_response(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"", false);
        assert_eq!(empty.to_string(), "HTTP 503: service unavailable");
    }
}

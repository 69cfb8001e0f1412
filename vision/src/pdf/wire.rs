//! The frames a PDF renderer process writes to the server, on its standard output.
//!
//! A frame is a little-endian `u32` length, that many bytes of JSON ([`Frame`]), a
//! little-endian `u64` payload length, and the payload: a page's RGB pixels, row by row,
//! or nothing. The renderer writes a [`Frame::Document`], then one [`Frame::Page`] per
//! planned page in order; or a [`Frame::Failed`] at any point, and stops. A renderer that
//! dies (a memory or CPU limit, a crash) simply stops writing; the server tells that from
//! a missing frame and the exit status.

use serde::{Deserialize, Serialize};

use super::document::PlannedPage;
use super::error::PdfError;
use super::text_layer::TextLayerLine;

/// Longest JSON part of a frame the server reads: a page's text layer is the largest
/// (a dense page is some thousand glyphs, far below this).
pub const MAX_HEADER_BYTES: u32 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// The document opened and its plan passed the limits.
    Document { page_count: usize, pages: Vec<PlannedPage> },
    /// One page: its pixels follow (width × height × 3 bytes) unless it was answered from
    /// its text layer, which then holds at least one line.
    Page { page: PlannedPage, text_layer: Option<Vec<TextLayerLine>> },
    /// The document cannot be read as asked.
    Failed { error: PdfError },
}

/// Why bytes on the wire are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a frame header of {0} bytes is over the limit")]
    HeaderTooLong(u32),
    #[error("a frame header is not valid JSON: {0}")]
    Header(#[from] serde_json::Error),
    #[error("page {page} carries {actual} bytes of pixels; its size says {expected}")]
    PayloadSize { page: usize, expected: u64, actual: u64 },
}

/// The bytes before a frame's payload: lengths and the JSON.
pub fn frame_prefix(frame: &Frame, payload_len: u64) -> Result<Vec<u8>, WireError> {
    let json = serde_json::to_vec(frame)?;
    let mut prefix = Vec::with_capacity(json.len() + 12);
    prefix.extend_from_slice(&(json.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&json);
    prefix.extend_from_slice(&payload_len.to_le_bytes());
    Ok(prefix)
}

/// Checks a header length read off the wire before reading that many bytes.
pub fn check_header_len(len: u32) -> Result<usize, WireError> {
    if len > MAX_HEADER_BYTES { Err(WireError::HeaderTooLong(len)) } else { Ok(len as usize) }
}

/// Parses a frame's JSON and checks the payload length it announces against it.
pub fn parse_frame(json: &[u8], payload_len: u64) -> Result<Frame, WireError> {
    let frame: Frame = serde_json::from_slice(json)?;
    let expected = expected_payload(&frame);
    if payload_len != expected {
        let page = match &frame {
            Frame::Page { page, .. } => page.number(),
            _ => 0,
        };
        return Err(WireError::PayloadSize { page, expected, actual: payload_len });
    }
    Ok(frame)
}

/// How many payload bytes follow `frame`.
pub fn expected_payload(frame: &Frame) -> u64 {
    match frame {
        Frame::Page { page, text_layer: None } => u64::from(page.width) * u64::from(page.height) * 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PageRangeError;

    fn split(prefix: &[u8]) -> (&[u8], u64) {
        let len = u32::from_le_bytes(prefix[..4].try_into().unwrap());
        let json = &prefix[4..4 + check_header_len(len).unwrap()];
        let payload = u64::from_le_bytes(prefix[4 + json.len()..].try_into().unwrap());
        (json, payload)
    }

    #[test]
    fn frames_survive_the_wire() {
        let page = PlannedPage { index: 2, width: 10, height: 4 };
        for frame in [
            Frame::Document { page_count: 7, pages: vec![page] },
            Frame::Page { page, text_layer: None },
            Frame::Page {
                page,
                text_layer: Some(vec![TextLayerLine { text: "a".into(), bbox: [0.0, 1.0, 2.0, 3.0], words: vec![] }]),
            },
            Frame::Failed { error: PdfError::Range(PageRangeError::PastTheEnd { first: 9, page_count: 7 }) },
        ] {
            let payload = expected_payload(&frame);
            let prefix = frame_prefix(&frame, payload).unwrap();
            let (json, announced) = split(&prefix);
            assert_eq!(parse_frame(json, announced).unwrap(), frame);
        }
    }

    #[test]
    fn a_page_whose_pixels_do_not_match_its_size_is_refused() {
        let frame = Frame::Page { page: PlannedPage { index: 0, width: 10, height: 4 }, text_layer: None };
        let prefix = frame_prefix(&frame, 0).unwrap();
        let (json, _) = split(&prefix);
        assert!(matches!(parse_frame(json, 119), Err(WireError::PayloadSize { page: 1, expected: 120, actual: 119 })));
        assert!(matches!(check_header_len(MAX_HEADER_BYTES + 1), Err(WireError::HeaderTooLong(_))));
    }
}

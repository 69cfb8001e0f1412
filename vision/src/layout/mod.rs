//! Putting results in order: reading order of detected boxes, which line crops share a
//! recogniser pass, and the document path around the detector (page in, boxes in reading
//! order with their crops out). Uses every layer before it.

mod document;
mod line_batches;
mod reading_order;

pub use document::{DocumentPage, find_lines, prepare_document, whole_image_quad};
pub use line_batches::plan_line_batches;

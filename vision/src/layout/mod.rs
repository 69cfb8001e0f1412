//! Putting results in order: reading order of detected boxes, which line crops share a
//! recogniser pass, the document path around the detector (page in, boxes in reading
//! order with their crops out), and pages that arrive turned. Uses every layer before it.

mod document;
mod line_batches;
mod page_rotation;
mod reading_order;

pub use document::{DocumentPage, find_lines, prepare_document, whole_image_quad};
pub use line_batches::plan_line_batches;
pub use page_rotation::{PageRotation, looks_sideways, mostly_upside_down};

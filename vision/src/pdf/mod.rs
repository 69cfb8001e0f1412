//! PDF documents: the pages a request reads, checked against limits before any is
//! rendered; each rendered to RGB pixels at the caller's resolution; and a born-digital
//! page's own text (its text layer) as lines with boxes in the same pixels.
//!
//! Parsing, rendering and text come from hayro (pure Rust). This module is pure, but a
//! hostile file can still make any renderer allocate or loop far beyond what its size
//! suggests, so the server never calls it in its own process: `pdf-render/` runs it in a
//! child under memory and CPU limits and streams pages back in the frames of [`wire`].

mod document;
mod error;
mod render;
mod text_layer;
pub mod wire;

pub use document::{PdfDocument, PdfLimits, PlannedPage, is_pdf};
pub use error::PdfError;
pub use render::PageRenderer;
pub use text_layer::TextGlyph;
pub use text_layer::{TextLayerLine, TextLayerWord, group_glyphs, page_text};

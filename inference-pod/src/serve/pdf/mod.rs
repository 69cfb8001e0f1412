//! PDF requests: a renderer process per document (`ocr-pdf-render`, under memory and CPU
//! limits, see `pdf-render/`), its pages read back as they are rendered.

mod error;
mod renderer;

pub(crate) use error::RenderError;
pub use renderer::{DEFAULT_PDF_DPI, PdfSettings};
pub(crate) use renderer::{PageContent, PdfRenderer, RenderJob};

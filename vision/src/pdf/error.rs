//! Why a PDF cannot be read as asked. Each message says what the caller can change.

use serde::{Deserialize, Serialize};

use crate::image::PageRangeError;

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum PdfError {
    #[error(
        "the PDF is encrypted and cannot be opened without its password (or with an encryption this \
         server does not read): send it decrypted"
    )]
    Encrypted,
    #[error("the PDF cannot be read: it is damaged, truncated or not a PDF")]
    Unreadable,
    #[error("the PDF has no pages")]
    NoPages,
    #[error("the PDF has {page_count} pages; this server opens documents of at most {max_pages} pages")]
    DocumentTooLong { page_count: usize, max_pages: usize },
    #[error("{0}")]
    Range(PageRangeError),
    #[error(
        "page {page} is {width_pt:.0}x{height_pt:.0} pt: at {dpi} dpi that is {width}x{height} pixels, over \
         this server's limit ({max_pixels} pixels, {max_side} on a side); send a lower pdf_dpi or a smaller page"
    )]
    PageTooLarge {
        page: usize,
        width_pt: f32,
        height_pt: f32,
        dpi: u32,
        width: u64,
        height: u64,
        max_pixels: u64,
        max_side: u32,
    },
    #[error("page {page} has no area ({width_pt}x{height_pt} pt)")]
    EmptyPage { page: usize, width_pt: f32, height_pt: f32 },
}

impl From<PageRangeError> for PdfError {
    fn from(error: PageRangeError) -> Self {
        Self::Range(error)
    }
}

//! Opening a PDF and planning what to render: the page count, the range, and every
//! selected page's size at the chosen resolution, all checked before a pixel is drawn.

use hayro::hayro_syntax::{LoadPdfError, Pdf};
use serde::{Deserialize, Serialize};

use super::error::PdfError;
use crate::image::PageRange;

/// How far into the file the `%PDF-` header may start (readers accept leading junk; the
/// PDF 1.7 implementation notes allow 1024 bytes).
const HEADER_WINDOW: usize = 1024;

/// Whether `bytes` are a PDF (rather than an image).
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(HEADER_WINDOW)].windows(5).any(|window| window == b"%PDF-")
}

/// What one request may make the renderer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfLimits {
    /// Most pages read per request.
    pub max_pages: usize,
    /// Most pages the document may have at all: a page tree of a million pages is refused
    /// whatever range is asked for.
    pub max_document_pages: usize,
    /// Largest rendered page, width × height.
    pub max_page_pixels: u64,
    /// Longest rendered side (the renderer's canvas is at most 65535 pixels a side).
    pub max_side: u32,
}

impl Default for PdfLimits {
    fn default() -> Self {
        Self { max_pages: 50, max_document_pages: 10_000, max_page_pixels: 50_000_000, max_side: 20_000 }
    }
}

/// A page to render: its 0-based index and its size in pixels at the request's dpi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPage {
    pub index: usize,
    pub width: u32,
    pub height: u32,
}

impl PlannedPage {
    /// 1-based, as callers count pages.
    pub fn number(&self) -> usize {
        self.index + 1
    }
}

/// A parsed PDF.
pub struct PdfDocument {
    pdf: Pdf,
}

impl std::fmt::Debug for PdfDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfDocument").field("pages", &self.page_count()).finish()
    }
}

impl PdfDocument {
    /// Parses `bytes` (an empty user password is tried, as viewers do).
    pub fn open(bytes: Vec<u8>) -> Result<Self, PdfError> {
        let pdf = Pdf::new(bytes).map_err(|error| match error {
            LoadPdfError::Decryption(_) => PdfError::Encrypted,
            LoadPdfError::Invalid => PdfError::Unreadable,
        })?;
        Ok(Self { pdf })
    }

    /// Pages in the page tree (those that are really there, not a declared `/Count`).
    pub fn page_count(&self) -> usize {
        self.pdf.pages().len()
    }

    pub(super) fn pdf(&self) -> &Pdf {
        &self.pdf
    }

    /// The pages `range` selects, each with its size at `dpi`; refuses a document that
    /// is too long, a range that selects too much or nothing, and any page whose
    /// rendering would exceed the pixel limits, before anything is rendered.
    pub fn plan(&self, range: PageRange, dpi: u32, limits: &PdfLimits) -> Result<Vec<PlannedPage>, PdfError> {
        let page_count = self.page_count();
        if page_count == 0 {
            return Err(PdfError::NoPages);
        }
        if page_count > limits.max_document_pages {
            return Err(PdfError::DocumentTooLong { page_count, max_pages: limits.max_document_pages });
        }
        let selected = range.select(page_count, limits.max_pages)?;
        let pages = self.pdf.pages();
        selected
            .map(|index| {
                let (width_pt, height_pt) = pages[index].render_dimensions();
                plan_page(index, width_pt, height_pt, dpi, limits)
            })
            .collect()
    }
}

/// The size of a `width_pt` × `height_pt` page at `dpi` (truncated, as the renderer
/// sizes its canvas), within `limits`.
fn plan_page(
    index: usize,
    width_pt: f32,
    height_pt: f32,
    dpi: u32,
    limits: &PdfLimits,
) -> Result<PlannedPage, PdfError> {
    // The renderer's own arithmetic (f32, truncated), so the plan and the canvas agree.
    let scale = dpi as f32 / 72.0;
    let to_pixels = |points: f32| (points * scale).max(0.0) as u64;
    let (width, height) = (to_pixels(width_pt), to_pixels(height_pt));
    if width == 0 || height == 0 || !width_pt.is_finite() || !height_pt.is_finite() {
        return Err(PdfError::EmptyPage { page: index + 1, width_pt, height_pt });
    }
    let max_side = u64::from(limits.max_side.min(u32::from(u16::MAX)));
    if width.saturating_mul(height) > limits.max_page_pixels || width > max_side || height > max_side {
        return Err(PdfError::PageTooLarge {
            page: index + 1,
            width_pt,
            height_pt,
            dpi,
            width,
            height,
            max_pixels: limits.max_page_pixels,
            max_side: limits.max_side,
        });
    }
    Ok(PlannedPage { index, width: width as u32, height: height as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_may_follow_some_junk() {
        assert!(is_pdf(b"%PDF-1.7\n..."));
        assert!(is_pdf(b"\xef\xbb\xbf\r\n%PDF-1.4"));
        assert!(!is_pdf(b"\x89PNG\r\n\x1a\n"));
        let mut late = vec![b' '; HEADER_WINDOW];
        late.extend_from_slice(b"%PDF-1.4");
        assert!(!is_pdf(&late));
    }

    #[test]
    fn an_a4_page_at_150_dpi_is_1240_by_1753() {
        let page = plan_page(0, 595.276, 841.89, 150, &PdfLimits::default()).unwrap();
        assert_eq!((page.width, page.height), (1240, 1753));
    }

    #[test]
    fn a_page_size_bomb_is_refused_with_the_numbers() {
        // 200 inches square (the largest MediaBox a PDF 1.7 page may have) at 300 dpi
        // (59 999 in the renderer's f32 arithmetic).
        let error = plan_page(2, 14_400.0, 14_400.0, 300, &PdfLimits::default()).unwrap_err();
        assert!(matches!(error, PdfError::PageTooLarge { page: 3, width: 59_999, height: 59_999, .. }), "{error:?}");
        assert!(error.to_string().contains("lower pdf_dpi"), "{error}");
        // A long strip within the pixel budget but over the side limit.
        let strip = plan_page(0, 72.0 * 200.0, 72.0, 150, &PdfLimits::default()).unwrap_err();
        assert!(matches!(strip, PdfError::PageTooLarge { width: 29_999, height: 150, .. }), "{strip:?}");
    }

    #[test]
    fn a_page_without_area_is_an_error() {
        assert!(matches!(plan_page(0, 0.0, 800.0, 150, &PdfLimits::default()), Err(PdfError::EmptyPage { .. })));
        assert!(matches!(plan_page(0, f32::NAN, 800.0, 150, &PdfLimits::default()), Err(PdfError::EmptyPage { .. })));
    }
}

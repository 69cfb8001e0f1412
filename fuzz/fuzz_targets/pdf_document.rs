//! Untrusted PDF bytes through what `ocr-pdf-render` does with them: open (hayro's parser),
//! plan the pages under limits, render every planned page, and read every planned page's
//! text layer.
//!
//! The limits are far below the server's (4 pages, 2 megapixels and 2048 pixels a side,
//! at 36 dpi, where the server defaults to 50 pages, 50 megapixels, 150 dpi) so that each
//! run stays fast; the code paths are the same. The server runs all of this in a child
//! process under address-space and CPU limits, because a hostile file can make the
//! renderer allocate or loop far beyond its size: here libFuzzer's -rss_limit_mb,
//! -malloc_limit_mb and -timeout (`make fuzz`) play that part, and what they catch inside
//! hayro is a finding to report upstream, not a bug to patch here.
//!
//! Any panic in our code, or a rendered page larger than the plan allowed, is a bug.

#![no_main]

use kube_ocr_vision::image::PageRange;
use kube_ocr_vision::pdf::{PageRenderer, PdfDocument, PdfLimits, page_text};
use libfuzzer_sys::fuzz_target;

const LIMITS: PdfLimits =
    PdfLimits { max_pages: 4, max_document_pages: 1000, max_page_pixels: 2_000_000, max_side: 2048 };

/// The first pages, up to `max_pages` (a longer range would be refused whole).
const RANGE: PageRange = PageRange { first: 1, last: 4 };

/// Low, so that a letter page is 306 × 396 pixels.
const DPI: u32 = 36;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = PdfDocument::open(data.to_vec()) else {
        return;
    };
    let page_count = document.page_count();
    let Ok(pages) = document.plan(RANGE, DPI, &LIMITS) else {
        return;
    };
    assert!(!pages.is_empty() && pages.len() <= LIMITS.max_pages, "{} pages planned", pages.len());
    let renderer = PageRenderer::new(&document, DPI);
    for page in &pages {
        assert!(page.index < page_count, "{page:?} of {page_count} pages");
        assert!(u64::from(page.width) * u64::from(page.height) <= LIMITS.max_page_pixels, "{page:?}");
        assert!(page.width.max(page.height) <= LIMITS.max_side, "{page:?}");

        let lines = page_text(&document, page, DPI);
        for line in &lines {
            assert!(!line.words.is_empty(), "a line without words: {line:?}");
            assert!(line.bbox.iter().all(|v| v.is_finite()), "{line:?}");
            assert!(line.bbox[0] <= line.bbox[2] && line.bbox[1] <= line.bbox[3], "{line:?}");
        }

        let image = renderer.render(page);
        // The canvas comes from the same arithmetic as the plan; what matters is that it
        // is never larger (ocr-pdf-render sends what was drawn, whatever its size).
        let (width, height) = image.dimensions();
        assert!(width <= page.width + 1 && height <= page.height + 1, "{page:?} rendered {width}x{height}");
    }
});

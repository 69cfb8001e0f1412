//! Rendering planned pages to RGB pixels.

use hayro::hayro_interpret::InterpreterSettings;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings, render};
use image::RgbImage;

use super::document::{PdfDocument, PlannedPage};

/// Renders the pages of one document, sharing decoded fonts and images between them.
pub struct PageRenderer<'a> {
    document: &'a PdfDocument,
    cache: RenderCache<'a>,
    dpi: u32,
}

impl std::fmt::Debug for PageRenderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRenderer").field("document", self.document).field("dpi", &self.dpi).finish()
    }
}

impl<'a> PageRenderer<'a> {
    pub fn new(document: &'a PdfDocument, dpi: u32) -> Self {
        Self { document, cache: RenderCache::new(), dpi }
    }

    /// The page on a white background (what a scanner or a printer would show), at the
    /// size [`PdfDocument::plan`] gave it.
    pub fn render(&self, page: &PlannedPage) -> RgbImage {
        let scale = self.dpi as f32 / 72.0;
        let pixmap = render(
            &self.document.pdf().pages()[page.index],
            &self.cache,
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &PixmapSettings { x_scale: scale, y_scale: scale, bg_color: WHITE },
        );
        // The pixmap is premultiplied RGBA over an opaque background, so its colour
        // channels are the straight colours.
        let mut page_image = RgbImage::new(u32::from(pixmap.width()), u32::from(pixmap.height()));
        for (rgb, rgba) in page_image.pixels_mut().zip(pixmap.data_as_u8_slice().chunks_exact(4)) {
            rgb.0 = [rgba[0], rgba[1], rgba[2]];
        }
        page_image
    }
}

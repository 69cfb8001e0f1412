//! The page the pipeline works on, made from the uploaded image as rapidocr's `RapidOCR`
//! does before detection, and the way back to the uploaded image's coordinates:
//! 1. an image whose longer side exceeds `maxSideLen` is scaled down to it, and then one
//!    whose shorter side is under `minSideLen` scaled up to it (each side rounded to a
//!    multiple of 32, as in the detector input);
//! 2. a page that is low (`h <= minHeight`) or very wide (`w / h > widthHeightRatio`) gets
//!    black bars above and below, so the detector sees text at a usable scale.
//!
//! Detection and cropping use the page; boxes are reported in the uploaded image.

use image::{Rgb, RgbImage};

use crate::image::Quad;
use crate::image::resize::resize_to_u8_values;
use crate::input::detect::scaled_side;
use crate::params::PipelineOptions;

/// Side lengths are rounded to this in the pre-resize, whatever the detector's multiple.
const PRE_RESIZE_MULTIPLE: u32 = 32;

/// The page and how its coordinates map back to the uploaded image.
#[derive(Debug, Clone)]
pub struct PreparedPage {
    pub image: RgbImage,
    pub transform: PageTransform,
}

/// Page → uploaded image coordinates: remove the letterbox, undo the pre-resize, clamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageTransform {
    /// Uploaded-image pixels per page pixel.
    pub ratio_x: f32,
    pub ratio_y: f32,
    /// Letterbox bar height above the (resized) image.
    pub pad_top: u32,
    pub original_width: u32,
    pub original_height: u32,
}

impl PageTransform {
    /// `quad` (page coordinates) in the uploaded image, clamped to `0..=width`, `0..=height`.
    pub(crate) fn to_original(self, quad: &Quad) -> Quad {
        let (width, height) = (self.original_width as f32, self.original_height as f32);
        quad.map(|(x, y)| {
            let x = x * self.ratio_x;
            let y = (y - self.pad_top as f32) * self.ratio_y;
            (x.clamp(0.0, width), y.clamp(0.0, height))
        })
    }
}

/// The page for `image`; `None` when the image has no pixels.
pub(crate) fn prepare_page(image: &RgbImage, options: &PipelineOptions) -> Option<PreparedPage> {
    let (original_width, original_height) = image.dimensions();
    if original_width == 0 || original_height == 0 {
        return None;
    }
    let mut page = image.clone();
    let longer = original_width.max(original_height);
    if longer > options.max_side_len {
        page = resize(&page, f64::from(options.max_side_len) / f64::from(longer));
    }
    let shorter = page.width().min(page.height());
    if shorter < options.min_side_len {
        // rapidocr scales the shorter side up to minSideLen whatever that makes of the longer
        // one: a 2000 × 1 strip became a 60000 × 32 page, letterboxed to 60000 × 15000
        // (2.7 GB) from a PNG of a hundred bytes (found by fuzz/). Here the longer side stays
        // within maxSideLen, which differs from rapidocr only for aspect ratios beyond
        // maxSideLen / minSideLen (about 67).
        let longer = page.width().max(page.height());
        let ratio = f64::from(options.min_side_len) / f64::from(shorter);
        page = resize(&page, ratio.min(f64::from(options.max_side_len) / f64::from(longer)));
    }
    let ratio_x = original_width as f32 / page.width() as f32;
    let ratio_y = original_height as f32 / page.height() as f32;
    let pad_top = letterbox_height(page.width(), page.height(), options);
    if pad_top > 0 {
        page = letterbox(&page, pad_top);
    }
    Some(PreparedPage {
        image: page,
        transform: PageTransform { ratio_x, ratio_y, pad_top, original_width, original_height },
    })
}

fn resize(image: &RgbImage, ratio: f64) -> RgbImage {
    let width = scaled_side(image.width(), ratio, PRE_RESIZE_MULTIPLE);
    let height = scaled_side(image.height(), ratio, PRE_RESIZE_MULTIPLE);
    let values = resize_to_u8_values(image, width, height);
    // Values are whole numbers in 0..=255 already.
    RgbImage::from_raw(width, height, values.into_iter().map(|v| v as u8).collect())
        .unwrap_or_else(|| RgbImage::new(width, height))
}

/// Height of the bar added above and below a `width × height` page (0: none): enough to
/// make the page `2 × max(width / ratio, minHeight)` high. Options that would make the page
/// taller than `u32` allows (nonsense ratios or heights) add no bar.
fn letterbox_height(width: u32, height: u32, options: &PipelineOptions) -> u32 {
    let ratio = f64::from(options.width_height_ratio);
    let too_wide = ratio > 0.0 && f64::from(width) / f64::from(height) > ratio;
    if height > options.min_height && !too_wide {
        return 0;
    }
    let ratio_height = if ratio > 0.0 { (f64::from(width) / ratio).trunc() as u64 } else { 0 };
    let target = ratio_height.max(u64::from(options.min_height)).saturating_mul(2);
    let bar = target.abs_diff(u64::from(height)) / 2;
    u32::try_from(bar)
        .ok()
        .filter(|&bar| height.checked_add(bar).and_then(|h| h.checked_add(bar)).is_some())
        .unwrap_or(0)
}

fn letterbox(image: &RgbImage, bar: u32) -> RgbImage {
    let mut page = RgbImage::from_pixel(image.width(), image.height() + 2 * bar, Rgb([0, 0, 0]));
    image::imageops::replace(&mut page, image, 0, i64::from(bar));
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> PipelineOptions {
        PipelineOptions::default()
    }

    fn assert_close(found: (f32, f32), expected: (f32, f32)) {
        assert!(
            (found.0 - expected.0).abs() < 1e-3 && (found.1 - expected.1).abs() < 1e-3,
            "{found:?} vs {expected:?}"
        );
    }

    #[test]
    fn an_ordinary_page_is_left_alone() {
        let image = RgbImage::from_pixel(640, 480, Rgb([9, 9, 9]));
        let page = prepare_page(&image, &options()).unwrap();
        assert_eq!(page.image, image);
        let quad = [(10.0, 20.0), (110.0, 20.0), (110.0, 40.0), (10.0, 40.0)];
        assert_eq!(page.transform.to_original(&quad), quad);
    }

    #[test]
    fn a_large_image_is_scaled_to_the_max_side_and_mapped_back() {
        // 4000 × 3000: ratio 0.5 → 2000 × 1500 → multiples of 32: 62.5 → 62, 46.875 → 47.
        let image = RgbImage::new(4000, 3000);
        let page = prepare_page(&image, &options()).unwrap();
        assert_eq!(page.image.dimensions(), (1984, 1504));
        let back = page.transform.to_original(&[(1984.0, 1504.0), (0.0, 0.0), (992.0, 752.0), (0.0, 0.0)]);
        assert_close(back[0], (4000.0, 3000.0));
        assert_close(back[2], (2000.0, 1500.0));
    }

    #[test]
    fn a_small_image_is_scaled_up_to_the_min_side() {
        // 200 × 20: ratio 1.5 → 300 × 30 → multiples of 32: 288 × 32. Then 288 / 32 = 9 > 8:
        // letterboxed to 2 × max(288 / 8, 30) = 72 high, bars of 20.
        let image = RgbImage::new(200, 20);
        let page = prepare_page(&image, &options()).unwrap();
        assert_eq!(page.image.dimensions(), (288, 72));
        assert_eq!(page.transform.pad_top, 20);
        let back = page.transform.to_original(&[(0.0, 20.0), (288.0, 20.0), (144.0, 52.0), (0.0, 52.0)]);
        for (found, expected) in back.into_iter().zip([(0.0, 0.0), (200.0, 0.0), (100.0, 20.0), (0.0, 20.0)]) {
            assert_close(found, expected);
        }
    }

    #[test]
    fn a_low_page_gets_black_bars_and_boxes_come_back_unpadded() {
        // 100 × 30: h <= minHeight → target 2 × max(12, 30) = 60, bars of 15.
        let image = RgbImage::from_pixel(100, 30, Rgb([200, 200, 200]));
        let page = prepare_page(&image, &options()).unwrap();
        assert_eq!(page.image.dimensions(), (100, 60));
        assert_eq!(page.image.get_pixel(50, 14), &Rgb([0, 0, 0]));
        assert_eq!(page.image.get_pixel(50, 15), &Rgb([200, 200, 200]));
        assert_eq!(page.image.get_pixel(50, 45), &Rgb([0, 0, 0]));
        // Points in the bars clamp to the image edge.
        let back = page.transform.to_original(&[(5.0, 10.0), (95.0, 20.0), (120.0, 44.0), (5.0, 50.0)]);
        assert_eq!(back, [(5.0, 0.0), (95.0, 5.0), (100.0, 29.0), (5.0, 30.0)]);
    }

    #[test]
    fn a_wide_page_is_letterboxed_by_its_width() {
        // 900 × 100: 9 > 8 → target 2 × 112 = 224, bars of 62.
        let page = prepare_page(&RgbImage::new(900, 100), &options()).unwrap();
        assert_eq!(page.image.dimensions(), (900, 224));
        assert_eq!(page.transform.pad_top, 62);
        let off = PipelineOptions { width_height_ratio: -1.0, ..options() };
        assert_eq!(prepare_page(&RgbImage::new(900, 100), &off).unwrap().image.dimensions(), (900, 100));
    }

    #[test]
    fn an_extreme_strip_keeps_a_side_of_at_least_32() {
        // rapidocr fails here (5000 × 10 scales to 2000 × 4 → 0); we keep 32, then letterbox
        // to 2 × 1984 / 8 = 496.
        let page = prepare_page(&RgbImage::new(5000, 10), &options()).unwrap();
        assert_eq!(page.image.dimensions(), (1984, 496));
        assert_eq!(page.transform.pad_top, 232);
    }

    #[test]
    fn a_thin_strip_is_not_scaled_up_past_the_max_side() {
        // rapidocr would make these 60000 × 15000 (letterboxed) and 32 × 15008.
        let wide = prepare_page(&RgbImage::new(2000, 1), &options()).unwrap();
        assert_eq!(wide.image.dimensions(), (1984, 496));
        let tall = prepare_page(&RgbImage::new(2, 1000), &options()).unwrap();
        assert_eq!(tall.image.dimensions(), (32, 1984));
    }

    #[test]
    fn absurd_letterbox_options_add_no_bar() {
        let absurd = PipelineOptions { width_height_ratio: 1e-30, ..options() };
        assert_eq!(prepare_page(&RgbImage::new(900, 100), &absurd).unwrap().image.dimensions(), (900, 100));
    }

    #[test]
    fn an_empty_image_has_no_page() {
        assert!(prepare_page(&RgbImage::new(0, 0), &options()).is_none());
    }
}

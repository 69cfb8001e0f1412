//! The detector's input: the page scaled as rapidocr's `DetPreProcess` does (bounded by
//! `limitSideLen`, each side rounded to a multiple of 32), normalised, planar.

use image::RgbImage;

use crate::image::resize::resize_to_u8_values;
use crate::input::chw::normalized_chw;
use crate::params::{ColorOrder, DetectorConfig, LimitType};

/// A page prepared for the detector: `3 × height × width` floats (CHW, model channel order).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInput {
    pub data: Vec<f32>,
    pub width: u32,
    pub height: u32,
    /// Input pixels per page pixel, horizontally and vertically.
    pub scale_x: f32,
    pub scale_y: f32,
}

/// Longest side of a detector input, as PaddleOCR 3's `max_side_limit`.
pub const MAX_INPUT_SIDE: u32 = 4000;

/// `(width, height)` of the detector input for a `width × height` page.
///
/// `LimitType::Min` scales the page up until its shorter side is `limit_side_len` (never
/// down); `LimitType::Max` scales it down until its longer side is (never up). The longer
/// side is then capped at [`MAX_INPUT_SIDE`]. Then each side is truncated to whole pixels
/// and rounded to a multiple of `multiple_of`.
pub(crate) fn detector_input_size(width: u32, height: u32, config: &DetectorConfig) -> (u32, u32) {
    let limit = f64::from(config.limit_side_len);
    let ratio = match config.limit_type {
        LimitType::Min if f64::from(width.min(height)) < limit => limit / f64::from(width.min(height)),
        LimitType::Max if f64::from(width.max(height)) > limit => limit / f64::from(width.max(height)),
        _ => 1.0,
    };
    // rapidocr 1.4.4 has no cap: `min` scaled a 32 × 1984 page (a 2 × 1000 strip) to a
    // 736 × 45632 input, 400 MB of floats before the model's activations (found by fuzz/).
    let ratio = ratio.min(f64::from(MAX_INPUT_SIDE) / f64::from(width.max(height)));
    (scaled_side(width, ratio, config.multiple_of), scaled_side(height, ratio, config.multiple_of))
}

/// `side × ratio`, truncated, then rounded to a multiple of `multiple` with Python's
/// `round` (ties to even: 752 / 32 = 23.5 → 768 but 720 / 32 = 22.5 → 704). At least one
/// multiple, where rapidocr would fail on a zero-sized resize.
pub(crate) fn scaled_side(side: u32, ratio: f64, multiple: u32) -> u32 {
    let multiple = multiple.max(1);
    let truncated = (f64::from(side) * ratio).trunc();
    let rounded = (truncated / f64::from(multiple)).round_ties_even() * f64::from(multiple);
    // Float-to-int `as` saturates, so huge or NaN ratios cannot wrap.
    (rounded as u32).max(multiple)
}

/// The detector input for `page`; `None` when the page has no pixels.
pub(crate) fn detector_input(
    page: &RgbImage,
    config: &DetectorConfig,
    color_order: ColorOrder,
) -> Option<DetectorInput> {
    if page.width() == 0 || page.height() == 0 {
        return None;
    }
    let (width, height) = detector_input_size(page.width(), page.height(), config);
    let values = resize_to_u8_values(page, width, height);
    let data =
        normalized_chw(&values, width as usize, height as usize, width as usize, &config.normalization, color_order);
    Some(DetectorInput {
        data,
        width,
        height,
        scale_x: width as f32 / page.width() as f32,
        scale_y: height as f32 / page.height() as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Normalization;
    use image::Rgb;

    fn config(limit_type: LimitType, limit_side_len: u32) -> DetectorConfig {
        DetectorConfig {
            limit_side_len,
            limit_type,
            normalization: Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 },
            multiple_of: 32,
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
            use_dilation: true,
        }
    }

    #[test]
    fn rounding_to_32_is_half_to_even() {
        assert_eq!(scaled_side(752, 1.0, 32), 768); // 23.5 → 24
        assert_eq!(scaled_side(720, 1.0, 32), 704); // 22.5 → 22
        assert_eq!(scaled_side(736, 1.0, 32), 736);
        assert_eq!(scaled_side(767, 1.0, 32), 768);
        assert_eq!(scaled_side(15, 1.0, 32), 32, "never zero");
        assert_eq!(scaled_side(100, f64::NAN, 32), 32);
    }

    #[test]
    fn scaled_sides_are_truncated_before_rounding() {
        // 50 × (736 / 20) is 1839.999… in floating point, as in Python: int() gives 1839,
        // which rounds to 57 × 32 (exact 1840 would round half-to-even to 58 × 32).
        assert_eq!(detector_input_size(50, 20, &config(LimitType::Min, 736)), (1824, 736));
        // 500 × 736/300 = 1226.67 → 1226 → 38.3 → 1216.
        assert_eq!(scaled_side(500, 736.0 / 300.0, 32), 1216);
    }

    #[test]
    fn min_limit_scales_the_short_side_up_but_never_down() {
        let min = config(LimitType::Min, 736);
        assert_eq!(detector_input_size(500, 300, &min), (1216, 736));
        assert_eq!(detector_input_size(1000, 800, &min), (992, 800));
    }

    #[test]
    fn max_limit_scales_the_long_side_down_but_never_up() {
        let max = config(LimitType::Max, 960);
        assert_eq!(detector_input_size(1920, 1080, &max), (960, 544)); // 540 → 16.875 → 17
        assert_eq!(detector_input_size(500, 300, &max), (512, 288)); // 9.375 → 9
    }

    #[test]
    fn the_longer_side_is_capped() {
        assert_eq!(detector_input_size(32, 1984, &config(LimitType::Min, 736)), (64, 4000));
        assert_eq!(detector_input_size(1984, 32, &config(LimitType::Min, 736)), (4000, 64));
        assert_eq!(detector_input_size(8000, 6000, &config(LimitType::Max, 9000)), (4000, 3008));
    }

    #[test]
    fn input_is_normalised_bgr_at_the_rounded_size() {
        let page = RgbImage::from_pixel(40, 20, Rgb([255, 0, 51]));
        let input = detector_input(&page, &config(LimitType::Max, 960), ColorOrder::Bgr).unwrap();
        assert_eq!((input.width, input.height), (32, 32));
        assert_eq!(input.data.len(), 3 * 32 * 32);
        assert_eq!((input.scale_x, input.scale_y), (0.8, 1.6));
        let plane = 32 * 32;
        let blue = (51.0 / 255.0 - 0.5) / 0.5;
        assert!(input.data[..plane].iter().all(|&v| (v - blue).abs() < 1e-6));
        assert!(input.data[plane..2 * plane].iter().all(|&v| v == -1.0));
        assert!(input.data[2 * plane..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn an_empty_page_has_no_input() {
        assert!(detector_input(&RgbImage::new(0, 10), &config(LimitType::Min, 736), ColorOrder::Bgr).is_none());
    }
}

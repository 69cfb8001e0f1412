//! Turning text-line crops into recogniser input: scale to the model's height keeping the
//! aspect ratio, normalise, lay out as CHW in the model's channel order, pad on the right.

use image::RgbImage;

use crate::error::VisionError;
use crate::image::resize::resize_bilinear;
use crate::input::chw::normalized_chw;
use crate::params::{ColorOrder, Normalization};

/// Widest recogniser input line, as PaddleOCR 3's `max_imgW`: longer lines are squeezed.
pub const MAX_LINE_WIDTH: u32 = 3200;

/// Width a line is scaled to at `height`, keeping its aspect ratio (at least 1 pixel, at
/// most [`MAX_LINE_WIDTH`]).
pub fn scaled_width(width: u32, height: u32, target_height: u32) -> u32 {
    let scaled = (f64::from(target_height) * f64::from(width) / f64::from(height)).ceil();
    // rapidocr 1.4.4 has no cap: a 20000 × 1 LINE image (within the default decode limits)
    // became a 3 × 48 × 960000 input, 553 MB of floats before the model's activations
    // (found by fuzz/).
    (scaled as u32).clamp(1, MAX_LINE_WIDTH)
}

/// Input width for a batch: the widest scaled line, never narrower than the model's default.
pub fn batch_width<'a>(lines: impl IntoIterator<Item = &'a RgbImage>, target_height: u32, default_width: u32) -> u32 {
    lines.into_iter().map(|line| scaled_width(line.width(), line.height(), target_height)).fold(default_width, u32::max)
}

/// Writes one line as `3 × target_height × batch_width` floats (CHW), scaled, normalised and
/// zero-padded on the right (zero is what the reference pipeline pads with, after
/// normalisation).
pub fn line_tensor_data(
    line: &RgbImage,
    target_height: u32,
    batch_width: u32,
    normalization: &Normalization,
    color_order: ColorOrder,
) -> Result<Vec<f32>, VisionError> {
    if line.width() == 0 || line.height() == 0 {
        return Err(VisionError::PrepareLine { width: line.width(), height: line.height() });
    }
    let resized_width = scaled_width(line.width(), line.height(), target_height).min(batch_width);
    // Unlike the detector and classifier inputs, the line is not rounded to 8-bit values
    // after resizing.
    let resized = resize_bilinear(line, resized_width, target_height);
    Ok(normalized_chw(
        &resized,
        resized_width as usize,
        target_height as usize,
        batch_width as usize,
        normalization,
        color_order,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const HALF: Normalization = Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 };

    #[test]
    fn width_keeps_aspect_ratio_rounding_up() {
        assert_eq!(scaled_width(100, 32, 48), 150);
        assert_eq!(scaled_width(101, 32, 48), 152); // 151.5 → 152
        assert_eq!(scaled_width(1, 1000, 48), 1);
    }

    #[test]
    fn batch_width_is_the_widest_line_but_never_below_the_default() {
        let short = RgbImage::new(10, 10);
        let long = RgbImage::new(500, 10);
        assert_eq!(batch_width([&short], 48, 320), 320);
        assert_eq!(batch_width([&short, &long], 48, 320), 2400);
    }

    #[test]
    fn an_extremely_long_line_is_squeezed_to_the_max_width() {
        let line = RgbImage::new(20_000, 1);
        assert_eq!(scaled_width(20_000, 1, 48), MAX_LINE_WIDTH);
        assert_eq!(batch_width([&line], 48, 320), MAX_LINE_WIDTH);
        let data = line_tensor_data(&line, 48, MAX_LINE_WIDTH, &HALF, ColorOrder::Bgr).unwrap();
        assert_eq!(data.len(), 3 * 48 * MAX_LINE_WIDTH as usize);
    }

    #[test]
    fn tensor_is_bgr_normalised_and_zero_padded() {
        let line = RgbImage::from_pixel(4, 2, Rgb([255, 0, 51]));
        let data = line_tensor_data(&line, 2, 6, &HALF, ColorOrder::Bgr).unwrap();
        let plane = 2 * 6;
        // Scaled to 4 wide (same height), then padded to 6.
        let blue = (51.0 / 255.0 - 0.5) / 0.5;
        assert!((data[0] - blue).abs() < 1e-6, "channel 0 is blue: {}", data[0]);
        assert!((data[plane] - -1.0).abs() < 1e-6, "channel 1 is green");
        assert!((data[2 * plane] - 1.0).abs() < 1e-6, "channel 2 is red");
        assert_eq!(data[4], 0.0, "padding column");
        assert_eq!(data[5], 0.0, "padding column");
        assert_eq!(data.len(), 3 * plane);
    }

    #[test]
    fn an_empty_crop_is_an_error_not_a_panic() {
        let empty = RgbImage::new(0, 5);
        assert!(line_tensor_data(&empty, 48, 320, &HALF, ColorOrder::Bgr).is_err());
    }
}

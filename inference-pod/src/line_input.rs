//! Turning text-line crops into recogniser input: scale to the model's height keeping the
//! aspect ratio, normalise, lay out as CHW in the model's channel order, pad on the right.
//!
//! Resampling is bilinear with pixel centres aligned (the convention of OpenCV's
//! `INTER_LINEAR`, which the PaddleOCR models were trained and exported with), so our input
//! matches the reference pipeline's closely.

use image::RgbImage;

use crate::InferenceError;
use crate::bundle::{ColorOrder, Normalization};

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
) -> Result<Vec<f32>, InferenceError> {
    if line.width() == 0 || line.height() == 0 {
        return Err(InferenceError::PrepareLine { reason: format!("empty crop {}x{}", line.width(), line.height()) });
    }
    let resized_width = scaled_width(line.width(), line.height(), target_height).min(batch_width);
    let plane = target_height as usize * batch_width as usize;
    let mut data = vec![0.0f32; 3 * plane];
    let resized = resize_bilinear(line, resized_width, target_height);
    for y in 0..target_height as usize {
        for x in 0..resized_width as usize {
            let rgb = &resized[(y * resized_width as usize + x) * 3..][..3];
            for (channel, &source) in channel_sources(color_order).iter().enumerate() {
                let value = rgb[source] * normalization.scale;
                data[channel * plane + y * batch_width as usize + x] =
                    (value - normalization.mean[channel]) / normalization.std[channel];
            }
        }
    }
    Ok(data)
}

/// For each model channel, which RGB channel feeds it.
fn channel_sources(order: ColorOrder) -> [usize; 3] {
    match order {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    }
}

/// Bilinear resize to `width × height`, interleaved RGB floats in 0..=255.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> Vec<f32> {
    let (src_w, src_h) = (image.width() as usize, image.height() as usize);
    let (dst_w, dst_h) = (width as usize, height as usize);
    let x_taps: Vec<(usize, usize, f32)> = (0..dst_w).map(|x| taps(x, src_w, dst_w)).collect();
    let mut out = Vec::with_capacity(dst_w * dst_h * 3);
    let raw = image.as_raw();
    for y in 0..dst_h {
        let (y0, y1, fy) = taps(y, src_h, dst_h);
        for &(x0, x1, fx) in &x_taps {
            for c in 0..3 {
                let at = |xx: usize, yy: usize| f32::from(raw[(yy * src_w + xx) * 3 + c]);
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    out
}

/// Source pixels and weight for destination index `i` with centres aligned.
fn taps(i: usize, src: usize, dst: usize) -> (usize, usize, f32) {
    let scale = src as f32 / dst as f32;
    let pos = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (pos.floor() as usize).min(src - 1);
    let i1 = (i0 + 1).min(src - 1);
    (i0, i1, pos - i0 as f32)
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
    fn upscaling_a_constant_image_keeps_the_constant() {
        let image = RgbImage::from_pixel(3, 2, Rgb([10, 20, 30]));
        let out = resize_bilinear(&image, 7, 5);
        assert_eq!(out.len(), 7 * 5 * 3);
        assert!(out.chunks(3).all(|p| p == [10.0, 20.0, 30.0]));
    }

    #[test]
    fn downscaling_by_two_averages_pixel_pairs() {
        // Centre-aligned 2:1 sampling lands exactly between source pixels 0 and 1.
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, Rgb([0, 0, 0]));
        image.put_pixel(1, 0, Rgb([200, 100, 50]));
        assert_eq!(resize_bilinear(&image, 1, 1), vec![100.0, 50.0, 25.0]);
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

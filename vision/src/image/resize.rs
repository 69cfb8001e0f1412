//! Bilinear resampling with pixel centres aligned: the convention of OpenCV's
//! `INTER_LINEAR`, which the PaddleOCR models were trained and exported with, so our model
//! inputs match the reference pipeline's closely.

use image::RgbImage;

/// Bilinear resize to `width × height`, interleaved RGB floats in 0..=255.
pub(crate) fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> Vec<f32> {
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

/// Bilinear resize to whole 8-bit values, interleaved RGB: `cv2.resize` of a `uint8`
/// image rounds its result, and the reference pipeline normalises those rounded values.
pub(crate) fn resize_to_u8_values(image: &RgbImage, width: u32, height: u32) -> Vec<f32> {
    let mut values = resize_bilinear(image, width, height);
    for value in &mut values {
        *value = value.round().clamp(0.0, 255.0);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

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
    fn resized_values_are_whole_numbers() {
        // Halving [0, 255, 0, 0] gives 127.5 and 0 before rounding.
        let mut image = RgbImage::new(4, 1);
        image.put_pixel(1, 0, Rgb([255, 255, 255]));
        let values = resize_to_u8_values(&image, 2, 1);
        assert_eq!(values, [128.0, 128.0, 128.0, 0.0, 0.0, 0.0]);
    }
}

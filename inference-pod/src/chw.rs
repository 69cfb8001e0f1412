//! Shared image-to-tensor steps of the detector and classifier inputs: an 8-bit bilinear
//! resize and per-channel normalisation into planar (CHW) floats.

use image::RgbImage;

use crate::bundle::{ColorOrder, Normalization};
use crate::line_input::resize_bilinear;

/// Bilinear resize (OpenCV `INTER_LINEAR` conventions) to whole 8-bit values, interleaved
/// RGB: `cv2.resize` of a `uint8` image rounds its result, and the reference pipeline
/// normalises those rounded values.
pub(crate) fn resize_to_u8_values(image: &RgbImage, width: u32, height: u32) -> Vec<f32> {
    let mut values = resize_bilinear(image, width, height);
    for value in &mut values {
        *value = value.round().clamp(0.0, 255.0);
    }
    values
}

/// Interleaved RGB values (`width × height`) as `3 × height × padded_width` floats in the
/// model's channel order, each `(value * scale - mean) / std`, zero beyond `width`.
pub(crate) fn normalized_chw(
    rgb: &[f32],
    width: usize,
    height: usize,
    padded_width: usize,
    normalization: &Normalization,
    color_order: ColorOrder,
) -> Vec<f32> {
    let plane = height * padded_width;
    let mut data = vec![0.0f32; 3 * plane];
    let sources = match color_order {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    for (index, pixel) in rgb.chunks_exact(3).take(width * height).enumerate() {
        let (x, y) = (index % width, index / width);
        if x >= padded_width {
            continue;
        }
        for (channel, &source) in sources.iter().enumerate() {
            data[channel * plane + y * padded_width + x] =
                (pixel[source] * normalization.scale - normalization.mean[channel]) / normalization.std[channel];
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn resized_values_are_whole_numbers() {
        // Halving [0, 255, 0, 0] gives 127.5 and 0 before rounding.
        let mut image = RgbImage::new(4, 1);
        image.put_pixel(1, 0, Rgb([255, 255, 255]));
        let values = resize_to_u8_values(&image, 2, 1);
        assert_eq!(values, [128.0, 128.0, 128.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn channels_follow_the_colour_order_and_padding_is_zero() {
        let normalization = Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 };
        let rgb = [255.0, 0.0, 51.0, 255.0, 0.0, 51.0];
        let data = normalized_chw(&rgb, 2, 1, 3, &normalization, ColorOrder::Bgr);
        let blue = (51.0 / 255.0 - 0.5) / 0.5;
        assert_eq!(data.len(), 9);
        assert!((data[0] - blue).abs() < 1e-6 && (data[1] - blue).abs() < 1e-6);
        assert_eq!(data[2], 0.0);
        assert_eq!(&data[3..6], &[-1.0, -1.0, 0.0]);
        assert_eq!(&data[6..9], &[1.0, 1.0, 0.0]);
        let rgb_order = normalized_chw(&rgb, 2, 1, 3, &normalization, ColorOrder::Rgb);
        assert_eq!(rgb_order[0], 1.0);
    }
}

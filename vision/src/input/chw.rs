//! Per-channel normalisation into planar (CHW) floats, the layout every model input shares.

use crate::params::{ColorOrder, Normalization};

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
    let sources = color_order.rgb_sources();
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

//! The direction classifier's input, as rapidocr's `TextClassifier.resize_norm_img`.

use image::RgbImage;

use crate::image::resize::resize_to_u8_values;
use crate::input::chw::normalized_chw;
use crate::params::{ClassifierConfig, ColorOrder};

/// Width a `width × height` crop is scaled to at the classifier's input height:
/// `ceil(height_in × width / height)`, at most the input width.
pub(crate) fn classifier_scaled_width(width: u32, height: u32, config: &ClassifierConfig) -> u32 {
    let [_, input_height, input_width] = config.input_shape;
    let scaled = (f64::from(input_height) * (f64::from(width) / f64::from(height))).ceil();
    if scaled > f64::from(input_width) { input_width } else { scaled as u32 }
}

/// The crop as `3 × height × width` floats (`input_shape`): scaled to the input height
/// keeping its aspect ratio, normalised, zero to the right. `None` for an empty crop.
pub fn classifier_input(crop: &RgbImage, config: &ClassifierConfig, color_order: ColorOrder) -> Option<Vec<f32>> {
    if crop.width() == 0 || crop.height() == 0 {
        return None;
    }
    let [_, height, width] = config.input_shape;
    let scaled_width = classifier_scaled_width(crop.width(), crop.height(), config);
    let values = resize_to_u8_values(crop, scaled_width, height);
    Some(normalized_chw(
        &values,
        scaled_width as usize,
        height as usize,
        width as usize,
        &config.normalization,
        color_order,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Normalization;
    use image::Rgb;

    fn config() -> ClassifierConfig {
        ClassifierConfig {
            input_shape: [3, 48, 192],
            normalization: Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 },
            threshold: 0.9,
            labels: vec!["0".into(), "180".into()],
        }
    }

    #[test]
    fn width_keeps_the_aspect_ratio_rounding_up_and_is_capped() {
        assert_eq!(classifier_scaled_width(100, 48, &config()), 100);
        assert_eq!(classifier_scaled_width(101, 32, &config()), 152); // 151.5 → 152
        assert_eq!(classifier_scaled_width(1000, 48, &config()), 192);
        assert_eq!(classifier_scaled_width(1, 300, &config()), 1);
    }

    #[test]
    fn input_is_scaled_normalised_and_zero_padded() {
        let crop = RgbImage::from_pixel(50, 24, Rgb([255, 0, 51]));
        let data = classifier_input(&crop, &config(), ColorOrder::Bgr).unwrap();
        assert_eq!(data.len(), 3 * 48 * 192);
        let plane = 48 * 192;
        let blue = (51.0 / 255.0 - 0.5) / 0.5;
        // 100 columns of content (50 × 48/24), then zeros, in every row and channel.
        for y in [0, 47] {
            assert!((data[y * 192 + 99] - blue).abs() < 1e-6);
            assert_eq!(data[y * 192 + 100], 0.0);
            assert_eq!(data[plane + y * 192 + 99], -1.0);
            assert_eq!(data[2 * plane + y * 192 + 99], 1.0);
            assert_eq!(data[2 * plane + y * 192 + 191], 0.0);
        }
    }

    #[test]
    fn an_empty_crop_has_no_input() {
        assert!(classifier_input(&RgbImage::new(0, 48), &config(), ColorOrder::Bgr).is_none());
    }
}

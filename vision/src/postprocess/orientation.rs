//! What the direction classifier's output means for a crop: turn it half a turn or not.

use image::RgbImage;

/// The label whose winning probability means "upside down".
const UPSIDE_DOWN: &str = "180";

/// Whether the classifier says the crop is upside down: the most probable label (the first
/// on ties) is "180" and its probability exceeds `threshold`. Never with a NaN output
/// (numpy's argmax picks the NaN, which exceeds nothing).
pub fn should_rotate(probabilities: &[f32], labels: &[String], threshold: f32) -> bool {
    if probabilities.iter().any(|p| p.is_nan()) {
        return false;
    }
    let best = probabilities.iter().enumerate().fold(None, |best: Option<(usize, f32)>, (index, &p)| match best {
        Some((_, top)) if top >= p => best,
        _ => Some((index, p)),
    });
    best.is_some_and(|(index, p)| labels.get(index).is_some_and(|label| label.contains(UPSIDE_DOWN)) && p > threshold)
}

/// The crop turned half a turn (`cv2.rotate(img, ROTATE_180)`).
pub fn rotate_half_turn(crop: &RgbImage) -> RgbImage {
    image::imageops::rotate180(crop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// The PP-OCR classifier's labels.
    fn labels() -> Vec<String> {
        vec!["0".into(), "180".into()]
    }

    #[test]
    fn rotate_only_when_180_wins_above_the_threshold() {
        let labels = labels();
        assert!(should_rotate(&[0.05, 0.95], &labels, 0.9));
        assert!(!should_rotate(&[0.15, 0.85], &labels, 0.9), "below threshold");
        assert!(!should_rotate(&[0.1, 0.9], &labels, 0.9), "must exceed, not equal");
        assert!(!should_rotate(&[0.95, 0.05], &labels, 0.5), "0 wins");
        assert!(!should_rotate(&[0.5, 0.5], &labels, 0.4), "ties go to the first label");
    }

    #[test]
    fn odd_outputs_never_rotate() {
        let labels = labels();
        assert!(!should_rotate(&[], &labels, 0.9));
        assert!(!should_rotate(&[f32::NAN, f32::NAN], &labels, 0.9));
        assert!(!should_rotate(&[0.0, 0.0, 0.99], &labels, 0.9), "no label for the winner");
        assert!(!should_rotate(&[f32::NAN, 0.99], &labels, 0.9));
    }

    #[test]
    fn half_turn_swaps_opposite_corners() {
        let mut crop = RgbImage::new(3, 2);
        crop.put_pixel(0, 0, Rgb([1, 2, 3]));
        let turned = rotate_half_turn(&crop);
        assert_eq!(turned.get_pixel(2, 1), &Rgb([1, 2, 3]));
        assert_eq!(turned.get_pixel(0, 0), &Rgb([0, 0, 0]));
    }
}

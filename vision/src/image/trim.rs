//! The tight text crop of a line image: its margins cut down to a fixed share of the text
//! height, so that the direction classifier sees what it was trained on.
//!
//! The classifier learnt from detector crops, which hug the text. A whole LINE image comes
//! with whatever margins its sender left, and the classifier squeezes the image into
//! 192 × 48, so wide margins change what it sees: on the golden set it calls 3 of the 80
//! upright lines upside down with p up to 0.97 (onnxruntime agrees). On the same lines
//! trimmed to margins of 0.3 × the text height it gives upright lines at most p = 0.25,
//! and 76 of the 80 turned lines more than 0.9 (`docs/inference-pod.md`).

use image::RgbImage;

/// How far a pixel's grey value must be from the background's to count as ink: above
/// scanner noise and JPEG ringing, below the contrast of any readable text.
const INK_CONTRAST: u8 = 48;

/// The margin kept around the text on each side, as a share of the text's height (the
/// value that separated upright from turned golden lines best, from 0, 0.15, 0.3, 0.6).
const MARGIN_PER_TEXT_HEIGHT: f64 = 0.3;

/// `line` cut to the bounding box of its ink plus a margin of 0.3 × the ink's height on
/// every side (within the image). The background is the median grey of the border pixels,
/// so dark-on-light and light-on-dark lines both work. Returns the image unchanged when it
/// has no ink (nothing to cut to) or is empty.
pub fn trim_margins(line: &RgbImage) -> RgbImage {
    let Some((left, top, right, bottom)) = ink_bounds(line) else {
        return line.clone();
    };
    let margin = (MARGIN_PER_TEXT_HEIGHT * f64::from(bottom - top)).round() as u32;
    let left = left.saturating_sub(margin);
    let top = top.saturating_sub(margin);
    let right = right.saturating_add(margin).min(line.width());
    let bottom = bottom.saturating_add(margin).min(line.height());
    image::imageops::crop_imm(line, left, top, right - left, bottom - top).to_image()
}

/// The smallest box (left, top, right, bottom; right and bottom exclusive) holding every
/// ink pixel, or `None` when there is none.
fn ink_bounds(line: &RgbImage) -> Option<(u32, u32, u32, u32)> {
    let (width, height) = line.dimensions();
    if width == 0 || height == 0 {
        return None;
    }
    let grey = |x: u32, y: u32| {
        let [r, g, b] = line.get_pixel(x, y).0;
        ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
    };
    let background = border_median(width, height, grey);
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    for y in 0..height {
        for x in 0..width {
            if grey(x, y).abs_diff(background) > INK_CONTRAST {
                let (left, top, right, bottom) = bounds.unwrap_or((x, y, x + 1, y + 1));
                bounds = Some((left.min(x), top.min(y), right.max(x + 1), bottom.max(y + 1)));
            }
        }
    }
    bounds
}

/// The median grey value of the outermost rows and columns.
fn border_median(width: u32, height: u32, grey: impl Fn(u32, u32) -> u8) -> u8 {
    let mut counts = [0u64; 256];
    for x in 0..width {
        counts[usize::from(grey(x, 0))] += 1;
        counts[usize::from(grey(x, height - 1))] += 1;
    }
    for y in 0..height {
        counts[usize::from(grey(0, y))] += 1;
        counts[usize::from(grey(width - 1, y))] += 1;
    }
    let half = counts.iter().sum::<u64>().div_ceil(2);
    let mut seen = 0;
    for (value, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= half {
            return value as u8;
        }
    }
    u8::MAX
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A `width x height` line of `paper` with a block of `ink` at x in 40..80, y in 20..30.
    fn line(width: u32, height: u32, paper: u8, ink: u8) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let value = if (40..80).contains(&x) && (20..30).contains(&y) { ink } else { paper };
            Rgb([value; 3])
        })
    }

    #[test]
    fn margins_shrink_to_a_share_of_the_text_height() {
        // Text 10 px high: 3 px of margin on each side.
        let trimmed = trim_margins(&line(200, 60, 250, 10));
        assert_eq!(trimmed.dimensions(), (46, 16));
        assert_eq!(trimmed.get_pixel(3, 3), &Rgb([10; 3]), "the ink starts after the margin");
        assert_eq!(trimmed.get_pixel(2, 2), &Rgb([250; 3]));
    }

    #[test]
    fn light_text_on_a_dark_background_is_trimmed_the_same() {
        assert_eq!(trim_margins(&line(200, 60, 5, 240)).dimensions(), (46, 16));
    }

    #[test]
    fn the_margin_stops_at_the_image_edge() {
        let trimmed = trim_margins(&line(82, 31, 250, 10));
        assert_eq!(trimmed.dimensions(), (82 - 37, 31 - 17));
    }

    #[test]
    fn faint_noise_is_not_ink() {
        let noisy = RgbImage::from_fn(200, 60, |x, y| {
            let base = line(200, 60, 240, 20).get_pixel(x, y).0[0];
            Rgb([base.saturating_add(((x * 7 + y * 13) % 40) as u8); 3])
        });
        assert_eq!(trim_margins(&noisy).dimensions(), (46, 16));
    }

    #[test]
    fn a_blank_or_empty_image_is_left_as_it_is() {
        let blank = RgbImage::from_pixel(30, 10, Rgb([200; 3]));
        assert_eq!(trim_margins(&blank), blank);
        assert_eq!(trim_margins(&RgbImage::new(0, 0)).dimensions(), (0, 0));
    }
}

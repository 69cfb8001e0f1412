//! Perspective warp of an RGB image with bicubic sampling, reproducing OpenCV 5's
//! `warpPerspective(..., INTER_CUBIC, BORDER_REPLICATE)` on 8-bit images (the version the
//! reference pipeline runs): each output pixel samples the source at its exact mapped
//! position with Keys cubic weights (a = −0.75), edge pixels repeated outwards, and the
//! result rounded to 8 bits. (OpenCV 4 rounded positions to 1/32 pixel first; OpenCV 5
//! does not, and matches this to within 1 on a rare pixel.)

use image::{Rgb, RgbImage};

/// Maps output pixel positions to source positions: `(x, y) ↦ (a·p / c·p, b·p / c·p)`
/// with `p = (x, y, 1)`, rows `a, b, c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Homography([[f64; 3]; 3]);

impl Homography {
    /// The map from the rectangle `(0,0) (w,0) (w,h) (0,h)` onto `corners` (same order),
    /// i.e. the inverse of `cv2.getPerspectiveTransform(corners, rectangle)`; `None` when
    /// the corners are degenerate (three in a line) or not finite.
    pub fn from_rectangle(width: f64, height: f64, corners: [(f64, f64); 4]) -> Option<Self> {
        let [(x0, y0), (x1, y1), (x2, y2), (x3, y3)] = corners;
        // Unit square → quad (Heckbert's closed form), then scale the square to w × h.
        let (sx, sy) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
        let (dx1, dx2, dy1, dy2) = (x1 - x2, x3 - x2, y1 - y2, y3 - y2);
        let det = dx1 * dy2 - dx2 * dy1;
        let (g, h) = if sx == 0.0 && sy == 0.0 {
            (0.0, 0.0)
        } else {
            ((sx * dy2 - dx2 * sy) / det, (dx1 * sy - sx * dy1) / det)
        };
        let unit = [[x1 - x0 + g * x1, x3 - x0 + h * x3, x0], [y1 - y0 + g * y1, y3 - y0 + h * y3, y0], [g, h, 1.0]];
        let scaled = unit.map(|[a, b, c]| [a / width, b / height, c]);
        let finite = scaled.iter().flatten().all(|v| v.is_finite());
        (finite && width > 0.0 && height > 0.0).then_some(Self(scaled))
    }

    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c] = self.0;
        let w = c[0] * x + c[1] * y + c[2];
        ((a[0] * x + a[1] * y + a[2]) / w, (b[0] * x + b[1] * y + b[2]) / w)
    }
}

/// `width × height` image whose pixel `(x, y)` samples `source` at `map(x, y)`.
pub(crate) fn warp_perspective(source: &RgbImage, map: &Homography, width: u32, height: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    if source.width() == 0 || source.height() == 0 {
        return out;
    }
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let (sx, sy) = map.apply(f64::from(x), f64::from(y));
        // A point mapped to infinity (or NaN) takes the nearest corner, never a panic.
        let (sx, sy) = (finite_or_zero(sx), finite_or_zero(sy));
        *pixel = sample_cubic(source, sx, sy);
    }
    out
}

fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

/// Bicubic sample at `(x, y)`: the 4×4 pixels around it, edge pixels repeated.
fn sample_cubic(source: &RgbImage, x: f64, y: f64) -> Rgb<u8> {
    let (left, top) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - left), cubic_weights(y - top));
    // Saturating casts keep far-away positions on the border.
    let (left, top) = ((left as i64).saturating_sub(1), (top as i64).saturating_sub(1));
    let clamp = |v: i64, size: u32| v.clamp(0, i64::from(size) - 1) as u32;
    let mut sums = [0.0f64; 3];
    for (row, weight_y) in wy.iter().enumerate() {
        let source_y = clamp(top.saturating_add(row as i64), source.height());
        let mut row_sums = [0.0f64; 3];
        for (column, weight_x) in wx.iter().enumerate() {
            let pixel = source.get_pixel(clamp(left.saturating_add(column as i64), source.width()), source_y);
            for (sum, &value) in row_sums.iter_mut().zip(&pixel.0) {
                *sum += weight_x * f64::from(value);
            }
        }
        for (sum, row_sum) in sums.iter_mut().zip(row_sums) {
            *sum += weight_y * row_sum;
        }
    }
    Rgb(sums.map(|sum| sum.round_ties_even().clamp(0.0, 255.0) as u8))
}

/// Keys cubic convolution weights for the taps at −1, 0, 1, 2 around fraction `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([(x * 7 + y * 3) as u8, (x * 2) as u8, (y * 5) as u8]))
    }

    #[test]
    fn weights_sum_to_one_and_whole_positions_take_the_pixel() {
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        let half = cubic_weights(0.5);
        assert!((half.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Keys with a = -0.75 at the midpoint: -0.09375, 0.59375, 0.59375, -0.09375.
        assert!((half[0] + 0.09375).abs() < 1e-12 && (half[1] - 0.59375).abs() < 1e-12);
    }

    #[test]
    fn far_or_infinite_positions_take_border_pixels() {
        let source = gradient(5, 4);
        assert_eq!(sample_cubic(&source, -1e30, 1e30), *source.get_pixel(0, 3));
        let flat = RgbImage::from_pixel(3, 3, Rgb([7, 8, 9]));
        let map = Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]);
        assert_eq!(warp_perspective(&flat, &map, 2, 2), RgbImage::from_pixel(2, 2, Rgb([7, 8, 9])));
    }

    #[test]
    fn identity_map_copies_the_image() {
        let source = gradient(12, 9);
        let map = Homography::from_rectangle(12.0, 9.0, [(0.0, 0.0), (12.0, 0.0), (12.0, 9.0), (0.0, 9.0)]).unwrap();
        assert_eq!(warp_perspective(&source, &map, 12, 9), source);
    }

    #[test]
    fn homography_sends_rectangle_corners_to_the_quad() {
        let quad = [(3.0, 2.0), (40.0, 5.0), (38.0, 30.0), (1.0, 22.0)];
        let map = Homography::from_rectangle(20.0, 10.0, quad).unwrap();
        for ((x, y), expected) in [(0.0, 0.0), (20.0, 0.0), (20.0, 10.0), (0.0, 10.0)].into_iter().zip(quad) {
            let (u, v) = map.apply(x, y);
            assert!((u - expected.0).abs() < 1e-9 && (v - expected.1).abs() < 1e-9, "{u},{v} vs {expected:?}");
        }
    }

    #[test]
    fn degenerate_quads_have_no_homography() {
        assert!(Homography::from_rectangle(10.0, 10.0, [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]).is_none());
        assert!(Homography::from_rectangle(0.0, 10.0, [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).is_none());
    }
}

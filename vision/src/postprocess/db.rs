//! From the detector's probability map to scored text boxes, as rapidocr's `DBPostProcess`
//! (score mode "fast") followed by its `filter_tag_det_res`:
//! threshold (and dilate) the map, take each contour's minimum-area rectangle, score it by
//! the mean probability under it, grow it ("unclip"), scale it to the page and drop boxes
//! too small to read.

use crate::error::VisionError;
use crate::image::Quad;
use crate::image::contours::contour_hulls;
use crate::image::geometry::{Rectangle, distance, min_area_rect, mini_box_order, order_clockwise};
use crate::image::polygon_fill::fill_polygon;
use crate::params::DetectorConfig;

/// The detector's output for one image: text probability per pixel of its input, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilityMap {
    pub data: Vec<f32>,
    pub width: u32,
    pub height: u32,
}

/// A detected text box in page coordinates (whole pixels) and its mean text probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectedBox {
    pub quad: Quad,
    pub score: f32,
}

/// Boxes found in the detector's probability map (the size of the detector input), scaled
/// to the page the detector input was made from (`page_size`), in the order rapidocr
/// produces them (before reading order). Probabilities that are NaN count as 0.
pub fn detect_boxes(
    map: &ProbabilityMap,
    page_size: (u32, u32),
    config: &DetectorConfig,
) -> Result<Vec<DetectedBox>, VisionError> {
    let (page_width, page_height) = page_size;
    let (width, height) = (map.width as usize, map.height as usize);
    if width.checked_mul(height) != Some(map.data.len()) {
        return Err(VisionError::DetectBoxes { values: map.data.len(), width: map.width, height: map.height });
    }
    if map.data.is_empty() || page_width == 0 || page_height == 0 {
        return Ok(Vec::new());
    }
    let mut bitmap: Vec<bool> = map.data.iter().map(|&p| p > config.thresh).collect();
    if config.use_dilation {
        bitmap = dilate(&bitmap, width, height);
    }
    let min_size = f64::from(config.min_size);
    let box_thresh = as_written(config.box_thresh);
    let unclip_ratio = as_written(config.unclip_ratio);
    let mut boxes = Vec::new();
    for hull in contour_hulls(&bitmap, width, height).into_iter().take(config.max_candidates as usize) {
        let hull: Vec<(f64, f64)> = hull.into_iter().map(|(x, y)| (x as f64, y as f64)).collect();
        let Some(rect) = min_area_rect(&hull) else { continue };
        if rect.short_side() < min_size {
            continue;
        }
        let score = mean_under_quad(map, &mini_box_order(corners_f32(&rect)));
        if box_thresh > score {
            continue;
        }
        let grown = unclip(&rect, unclip_ratio);
        if grown.short_side() < min_size + 2.0 {
            continue;
        }
        let scale = |value: f32, from: usize, to: u32| {
            (value / from as f32 * to as f32).round_ties_even().clamp(0.0, to as f32)
        };
        let scaled = mini_box_order(corners_f32(&grown))
            .map(|(x, y)| (scale(x, width, page_width), scale(y, height, page_height)));
        // filter_tag_det_res: clockwise, inside the page, more than 3 pixels each way.
        let clip = |value: f32, size: u32| value.clamp(0.0, (size - 1) as f32).trunc();
        let quad = order_clockwise(scaled).map(|(x, y)| (clip(x, page_width), clip(y, page_height)));
        if distance(quad[0], quad[1]).trunc() <= 3.0 || distance(quad[0], quad[3]).trunc() <= 3.0 {
            continue;
        }
        boxes.push(DetectedBox { quad, score: score as f32 });
    }
    Ok(boxes)
}

/// Dilation with a 2×2 kernel anchored at its bottom-right cell (OpenCV's default anchor):
/// a pixel is set when it or its left, upper or upper-left neighbour is.
fn dilate(bitmap: &[bool], width: usize, height: usize) -> Vec<bool> {
    let at = |x: usize, y: usize| bitmap[y * width + x];
    (0..height)
        .flat_map(|y| {
            (0..width).map(move |x| {
                at(x, y) || (x > 0 && at(x - 1, y)) || (y > 0 && (at(x, y - 1) || (x > 0 && at(x - 1, y - 1))))
            })
        })
        .collect()
}

/// The "fast" box score: mean probability over the quad's pixels, rasterised as rapidocr
/// does (corners truncated to whole pixels within the quad's clipped bounding box, then
/// `fillPoly`). Zero when no pixel is covered, as `cv2.mean` gives.
fn mean_under_quad(map: &ProbabilityMap, quad: &Quad) -> f64 {
    let (width, height) = (map.width as i64, map.height as i64);
    let lowest = |values: [f32; 4]| values.into_iter().fold(f32::INFINITY, f32::min);
    let highest = |values: [f32; 4]| values.into_iter().fold(f32::NEG_INFINITY, f32::max);
    let (xs, ys) = (quad.map(|p| p.0), quad.map(|p| p.1));
    let x_min = (lowest(xs).floor() as i64).clamp(0, width - 1);
    let x_max = (highest(xs).ceil() as i64).clamp(0, width - 1);
    let y_min = (lowest(ys).floor() as i64).clamp(0, height - 1);
    let y_max = (highest(ys).ceil() as i64).clamp(0, height - 1);
    if x_max < x_min || y_max < y_min {
        return 0.0;
    }
    let vertices: Vec<(i64, i64)> =
        quad.iter().map(|&(x, y)| ((x - x_min as f32) as i64, (y - y_min as f32) as i64)).collect();
    let (window_width, window_height) = ((x_max - x_min + 1) as usize, (y_max - y_min + 1) as usize);
    let mask = fill_polygon(&vertices, window_width, window_height);
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (row, covered) in mask.chunks_exact(window_width).enumerate() {
        let start = (y_min as usize + row) * map.width as usize + x_min as usize;
        for (&value, _) in map.data[start..start + window_width].iter().zip(covered).filter(|(_, on)| **on) {
            sum += if value.is_nan() { 0.0 } else { f64::from(value) };
            count += 1;
        }
    }
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// Grows the box by `area × ratio / perimeter` on every side. rapidocr offsets the polygon
/// with pyclipper (round joins) and takes the minimum-area rectangle of the result; for a
/// rectangle that is exactly the rectangle grown by the distance, so it is computed
/// directly. pyclipper works in integers (corners truncated, offset vertices rounded half
/// away from zero), which moves upright boxes by up to half a pixel; that is reproduced for
/// them. For tilted boxes the rounding scatters around the exact answer used here.
fn unclip(rect: &Rectangle, ratio: f64) -> Rectangle {
    let perimeter = 2.0 * (rect.width + rect.height);
    if perimeter <= 0.0 {
        return *rect;
    }
    let grow = rect.width * rect.height * ratio / perimeter;
    if !rect.is_axis_aligned() {
        return Rectangle { width: rect.width + 2.0 * grow, height: rect.height + 2.0 * grow, ..*rect };
    }
    let corners = rect.corners();
    let extreme = |pick: fn(&(f64, f64)) -> f64, fold: fn(f64, f64) -> f64, start: f64| {
        corners.iter().map(pick).map(f64::trunc).fold(start, fold)
    };
    let left = (extreme(|c| c.0, f64::min, f64::MAX) - grow).round();
    let right = (extreme(|c| c.0, f64::max, f64::MIN) + grow).round();
    let top = (extreme(|c| c.1, f64::min, f64::MAX) - grow).round();
    let bottom = (extreme(|c| c.1, f64::max, f64::MIN) + grow).round();
    Rectangle {
        center: ((left + right) / 2.0, (top + bottom) / 2.0),
        axis: (1.0, 0.0),
        width: right - left,
        height: bottom - top,
    }
}

fn corners_f32(rect: &Rectangle) -> [(f32, f32); 4] {
    rect.corners().map(|(x, y)| (x as f32, y as f32))
}

/// The decimal a manifest value was written as, in `f64` (the Python reference compares
/// and multiplies with the double `0.5`, `1.6`, not with their nearest `f32`).
fn as_written(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{LimitType, Normalization};

    fn config() -> DetectorConfig {
        DetectorConfig {
            limit_side_len: 736,
            limit_type: LimitType::Min,
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

    /// A `width × height` map that is 0 except for `value` on the given pixel rectangles
    /// (`x0..=x1`, `y0..=y1`).
    fn map_with(width: usize, height: usize, rects: &[(usize, usize, usize, usize, f32)]) -> Vec<f32> {
        let mut values = vec![0.0; width * height];
        for &(x0, y0, x1, y1, value) in rects {
            for y in y0..=y1 {
                values[y * width + x0..=y * width + x1].fill(value);
            }
        }
        values
    }

    fn detect(values: &[f32], width: u32, height: u32, page: (u32, u32), config: &DetectorConfig) -> Vec<DetectedBox> {
        detect_boxes(&ProbabilityMap { data: values.to_vec(), width, height }, page, config).unwrap()
    }

    #[test]
    fn two_rectangles_give_two_boxes_in_page_coordinates() {
        // Expected values: rapidocr's DBPostProcess + filter_tag_det_res on the same map.
        let values = map_with(64, 32, &[(10, 8, 34, 14, 0.9), (27, 20, 50, 28, 0.7)]);
        let boxes = detect(&values, 64, 32, (128, 64), &config());
        let quads: Vec<Quad> = boxes.iter().map(|b| b.quad).collect();
        // The lower box is met last by the raster scan, so comes first.
        assert_eq!(
            quads,
            [
                [(44.0, 30.0), (112.0, 30.0), (112.0, 63.0), (44.0, 63.0)],
                [(12.0, 8.0), (78.0, 8.0), (78.0, 38.0), (12.0, 38.0)],
            ]
        );
        // The dilated rim (right and bottom) is inside the quad but has probability 0:
        // 0.9 * 25*7 / (26*8) and 0.7 * 24*9 / (25*10).
        assert!((boxes[0].score - 0.6048).abs() < 1e-6, "{}", boxes[0].score);
        assert!((boxes[1].score - 0.757_211_5).abs() < 1e-6, "{}", boxes[1].score);
    }

    #[test]
    fn without_dilation_the_score_is_the_plain_mean() {
        let values = map_with(40, 20, &[(5, 5, 30, 12, 0.8)]);
        let config = DetectorConfig { use_dilation: false, ..config() };
        let boxes = detect(&values, 40, 20, (40, 20), &config);
        assert_eq!(boxes.len(), 1);
        assert!((boxes[0].score - 0.8).abs() < 1e-6);
    }

    #[test]
    fn a_rotated_rectangle_gives_a_rotated_quad() {
        // A bar along the diagonal direction (1, 1/2): pixels under a rotated rectangle.
        let (width, height) = (80usize, 60usize);
        let mut values = vec![0.0; width * height];
        for y in 0..height {
            for x in 0..width {
                let (u, v) = (
                    (x as f32 - 40.0) * 0.894 + (y as f32 - 30.0) * 0.447,
                    -(x as f32 - 40.0) * 0.447 + (y as f32 - 30.0) * 0.894,
                );
                if u.abs() <= 25.0 && v.abs() <= 4.0 {
                    values[y * width + x] = 0.95;
                }
            }
        }
        let boxes = detect(&values, width as u32, height as u32, (width as u32, height as u32), &config());
        assert_eq!(boxes.len(), 1);
        let [tl, tr, br, bl] = boxes[0].quad;
        // Clockwise from the top-left, sloping down to the right at about 1/2.
        let slope = (tr.1 - tl.1) / (tr.0 - tl.0);
        assert!((slope - 0.5).abs() < 0.1, "{:?}", boxes[0].quad);
        assert!(tl.0 < tr.0 && bl.0 < br.0 && tl.1 < bl.1 && tr.1 < br.1, "{:?}", boxes[0].quad);
        assert!(boxes[0].score > 0.7);
    }

    #[test]
    fn dilation_joins_a_one_pixel_gap() {
        let values = map_with(40, 16, &[(2, 4, 15, 10, 0.9), (17, 4, 30, 10, 0.9)]);
        assert_eq!(detect(&values, 40, 16, (40, 16), &config()).len(), 1);
        let config = DetectorConfig { use_dilation: false, ..config() };
        assert_eq!(detect(&values, 40, 16, (40, 16), &config).len(), 2);
    }

    #[test]
    fn thin_regions_are_dropped_below_min_size() {
        // Sides are measured between pixel centres: 3 rows (4 after dilation) span 3.
        // rapidocr keeps [[0,3],[33,3],[33,10],[0,10]] at min_size 3 and nothing at 4.
        let values = map_with(40, 16, &[(2, 5, 30, 7, 0.9)]);
        let boxes = detect(&values, 40, 16, (40, 16), &config());
        assert_eq!(
            boxes.iter().map(|b| b.quad).collect::<Vec<_>>(),
            [[(0.0, 3.0), (33.0, 3.0), (33.0, 10.0), (0.0, 10.0)]]
        );
        let strict = DetectorConfig { min_size: 4.0, ..config() };
        assert!(detect(&values, 40, 16, (40, 16), &strict).is_empty());
        // 2 rows (3 after dilation) span 2 < 3.
        let values = map_with(40, 16, &[(2, 5, 30, 6, 0.9)]);
        assert!(detect(&values, 40, 16, (40, 16), &config()).is_empty());
    }

    #[test]
    fn weak_regions_are_dropped_below_box_thresh() {
        let values = map_with(40, 16, &[(2, 4, 30, 10, 0.4)]);
        assert!(detect(&values, 40, 16, (40, 16), &config()).is_empty());
        let config = DetectorConfig { box_thresh: 0.3, ..config() };
        assert_eq!(detect(&values, 40, 16, (40, 16), &config).len(), 1);
    }

    #[test]
    fn at_most_max_candidates_contours_are_considered() {
        let rects: Vec<_> = (0..5).map(|i| (2, 2 + 12 * i, 30, 8 + 12 * i, 0.9)).collect();
        let values = map_with(40, 64, &rects);
        assert_eq!(detect(&values, 40, 64, (40, 64), &config()).len(), 5);
        let config = DetectorConfig { max_candidates: 2, ..config() };
        let boxes = detect(&values, 40, 64, (40, 64), &config);
        // OpenCV lists the lowest regions first, so those are the ones kept.
        assert_eq!(boxes.len(), 2);
        assert!(boxes.iter().all(|b| b.quad[0].1 >= 30.0), "{boxes:?}");
    }

    #[test]
    fn boxes_are_clipped_to_the_page() {
        let values = map_with(32, 32, &[(0, 0, 31, 10, 0.9)]);
        let boxes = detect(&values, 32, 32, (64, 64), &config());
        assert_eq!(boxes.len(), 1);
        assert_eq!(boxes[0].quad[0], (0.0, 0.0));
        assert_eq!(boxes[0].quad[2].0, 63.0);
    }

    #[test]
    fn empty_zero_one_and_nan_maps_do_not_panic() {
        assert!(detect(&[], 0, 0, (10, 10), &config()).is_empty());
        assert!(detect(&[0.0; 64 * 32], 64, 32, (64, 32), &config()).is_empty());
        assert!(detect(&[f32::NAN; 64 * 32], 64, 32, (64, 32), &config()).is_empty());
        let all_text = detect(&[1.0; 64 * 32], 64, 32, (128, 64), &config());
        assert_eq!(all_text.len(), 1);
        assert_eq!(all_text[0].quad, [(0.0, 0.0), (127.0, 0.0), (127.0, 63.0), (0.0, 63.0)]);
        assert_eq!(all_text[0].score, 1.0);
        // NaN inside a region counts as zero probability and does not poison the score.
        let mut values = map_with(40, 16, &[(2, 4, 30, 10, 0.9)]);
        values[7 * 40 + 10] = f32::NAN;
        let boxes = detect(&values, 40, 16, (40, 16), &config());
        assert_eq!(boxes.len(), 1);
        assert!(boxes[0].score.is_finite() && boxes[0].score > 0.5);
        assert!(detect(&values, 40, 16, (0, 0), &config()).is_empty());
    }

    #[test]
    fn a_map_of_the_wrong_size_is_an_error() {
        let result = detect_boxes(&ProbabilityMap { data: vec![0.0; 10], width: 4, height: 4 }, (4, 4), &config());
        assert!(matches!(result, Err(VisionError::DetectBoxes { .. })));
    }

    #[test]
    fn unclip_grows_upright_boxes_by_rounded_distance() {
        // 20 x 4 box at x 10..30, y 9..13: distance = 80 * 1.6 / 48 = 2.667; pyclipper's
        // offset polygon spans x 7..33, y 6..16.
        let rect = Rectangle { center: (20.0, 11.0), axis: (1.0, 0.0), width: 20.0, height: 4.0 };
        let grown = unclip(&rect, 1.6);
        assert_eq!((grown.center, grown.width, grown.height), ((20.0, 11.0), 26.0, 10.0));
        let tilted = Rectangle { axis: (0.8, 0.6), ..rect };
        let grown = unclip(&tilted, 1.6);
        assert!((grown.width - (20.0 + 2.0 * 80.0 * 1.6 / 48.0)).abs() < 1e-9);
    }

    #[test]
    fn manifest_values_are_read_as_their_decimals() {
        assert_eq!(as_written(1.6), 1.6f64);
        assert_eq!(as_written(0.5), 0.5f64);
    }
}

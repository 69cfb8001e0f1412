//! Plane geometry of text boxes: convex hulls, minimum-area rectangles and the corner
//! orders the reference pipeline (rapidocr / PaddleOCR) relies on.

/// A text box: four corners `(x, y)` in pixels, clockwise from the top-left one.
pub type Quad = [(f32, f32); 4];

/// Convex hull of integer points, vertices in order around it, without collinear or
/// repeated points (Andrew's monotone chain; exact in integers).
pub(crate) fn convex_hull(mut points: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    points.sort_unstable();
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let chain = |ordered: &mut dyn Iterator<Item = (i64, i64)>| {
        let mut chain: Vec<(i64, i64)> = Vec::new();
        for p in ordered {
            while chain.len() >= 2 && cross(chain[chain.len() - 2], chain[chain.len() - 1], p) <= 0 {
                chain.pop();
            }
            chain.push(p);
        }
        // The last point of each chain is the first point of the other one.
        chain.pop();
        chain
    };
    let mut hull = chain(&mut points.iter().copied());
    hull.extend(chain(&mut points.iter().rev().copied()));
    hull
}

/// A rectangle in any orientation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rectangle {
    pub center: (f64, f64),
    /// Unit vector along the `width` side.
    pub axis: (f64, f64),
    pub width: f64,
    pub height: f64,
}

impl Rectangle {
    pub fn corners(&self) -> [(f64, f64); 4] {
        let (ux, uy) = (self.axis.0 * self.width / 2.0, self.axis.1 * self.width / 2.0);
        let (vx, vy) = (-self.axis.1 * self.height / 2.0, self.axis.0 * self.height / 2.0);
        let (cx, cy) = self.center;
        [
            (cx - ux - vx, cy - uy - vy),
            (cx + ux - vx, cy + uy - vy),
            (cx + ux + vx, cy + uy + vy),
            (cx - ux + vx, cy - uy + vy),
        ]
    }

    pub fn short_side(&self) -> f64 {
        self.width.min(self.height)
    }

    /// Sides parallel to the image axes (exactly, as they are for hulls of pixel blobs
    /// whose minimum rectangle is upright).
    pub fn is_axis_aligned(&self) -> bool {
        self.axis.0 == 0.0 || self.axis.1 == 0.0
    }
}

/// The smallest-area rectangle enclosing a convex polygon (rotating calipers: one side of
/// the optimum lies on a hull edge), like OpenCV's `minAreaRect`. `None` without points.
pub(crate) fn min_area_rect(hull: &[(f64, f64)]) -> Option<Rectangle> {
    let &first = hull.first()?;
    let mut best: Option<(f64, Rectangle)> = None;
    for (i, &a) in hull.iter().enumerate() {
        let b = hull[(i + 1) % hull.len()];
        let length = (b.0 - a.0).hypot(b.1 - a.1);
        if length == 0.0 || !length.is_finite() {
            continue;
        }
        let axis = ((b.0 - a.0) / length, (b.1 - a.1) / length);
        let normal = (-axis.1, axis.0);
        let (mut u_min, mut u_max, mut v_min, mut v_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &p in hull {
            let u = p.0 * axis.0 + p.1 * axis.1;
            let v = p.0 * normal.0 + p.1 * normal.1;
            (u_min, u_max, v_min, v_max) = (u_min.min(u), u_max.max(u), v_min.min(v), v_max.max(v));
        }
        let area = (u_max - u_min) * (v_max - v_min);
        if best.as_ref().is_none_or(|(best_area, _)| area < *best_area) {
            let (u_mid, v_mid) = ((u_min + u_max) / 2.0, (v_min + v_max) / 2.0);
            let center = (axis.0 * u_mid + normal.0 * v_mid, axis.1 * u_mid + normal.1 * v_mid);
            best = Some((area, Rectangle { center, axis, width: u_max - u_min, height: v_max - v_min }));
        }
    }
    // A single point (or repeats of it) has no edge: a rectangle of size zero.
    Some(best.map_or(Rectangle { center: first, axis: (1.0, 0.0), width: 0.0, height: 0.0 }, |(_, rect)| rect))
}

/// Corner order of PaddleOCR's `get_mini_boxes`: the two leftmost corners (by x, ties in
/// input order) give top-left and bottom-left by y, the two rightmost top-right and
/// bottom-right; returned as `[top-left, top-right, bottom-right, bottom-left]`.
pub(crate) fn mini_box_order(corners: [(f32, f32); 4]) -> Quad {
    let mut by_x = corners;
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (top_left, bottom_left) = if by_x[1].1 > by_x[0].1 { (by_x[0], by_x[1]) } else { (by_x[1], by_x[0]) };
    let (top_right, bottom_right) = if by_x[3].1 > by_x[2].1 { (by_x[2], by_x[3]) } else { (by_x[3], by_x[2]) };
    [top_left, top_right, bottom_right, bottom_left]
}

/// Corner order of rapidocr's `order_points_clockwise`: the two leftmost corners sorted by
/// y are top-left and bottom-left, the two rightmost top-right and bottom-right (all sorts
/// stable, as numpy's are for four elements).
pub(crate) fn order_clockwise(corners: Quad) -> Quad {
    let mut by_x = corners;
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut left = [by_x[0], by_x[1]];
    let mut right = [by_x[2], by_x[3]];
    left.sort_by(|a, b| a.1.total_cmp(&b.1));
    right.sort_by(|a, b| a.1.total_cmp(&b.1));
    [left[0], right[0], right[1], left[1]]
}

/// Euclidean distance between two corners, in `f32` as numpy computes it for `float32` boxes.
pub(crate) fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_f64(points: &[(i64, i64)]) -> Vec<(f64, f64)> {
        points.iter().map(|&(x, y)| (x as f64, y as f64)).collect()
    }

    #[test]
    fn hull_drops_interior_collinear_and_repeated_points() {
        let points = vec![(0, 0), (2, 0), (4, 0), (4, 3), (0, 3), (2, 1), (4, 3), (0, 0)];
        let mut hull = convex_hull(points);
        hull.sort_unstable();
        assert_eq!(hull, [(0, 0), (0, 3), (4, 0), (4, 3)]);
    }

    #[test]
    fn hull_of_fewer_than_three_points_is_the_points() {
        assert_eq!(convex_hull(vec![(1, 1), (1, 1)]), [(1, 1)]);
        assert!(convex_hull(Vec::new()).is_empty());
    }

    #[test]
    fn upright_rectangle_is_its_own_minimum_and_exact() {
        let hull = as_f64(&convex_hull(vec![(12, 7), (12, 10), (17, 10), (17, 7)]));
        let rect = min_area_rect(&hull).unwrap();
        assert!(rect.is_axis_aligned());
        assert_eq!(rect.short_side(), 3.0);
        assert_eq!(rect.width * rect.height, 15.0);
        let mut corners = rect.corners().to_vec();
        corners.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(corners, [(12.0, 7.0), (12.0, 10.0), (17.0, 7.0), (17.0, 10.0)]);
    }

    #[test]
    fn tilted_rectangle_is_found_at_its_angle() {
        // A 10 x 5 rectangle rotated by atan(3/4): its corners are exact integers.
        let corners = [(0, 0), (8, 6), (5, 10), (-3, 4)];
        let hull = as_f64(&convex_hull(corners.to_vec()));
        let rect = min_area_rect(&hull).unwrap();
        assert!(!rect.is_axis_aligned());
        assert!((rect.width * rect.height - 50.0).abs() < 1e-9, "{rect:?}");
        assert!((rect.short_side() - 5.0).abs() < 1e-9, "{rect:?}");
        let (ax, ay) = rect.axis;
        let along_long_side = (ax * 6.0 - ay * 8.0).abs() < 1e-9;
        let along_short_side = (ax * 4.0 + ay * 3.0).abs() < 1e-9;
        assert!(along_long_side || along_short_side, "axis {:?}", rect.axis);
        let mut found: Vec<(i64, i64)> =
            rect.corners().iter().map(|c| (c.0.round() as i64, c.1.round() as i64)).collect();
        found.sort_unstable();
        assert_eq!(found, [(-3, 4), (0, 0), (5, 10), (8, 6)]);
    }

    #[test]
    fn degenerate_hulls_give_zero_short_side() {
        assert_eq!(min_area_rect(&[(5.0, 5.0)]).unwrap().short_side(), 0.0);
        let line = min_area_rect(&[(0.0, 0.0), (4.0, 0.0)]).unwrap();
        assert_eq!((line.width, line.height), (4.0, 0.0));
        assert!(min_area_rect(&[]).is_none());
    }

    #[test]
    fn mini_box_order_starts_top_left_and_goes_clockwise() {
        let quad = mini_box_order([(17.0, 10.0), (12.0, 10.0), (12.0, 7.0), (17.0, 7.0)]);
        assert_eq!(quad, [(12.0, 7.0), (17.0, 7.0), (17.0, 10.0), (12.0, 10.0)]);
        // Tilted: leftmost pair and rightmost pair each split by y.
        let quad = mini_box_order([(8.0, 6.0), (0.0, 0.0), (-6.0, 8.0), (2.0, 14.0)]);
        assert_eq!(quad, [(0.0, 0.0), (8.0, 6.0), (2.0, 14.0), (-6.0, 8.0)]);
    }

    #[test]
    fn clockwise_order_sorts_any_corner_permutation() {
        let expected = [(1.0, 1.0), (9.0, 2.0), (9.0, 5.0), (1.0, 4.0)];
        for quad in [[(9.0, 5.0), (1.0, 4.0), (9.0, 2.0), (1.0, 1.0)], [(1.0, 4.0), (9.0, 2.0), (1.0, 1.0), (9.0, 5.0)]]
        {
            assert_eq!(order_clockwise(quad), expected);
        }
    }
}

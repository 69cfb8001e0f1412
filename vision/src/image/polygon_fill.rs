//! Rasterising a polygon with integer vertices the way OpenCV's `fillPoly` does (8-connected
//! lines, no sub-pixel shift), so that box scores average over the same pixels.
//!
//! `fillPoly` draws every edge as a Bresenham line and fills the inside scanline by
//! scanline: for each row it takes the x where the edges cross it (16.16 fixed point, each
//! edge's x stepped by a truncated per-row increment, the edge's lower end row excluded),
//! pairs the crossings left to right and fills from the first pixel at or right of one
//! crossing to the last pixel at or left of the next.

const SHIFT: u32 = 16;
const ONE: i64 = 1 << SHIFT;

/// Row-major `width × height` mask of the pixels `fillPoly` would set for `vertices`.
pub(crate) fn fill_polygon(vertices: &[(i64, i64)], width: usize, height: usize) -> Vec<bool> {
    let mut mask = vec![false; width * height];
    let Some(&last) = vertices.last() else {
        return mask;
    };
    let mut set = |x: i64, y: i64| {
        if let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y))
            && x < width
            && y < height
        {
            mask[y * width + x] = true;
        }
    };
    let mut edges = Vec::with_capacity(vertices.len());
    let mut previous = last;
    for &vertex in vertices {
        draw_line(previous, vertex, &mut set);
        if previous.1 != vertex.1 {
            let (top, bottom) = if previous.1 < vertex.1 { (previous, vertex) } else { (vertex, previous) };
            edges.push(Edge {
                y0: top.1,
                y1: bottom.1,
                x0: top.0 << SHIFT,
                dx: ((vertex.0 - previous.0) << SHIFT) / (vertex.1 - previous.1),
            });
        }
        previous = vertex;
    }
    if edges.len() < 2 {
        return mask;
    }
    let first_row = edges.iter().map(|e| e.y0).min().unwrap_or(0).max(0);
    let end_row = edges.iter().map(|e| e.y1).max().unwrap_or(0).min(height as i64);
    let mut crossings = Vec::with_capacity(edges.len());
    for y in first_row..end_row {
        crossings.clear();
        crossings.extend(edges.iter().filter(|e| e.y0 <= y && y < e.y1).map(|e| e.x0 + (y - e.y0) * e.dx));
        crossings.sort_unstable();
        for pair in crossings.chunks_exact(2) {
            let left = (pair[0] + ONE - 1) >> SHIFT;
            let right = pair[1] >> SHIFT;
            for x in left.max(0)..=right.min(width as i64 - 1) {
                set(x, y);
            }
        }
    }
    mask
}

struct Edge {
    /// First row (inclusive) and last row (exclusive) the edge spans.
    y0: i64,
    y1: i64,
    /// x at row `y0`, and its change per row, in 16.16 fixed point.
    x0: i64,
    dx: i64,
}

/// OpenCV's 8-connected line: walk from the left end along the major axis, stepping the
/// minor axis whenever the error term is negative (ties stay on the row).
fn draw_line(a: (i64, i64), b: (i64, i64), set: &mut impl FnMut(i64, i64)) {
    let (start, end) = if b.0 < a.0 { (b, a) } else { (a, b) };
    let dx = end.0 - start.0;
    let dy = (end.1 - start.1).abs();
    let y_step = if end.1 < start.1 { -1 } else { 1 };
    let x_major = dx >= dy;
    let (major, minor) = if x_major { (dx, dy) } else { (dy, dx) };
    let mut error = major - 2 * minor;
    let (mut x, mut y) = start;
    for _ in 0..=major {
        set(x, y);
        let step_minor = error < 0;
        error += -2 * minor + if step_minor { 2 * major } else { 0 };
        if x_major {
            x += 1;
            y += if step_minor { y_step } else { 0 };
        } else {
            y += y_step;
            x += i64::from(step_minor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(mask: &[bool], width: usize) -> Vec<String> {
        mask.chunks(width).map(|row| row.iter().map(|&on| if on { '#' } else { '.' }).collect()).collect()
    }

    #[test]
    fn upright_rectangle_fills_its_pixels_inclusive() {
        let mask = fill_polygon(&[(1, 1), (4, 1), (4, 3), (1, 3)], 6, 5);
        assert_eq!(render(&mask, 6), ["......", ".####.", ".####.", ".####.", "......"]);
    }

    #[test]
    fn tilted_quad_matches_cv2_fill_poly() {
        // cv2.fillPoly(np.zeros((8, 10), np.uint8), [np.array([[1,2],[7,0],[8,5],[2,7]])], 1)
        let mask = fill_polygon(&[(1, 2), (7, 0), (8, 5), (2, 7)], 10, 8);
        assert_eq!(
            render(&mask, 10),
            [
                "......##..",
                "...#####..",
                ".#######..",
                ".########.",
                ".########.",
                "..#######.",
                "..#####...",
                "..##......",
            ]
        );
    }

    #[test]
    fn vertices_outside_the_mask_are_clipped() {
        let mask = fill_polygon(&[(-2, -2), (2, -2), (2, 1), (-2, 1)], 4, 3);
        assert_eq!(render(&mask, 4), ["###.", "###.", "...."]);
    }

    #[test]
    fn degenerate_polygons_draw_their_lines_only() {
        assert_eq!(render(&fill_polygon(&[(0, 1), (3, 1)], 4, 3), 4), ["....", "####", "...."]);
        assert_eq!(render(&fill_polygon(&[(2, 2)], 4, 3), 4), ["....", "....", "..#."]);
        assert!(fill_polygon(&[], 4, 3).iter().all(|&on| !on));
    }
}

//! The contours OpenCV's `findContours(RETR_LIST, CHAIN_APPROX_SIMPLE)` finds in a binary
//! map, reduced to what text detection uses of them: their convex hulls, in OpenCV's order.
//!
//! Rather than tracing borders, this labels regions, which gives the same hulls:
//! - an outer border runs around an 8-connected foreground region, and the hull of a
//!   region's border is the hull of the region (its extreme pixels are on the border);
//! - a hole border runs inside a 4-connected background region that does not reach the map
//!   edge, through the foreground pixels 4-adjacent to it.
//!
//! OpenCV lists contours in the reverse of the raster order it meets them in: an outer
//! border at its region's first pixel, a hole border at the pixel left of the hole's first
//! pixel. (Checked against cv2 on random bitmaps with many holes: same hulls, same order.)

use std::collections::BTreeMap;

use crate::image::geometry::convex_hull;

const UNLABELLED: u32 = u32::MAX;

/// Convex hulls of all contours of `bitmap` (row-major, `width` per row), in the order
/// OpenCV returns the contours. Points are `(x, y)` pixel coordinates.
pub(crate) fn contour_hulls(bitmap: &[bool], width: usize, height: usize) -> Vec<Vec<(i64, i64)>> {
    if width == 0 || height == 0 || bitmap.len() != width * height {
        return Vec::new();
    }
    let mut found: Vec<(usize, Vec<(i64, i64)>)> = Vec::new();
    let mut labels = vec![UNLABELLED; bitmap.len()];
    let mut stack = Vec::new();
    let mut next_label = 0u32;
    for start in 0..bitmap.len() {
        if labels[start] != UNLABELLED {
            continue;
        }
        let foreground = bitmap[start];
        let mut extremes = RowExtremes::default();
        let mut reaches_edge = false;
        labels[start] = next_label;
        stack.push(start);
        while let Some(index) = stack.pop() {
            let (x, y) = (index % width, index / width);
            if foreground {
                extremes.add(x, y);
            } else {
                reaches_edge |= x == 0 || y == 0 || x + 1 == width || y + 1 == height;
            }
            for neighbour in neighbours(x, y, width, height, foreground) {
                if bitmap[neighbour] != foreground {
                    if !foreground && !reaches_edge {
                        // The border this background would have as a hole (foreground
                        // islands inside the hole come along; they lie inside the hull).
                        extremes.add(neighbour % width, neighbour / width);
                    }
                } else if labels[neighbour] == UNLABELLED {
                    labels[neighbour] = next_label;
                    stack.push(neighbour);
                }
            }
        }
        if foreground {
            found.push((start, extremes.into_points()));
        } else if !reaches_edge {
            // Not the first pixel (that would touch the edge): start - 1 is the ring's.
            found.push((start - 1, extremes.into_points()));
        }
        next_label += 1;
    }
    found.sort_by_key(|&(key, _)| std::cmp::Reverse(key));
    found.into_iter().map(|(_, points)| convex_hull(points)).collect()
}

/// In-bounds neighbours: all eight for foreground, the four direct ones for background.
fn neighbours(x: usize, y: usize, width: usize, height: usize, eight: bool) -> impl Iterator<Item = usize> {
    const EIGHT: [(isize, isize); 8] = [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)];
    const FOUR: [(isize, isize); 4] = [(0, -1), (-1, 0), (1, 0), (0, 1)];
    let offsets: &'static [(isize, isize)] = if eight { &EIGHT } else { &FOUR };
    offsets.iter().filter_map(move |&(dx, dy)| {
        let nx = x.checked_add_signed(dx).filter(|&nx| nx < width)?;
        let ny = y.checked_add_signed(dy).filter(|&ny| ny < height)?;
        Some(ny * width + nx)
    })
}

/// Leftmost and rightmost pixel of each row: all a convex hull needs of a pixel set.
#[derive(Default)]
struct RowExtremes {
    rows: BTreeMap<usize, (usize, usize)>,
}

impl RowExtremes {
    fn add(&mut self, x: usize, y: usize) {
        let entry = self.rows.entry(y).or_insert((x, x));
        *entry = (entry.0.min(x), entry.1.max(x));
    }

    fn into_points(self) -> Vec<(i64, i64)> {
        self.rows
            .into_iter()
            .flat_map(|(y, (left, right))| [(left as i64, y as i64), (right as i64, y as i64)])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let width = rows[0].len();
        let bits = rows.iter().flat_map(|row| row.bytes().map(|b| b == b'#')).collect();
        (bits, width, rows.len())
    }

    fn sorted(mut points: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
        points.sort_unstable();
        points
    }

    #[test]
    fn regions_come_last_found_first() {
        // Same layout as a cv2.findContours check: contours come back D, C, B, A.
        let (bits, w, h) = bitmap(&[
            "..........", //
            "..##...##.", // A at (2,1), B at (7,1)
            "..##...##.",
            "..........",
            ".##.......", // C at (1,4)
            ".##...###.", // D at (6,5)
            "......###.",
        ]);
        let hulls: Vec<_> = contour_hulls(&bits, w, h).into_iter().map(sorted).collect();
        assert_eq!(hulls.len(), 4);
        assert_eq!(hulls[0], [(6, 5), (6, 6), (8, 5), (8, 6)]);
        assert_eq!(hulls[1], [(1, 4), (1, 5), (2, 4), (2, 5)]);
        assert_eq!(hulls[2], [(7, 1), (7, 2), (8, 1), (8, 2)]);
        assert_eq!(hulls[3], [(2, 1), (2, 2), (3, 1), (3, 2)]);
    }

    #[test]
    fn diagonal_neighbours_belong_to_one_region() {
        let (bits, w, h) = bitmap(&["#..", ".#.", "..#"]);
        let hulls = contour_hulls(&bits, w, h);
        assert_eq!(hulls.len(), 1);
        assert_eq!(sorted(hulls[0].clone()), [(0, 0), (2, 2)]);
    }

    #[test]
    fn a_hole_is_a_contour_of_its_four_neighbours_listed_before_its_ring() {
        // cv2 gives the hole contour [(1,2),(2,1),(3,2),(2,3)] first, then the ring.
        let (bits, w, h) = bitmap(&[".....", ".###.", ".#.#.", ".###.", "....."]);
        let hulls = contour_hulls(&bits, w, h);
        assert_eq!(hulls.len(), 2);
        assert_eq!(sorted(hulls[0].clone()), [(1, 2), (2, 1), (2, 3), (3, 2)]);
        assert_eq!(sorted(hulls[1].clone()), [(1, 1), (1, 3), (3, 1), (3, 3)]);
    }

    #[test]
    fn background_touching_the_edge_is_no_hole() {
        // An open ring: the gap at the right joins the inside to the outside.
        let (bits, w, h) = bitmap(&["###", "#..", "###"]);
        assert_eq!(contour_hulls(&bits, w, h).len(), 1);
        // A region covering the whole map has one contour, along the map edge.
        let (bits, w, h) = bitmap(&["###", "###"]);
        assert_eq!(sorted(contour_hulls(&bits, w, h)[0].clone()), [(0, 0), (0, 1), (2, 0), (2, 1)]);
    }

    #[test]
    fn empty_or_mismatched_maps_have_no_contours() {
        assert!(contour_hulls(&[], 0, 0).is_empty());
        assert!(contour_hulls(&[false; 6], 3, 2).is_empty());
        assert!(contour_hulls(&[true; 5], 3, 2).is_empty());
    }
}

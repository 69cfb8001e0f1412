//! Reading order of detected boxes, as rapidocr's `sorted_boxes`: top to bottom by the
//! top-left corner, and boxes on the same line (top-left y within 10 pixels) left to right.

use crate::postprocess::DetectedBox;

/// Top-left corners closer than this vertically count as one line.
const SAME_LINE: f32 = 10.0;

/// Sorts `boxes` into reading order in place.
pub(crate) fn sort_into_reading_order(boxes: &mut [DetectedBox]) {
    let top_left = |b: &DetectedBox| b.quad[0];
    // Stable, like Python's `sorted`.
    boxes.sort_by(|a, b| {
        let (a, b) = (top_left(a), top_left(b));
        a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0))
    });
    // Then move each box left past the boxes of its line that start right of it.
    for i in 0..boxes.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (upper, lower) = (top_left(&boxes[j]), top_left(&boxes[j + 1]));
            if (lower.1 - upper.1).abs() < SAME_LINE && lower.0 < upper.0 {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: f32, y: f32) -> DetectedBox {
        DetectedBox { quad: [(x, y), (x + 50.0, y), (x + 50.0, y + 20.0), (x, y + 20.0)], score: 0.9 }
    }

    fn order(mut boxes: Vec<DetectedBox>) -> Vec<(f32, f32)> {
        sort_into_reading_order(&mut boxes);
        boxes.iter().map(|b| b.quad[0]).collect()
    }

    #[test]
    fn lines_go_top_to_bottom() {
        assert_eq!(order(vec![at(0.0, 100.0), at(0.0, 10.0), at(0.0, 50.0)]), [(0.0, 10.0), (0.0, 50.0), (0.0, 100.0)]);
    }

    #[test]
    fn a_slightly_higher_box_to_the_right_reads_after_its_neighbour() {
        // By y alone (200, 12) would come first; it is within 10 pixels, so x decides.
        assert_eq!(order(vec![at(10.0, 15.0), at(200.0, 12.0)]), [(10.0, 15.0), (200.0, 12.0)]);
        // 10 pixels or more apart is another line.
        assert_eq!(order(vec![at(10.0, 22.0), at(200.0, 12.0)]), [(200.0, 12.0), (10.0, 22.0)]);
    }

    #[test]
    fn a_box_moves_left_across_its_whole_line() {
        let boxes = vec![at(300.0, 10.0), at(200.0, 11.0), at(100.0, 12.0), at(0.0, 40.0)];
        assert_eq!(order(boxes), [(100.0, 12.0), (200.0, 11.0), (300.0, 10.0), (0.0, 40.0)]);
    }

    #[test]
    fn empty_and_single_lists_are_fine() {
        assert!(order(Vec::new()).is_empty());
        assert_eq!(order(vec![at(1.0, 2.0)]), [(1.0, 2.0)]);
    }
}

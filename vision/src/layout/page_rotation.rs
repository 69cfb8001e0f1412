//! Whole pages that arrive turned (scans fed sideways, phone photos taken in landscape):
//! the evidence that a page is turned, and the geometry of turning it upright and mapping
//! its boxes back onto the image as sent.
//!
//! The method, chosen because it costs nothing on an upright page: the detector's boxes
//! are already there, and a page turned a quarter shows its lines as boxes much taller
//! than wide, so the share of box length in tall boxes says "sideways". Which quarter
//! (90° or 270°) is decided after turning the page one way, by the direction classifier:
//! lines that read upside down mean it was the other way. A page upside down shows wide
//! boxes, but most of its lines classify as upside down, which the classifier already
//! says for every line.

use image::RgbImage;
use image::imageops::{rotate90, rotate180, rotate270};

use crate::image::{Quad, crop_is_quarter_turned};

/// Fewest boxes before a page is judged sideways (a lone tall box is a stamp or a column
/// of digits, not a turned page).
const MIN_BOXES_FOR_SIDEWAYS: usize = 3;
/// Share of the boxes' long sides that must be in tall boxes for a page to be sideways.
const SIDEWAYS_SHARE: f32 = 0.6;
/// Share of lines read upside down above which the whole page is upside down.
const UPSIDE_DOWN_SHARE: f32 = 0.5;

/// How far the page as sent is turned clockwise from upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageRotation {
    #[default]
    Upright,
    /// Turned 90° clockwise: text runs top to bottom.
    Quarter,
    Half,
    /// Turned 270° clockwise (90° counter-clockwise): text runs bottom to top.
    ThreeQuarters,
}

impl PageRotation {
    pub fn degrees(self) -> u32 {
        match self {
            Self::Upright => 0,
            Self::Quarter => 90,
            Self::Half => 180,
            Self::ThreeQuarters => 270,
        }
    }

    /// This rotation and then a half turn more.
    pub fn plus_half(self) -> Self {
        match self {
            Self::Upright => Self::Half,
            Self::Quarter => Self::ThreeQuarters,
            Self::Half => Self::Upright,
            Self::ThreeQuarters => Self::Quarter,
        }
    }

    /// The page as sent, turned upright.
    pub fn upright(self, page: &RgbImage) -> RgbImage {
        match self {
            Self::Upright => page.clone(),
            // Turned 90° clockwise: a counter-clockwise quarter puts it back.
            Self::Quarter => rotate270(page),
            Self::Half => rotate180(page),
            Self::ThreeQuarters => rotate90(page),
        }
    }

    /// A quad on the upright page (of `upright_width` × `upright_height`) as it lies on
    /// the page as sent. The corners keep their order, so the first is still the line's
    /// top-left as read.
    pub fn to_sent(self, quad: &Quad, upright_width: u32, upright_height: u32) -> Quad {
        let (w, h) = (upright_width as f32, upright_height as f32);
        quad.map(|(x, y)| match self {
            Self::Upright => (x, y),
            // Sent = upright turned 90° clockwise: (x, y) ↦ (h − y, x).
            Self::Quarter => (h - y, x),
            Self::Half => (w - x, h - y),
            // Sent = upright turned 270° clockwise: (x, y) ↦ (y, w − x).
            Self::ThreeQuarters => (y, w - x),
        })
    }
}

/// Whether the boxes found on a page say its lines run vertically: at least
/// [`MIN_BOXES_FOR_SIDEWAYS`] boxes and most of their length in boxes that are tall.
pub fn looks_sideways(quads: &[Quad]) -> bool {
    if quads.len() < MIN_BOXES_FOR_SIDEWAYS {
        return false;
    }
    let long_side = |quad: &Quad| {
        let [p0, p1, p2, p3] = *quad;
        let across = crate::image::geometry::distance(p0, p1).max(crate::image::geometry::distance(p2, p3));
        let down = crate::image::geometry::distance(p0, p3).max(crate::image::geometry::distance(p1, p2));
        across.max(down)
    };
    let total: f32 = quads.iter().map(long_side).sum();
    let tall: f32 = quads.iter().filter(|quad| crop_is_quarter_turned(quad)).map(long_side).sum();
    total > 0.0 && tall / total >= SIDEWAYS_SHARE
}

/// Whether most of a page's lines read upside down (`turned` is the classifier's verdict
/// per line): the whole page is.
pub fn mostly_upside_down(turned: &[bool]) -> bool {
    let count = turned.iter().filter(|&&t| t).count();
    !turned.is_empty() && count as f32 / turned.len() as f32 > UPSIDE_DOWN_SHARE
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    fn wide(x: f32, y: f32) -> Quad {
        [(x, y), (x + 100.0, y), (x + 100.0, y + 20.0), (x, y + 20.0)]
    }

    fn tall(x: f32, y: f32) -> Quad {
        [(x, y), (x + 20.0, y), (x + 20.0, y + 100.0), (x, y + 100.0)]
    }

    #[test]
    fn tall_boxes_make_a_page_sideways_wide_ones_do_not() {
        assert!(looks_sideways(&[tall(0.0, 0.0), tall(30.0, 0.0), tall(60.0, 0.0), wide(0.0, 200.0)]));
        assert!(!looks_sideways(&[wide(0.0, 0.0), wide(0.0, 30.0), wide(0.0, 60.0), tall(200.0, 0.0)]));
        assert!(!looks_sideways(&[tall(0.0, 0.0), tall(30.0, 0.0)]), "too few boxes to say");
        assert!(!looks_sideways(&[]));
    }

    #[test]
    fn a_page_is_upside_down_when_most_lines_are() {
        assert!(mostly_upside_down(&[true, true, false]));
        assert!(!mostly_upside_down(&[true, false]), "half is not most");
        assert!(!mostly_upside_down(&[]));
    }

    #[test]
    fn turning_upright_and_mapping_back_agree_for_every_rotation() {
        // A 4 × 2 upright page with one marked pixel at (3, 0).
        let mut upright = RgbImage::new(4, 2);
        upright.put_pixel(3, 0, Rgb([255, 0, 0]));
        for rotation in [PageRotation::Upright, PageRotation::Quarter, PageRotation::Half, PageRotation::ThreeQuarters]
        {
            // The page as sent: the upright page turned clockwise by the rotation.
            let sent = match rotation {
                PageRotation::Upright => upright.clone(),
                PageRotation::Quarter => rotate90(&upright),
                PageRotation::Half => rotate180(&upright),
                PageRotation::ThreeQuarters => rotate270(&upright),
            };
            assert_eq!(rotation.upright(&sent), upright, "{rotation:?}");
            // The marked pixel's square, mapped back, covers the marked pixel as sent.
            let square: Quad = [(3.0, 0.0), (4.0, 0.0), (4.0, 1.0), (3.0, 1.0)];
            let mapped = rotation.to_sent(&square, 4, 2);
            let (xs, ys): (Vec<f32>, Vec<f32>) = mapped.iter().copied().unzip();
            let x = xs.iter().cloned().fold(f32::MAX, f32::min) as u32;
            let y = ys.iter().cloned().fold(f32::MAX, f32::min) as u32;
            assert_eq!(sent.get_pixel(x, y), &Rgb([255, 0, 0]), "{rotation:?}: {mapped:?}");
        }
    }

    #[test]
    fn a_half_more_composes() {
        assert_eq!(PageRotation::Quarter.plus_half(), PageRotation::ThreeQuarters);
        assert_eq!(PageRotation::Half.plus_half(), PageRotation::Upright);
        assert_eq!(PageRotation::ThreeQuarters.degrees(), 270);
    }
}

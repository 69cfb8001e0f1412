//! Cutting a detected text box out of the page as an upright rectangle (rapidocr's
//! `get_rotate_crop_image`): the quad is warped onto a rectangle as wide as its longer
//! horizontal edge and as high as its longer vertical edge; a crop at least 1.5 times as
//! high as wide is taken to be vertical text and turned a quarter counter-clockwise.

use image::RgbImage;
use image::imageops::rotate270;

use crate::image::geometry::{Quad, distance};
use crate::image::perspective::{Homography, warp_perspective};

/// The upright crop of `quad` (corners clockwise from top-left, in `page` pixels). Empty
/// when the page is, or the quad has no area in whole pixels or is not finite.
pub fn crop_quad(page: &RgbImage, quad: &Quad) -> RgbImage {
    if page.width() == 0 || page.height() == 0 {
        return RgbImage::new(0, 0);
    }
    let (width, height) = warped_size(quad);
    // No edge of a quad inside the page is longer than width + height; longer ones (far
    // outside, or garbage) would only allocate a huge crop of repeated border pixels.
    let longest = (u64::from(page.width()) + u64::from(page.height())) as f32;
    if !(1.0..=longest).contains(&width) || !(1.0..=longest).contains(&height) {
        return RgbImage::new(0, 0);
    }
    let corners = quad.map(|(x, y)| (f64::from(x), f64::from(y)));
    let Some(map) = Homography::from_rectangle(f64::from(width), f64::from(height), corners) else {
        return RgbImage::new(0, 0);
    };
    let crop = warp_perspective(page, &map, width as u32, height as u32);
    if is_vertical(width, height) { rotate270(&crop) } else { crop }
}

/// The rectangle a quad is warped onto: its longer horizontal and vertical edges, in whole
/// pixels.
fn warped_size(quad: &Quad) -> (f32, f32) {
    let [p0, p1, p2, p3] = *quad;
    (distance(p0, p1).max(distance(p2, p3)).trunc(), distance(p0, p3).max(distance(p1, p2)).trunc())
}

/// A warped crop at least 1.5 times as high as wide is vertical text.
fn is_vertical(width: f32, height: f32) -> bool {
    f64::from(height) / f64::from(width) >= 1.5
}

/// Whether [`crop_quad`] turns this quad's crop a quarter counter-clockwise (vertical text).
pub fn crop_is_quarter_turned(quad: &Quad) -> bool {
    let (width, height) = warped_size(quad);
    width >= 1.0 && is_vertical(width, height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Rgb};

    fn noise(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let v = (x * 31 + y * 17 + x * y * 7) % 251;
            Rgb([v as u8, (v * 3 % 256) as u8, (255 - v) as u8])
        })
    }

    #[test]
    fn an_upright_quad_crops_the_sub_image() {
        let page = noise(60, 40);
        let crop = crop_quad(&page, &[(10.0, 5.0), (40.0, 5.0), (40.0, 20.0), (10.0, 20.0)]);
        assert_eq!(crop, page.view(10, 5, 30, 15).to_image());
    }

    #[test]
    fn a_tall_quad_is_turned_counter_clockwise() {
        let page = noise(60, 40);
        let crop = crop_quad(&page, &[(10.0, 5.0), (20.0, 5.0), (20.0, 35.0), (10.0, 35.0)]);
        assert_eq!(crop.dimensions(), (30, 10));
        // np.rot90: the top-right source pixel becomes the top-left one.
        assert_eq!(crop.get_pixel(0, 0), page.get_pixel(19, 5));
        assert_eq!(crop.get_pixel(29, 9), page.get_pixel(10, 34));
        // Just under 1.5 stays as it is.
        let crop = crop_quad(&page, &[(10.0, 5.0), (30.0, 5.0), (30.0, 34.0), (10.0, 34.0)]);
        assert_eq!(crop.dimensions(), (20, 29));
    }

    #[test]
    fn a_tilted_quad_matches_cv2() {
        // Reference: rapidocr's get_rotate_crop_image (cv2.warpPerspective, INTER_CUBIC,
        // BORDER_REPLICATE) of the same noise page and quad; rows 0 and 6 of channel 0.
        let page = noise(60, 40);
        let crop = crop_quad(&page, &[(5.0, 12.0), (45.0, 2.0), (48.0, 14.0), (8.0, 24.0)]);
        assert_eq!(crop.dimensions(), (41, 12));
        let row = |y: u32| (0..crop.width()).map(|x| crop.get_pixel(x, y).0[0]).collect::<Vec<u8>>();
        let cv2_row0 = [
            26, 124, 96, 42, 157, 44, 46, 147, 227, 115, 133, 98, 240, 132, 131, 51, 192, 92, 116, 155, 50, 187, 128,
            40, 183, 152, 41, 157, 135, 0, 88, 152, 202, 220, 17, 102, 145, 182, 229, 116, 0,
        ];
        let cv2_row6 = [
            221, 88, 182, 99, 85, 153, 178, 117, 47, 132, 108, 103, 182, 93, 157, 179, 78, 175, 99, 73, 121, 0, 133,
            108, 135, 0, 97, 234, 110, 192, 75, 124, 208, 130, 147, 168, 131, 145, 107, 62, 83,
        ];
        assert_eq!(row(0), cv2_row0);
        assert_eq!(row(6), cv2_row6);
    }

    #[test]
    fn degenerate_or_absurd_quads_give_an_empty_crop() {
        let page = noise(20, 20);
        assert_eq!(crop_quad(&page, &[(5.0, 5.0); 4]).dimensions(), (0, 0));
        assert_eq!(crop_quad(&page, &[(f32::NAN, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0)]).dimensions(), (0, 0));
        assert_eq!(crop_quad(&page, &[(0.0, 0.0), (1e9, 0.0), (1e9, 5.0), (0.0, 5.0)]).dimensions(), (0, 0));
        assert_eq!(crop_quad(&page, &[(0.0, 0.0), (41.0, 0.0), (41.0, 5.0), (0.0, 5.0)]).dimensions(), (0, 0));
        assert_eq!(crop_quad(&page, &[(0.0, 0.0), (40.0, 0.0), (40.0, 5.0), (0.0, 5.0)]).dimensions(), (40, 5));
        assert_eq!(
            crop_quad(&RgbImage::new(0, 0), &[(0.0, 0.0), (9.0, 0.0), (9.0, 5.0), (0.0, 5.0)]).dimensions(),
            (0, 0)
        );
    }
}

//! Flattening an image with an alpha channel onto a background the models can read.
//!
//! The models see RGB only. Dropping alpha keeps whatever colour the transparent pixels
//! happen to hold, and editors usually give them the ink's own colour (a "text layer":
//! one colour, alpha says where the ink is), so black text on a transparent background
//! becomes black on black and reads as nothing. Compositing onto a fixed white background
//! fixes that case and breaks its mirror image, white text on a transparent background
//! (dark-mode UI captures, overlays). So the background is chosen to contrast with what is
//! visible: the alpha-weighted mean luminance of the pixels says whether the visible
//! content is dark (ink on a page that was left transparent → white background) or light
//! (light ink → black background). The recogniser reads light-on-dark lines as well.
//!
//! This guesses wrong when most of the visible area is itself a light page with dark ink
//! (a scan with transparent corners): its margins turn black, while the page and its text,
//! being opaque, are untouched, which the detector handles.

use image::{Rgb, RgbImage, RgbaImage};

/// Mid-grey on the 0..=255 luminance scale: visible content darker than this gets a white
/// background, lighter content a black one.
const MID_LUMINANCE: f64 = 127.5;

/// The background that contrasts with the visible content of `image`: white when its
/// alpha-weighted mean luminance is dark, black when it is light. White for an image with
/// nothing visible.
pub(crate) fn contrasting_background(image: &RgbaImage) -> Rgb<u8> {
    let (mut weighted, mut weight) = (0.0f64, 0.0f64);
    for pixel in image.pixels() {
        let [r, g, b, a] = pixel.0;
        let alpha = f64::from(a);
        weighted += alpha * luminance(r, g, b);
        weight += alpha;
    }
    if weight > 0.0 && weighted / weight > MID_LUMINANCE { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) }
}

/// `image` composited over `background` ("over" with straight alpha, rounded).
pub(crate) fn flatten_onto(image: &RgbaImage, background: Rgb<u8>) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b, a] = image.get_pixel(x, y).0;
        let mix = |colour: u8, under: u8| {
            let (a, colour, under) = (u32::from(a), u32::from(colour), u32::from(under));
            ((colour * a + under * (255 - a) + 127) / 255) as u8
        };
        Rgb([mix(r, background[0]), mix(g, background[1]), mix(b, background[2])])
    })
}

/// ITU-R BT.601 luma, the weights OpenCV's grey conversion uses.
fn luminance(r: u8, g: u8, b: u8) -> f64 {
    0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    /// `ink` where `covered` says, fully transparent `under` elsewhere.
    fn layer(covered: impl Fn(u32, u32) -> bool, ink: [u8; 3], under: [u8; 3]) -> RgbaImage {
        RgbaImage::from_fn(10, 4, |x, y| {
            if covered(x, y) { Rgba([ink[0], ink[1], ink[2], 255]) } else { Rgba([under[0], under[1], under[2], 0]) }
        })
    }

    #[test]
    fn the_background_contrasts_with_the_visible_ink_whatever_the_hidden_colour() {
        let strokes = |x: u32, _: u32| x.is_multiple_of(3);
        // Transparent pixels' colour does not count: it is never seen.
        for hidden in [[0, 0, 0], [255, 255, 255], [0, 200, 0]] {
            assert_eq!(contrasting_background(&layer(strokes, [10, 10, 10], hidden)), WHITE, "{hidden:?}");
            assert_eq!(contrasting_background(&layer(strokes, [240, 240, 240], hidden)), BLACK, "{hidden:?}");
        }
        // Pure blue is dark (luma 29), pure yellow light (226).
        assert_eq!(contrasting_background(&layer(strokes, [0, 0, 255], [0, 0, 0])), WHITE);
        assert_eq!(contrasting_background(&layer(strokes, [255, 255, 0], [0, 0, 0])), BLACK);
    }

    #[test]
    fn alpha_weights_the_mean() {
        // One opaque dark pixel outweighs nine light ones at alpha 20 (9 × 20 < 255).
        let image =
            RgbaImage::from_fn(10, 1, |x, _| if x == 0 { Rgba([0, 0, 0, 255]) } else { Rgba([255, 255, 255, 20]) });
        assert_eq!(contrasting_background(&image), WHITE);
        // At alpha 40 the light ones win (9 × 40 > 255).
        let image =
            RgbaImage::from_fn(10, 1, |x, _| if x == 0 { Rgba([0, 0, 0, 255]) } else { Rgba([255, 255, 255, 40]) });
        assert_eq!(contrasting_background(&image), BLACK);
    }

    #[test]
    fn nothing_visible_gets_white() {
        assert_eq!(contrasting_background(&RgbaImage::new(3, 3)), WHITE);
        assert_eq!(contrasting_background(&RgbaImage::new(0, 0)), WHITE);
    }

    #[test]
    fn compositing_is_over_with_straight_alpha() {
        let image =
            RgbaImage::from_raw(4, 1, vec![10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128, 200, 100, 0, 51]).unwrap();
        let flat = flatten_onto(&image, WHITE);
        assert_eq!(flat.get_pixel(0, 0), &Rgb([10, 20, 30]), "opaque: its own colour");
        assert_eq!(flat.get_pixel(1, 0), &WHITE, "transparent: the background");
        assert_eq!(flat.get_pixel(2, 0), &Rgb([127, 127, 127]), "half black over white");
        // 200·0.2 + 255·0.8 = 244, 100·0.2 + 255·0.8 = 224, 0·0.2 + 255·0.8 = 204.
        assert_eq!(flat.get_pixel(3, 0), &Rgb([244, 224, 204]));
        assert_eq!(flatten_onto(&image, BLACK).get_pixel(3, 0), &Rgb([40, 20, 0]));
    }
}

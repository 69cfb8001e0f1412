//! Image bytes → RGB pixels, with limits checked before any pixel is allocated.
//!
//! Every failure is a [`DecodeError`] whose message tells the caller what to fix; the
//! server maps them to `INVALID_ARGUMENT` (bad input) or `RESOURCE_EXHAUSTED` (too big).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::alpha::{contrasting_background, flatten_onto};

/// Formats the server accepts; anything else is refused by name.
const SUPPORTED_FORMATS: [ImageFormat; 5] =
    [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Tiff, ImageFormat::Bmp];

/// Bounds on what one request may decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Width × height above which an image is refused before decoding (decompression bombs).
    pub max_pixels: u64,
    /// Longest side accepted; also caps absurd aspect ratios such as 1 × 100000.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 50 megapixels covers an A4 page scanned at 600 dpi (~35 MP) with room to spare.
        Self { max_pixels: 50_000_000, max_side: 20_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("the bytes are not an image in a supported format (PNG, JPEG, WebP, TIFF, BMP)")]
    UnknownFormat,
    #[error("{format:?} images are not supported; send PNG, JPEG, WebP, TIFF or BMP")]
    UnsupportedFormat { format: ImageFormat },
    #[error("the image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    #[error(
        "the image is {width}x{height} ({pixels} pixels); the limit is {max_pixels} pixels and {max_side} per side — downscale it"
    )]
    TooLarge { width: u32, height: u32, pixels: u64, max_pixels: u64, max_side: u32 },
    #[error("the {format:?} image is truncated or corrupt: {source}")]
    Corrupt { format: ImageFormat, source: image::ImageError },
}

impl DecodeError {
    /// Too big is a resource limit, everything else a malformed request.
    pub fn is_resource_limit(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Decodes `bytes` to RGB, applying the EXIF orientation so that text is upright as the
/// camera saw it. An image with an alpha channel is flattened onto a background that
/// contrasts with its visible content ([`super::alpha`] says why).
pub fn decode_image(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| DecodeError::UnknownFormat)?;
    let format = reader.format().ok_or(DecodeError::UnknownFormat)?;
    if !SUPPORTED_FORMATS.contains(&format) {
        return Err(DecodeError::UnsupportedFormat { format });
    }
    let corrupt = |source: image::ImageError| DecodeError::Corrupt { format, source };
    let mut reader = reader;
    // The decoder is built with the allocation cap but without the side caps: with them it
    // refuses a huge image before anyone has seen its header, and the error could not say
    // which size was refused. Building it reads the header only.
    reader.limits(header_limits(limits));
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    decoder.set_limits(decoder_limits(limits)).map_err(|error| classify(error, format, width, height, limits))?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|error| classify(error, format, width, height, limits))?;
    image.apply_orientation(orientation);
    Ok(if image.color().has_alpha() {
        let image = image.into_rgba8();
        flatten_onto(&image, contrasting_background(&image))
    } else {
        image.into_rgb8()
    })
}

/// Refuses images with no pixels or beyond the limits, from the header's dimensions alone.
fn check_dimensions(width: u32, height: u32, limits: DecodeLimits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width.max(height) > limits.max_side {
        return Err(too_large(width, height, limits));
    }
    Ok(())
}

fn too_large(width: u32, height: u32, limits: DecodeLimits) -> DecodeError {
    DecodeError::TooLarge {
        width,
        height,
        pixels: u64::from(width) * u64::from(height),
        max_pixels: limits.max_pixels,
        max_side: limits.max_side,
    }
}

/// What reading the header may allocate: the same cap as decoding, no cap on the sides.
fn header_limits(limits: DecodeLimits) -> Limits {
    let mut header = Limits::default();
    header.max_alloc = decoder_limits(limits).max_alloc;
    header
}

fn decoder_limits(limits: DecodeLimits) -> Limits {
    let mut decoder = Limits::default();
    decoder.max_image_width = Some(limits.max_side);
    decoder.max_image_height = Some(limits.max_side);
    // RGBA16 at the pixel limit, plus slack for the decoder's own buffers.
    decoder.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder
}

/// A decoder's limit error means the image (whose header said `width x height`) needs more
/// memory than the limits allow; anything else is a broken file.
fn classify(
    error: image::ImageError,
    format: ImageFormat,
    width: u32,
    height: u32,
    limits: DecodeLimits,
) -> DecodeError {
    match error {
        image::ImageError::Limits(_) => too_large(width, height, limits),
        source => DecodeError::Corrupt { format, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, Rgba, RgbaImage, codecs::png::PngEncoder};

    fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([(x * 40) as u8, (y * 40) as u8, 7]))
    }

    #[test]
    fn every_supported_format_decodes_to_the_same_pixels() {
        let original = gradient(5, 3);
        for format in [ImageFormat::Png, ImageFormat::Tiff, ImageFormat::Bmp, ImageFormat::WebP] {
            let decoded = decode_image(&encode(&original, format), DecodeLimits::default()).unwrap();
            assert_eq!(decoded, original, "{format:?} is lossless");
        }
        let jpeg = decode_image(&encode(&original, ImageFormat::Jpeg), DecodeLimits::default()).unwrap();
        assert_eq!(jpeg.dimensions(), (5, 3));
    }

    #[test]
    fn empty_and_garbage_bytes_are_refused_by_name() {
        // DecodeError carries the decoder's error for corrupt images, which has no equality.
        assert!(matches!(decode_image(&[], DecodeLimits::default()), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_image(b"hello, not an image", DecodeLimits::default()),
            Err(DecodeError::UnknownFormat)
        ));
    }

    #[test]
    fn a_truncated_png_is_corrupt_not_a_panic() {
        let png = encode(&gradient(64, 64), ImageFormat::Png);
        for cut in [8, 20, 40, png.len() / 2, png.len() - 5] {
            match decode_image(&png[..cut], DecodeLimits::default()) {
                Err(DecodeError::Corrupt { format: ImageFormat::Png, .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_formats_are_named() {
        let gif_header = b"GIF89a\x01\x00\x01\x00\x00\x00\x00";
        assert!(matches!(
            decode_image(gif_header, DecodeLimits::default()),
            Err(DecodeError::UnsupportedFormat { format: ImageFormat::Gif })
        ));
    }

    #[test]
    fn dimension_limits_come_from_the_header() {
        let limits = DecodeLimits { max_pixels: 100, max_side: 20 };
        assert!(matches!(check_dimensions(0, 10, limits), Err(DecodeError::NoPixels { width: 0, height: 10 })));
        assert!(check_dimensions(10, 10, limits).is_ok());
        assert!(check_dimensions(11, 10, limits).unwrap_err().is_resource_limit());
        assert!(check_dimensions(1, 21, limits).unwrap_err().is_resource_limit());
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // A 10000 x 10000 black PNG compresses to a few hundred KB; decoding it would
        // allocate 300 MB. The header check refuses it at a 1 MP limit.
        let width = 10_000u32;
        let mut png = Vec::new();
        let row = vec![0u8; width as usize];
        let encoder = PngEncoder::new(&mut png);
        let pixels: Vec<u8> = row.iter().copied().cycle().take((width * 2000) as usize).collect();
        encoder.write_image(&pixels, width, 2000, image::ExtendedColorType::L8).unwrap();
        let limits = DecodeLimits { max_pixels: 1_000_000, max_side: 20_000 };
        let err = decode_image(&png, limits).unwrap_err();
        assert!(err.is_resource_limit(), "{err}");
        assert!(err.to_string().contains("10000x2000"), "{err}");
    }

    fn encode_png_rgba(image: &RgbaImage) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    /// A "text layer" as editors export it: every pixel has the ink's colour and only
    /// alpha says where the ink is (here two 3-pixel strokes and one half-covered pixel).
    fn text_layer(ink: [u8; 3]) -> RgbaImage {
        RgbaImage::from_fn(12, 8, |x, y| {
            let alpha = match (x, y) {
                (2..=4 | 7..=9, 2..=5) => 255,
                (11, 7) => 128,
                _ => 0,
            };
            Rgba([ink[0], ink[1], ink[2], alpha])
        })
    }

    #[test]
    fn dark_text_on_a_transparent_background_comes_out_dark_on_white() {
        let decoded = decode_image(&encode_png_rgba(&text_layer([0, 0, 0])), DecodeLimits::default()).unwrap();
        assert_eq!(decoded.get_pixel(3, 3), &Rgb([0, 0, 0]), "ink stays black");
        assert_eq!(decoded.get_pixel(0, 0), &Rgb([255, 255, 255]), "the transparent background is white");
        assert_eq!(decoded.get_pixel(11, 7), &Rgb([127, 127, 127]), "half-covered: half way to white");
    }

    #[test]
    fn light_text_on_a_transparent_background_comes_out_light_on_black() {
        let decoded = decode_image(&encode_png_rgba(&text_layer([250, 250, 250])), DecodeLimits::default()).unwrap();
        assert_eq!(decoded.get_pixel(3, 3), &Rgb([250, 250, 250]), "ink stays light");
        assert_eq!(decoded.get_pixel(0, 0), &Rgb([0, 0, 0]), "the transparent background is black");
        assert_eq!(decoded.get_pixel(11, 7), &Rgb([125, 125, 125]), "half-covered: half way to black");
    }

    #[test]
    fn an_opaque_image_with_an_alpha_channel_keeps_its_pixels() {
        let original = gradient(5, 3);
        let with_alpha = RgbaImage::from_fn(5, 3, |x, y| {
            let [r, g, b] = original.get_pixel(x, y).0;
            Rgba([r, g, b, 255])
        });
        assert_eq!(decode_image(&encode_png_rgba(&with_alpha), DecodeLimits::default()).unwrap(), original);
    }

    #[test]
    fn a_tall_thin_png_is_refused_with_its_real_size() {
        // A real 1 x 100000 PNG: the side limit (20000) refuses it, and the message says
        // which image it was, not "0x0".
        let tall = image::GrayImage::from_pixel(1, 100_000, image::Luma([255]));
        let mut png = Cursor::new(Vec::new());
        tall.write_to(&mut png, ImageFormat::Png).unwrap();
        let err = decode_image(&png.into_inner(), DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { width: 1, height: 100_000, pixels: 100_000, .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("1x100000") && message.contains("20000 per side"), "{message}");
    }

    #[test]
    fn a_huge_png_header_is_refused_with_its_real_size() {
        let err = decode_image(&png_declaring(30_000, 30_000), DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { width: 30_000, height: 30_000, .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("30000x30000 (900000000 pixels)"), "{message}");
        assert!(message.contains("50000000 pixels"), "{message}");
    }

    /// A 1 x 1 grey PNG whose header is rewritten to declare `width x height`: what a
    /// decoder sees of a huge image before it reads any pixel data.
    fn png_declaring(width: u32, height: u32) -> Vec<u8> {
        let mut png = Cursor::new(Vec::new());
        image::GrayImage::new(1, 1).write_to(&mut png, ImageFormat::Png).unwrap();
        let mut png = png.into_inner();
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height; CRC after 13 bytes.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    /// CRC-32 (ISO-HDLC), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 2x1 JPEG with EXIF orientation 6 (rotate 90° clockwise) must come out 1x2.
        let original = RgbImage::from_fn(32, 16, |x, _| if x < 16 { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
        let jpeg = encode(&original, ImageFormat::Jpeg);
        let with_exif = insert_exif_orientation(&jpeg, 6);
        let decoded = decode_image(&with_exif, DecodeLimits::default()).unwrap();
        assert_eq!(decoded.dimensions(), (16, 32));
        // The white half (left) is now on top.
        assert!(decoded.get_pixel(8, 4)[0] > 200, "top is white");
        assert!(decoded.get_pixel(8, 28)[0] < 50, "bottom is black");
    }

    /// Inserts an APP1 EXIF segment holding only the orientation tag after the SOI marker.
    fn insert_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}

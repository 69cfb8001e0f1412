//! Untrusted image bytes through everything the server does with them before and around
//! the models: decode (with limits), the LINE path (recogniser and classifier input of the
//! whole image), the DOCUMENT path (page preparation, detector input, DB post-processing
//! on a probability map, reading order, crops, classifier and recogniser input of every
//! crop) and `crop_quad` on arbitrary quads.
//!
//! The models never run: the probability map is made from the decoded pixels (the fuzzer
//! steers it through the image content), and arbitrary quads come from the input's last
//! 32 bytes (decoders ignore trailing bytes, so mutating them keeps the image valid).
//!
//! Any panic, hang or allocation over libFuzzer's limits is a bug in the library.

#![no_main]

use std::sync::LazyLock;

use image::RgbImage;
use kube_ocr_vision::image::{DecodeLimits, Quad, crop_quad, decode_image};
use kube_ocr_vision::input::{MAX_INPUT_SIDE, MAX_LINE_WIDTH, batch_width, classifier_input, line_tensor_data};
use kube_ocr_vision::layout::{DocumentPage, find_lines, prepare_document};
use kube_ocr_vision::params::PipelineParams;
use kube_ocr_vision::postprocess::{ProbabilityMap, detect_boxes, rotate_half_turn};
use libfuzzer_sys::fuzz_target;

/// Smaller than the server's defaults (50 MP, 20000 per side) so that each run stays fast;
/// the code paths are the same.
const LIMITS: DecodeLimits = DecodeLimits { max_pixels: 4_000_000, max_side: 4096 };

/// Probability maps are at most this many pixels (larger images are sampled with a stride).
const MAX_MAP_PIXELS: usize = 128 * 128;

/// Pages whose width + height exceed this get no arbitrary crops.
const MAX_ARBITRARY_CROP_SIDE: u32 = 512;

/// The parameters of the shipped manifest (a copy of `models/ppocr-v4/bundle.yaml`, as
/// models/ is a symlink into the cache) with two sizes scaled down for speed: the
/// detector's `limitSideLen` (736: every page became a detector input of at least
/// 736 × 736, whose resize under the fuzzer's instrumentation allowed 2 runs a second) and
/// the page's `maxSideLen` (2000: strips became 1984 × 496 pages, a second each). The code
/// paths are the same.
static PARAMS: LazyLock<PipelineParams> = LazyLock::new(|| {
    let mut params: PipelineParams =
        serde_norway::from_str(include_str!("../bundle.yaml")).expect("fuzz/bundle.yaml parses");
    params.detector.limit_side_len = 64;
    params.pipeline_options.max_side_len = 512;
    params
});

fuzz_target!(|data: &[u8]| {
    let Ok(image) = decode_image(data, LIMITS) else {
        return;
    };
    let params = &*PARAMS;
    assert!(image.width() > 0 && image.height() > 0, "decode_image returned an empty image");

    // LINE: the whole image is the one line (no classifier on the server, but its input
    // must not fail either).
    line_inputs(std::slice::from_ref(&image), params);
    classifier_inputs(std::slice::from_ref(&image), params);

    // DOCUMENT.
    let document = prepare_document(&image, params).expect("a decoded image has pixels");
    let input = &document.detector_input;
    assert_eq!(input.data.len(), 3 * input.width as usize * input.height as usize);
    assert!(input.data.iter().all(|v| v.is_finite()), "detector input is finite");
    // Bounded work whatever the image's shape: the page's longer side stays near maxSideLen
    // and the detector input's within its cap.
    let page = &document.page.image;
    let max_page_side = params.pipeline_options.max_side_len + 32;
    assert!(
        page.width().max(page.height()) <= max_page_side,
        "a {:?} image became a {:?} page",
        image.dimensions(),
        page.dimensions()
    );
    assert!(
        input.width.max(input.height) <= MAX_INPUT_SIDE,
        "a {:?} page became a {}x{} detector input",
        page.dimensions(),
        input.width,
        input.height
    );

    let map = probability_map(&image);
    let (quads, crops) = find_lines(&document, &map, params).expect("the map has the size it says");
    assert_eq!(quads.len(), crops.len());
    let (width, height) = (image.width() as f32, image.height() as f32);
    for quad in &quads {
        assert!(quad.iter().all(|&(x, y)| (0.0..=width).contains(&x) && (0.0..=height).contains(&y)), "{quad:?}");
    }
    let crops: Vec<RgbImage> =
        crops.iter().map(|crop| if crop.width() % 2 == 0 { rotate_half_turn(crop) } else { crop.clone() }).collect();
    classifier_inputs(&crops, params);
    line_inputs(&crops, params);

    // The same map against a page of another size (the detector map is at the detector
    // input's scale, not the page's).
    detect_boxes(&map, (page.width() / 3, page.height() + 7), &params.detector).expect("the map has the size it says");

    arbitrary_crops(&document, data, params);
});

/// Recogniser input for `lines` as one batch, padded to the widest.
fn line_inputs(lines: &[RgbImage], params: &PipelineParams) {
    let config = &params.recognizer;
    let width = batch_width(lines, config.input_height, config.default_width);
    assert!(
        width <= MAX_LINE_WIDTH,
        "lines {:?} make a batch {width} wide",
        lines.iter().map(RgbImage::dimensions).collect::<Vec<_>>()
    );
    for line in lines {
        let data = line_tensor_data(line, config.input_height, width, &config.normalization, params.color_order)
            .expect("a non-empty line has an input");
        assert_eq!(data.len(), 3 * config.input_height as usize * width as usize);
    }
}

fn classifier_inputs(crops: &[RgbImage], params: &PipelineParams) {
    let config = &params.classifier;
    let [channels, height, width] = config.input_shape;
    for crop in crops {
        let data = classifier_input(crop, config, params.color_order).expect("a non-empty crop has an input");
        assert_eq!(data.len(), (channels * height * width) as usize);
    }
}

/// A detector output made from the image: green is the text probability, except where red
/// is 255 and blue 0, where green picks one of the values a broken model could produce.
fn probability_map(image: &RgbImage) -> ProbabilityMap {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let stride = (width * height).div_ceil(MAX_MAP_PIXELS).isqrt().max(1);
    let stride = if width.div_ceil(stride) * height.div_ceil(stride) > MAX_MAP_PIXELS { stride + 1 } else { stride };
    let (map_width, map_height) = (width.div_ceil(stride), height.div_ceil(stride));
    let mut data = Vec::with_capacity(map_width * map_height);
    for y in (0..height).step_by(stride) {
        for x in (0..width).step_by(stride) {
            let [r, g, b] = image.get_pixel(x as u32, y as u32).0;
            data.push(match (r, b, g) {
                (255, 0, 0) => f32::NAN,
                (255, 0, 1) => f32::INFINITY,
                (255, 0, 2) => f32::NEG_INFINITY,
                (255, 0, 3) => -1.0,
                (255, 0, 4) => 2.0,
                _ => f32::from(g) / 255.0,
            });
        }
    }
    ProbabilityMap { data, width: map_width as u32, height: map_height as u32 }
}

/// `crop_quad` on quads from the last 32 bytes: sixteen u16 coordinates spread over
/// a margin around the page, and the same bytes as eight raw f32 (NaN, infinities, huge).
/// Only on small pages: a crop may be (width + height)² pixels, seconds of bicubic sampling
/// on a large page under the fuzzer (the server crops detected boxes, inside the page).
fn arbitrary_crops(document: &DocumentPage, data: &[u8], params: &PipelineParams) {
    let page = &document.page.image;
    let Some(tail) = data.len().checked_sub(32).map(|start| &data[start..]) else {
        return;
    };
    if page.width() + page.height() > MAX_ARBITRARY_CROP_SIDE {
        return;
    }
    let (width, height) = (page.width() as f32, page.height() as f32);
    let spread = |raw: u16, size: f32| f32::from(raw) / f32::from(u16::MAX) * 2.0 * size - 0.5 * size;
    let words: Vec<u16> = tail.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    let floats: Vec<f32> = tail.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut quads: Vec<Quad> = Vec::new();
    for corners in words.chunks_exact(8) {
        quads.push(std::array::from_fn(|i| (spread(corners[2 * i], width), spread(corners[2 * i + 1], height))));
    }
    quads.push(std::array::from_fn(|i| (floats[2 * i], floats[2 * i + 1])));
    for quad in quads {
        let crop = crop_quad(page, &quad);
        if crop.width() == 0 || crop.height() == 0 {
            continue;
        }
        let crops = [crop];
        classifier_inputs(&crops, params);
        line_inputs(&crops, params);
    }
}

//! The document path around the detector, as pure functions: page preparation before the
//! detector, and after it the boxes in reading order with their upright crops.

use image::RgbImage;

use crate::error::VisionError;
use crate::image::{Quad, crop_quad};
use crate::input::{DetectorInput, PreparedPage, detector_input, prepare_page};
use crate::layout::reading_order::sort_into_reading_order;
use crate::params::PipelineParams;
use crate::postprocess::{ProbabilityMap, detect_boxes};

/// A page ready for the detector, and what is needed to map its boxes back.
#[derive(Debug, Clone)]
pub struct DocumentPage {
    pub page: PreparedPage,
    pub detector_input: DetectorInput,
}

/// `None` when the image has no pixels (decoding refuses those before this point).
pub fn prepare_document(image: &RgbImage, params: &PipelineParams) -> Option<DocumentPage> {
    let page = prepare_page(image, &params.pipeline_options)?;
    let detector_input = detector_input(&page.image, &params.detector, params.color_order)?;
    Some(DocumentPage { page, detector_input })
}

/// The text lines the detector found: their boxes in the uploaded image's coordinates,
/// in reading order, with the upright crop of each from the page. Boxes whose crop is
/// empty are left out.
pub fn find_lines(
    document: &DocumentPage,
    map: &ProbabilityMap,
    params: &PipelineParams,
) -> Result<(Vec<Quad>, Vec<RgbImage>), VisionError> {
    let page = &document.page.image;
    let mut boxes = detect_boxes(map, page.dimensions(), &params.detector)?;
    sort_into_reading_order(&mut boxes);
    let mut quads = Vec::with_capacity(boxes.len());
    let mut crops = Vec::with_capacity(boxes.len());
    for detected in boxes {
        let crop = crop_quad(page, &detected.quad);
        if crop.width() == 0 || crop.height() == 0 {
            continue;
        }
        quads.push(document.page.transform.to_original(&detected.quad));
        crops.push(crop);
    }
    Ok((quads, crops))
}

/// The box of a LINE request: the whole image.
pub fn whole_image_quad(width: u32, height: u32) -> Quad {
    let (w, h) = (width as f32, height as f32);
    [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_image_quad_runs_clockwise_from_the_top_left() {
        assert_eq!(whole_image_quad(4, 2), [(0.0, 0.0), (4.0, 0.0), (4.0, 2.0), (0.0, 2.0)]);
    }
}

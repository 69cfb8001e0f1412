//! A DOCUMENT page through the detector, turned upright first when it arrived turned
//! ([`kube_ocr_vision::layout::PageRotation`] says how that is judged). On an upright page
//! this is one detector pass and the line classifier's verdicts, as before; a page that
//! looks sideways or mostly upside down costs one more detector pass (two when sideways
//! and then the wrong quarter).

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use kube_ocr_vision::image::Quad;
use kube_ocr_vision::layout::{PageRotation, find_lines, looks_sideways, mostly_upside_down, prepare_document};

use super::{Engine, OcrError, OcrOptions, PhaseTimings, blocking};
use crate::model::DetectorStage;
use crate::serve::batcher::Batcher;

/// The lines of a page, in the coordinates of the page turned upright.
#[derive(Debug)]
pub(super) struct UprightLines {
    pub quads: Vec<Quad>,
    /// Each line's crop, turned half a turn where the classifier said so.
    pub crops: Vec<RgbImage>,
    pub rotated: Vec<bool>,
    /// How the page as sent was turned.
    pub rotation: PageRotation,
    /// Width and height of the upright page.
    pub upright_size: (u32, u32),
}

impl Engine {
    /// Finds and orients the lines of `page`, turning the page upright first when its
    /// lines say it is sideways or upside down (not when the caller skips orientation or
    /// the bundle has no classifier: the quarter and the half turn are the classifier's
    /// call).
    pub(super) async fn find_upright_lines(
        &self,
        detector: &Batcher<DetectorStage>,
        page: &Arc<RgbImage>,
        options: OcrOptions,
        deadline: Instant,
        timings: &mut PhaseTimings,
    ) -> Result<UprightLines, OcrError> {
        let judge_rotation = self.classifier.is_some() && !options.skip_orientation;
        let mut rotation = PageRotation::Upright;
        let mut upright = page.clone();
        let (mut quads, mut crops) = self.detect_lines(detector, upright.clone(), deadline, timings).await?;
        if judge_rotation && looks_sideways(&quads) {
            rotation = PageRotation::Quarter;
            upright = self.turn(page, rotation, timings).await?;
            (quads, crops) = self.detect_lines(detector, upright.clone(), deadline, timings).await?;
        }
        let (mut crops, mut rotated) = self.orient(crops, options, deadline, timings).await?;
        if judge_rotation && mostly_upside_down(&rotated) {
            rotation = rotation.plus_half();
            upright = self.turn(page, rotation, timings).await?;
            (quads, crops) = self.detect_lines(detector, upright.clone(), deadline, timings).await?;
            (crops, rotated) = self.orient(crops, options, deadline, timings).await?;
        }
        Ok(UprightLines { quads, crops, rotated, rotation, upright_size: upright.dimensions() })
    }

    async fn turn(
        &self,
        page: &Arc<RgbImage>,
        rotation: PageRotation,
        timings: &mut PhaseTimings,
    ) -> Result<Arc<RgbImage>, OcrError> {
        let started = Instant::now();
        let page = page.clone();
        let turned = blocking(move || rotation.upright(&page)).await?;
        timings.preprocess += started.elapsed();
        Ok(Arc::new(turned))
    }

    /// The detector's lines of `page` in reading order, with their crops.
    async fn detect_lines(
        &self,
        detector: &Batcher<DetectorStage>,
        page: Arc<RgbImage>,
        deadline: Instant,
        timings: &mut PhaseTimings,
    ) -> Result<(Vec<Quad>, Vec<RgbImage>), OcrError> {
        let started = Instant::now();
        let bundle = self.bundle.clone();
        let prepared = blocking(move || prepare_document(&page, &bundle.manifest.params)).await?;
        timings.preprocess += started.elapsed();
        let Some(prepared) = prepared else {
            return Ok((Vec::new(), Vec::new()));
        };
        let map = detector.submit(prepared.detector_input.clone(), deadline).await?;
        timings.add_stage(std::slice::from_ref(&map));
        let started = Instant::now();
        let bundle = self.bundle.clone();
        let found = blocking(move || find_lines(&prepared, &map.output, &bundle.manifest.params)).await?;
        timings.postprocess += started.elapsed();
        found.map_err(OcrError::FindLines)
    }
}

//! Upside-down LINE images. The direction classifier sees the line's tight crop (its
//! margins confuse it: on a whole golden line with margins it says 180° at p = 0.93), and
//! a half turn it proposes is kept only when the recogniser reads more of the turned line,
//! with confidence, than of the line as sent. Why these two steps and their thresholds: the
//! evidence is in `kube_ocr_vision::postprocess::line_orientation`.

use std::time::Instant;

use image::RgbImage;
use kube_ocr_vision::image::trim_margins;
use kube_ocr_vision::input::classifier_input;
use kube_ocr_vision::postprocess::{LINE_TURN_PROPOSAL, half_turn_reads_better, rotate_half_turn, should_rotate};

use super::{Engine, OcrError, OcrOptions, PhaseTimings, blocking};
use crate::model::ClassifierInput;

impl Engine {
    /// The LINE crops, each turned half a turn when it reads better that way, and which
    /// turned. Unchanged when the caller skips orientation or the bundle has no classifier.
    pub(super) async fn orient_lines(
        &self,
        lines: Vec<RgbImage>,
        options: OcrOptions,
        deadline: Instant,
        timings: &mut PhaseTimings,
    ) -> Result<(Vec<RgbImage>, Vec<bool>), OcrError> {
        let mut oriented = Vec::with_capacity(lines.len());
        let mut rotated = Vec::with_capacity(lines.len());
        for line in lines {
            let (line, turned) = self.orient_line(line, options, deadline, timings).await?;
            oriented.push(line);
            rotated.push(turned);
        }
        Ok((oriented, rotated))
    }

    async fn orient_line(
        &self,
        line: RgbImage,
        options: OcrOptions,
        deadline: Instant,
        timings: &mut PhaseTimings,
    ) -> Result<(RgbImage, bool), OcrError> {
        let Some(classifier) = self.classifier.as_ref().filter(|_| !options.skip_orientation) else {
            return Ok((line, false));
        };
        let bundle = self.bundle.clone();
        let started = Instant::now();
        let (line, input) = blocking(move || {
            let params = &bundle.manifest.params;
            let input = classifier_input(&trim_margins(&line), &params.classifier, params.color_order);
            (line, input)
        })
        .await?;
        timings.preprocess += started.elapsed();
        let Some(data) = input else {
            return Ok((line, false));
        };
        let verdict = classifier.submit(ClassifierInput { data }, deadline).await?;
        timings.add_stage(std::slice::from_ref(&verdict));
        if !should_rotate(&verdict.output, &self.bundle.manifest.params.classifier.labels, LINE_TURN_PROPOSAL) {
            return Ok((line, false));
        }

        let started = Instant::now();
        let (line, turned) = blocking(move || {
            let turned = rotate_half_turn(&line);
            (line, turned)
        })
        .await?;
        timings.preprocess += started.elapsed();
        let pending = self.recognizer.enqueue_all(vec![line.clone(), turned.clone()], deadline)?;
        let mut reads = Vec::with_capacity(pending.len());
        for receiver in pending {
            reads.push(receiver.await.map_err(|source| OcrError::AwaitStage { stage: "recognizer", source })??);
        }
        timings.add_stage(&reads);
        match reads.as_slice() {
            [as_sent, half_turn] if half_turn_reads_better(&as_sent.output, &half_turn.output) => Ok((turned, true)),
            _ => Ok((line, false)),
        }
    }
}

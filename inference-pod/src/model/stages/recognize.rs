use std::sync::Arc;

use image::RgbImage;
use kube_ocr_vision::input::{batch_width, line_tensor_data, scaled_width};
use kube_ocr_vision::layout::plan_line_batches;
use kube_ocr_vision::params::{ColorOrder, RecognizerConfig};
use kube_ocr_vision::postprocess::{DecodedLine, greedy_decode};

use super::{BatchProcessor, run_groups};
use crate::model::bundle::Bundle;
use crate::model::device::ComputeDevice;
use crate::model::error::ModelError;
use crate::model::torchscript::TorchScriptModule;

/// The bundle's recogniser on one device: line crops in, decoded text out.
#[derive(Debug)]
pub struct Recognizer {
    module: TorchScriptModule,
    config: RecognizerConfig,
    color_order: ColorOrder,
    /// Output class → text, from the bundle's charset.
    classes: Vec<String>,
}

impl Recognizer {
    pub fn load(bundle: &Bundle, device: ComputeDevice) -> Result<Self, ModelError> {
        let path = bundle.path_of(&bundle.files.recognizer.file);
        let module = TorchScriptModule::load("recognizer", &path, device)?;
        Ok(Self {
            module,
            config: bundle.manifest.params.recognizer.clone(),
            color_order: bundle.manifest.params.color_order,
            classes: bundle.classes.clone(),
        })
    }

    /// (input height, default width) of the recogniser.
    pub fn input_geometry(&self) -> (u32, u32) {
        (self.config.input_height, self.config.default_width)
    }

    /// Reads every line; all lines go through the model as one batch padded to the widest.
    pub fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<DecodedLine>, ModelError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.config;
        let width = batch_width(lines, config.input_height, config.default_width);
        let inputs: Vec<Vec<f32>> = lines
            .iter()
            .map(|line| line_tensor_data(line, config.input_height, width, &config.normalization, self.color_order))
            .collect::<Result<_, _>>()?;
        let slices: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let (flat, size) =
            self.module.forward_stacked(&slices, &[3, i64::from(config.input_height), i64::from(width)])?;
        let shape_error = |reason: String| ModelError::ModelOutputShape { module: "recognizer".into(), reason };
        let &[batch, steps, classes] = size.as_slice() else {
            return Err(shape_error(format!("expected [batch, steps, classes], got {size:?}")));
        };
        if batch != lines.len() as i64 || classes != self.classes.len() as i64 {
            return Err(shape_error(format!(
                "got {size:?} for {} lines and {} classes",
                lines.len(),
                self.classes.len()
            )));
        }
        let per_line = (steps * classes) as usize;
        Ok(flat
            .chunks_exact(per_line)
            .map(|probabilities| greedy_decode(probabilities, &self.classes, config.blank_index))
            .collect())
    }
}

/// Runs the recogniser on line crops. A batch from the queue is split into forward
/// passes of similar width ([`plan_line_batches`]) so short lines are not padded to the
/// width of the longest one.
#[derive(Debug)]
pub(crate) struct RecognizerStage {
    pub recognizer: Recognizer,
    pub max_batch_size: usize,
}

impl BatchProcessor for RecognizerStage {
    type Input = RgbImage;
    type Output = DecodedLine;
    type Error = ModelError;

    fn process(&mut self, lines: Vec<RgbImage>) -> Vec<Result<DecodedLine, Arc<ModelError>>> {
        let (height, default_width) = self.recognizer.input_geometry();
        let widths: Vec<u32> =
            lines.iter().map(|line| scaled_width(line.width().max(1), line.height().max(1), height)).collect();
        let batches = plan_line_batches(&widths, default_width, self.max_batch_size);
        run_groups("recognizer", lines.len(), batches, |batch| {
            let crops: Vec<RgbImage> = batch.iter().map(|&i| lines[i].clone()).collect();
            self.recognizer.recognize(&crops)
        })
    }
}

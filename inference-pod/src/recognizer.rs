//! Recognition of text-line crops: batch them, run the recogniser, decode.

use image::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::InferenceError;
use crate::bundle::Bundle;
use crate::ctc::{DecodedLine, greedy_decode};
use crate::line_input::{batch_width, line_tensor_data};
use crate::torchscript::TorchScriptModule;

/// The bundle's recogniser on one device.
#[derive(Debug)]
pub struct Recognizer {
    module: TorchScriptModule,
    bundle: Bundle,
}

impl Recognizer {
    pub fn load(bundle: &Bundle, device: Device) -> Result<Self, InferenceError> {
        let path = bundle.path_of(&bundle.manifest.recognizer.file);
        let module = TorchScriptModule::load("recognizer", &path, device)?;
        Ok(Self { module, bundle: bundle.clone() })
    }

    /// (input height, default width) of the recogniser.
    pub fn input_geometry(&self) -> (u32, u32) {
        let config = &self.bundle.manifest.recognizer;
        (config.input_height, config.default_width)
    }

    /// Reads every line; all lines go through the model as one batch padded to the widest.
    pub fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<DecodedLine>, InferenceError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.bundle.manifest.recognizer;
        let width = batch_width(lines, config.input_height, config.default_width);
        let mut data = Vec::with_capacity(lines.len() * 3 * config.input_height as usize * width as usize);
        for line in lines {
            data.extend(line_tensor_data(
                line,
                config.input_height,
                width,
                &config.normalization,
                self.bundle.manifest.color_order,
            )?);
        }
        let shape = [lines.len() as i64, 3, i64::from(config.input_height), i64::from(width)];
        let input = Tensor::from_slice(&data).reshape(shape);
        let output = self.module.forward(&input)?.to_device(Device::Cpu).to_kind(Kind::Float);
        let size = output.size();
        let shape_error = |reason: String| InferenceError::ModelOutputShape { module: "recognizer".into(), reason };
        let &[batch, steps, classes] = size.as_slice() else {
            return Err(shape_error(format!("expected [batch, steps, classes], got {size:?}")));
        };
        if batch != lines.len() as i64 || classes != self.bundle.classes.len() as i64 {
            return Err(shape_error(format!(
                "got {size:?} for {} lines and {} classes",
                lines.len(),
                self.bundle.classes.len()
            )));
        }
        let flat = Vec::<f32>::try_from(output.contiguous().view(-1))
            .map_err(|source| InferenceError::RunTorchScript { module: "recognizer".into(), source })?;
        let per_line = (steps * classes) as usize;
        Ok(flat
            .chunks_exact(per_line)
            .map(|probabilities| greedy_decode(probabilities, &self.bundle.classes, config.blank_index))
            .collect())
    }
}

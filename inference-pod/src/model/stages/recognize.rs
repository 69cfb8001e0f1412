use std::sync::Arc;
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use kube_ocr_vision::input::{batch_width, line_tensor_data, scaled_width};
use kube_ocr_vision::layout::plan_line_batches;
use kube_ocr_vision::params::{ColorOrder, RecognizerConfig};
use kube_ocr_vision::postprocess::{DecodedLine, greedy_decode};

use super::{BatchProcessor, run_groups};
use crate::model::batch_choice::best_batch_size;
use crate::model::bundle::Bundle;
use crate::model::device::ComputeDevice;
use crate::model::error::ModelError;
use crate::model::precision::ModelOptions;
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
    pub fn load(bundle: &Bundle, device: ComputeDevice, options: ModelOptions) -> Result<Self, ModelError> {
        let path = bundle.path_of(&bundle.files.recognizer.file);
        let module = TorchScriptModule::load("recognizer", &path, device, options)?;
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
            .zip(lines)
            .map(|(probabilities, line)| DecodedLine {
                padded_width: width,
                content_width: scaled_width(line.width(), line.height(), config.input_height).min(width),
                ..greedy_decode(probabilities, &self.classes, config.blank_index)
            })
            .collect())
    }

    /// Lines per second at each of `batch_sizes`, from real forward passes on synthetic
    /// white line crops at the model's input height. `widths` are the kinds of line to
    /// expect; each comes as a group of as many crops as the largest size, their widths
    /// spread from it to [`WIDTH_SPREAD`] times it. A server under load has many lines of
    /// similar width queued, and its stage groups them ([`plan_line_batches`]), so each
    /// size is measured with full batches of similar lines, padding within a batch
    /// included. (One crop per width would measure batches of unlike lines that the stage
    /// never forms, and favour batch 1.) One warm-up pass per size (first calls per input
    /// shape are slow), then [`THROUGHPUT_ROUNDS`] rounds that time one pass per size in
    /// turn, keeping each size's fastest: interleaving spreads whatever else the machine is
    /// doing over all sizes alike. For start-up, to pick a batch size with
    /// `best_batch_size`; takes seconds on a CPU.
    pub fn measure_batch_throughput(
        &self,
        widths: &[u32],
        batch_sizes: &[usize],
    ) -> Result<Vec<(usize, f64)>, ModelError> {
        let sizes: Vec<usize> = batch_sizes.iter().copied().filter(|&size| size > 0).collect();
        let largest = sizes.iter().copied().max().unwrap_or(1);
        if widths.is_empty() || sizes.is_empty() {
            return Ok(Vec::new());
        }
        let line_widths = similar_line_widths(widths, largest);
        let count = line_widths.len();
        let height = self.config.input_height;
        let crops: Vec<RgbImage> =
            line_widths.iter().map(|&width| RgbImage::from_pixel(width, height, Rgb([255, 255, 255]))).collect();
        let plans: Vec<Vec<Vec<RgbImage>>> = sizes
            .iter()
            .map(|&size| {
                plan_line_batches(&line_widths, self.config.default_width, size)
                    .into_iter()
                    .map(|batch| batch.iter().map(|&i| crops[i].clone()).collect())
                    .collect()
            })
            .collect();
        let pass = |batches: &[Vec<RgbImage>]| -> Result<Duration, ModelError> {
            let started = Instant::now();
            for batch in batches {
                self.recognize(batch)?;
            }
            Ok(started.elapsed())
        };
        for batches in &plans {
            pass(batches)?;
        }
        let mut fastest = vec![Duration::MAX; plans.len()];
        for _ in 0..THROUGHPUT_ROUNDS {
            for (best, batches) in fastest.iter_mut().zip(&plans) {
                *best = (*best).min(pass(batches)?);
            }
        }
        Ok(sizes
            .into_iter()
            .zip(fastest)
            .map(|(size, time)| (size, count as f64 / time.as_secs_f64().max(1e-9)))
            .collect())
    }
}

impl Recognizer {
    /// The batch size per forward pass that reads the most lines per second here, with the
    /// measurements it rests on: sizes 1, 2, 4, … up to `max_batch_size` in turn, on
    /// [`MEASURED_LINE_WIDTHS`], stopping at the first that reads no faster than the best
    /// so far ([`best_batch_size`]). Throughput rises with batch size until the device is
    /// saturated, and measuring ever larger batches past that point would cost minutes of
    /// start-up on a CPU (a batch of 32 long lines takes seconds per pass there).
    pub fn fastest_batch_size(&self, max_batch_size: usize) -> Result<(usize, Vec<(usize, f64)>), ModelError> {
        if max_batch_size <= 1 {
            return Ok((1, Vec::new()));
        }
        let sizes = std::iter::successors(Some(1usize), |size| Some(size * 2))
            .take_while(|&size| size < max_batch_size)
            .chain([max_batch_size]);
        let mut measured: Vec<(usize, f64)> = Vec::new();
        for size in sizes {
            measured.extend(self.measure_batch_throughput(&MEASURED_LINE_WIDTHS, &[size])?);
            if best_batch_size(&measured) != size {
                break;
            }
        }
        Ok((best_batch_size(&measured), measured))
    }
}

/// Widths (at the model's input height) of the synthetic lines [`Recognizer::fastest_batch_size`]
/// reads: one group at the default width, to which every shorter line is padded (most
/// lines of a page). One group keeps the measurement to about a second on a CPU: every
/// pod start pays for it.
pub const MEASURED_LINE_WIDTHS: [u32; 1] = [320];

/// Timed rounds in [`Recognizer::measure_batch_throughput`].
const THROUGHPUT_ROUNDS: usize = 3;

/// The widest crop of a measured group over its narrowest: within the stage's padding
/// limit, so a group is planned as one batch of up to the largest size.
const WIDTH_SPREAD: f64 = 1.2;

/// `per_width` crop widths for each of `widths`, spread evenly from it to [`WIDTH_SPREAD`]
/// times it.
fn similar_line_widths(widths: &[u32], per_width: usize) -> Vec<u32> {
    let steps = per_width.saturating_sub(1).max(1) as f64;
    widths
        .iter()
        .flat_map(|&width| {
            let width = f64::from(width.max(1));
            (0..per_width).map(move |k| (width * (1.0 + (WIDTH_SPREAD - 1.0) * k as f64 / steps)).round() as u32)
        })
        .collect()
}

/// Runs the recogniser on line crops. A batch from the queue is split into forward
/// passes of similar width ([`plan_line_batches`]) so short lines are not padded to the
/// width of the longest one.
#[derive(Debug)]
pub struct RecognizerStage {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_measured_width_gives_full_batches_of_similar_lines() {
        for size in [1, 2, 4, 8, 16] {
            let widths = similar_line_widths(&[200, 320, 400, 640], size);
            assert_eq!(widths.len(), 4 * size);
            let batches = plan_line_batches(&widths, 320, size);
            assert_eq!(batches.len(), 4, "size {size}: {batches:?}");
            assert!(batches.iter().all(|batch| batch.len() == size), "size {size}: {batches:?}");
        }
        assert_eq!(similar_line_widths(&[400], 3), vec![400, 440, 480]);
        assert_eq!(similar_line_widths(&[0], 1), vec![1]);
    }
}

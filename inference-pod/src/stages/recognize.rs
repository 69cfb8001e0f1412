use image::RgbImage;

use crate::batcher::BatchProcessor;
use crate::ctc::DecodedLine;
use crate::line_batches::plan_line_batches;
use crate::line_input::scaled_width;
use crate::recognizer::Recognizer;

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

    fn process(&mut self, lines: Vec<RgbImage>) -> Vec<Result<DecodedLine, String>> {
        let (height, default_width) = self.recognizer.input_geometry();
        let widths: Vec<u32> =
            lines.iter().map(|line| scaled_width(line.width().max(1), line.height().max(1), height)).collect();
        let mut outputs: Vec<Option<Result<DecodedLine, String>>> = (0..lines.len()).map(|_| None).collect();
        for batch in plan_line_batches(&widths, default_width, self.max_batch_size) {
            let crops: Vec<RgbImage> = batch.iter().map(|&i| lines[i].clone()).collect();
            match self.recognizer.recognize(&crops) {
                Ok(decoded) => {
                    for (&index, line) in batch.iter().zip(decoded) {
                        outputs[index] = Some(Ok(line));
                    }
                }
                Err(error) => {
                    for &index in &batch {
                        outputs[index] = Some(Err(error.to_string()));
                    }
                }
            }
        }
        outputs.into_iter().map(|o| o.unwrap_or_else(|| Err("no recogniser output".into()))).collect()
    }
}

use std::collections::BTreeMap;

use crate::InferenceError;
use crate::batcher::BatchProcessor;
use crate::detect_input::DetectorInput;
use crate::torchscript::TorchScriptModule;

use super::forward_stacked;

/// The detector's text probability per pixel of its input, row-major.
#[derive(Debug, Clone)]
pub struct ProbabilityMap {
    pub data: Vec<f32>,
    pub width: u32,
    pub height: u32,
}

/// Runs the detector. Pages of the same input size share a forward pass; pages of
/// different sizes are not padded together (padding would shift the DB map), so a batch
/// of mixed sizes runs as several passes.
#[derive(Debug)]
pub struct DetectorStage {
    pub module: TorchScriptModule,
}

impl DetectorStage {
    fn run_group(&self, inputs: &[&DetectorInput]) -> Result<Vec<ProbabilityMap>, InferenceError> {
        let (width, height) = (inputs[0].width, inputs[0].height);
        let slices: Vec<&[f32]> = inputs.iter().map(|i| i.data.as_slice()).collect();
        let (flat, size) = forward_stacked(&self.module, &slices, &[3, i64::from(height), i64::from(width)])?;
        let expected = [inputs.len() as i64, 1, i64::from(height), i64::from(width)];
        if size != expected {
            return Err(InferenceError::ModelOutputShape {
                module: "detector".into(),
                reason: format!("expected {expected:?}, got {size:?}"),
            });
        }
        let plane = (width * height) as usize;
        Ok(flat.chunks_exact(plane).map(|data| ProbabilityMap { data: data.to_vec(), width, height }).collect())
    }
}

impl BatchProcessor for DetectorStage {
    type Input = DetectorInput;
    type Output = ProbabilityMap;

    fn process(&mut self, inputs: Vec<DetectorInput>) -> Vec<Result<ProbabilityMap, String>> {
        let mut groups: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (index, input) in inputs.iter().enumerate() {
            groups.entry((input.width, input.height)).or_default().push(index);
        }
        let mut outputs: Vec<Option<Result<ProbabilityMap, String>>> = (0..inputs.len()).map(|_| None).collect();
        for indices in groups.values() {
            let group: Vec<&DetectorInput> = indices.iter().map(|&i| &inputs[i]).collect();
            match self.run_group(&group) {
                Ok(maps) => {
                    for (&index, map) in indices.iter().zip(maps) {
                        outputs[index] = Some(Ok(map));
                    }
                }
                Err(error) => {
                    for &index in indices {
                        outputs[index] = Some(Err(error.to_string()));
                    }
                }
            }
        }
        outputs.into_iter().map(|o| o.unwrap_or_else(|| Err("no detector output".into()))).collect()
    }
}

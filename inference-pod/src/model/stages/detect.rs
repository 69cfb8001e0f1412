use std::collections::BTreeMap;
use std::sync::Arc;

use kube_ocr_vision::input::DetectorInput;
use kube_ocr_vision::postprocess::ProbabilityMap;

use super::{BatchProcessor, run_groups};
use crate::model::error::ModelError;
use crate::model::torchscript::TorchScriptModule;

/// Runs the detector. Pages of the same input size share a forward pass; pages of
/// different sizes are not padded together (padding would shift the DB map), so a batch
/// of mixed sizes runs as several passes.
#[derive(Debug)]
pub struct DetectorStage {
    pub module: TorchScriptModule,
}

impl DetectorStage {
    fn run_group(&self, inputs: &[&DetectorInput]) -> Result<Vec<ProbabilityMap>, ModelError> {
        let (width, height) = (inputs[0].width, inputs[0].height);
        let slices: Vec<&[f32]> = inputs.iter().map(|i| i.data.as_slice()).collect();
        let (flat, size) = self.module.forward_stacked(&slices, &[3, i64::from(height), i64::from(width)])?;
        let expected = [inputs.len() as i64, 1, i64::from(height), i64::from(width)];
        if size != expected {
            return Err(ModelError::ModelOutputShape {
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
    type Error = ModelError;

    fn process(&mut self, inputs: Vec<DetectorInput>) -> Vec<Result<ProbabilityMap, Arc<ModelError>>> {
        let mut groups: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (index, input) in inputs.iter().enumerate() {
            groups.entry((input.width, input.height)).or_default().push(index);
        }
        run_groups("detector", inputs.len(), groups.into_values(), |indices| {
            let group: Vec<&DetectorInput> = indices.iter().map(|&i| &inputs[i]).collect();
            self.run_group(&group)
        })
    }
}

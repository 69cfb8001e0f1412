use std::sync::Arc;

use super::{BatchProcessor, run_groups};
use crate::model::error::ModelError;
use crate::model::torchscript::TorchScriptModule;

/// A line crop prepared for the direction classifier: CHW floats of `input_shape`.
#[derive(Debug, Clone)]
pub struct ClassifierInput {
    pub data: Vec<f32>,
}

/// Runs the direction classifier; the output is one probability per label.
#[derive(Debug)]
pub struct ClassifierStage {
    pub module: TorchScriptModule,
    /// `[channels, height, width]` of every input.
    pub input_shape: [u32; 3],
    pub labels: usize,
}

impl ClassifierStage {
    fn run(&self, inputs: &[ClassifierInput]) -> Result<Vec<Vec<f32>>, ModelError> {
        let shape: Vec<i64> = self.input_shape.iter().map(|&d| i64::from(d)).collect();
        let expected_len: usize = self.input_shape.iter().map(|&d| d as usize).product();
        if let Some(bad) = inputs.iter().find(|i| i.data.len() != expected_len) {
            return Err(ModelError::PrepareClassifierInput { values: bad.data.len(), expected: expected_len });
        }
        let slices: Vec<&[f32]> = inputs.iter().map(|i| i.data.as_slice()).collect();
        let (flat, size) = self.module.forward_stacked(&slices, &shape)?;
        if size != [inputs.len() as i64, self.labels as i64] {
            return Err(ModelError::ModelOutputShape {
                module: "classifier".into(),
                reason: format!("expected [{}, {}], got {size:?}", inputs.len(), self.labels),
            });
        }
        Ok(flat.chunks_exact(self.labels).map(<[f32]>::to_vec).collect())
    }
}

impl BatchProcessor for ClassifierStage {
    type Input = ClassifierInput;
    type Output = Vec<f32>;
    type Error = ModelError;

    /// The whole batch is one forward pass.
    fn process(&mut self, inputs: Vec<ClassifierInput>) -> Vec<Result<Vec<f32>, Arc<ModelError>>> {
        run_groups("classifier", inputs.len(), [(0..inputs.len()).collect()], |_| self.run(&inputs))
    }
}

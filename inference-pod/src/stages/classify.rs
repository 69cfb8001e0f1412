use crate::InferenceError;
use crate::batcher::BatchProcessor;
use crate::torchscript::TorchScriptModule;

use super::forward_stacked;

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
    fn run(&self, inputs: &[ClassifierInput]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let shape: Vec<i64> = self.input_shape.iter().map(|&d| i64::from(d)).collect();
        let expected_len: usize = self.input_shape.iter().map(|&d| d as usize).product();
        if let Some(bad) = inputs.iter().find(|i| i.data.len() != expected_len) {
            return Err(InferenceError::PrepareLine {
                reason: format!("classifier input has {} values, expected {expected_len}", bad.data.len()),
            });
        }
        let slices: Vec<&[f32]> = inputs.iter().map(|i| i.data.as_slice()).collect();
        let (flat, size) = forward_stacked(&self.module, &slices, &shape)?;
        if size != [inputs.len() as i64, self.labels as i64] {
            return Err(InferenceError::ModelOutputShape {
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

    fn process(&mut self, inputs: Vec<ClassifierInput>) -> Vec<Result<Vec<f32>, String>> {
        match self.run(&inputs) {
            Ok(outputs) => outputs.into_iter().map(Ok).collect(),
            Err(error) => inputs.iter().map(|_| Err(error.to_string())).collect(),
        }
    }
}

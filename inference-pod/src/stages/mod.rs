//! The model stages as batch processors: each owns one TorchScript module and turns a
//! batch of prepared inputs into per-item outputs. They run on the batcher's worker
//! thread, never on the async runtime.

mod classify;
mod detect;
mod recognize;

pub use classify::{ClassifierInput, ClassifierStage};
pub use detect::{DetectorStage, ProbabilityMap};
pub use recognize::RecognizerStage;

use tch::{Device, Kind, Tensor};

use crate::InferenceError;
use crate::torchscript::TorchScriptModule;

/// Stacks equally sized float inputs into one `[n, ...shape]` tensor, runs the module and
/// returns the output on the CPU as f32 with its shape.
fn forward_stacked(
    module: &TorchScriptModule,
    inputs: &[&[f32]],
    shape: &[i64],
) -> Result<(Vec<f32>, Vec<i64>), InferenceError> {
    let mut data = Vec::with_capacity(inputs.iter().map(|i| i.len()).sum());
    for input in inputs {
        data.extend_from_slice(input);
    }
    let mut full_shape = vec![inputs.len() as i64];
    full_shape.extend_from_slice(shape);
    let input = Tensor::from_slice(&data).reshape(full_shape);
    let output = module.forward(&input)?.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let size = output.size();
    let flat = Vec::<f32>::try_from(output.view(-1))
        .map_err(|source| InferenceError::RunTorchScript { module: module.name().to_owned(), source })?;
    Ok((flat, size))
}

//! TorchScript execution: a module loaded onto one device, run on stacked f32 inputs.
//!
//! Callers run these on dedicated worker threads, never on the async runtime: a forward
//! pass blocks for milliseconds to seconds.

use std::path::Path;

use tch::{CModule, Device, Kind, Tensor};

use crate::model::device::ComputeDevice;
use crate::model::error::ModelError;

/// A TorchScript module loaded onto one device, in inference mode.
#[derive(Debug)]
pub struct TorchScriptModule {
    name: String,
    module: CModule,
    device: ComputeDevice,
}

impl TorchScriptModule {
    pub fn load(name: &str, path: &Path, device: ComputeDevice) -> Result<Self, ModelError> {
        let mut module = CModule::load_on_device(path, device.to_tch())
            .map_err(|source| ModelError::LoadTorchScript { path: path.to_path_buf(), source })?;
        module.set_eval();
        Ok(Self { name: name.to_owned(), module, device })
    }

    /// Stacks equally sized float inputs into one `[n, ...shape]` tensor, runs the module
    /// and returns the output on the CPU as f32, flattened, with its shape.
    pub(crate) fn forward_stacked(&self, inputs: &[&[f32]], shape: &[i64]) -> Result<(Vec<f32>, Vec<i64>), ModelError> {
        let mut data = Vec::with_capacity(inputs.iter().map(|i| i.len()).sum());
        for input in inputs {
            data.extend_from_slice(input);
        }
        let mut full_shape = vec![inputs.len() as i64];
        full_shape.extend_from_slice(shape);
        let input = Tensor::from_slice(&data).reshape(full_shape);
        let output = self.forward(&input)?.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let size = output.size();
        let flat = Vec::<f32>::try_from(output.view(-1))
            .map_err(|source| ModelError::RunTorchScript { module: self.name.clone(), source })?;
        Ok((flat, size))
    }

    /// Runs the module on `input` (moved to the module's device) without recording gradients.
    fn forward(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        tch::no_grad(|| self.module.forward_ts(&[input.to_device(self.device.to_tch())]))
            .map_err(|source| ModelError::RunTorchScript { module: self.name.clone(), source })
    }
}

//! TorchScript execution: a module loaded onto one device in the chosen precision and
//! memory format, run on stacked f32 inputs, returning f32.
//!
//! Callers run these on dedicated worker threads, never on the async runtime: a forward
//! pass blocks for milliseconds to seconds. The libtorch calls themselves run where the
//! process's torch thread mode says: on the caller's thread, or on the one shared libtorch
//! thread ([`torch_thread`](crate::model::torch_thread)).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::model::device::{ComputeDevice, apply_default_profiling_executor};
use crate::model::error::ModelError;
use crate::model::precision::{ModelOptions, Precision};
use crate::model::torch_thread;

/// A TorchScript module loaded onto one device, in inference mode.
#[derive(Debug)]
pub struct TorchScriptModule {
    name: String,
    /// Shared with the jobs that run this module (on the shared libtorch thread, in that mode).
    module: Arc<CModule>,
    device: ComputeDevice,
    options: ModelOptions,
}

impl TorchScriptModule {
    /// Loads `path` onto `device`, converts its floating-point weights to `options.precision`
    /// and, with `options.channels_last`, lays its 4-D weights out channels-last.
    pub fn load(name: &str, path: &Path, device: ComputeDevice, options: ModelOptions) -> Result<Self, ModelError> {
        let (name, path) = (name.to_owned(), path.to_path_buf());
        torch_thread::run(move || {
            apply_default_profiling_executor();
            let mut module = CModule::load_on_device(&path, device.to_tch())
                .map_err(|source| ModelError::LoadTorchScript { path: path.clone(), source })?;
            module.set_eval();
            let convert_error = |source: TchError| ModelError::ConvertTorchScript {
                module: name.clone(),
                precision: options.precision,
                device,
                source,
            };
            if options.precision != Precision::Fp32 {
                convert_module(&mut module, device.to_tch(), options.precision.to_kind()).map_err(convert_error)?;
            }
            if options.channels_last {
                weights_to_channels_last(&module).map_err(convert_error)?;
            }
            Ok(Self { name, module: Arc::new(module), device, options })
        })?
    }

    /// Stacks equally sized float inputs into one `[n, ...shape]` tensor, runs the module
    /// and returns the output on the CPU as f32, flattened, with its shape.
    pub fn forward_stacked(&self, inputs: &[&[f32]], shape: &[i64]) -> Result<(Vec<f32>, Vec<i64>), ModelError> {
        let mut data = Vec::with_capacity(inputs.iter().map(|i| i.len()).sum());
        for input in inputs {
            data.extend_from_slice(input);
        }
        let mut full_shape = vec![inputs.len() as i64];
        full_shape.extend_from_slice(shape);
        let (module, device, options) = (self.module.clone(), self.device, self.options);
        let run = move || -> Result<(Vec<f32>, Vec<i64>), TchError> {
            let input = stage_input(Tensor::from_slice(&data).f_reshape(&full_shape)?, device, options)?;
            let output = tch::no_grad(|| module.forward_ts(&[input]))?
                .f_to_device_(Device::Cpu, Kind::Float, false, false)?
                .f_contiguous()?;
            let size = output.size();
            Ok((Vec::<f32>::try_from(output.f_view(-1)?)?, size))
        };
        torch_thread::run(run)?.map_err(|source| ModelError::RunTorchScript {
            module: self.name.clone(),
            precision: self.options.precision,
            device: self.device,
            source,
        })
    }
}

/// Moves a host f32 input onto the module's device, in the module's precision and memory
/// format. On CUDA the copy goes through pinned host memory so it can be asynchronous (and
/// runs at full PCIe speed); the f32 → half conversion then runs on the GPU, not on the CPU.
fn stage_input(input: Tensor, device: ComputeDevice, options: ModelOptions) -> Result<Tensor, TchError> {
    let device = device.to_tch();
    let kind = options.precision.to_kind();
    let staged = if device.is_cuda() {
        input.f_pin_memory(device)?.f_to_device_(device, Kind::Float, true, false)?.f_to_kind(kind)?
    } else {
        input.f_to_kind(kind)?
    };
    if options.channels_last && staged.dim() == 4 { to_channels_last(&staged) } else { Ok(staged) }
}

/// Converts every floating-point parameter and buffer of `module` to `kind`. tch's
/// `CModule::to` panics on a libtorch error instead of returning it; the panic is turned
/// back into the error so an unsupported precision fails the load, not the process.
fn convert_module(module: &mut CModule, device: Device, kind: Kind) -> Result<(), TchError> {
    catch_unwind(AssertUnwindSafe(|| module.to(device, kind, false))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "converting the module panicked".to_owned());
        TchError::Torch(message)
    })
}

/// The same NCHW tensor with channels-last (NHWC) strides. tch has no memory-format API;
/// permuting to NHWC, making that contiguous and permuting back gives exactly the layout
/// `Tensor.to(memory_format=torch.channels_last)` gives in Python.
fn to_channels_last(tensor: &Tensor) -> Result<Tensor, TchError> {
    tensor.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])
}

/// Lays every 4-D parameter (the convolution weights) out channels-last, in place, so
/// libtorch's convolutions pick their NHWC kernels.
fn weights_to_channels_last(module: &CModule) -> Result<(), TchError> {
    tch::no_grad(|| {
        for (_, mut parameter) in module.named_parameters()? {
            if parameter.dim() == 4 {
                let relaid = to_channels_last(&parameter)?;
                parameter.f_set_data(&relaid)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_keeps_values_and_shape_and_gives_nhwc_strides() {
        let nchw = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).reshape([2, 3, 4, 5]);
        let nhwc = to_channels_last(&nchw).unwrap();
        assert_eq!(nhwc.size(), [2, 3, 4, 5]);
        // Channels vary fastest: stride 1 for C, then W, H, N.
        assert_eq!(nhwc.stride(), [60, 1, 15, 3]);
        assert!(!nhwc.is_contiguous());
        assert_eq!(f64::try_from((&nhwc - &nchw).abs().max()).unwrap(), 0.0);
    }

    /// (4-D parameters, how many of them have channels-last strides) of a loaded module.
    fn four_d_layouts(module: &TorchScriptModule) -> (usize, usize) {
        let four_d: Vec<Tensor> =
            module.module.named_parameters().unwrap().into_iter().map(|(_, p)| p).filter(|p| p.dim() == 4).collect();
        let nhwc = four_d.iter().filter(|p| p.stride() == to_channels_last(p).unwrap().stride()).count();
        (four_d.len(), nhwc)
    }

    /// The exported modules keep their convolution weights as parameters (not frozen into
    /// graph constants), so re-laying the parameters really changes what the convolutions
    /// read.
    #[test]
    fn channels_last_relays_every_convolution_weight_of_the_real_recognizer() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ppocr-v4/rec.pt");
        let nchw = ModelOptions { precision: Precision::Fp32, channels_last: false };
        let plain = TorchScriptModule::load("recognizer", &path, ComputeDevice::Cpu, nchw).unwrap();
        let (four_d, nhwc) = four_d_layouts(&plain);
        assert!(four_d > 10, "only {four_d} 4-D parameters: is the export frozen?");
        // 1×1 kernels have the same strides either way; the rest must differ.
        assert!(nhwc < four_d, "{nhwc} of {four_d} weights already channels-last");

        let relaid = TorchScriptModule::load(
            "recognizer",
            &path,
            ComputeDevice::Cpu,
            ModelOptions { channels_last: true, ..nchw },
        )
        .unwrap();
        assert_eq!(four_d_layouts(&relaid), (four_d, four_d));
    }

    #[test]
    fn reduced_precision_converts_the_weights() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ppocr-v4/cls.pt");
        let options = ModelOptions { precision: Precision::Bf16, channels_last: false };
        let module = TorchScriptModule::load("classifier", &path, ComputeDevice::Cpu, options).unwrap();
        let kinds: Vec<Kind> = module.module.named_parameters().unwrap().iter().map(|(_, p)| p.kind()).collect();
        assert!(!kinds.is_empty() && kinds.iter().all(|&kind| kind == Kind::BFloat16), "{kinds:?}");
    }
}

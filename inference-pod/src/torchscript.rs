//! The only module that touches libtorch: device selection and TorchScript execution.
//!
//! Callers run these on dedicated worker threads, never on the async runtime: a forward
//! pass blocks for milliseconds to seconds.

use std::{fmt, path::Path, str::FromStr};

use tch::{CModule, Device, Tensor};

use crate::InferenceError;

/// What the operator asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when libtorch sees a GPU, CPU otherwise.
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: expected auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Picks the device given how many CUDA devices libtorch can use. Asking for a GPU that is
/// not there is an error: silently running a GPU deployment on CPU would hide a broken node.
pub fn resolve_device(request: DeviceRequest, cuda_devices: usize) -> Result<Device, String> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto if cuda_devices > 0 => Ok(Device::Cuda(0)),
        DeviceRequest::Auto => Ok(Device::Cpu),
        DeviceRequest::Cuda(i) if i < cuda_devices => Ok(Device::Cuda(i)),
        DeviceRequest::Cuda(i) => Err(format!(
            "device cuda:{i} requested but libtorch sees {cuda_devices} CUDA device(s) (driver missing, or GPU not allocated to this pod?)"
        )),
    }
}

/// `cpu` or `cuda:N`, as flags, logs and `/healthz` spell devices.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        Device::Cpu => "cpu".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// CUDA devices libtorch can use in this process.
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() { usize::try_from(tch::Cuda::device_count()).unwrap_or(0) } else { 0 }
}

/// A TorchScript module loaded onto one device, in inference mode.
#[derive(Debug)]
pub struct TorchScriptModule {
    name: String,
    module: CModule,
    device: Device,
}

impl TorchScriptModule {
    pub fn load(name: &str, path: &Path, device: Device) -> Result<Self, InferenceError> {
        let mut module = CModule::load_on_device(path, device)
            .map_err(|source| InferenceError::LoadTorchScript { path: path.to_path_buf(), source })?;
        module.set_eval();
        Ok(Self { name: name.to_owned(), module, device })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Runs the module on `input` (moved to the module's device) without recording gradients.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, InferenceError> {
        tch::no_grad(|| self.module.forward_ts(&[input.to_device(self.device)]))
            .map_err(|source| InferenceError::RunTorchScript { module: self.name.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flags_parse() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        assert!("gpu".parse::<DeviceRequest>().is_err());
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn auto_uses_the_first_gpu_when_there_is_one() {
        assert_eq!(resolve_device(DeviceRequest::Auto, 2), Ok(Device::Cuda(0)));
        assert_eq!(resolve_device(DeviceRequest::Auto, 0), Ok(Device::Cpu));
    }

    #[test]
    fn an_absent_gpu_is_an_error_not_a_cpu_fallback() {
        assert_eq!(resolve_device(DeviceRequest::Cuda(1), 2), Ok(Device::Cuda(1)));
        let err = resolve_device(DeviceRequest::Cuda(2), 2).unwrap_err();
        assert!(err.contains("cuda:2") && err.contains("2 CUDA device"), "{err}");
    }

    #[test]
    fn this_machine_without_a_gpu_resolves_auto_to_cpu() {
        // No GPU here: libtorch must say so rather than crash, and auto must pick the CPU.
        assert_eq!(resolve_device(DeviceRequest::Auto, cuda_device_count()), Ok(Device::Cpu));
    }
}

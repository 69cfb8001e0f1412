//! Which device the models run on and how many CPU threads libtorch uses: the serving layer
//! asks for these through the small types here and never names libtorch itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::{fmt, str::FromStr};

use crate::model::error::ModelError;
use crate::model::torch_thread;

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

/// The device the modules are loaded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDevice {
    Cpu,
    Cuda(usize),
}

impl ComputeDevice {
    pub(crate) fn to_tch(self) -> tch::Device {
        match self {
            Self::Cpu => tch::Device::Cpu,
            Self::Cuda(index) => tch::Device::Cuda(index),
        }
    }
}

/// `cpu` or `cuda:N`, as flags, logs and `/healthz` spell devices.
impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// Picks the device given how many CUDA devices libtorch can use. Asking for a GPU that is
/// not there is an error: silently running a GPU deployment on CPU would hide a broken node.
pub fn resolve_device(request: DeviceRequest, cuda_devices: usize) -> Result<ComputeDevice, ModelError> {
    match request {
        DeviceRequest::Cpu => Ok(ComputeDevice::Cpu),
        DeviceRequest::Auto if cuda_devices > 0 => Ok(ComputeDevice::Cuda(0)),
        DeviceRequest::Auto => Ok(ComputeDevice::Cpu),
        DeviceRequest::Cuda(i) if i < cuda_devices => Ok(ComputeDevice::Cuda(i)),
        DeviceRequest::Cuda(index) => Err(ModelError::SelectDevice { index, cuda_devices }),
    }
}

/// CUDA devices libtorch can use in this process.
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() { usize::try_from(tch::Cuda::device_count()).unwrap_or(0) } else { 0 }
}

/// Sets libtorch's intra-op threads for this process (the pod's `--torch-threads`). Set on
/// the libtorch thread: OpenMP keeps the thread count per calling thread.
pub fn set_intra_op_threads(threads: i32) -> Result<(), ModelError> {
    torch_thread::run(move || tch::set_num_threads(threads))
}

/// libtorch's intra-op threads on the libtorch thread, which makes every forward pass.
pub fn intra_op_threads() -> Result<i32, ModelError> {
    torch_thread::run(tch::get_num_threads)
}

/// libtorch's inter-op thread pool size. That pool only runs TorchScript `fork`s and
/// async ops, which the PP-OCR modules have none of; forwards use the calling thread and
/// the intra-op threads.
pub fn inter_op_threads() -> Result<i32, ModelError> {
    torch_thread::run(tch::get_num_interop_threads)
}

/// Whether TorchScript's profiling executor runs the modules unless the process chooses
/// otherwise: off. Measured (docs/benchmarks.md, "Model execution settings"): off is as
/// fast or faster on every stage, most on small inputs, and has no slow profiling calls.
pub const DEFAULT_PROFILING_EXECUTOR: bool = false;

/// Set once the process has chosen the executor (explicitly or by the first module load).
static PROFILING_EXECUTOR_CHOSEN: AtomicBool = AtomicBool::new(false);

/// Turns TorchScript's profiling executor on or off for this process. On, a module's first
/// calls profile and then optimise its graph; off, graphs run through the simple executor
/// with no profiling runs. Read when a module first runs, so set it before the first
/// forward. Without a call, the first module load sets [`DEFAULT_PROFILING_EXECUTOR`].
pub fn set_profiling_executor(enabled: bool) {
    PROFILING_EXECUTOR_CHOSEN.store(true, Ordering::Relaxed);
    if let Err(error) = tch::jit::f_set_profiling_mode(enabled) {
        tracing::warn!(%error, enabled, "could not set TorchScript's profiling executor mode");
    }
}

/// Applies [`DEFAULT_PROFILING_EXECUTOR`] unless the process already chose: every user of
/// the model layer (the pod, tests, benchmarks) then runs modules the same way.
pub(crate) fn apply_default_profiling_executor() {
    if !PROFILING_EXECUTOR_CHOSEN.swap(true, Ordering::Relaxed)
        && let Err(error) = tch::jit::f_set_profiling_mode(DEFAULT_PROFILING_EXECUTOR)
    {
        tracing::warn!(%error, "could not set TorchScript's profiling executor mode");
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
        assert_eq!(resolve_device(DeviceRequest::Auto, 2).unwrap(), ComputeDevice::Cuda(0));
        assert_eq!(resolve_device(DeviceRequest::Auto, 0).unwrap(), ComputeDevice::Cpu);
    }

    #[test]
    fn an_absent_gpu_is_an_error_not_a_cpu_fallback() {
        assert_eq!(resolve_device(DeviceRequest::Cuda(1), 2).unwrap(), ComputeDevice::Cuda(1));
        let err = resolve_device(DeviceRequest::Cuda(2), 2).unwrap_err().to_string();
        assert!(err.contains("cuda:2") && err.contains("2 CUDA device"), "{err}");
    }

    #[test]
    fn this_machine_without_a_gpu_resolves_auto_to_cpu() {
        // No GPU here: libtorch must say so rather than crash, and auto must pick the CPU.
        assert_eq!(resolve_device(DeviceRequest::Auto, cuda_device_count()).unwrap(), ComputeDevice::Cpu);
    }

    #[test]
    fn devices_are_named_as_flags_spell_them() {
        assert_eq!(ComputeDevice::Cpu.to_string(), "cpu");
        assert_eq!(ComputeDevice::Cuda(1).to_string(), "cuda:1");
    }
}

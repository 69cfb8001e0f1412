//! The model layer: model bundles (the manifest, its files, the charset), TorchScript
//! modules on a chosen device, and the detect / classify / recognise stages as batch
//! processors. The only code in the crate that names libtorch (`tch`); it uses
//! `kube-ocr-vision` for everything before and after a forward pass, and knows nothing of
//! serving.

mod batch_choice;
mod bundle;
mod device;
mod error;
mod precision;
mod stages;
mod torch_thread;
mod torchscript;

pub use batch_choice::{BATCH_TIE_TOLERANCE, best_batch_size};
pub use bundle::{
    Bundle, BundleManifest, ModelFiles, ModuleFile, RecognizerFiles, SelfTestConfig, Stage, bundle_path_from_uri,
};
pub use device::{
    ComputeDevice, DEFAULT_PROFILING_EXECUTOR, DeviceRequest, cuda_device_count, inter_op_threads, intra_op_threads,
    resolve_device, set_intra_op_threads, set_profiling_executor,
};
pub use error::ModelError;
pub use precision::{ModelOptions, Precision};
pub use stages::Recognizer;
pub use stages::{BatchProcessor, ClassifierInput, ClassifierStage, DetectorStage, RecognizerStage};
pub use torch_thread::{TorchThreadMode, set_torch_thread_mode};
pub use torchscript::TorchScriptModule;

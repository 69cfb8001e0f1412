//! The model layer: model bundles (the manifest, its files, the charset), TorchScript
//! modules on a chosen device, and the detect / classify / recognise stages as batch
//! processors. The only code in the crate that names libtorch (`tch`); it uses
//! `kube-ocr-vision` for everything before and after a forward pass, and knows nothing of
//! serving.

mod bundle;
mod device;
mod error;
mod stages;
mod torchscript;

pub use bundle::{
    Bundle, BundleManifest, ModelFiles, ModuleFile, RecognizerFiles, SelfTestConfig, Stage, bundle_path_from_uri,
};
pub use device::{
    ComputeDevice, DeviceRequest, cuda_device_count, intra_op_threads, resolve_device, set_intra_op_threads,
};
pub use error::ModelError;
pub use stages::Recognizer;
pub(crate) use stages::{BatchProcessor, ClassifierInput, ClassifierStage, DetectorStage, RecognizerStage};
pub use torchscript::TorchScriptModule;

//! The pure layers of the kube-ocr pipeline: everything between the uploaded image bytes
//! and the models, and between the models' outputs and the text lines, as plain functions
//! on pixels and `f32` arrays. It knows no ML framework and does no IO (no files, network
//! or threads), so it is tested without libtorch and fuzzed on its own (`fuzz/`). Layers,
//! each using only those before it: [`params`] (the bundle's pre/post-processing
//! parameters) and [`error`]; [`image`] (decoding with limits, geometry, contours, polygon
//! fill, perspective crops); [`input`] (the detector, classifier and recogniser inputs as
//! CHW arrays, page pre-resize and letterbox) and [`postprocess`] (DB boxes from the
//! probability map, CTC decoding, the classifier's verdict); [`layout`] (reading order,
//! recogniser batches by width, and the document path that ties them together); [`pdf`]
//! (PDF pages rendered to pixels within limits, and a born-digital page's own text).

pub mod error;
pub mod image;
pub mod input;
pub mod layout;
pub mod params;
pub mod pdf;
pub mod postprocess;

pub use error::VisionError;

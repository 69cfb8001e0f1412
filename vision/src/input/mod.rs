//! Model inputs as plain `f32` arrays in CHW layout: the page the detector sees (pre-resize
//! and letterbox, and the transform back to the uploaded image), the detector input, the
//! direction classifier's input and the recogniser's line batches. Uses [`crate::params`]
//! and [`crate::image`].

mod chw;
mod classify;
mod detect;
mod line;
mod page;

pub use classify::classifier_input;
pub(crate) use detect::detector_input;
pub use detect::{DetectorInput, MAX_INPUT_SIDE};
pub use line::{MAX_LINE_WIDTH, batch_width, line_tensor_data, scaled_width};
pub(crate) use page::prepare_page;
pub use page::{PageTransform, PreparedPage};

//! What the pure pipeline can refuse, named after the operation that failed. Decoding has
//! its own [`crate::image::DecodeError`]: its variants tell a caller what to fix in a request.

/// A model input or output that the pure steps cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisionError {
    /// DB post-processing got a probability map whose values do not fill its stated size.
    #[error("unexpected output of detector: {values} probabilities for a {width}x{height} map")]
    DetectBoxes { values: usize, width: u32, height: u32 },

    /// A text-line crop with no pixels cannot be scaled to the recogniser's height.
    #[error("preparing a text line for recognition: empty crop {width}x{height}")]
    PrepareLine { width: u32, height: u32 },
}

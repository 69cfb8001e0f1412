//! Pixels and plane geometry: decoding uploaded bytes (with limits), resampling, convex
//! hulls and rectangles, contours of a binary map, polygon fill, perspective warps and the
//! upright crop of a text box. Knows nothing of models or their parameters.

pub(crate) mod contours;
mod crop;
mod decode;
pub(crate) mod geometry;
pub(crate) mod perspective;
pub(crate) mod polygon_fill;
pub(crate) mod resize;

pub use crop::crop_quad;
pub use decode::{DecodeError, DecodeLimits, decode_image};
pub use geometry::Quad;

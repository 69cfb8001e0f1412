//! Pixels and plane geometry: decoding uploaded bytes (with limits; alpha flattened onto a
//! contrasting background), resampling, convex hulls and rectangles, contours of a binary
//! map, polygon fill, perspective warps, the upright crop of a text box, the tight text
//! crop of a line image, the pages of a multi-page TIFF and the page range a request reads. Knows nothing of models or their parameters.

mod alpha;
pub(crate) mod contours;
mod crop;
mod decode;
pub(crate) mod geometry;
mod page_range;
mod pages;
pub(crate) mod perspective;
pub(crate) mod polygon_fill;
pub(crate) mod resize;
mod trim;

pub use crop::{crop_is_quarter_turned, crop_quad};
pub use decode::{DecodeError, DecodeLimits, decode_image};
pub use geometry::Quad;
pub use page_range::{PageRange, PageRangeError};
pub use pages::{DocumentPages, PagesError, document_pages, tiff_page_bytes};
pub use trim::trim_margins;

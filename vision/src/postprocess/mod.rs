//! From model outputs to results: DB post-processing of the detector's probability map into
//! scored text boxes, the direction classifier's verdict, and greedy CTC decoding of the
//! recogniser's output. Uses [`crate::params`] and [`crate::image`].

mod ctc;
mod db;
mod orientation;

pub use ctc::{DecodedLine, greedy_decode};
pub use db::{DetectedBox, ProbabilityMap, detect_boxes};
pub use orientation::{rotate_half_turn, should_rotate};

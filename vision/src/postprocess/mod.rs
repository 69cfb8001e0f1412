//! From model outputs to results: DB post-processing of the detector's probability map into
//! scored text boxes, the direction classifier's verdict, and greedy CTC decoding of the
//! recogniser's output with each word's box. Uses [`crate::params`] and [`crate::image`].

mod ctc;
mod db;
mod line_orientation;
mod orientation;
mod word_boxes;

pub use ctc::{DecodedChar, DecodedLine, greedy_decode};
pub use db::{DetectedBox, ProbabilityMap, detect_boxes};
pub use line_orientation::{LINE_TURN_PROPOSAL, half_turn_reads_better};
pub use orientation::{rotate_half_turn, should_rotate};
pub use word_boxes::{LineInput, LinePlacement, Word, word_boxes};

//! Canary analysis as pure functions: parse the pods' metrics, take deltas over the
//! window, compute P95 and error rates per track, and judge canary against stable.
//! The IO (scraping pods, golden gRPC calls) lives in the controller.

pub mod collect;
pub mod exposition;
pub mod golden_source;
pub mod numbers;
pub mod verdict;
pub mod window;

pub use exposition::{Sample, parse_exposition};
pub use numbers::{GoldenOutcome, MIN_TRAFFIC_SAMPLES, track_numbers};
pub use verdict::{Thresholds, TrackNumbers, Verdict, judge};
pub use window::{PodCounters, WindowTraffic, histogram_quantile, window_traffic};

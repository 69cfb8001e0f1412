//! What the pod says about itself: its Prometheus metrics, the process and GPU (NVML)
//! collectors sampled at scrape time, and the per-request access log.

pub(crate) mod access_log;
pub(crate) mod gpu;
pub(crate) mod job_metrics;
pub(crate) mod metrics;
pub(crate) mod process;

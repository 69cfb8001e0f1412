//! The operator's scenarios on the local cluster, as one test binary: one cluster of two
//! real nodes (`harness::shared_cluster`) serves them all, started once, and scenarios
//! whose loads allow it run side by side ([`support::Load`]).
//!
//! Each module is one concern; `cargo test -p kube-ocr-e2e --test operator canary::` runs
//! one of them.

mod admission;
mod autoscaler;
mod canary;
mod gateway;
mod gpu_rollout;
mod jobs;
mod keda;
mod manual;
mod pods;
mod reconcile;
mod shared_cache;
mod support;

//! Pure desired-state builders: an `OcrService` in, the objects the operator applies out.
//! No IO here; every function is unit-tested. Uses `rollout` (a dynamic rollout's
//! shares) and the leaves (`names`, `model_source`, `error`); the controller applies
//! what it builds.

mod deployment;
mod desired;
mod fingerprint;
mod hpa;
mod jobs;
mod jobs_front;
mod owner;
mod pdb;
mod pod;
mod scaled_object;
mod service;
mod settings;
mod shared_cache;
mod stable_share;
#[cfg(test)]
pub(crate) mod test_support;
mod wiring;

pub use deployment::deployment;
pub use desired::{DesiredState, desired_state};
pub use fingerprint::fingerprint;
pub use jobs_front::jobs_front_name;
pub use owner::Owner;
pub use pod::pod_template;
pub use scaled_object::{keda_object_name, scaled_object_resource, trigger_authentication_resource};
pub use settings::{BuildSettings, DEFAULT_FETCH_IMAGE};
pub use stable_share::{share_stable, stable_rescale, start_at_hpa_min, wake_for_hpa};

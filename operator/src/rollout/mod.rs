//! The canary state machine, as pure code: from the spec's desired revision, the status
//! (where all rollout state lives), what the canary pods look like and this round's
//! analysis verdict, to the next status and what to do. A restarted operator reads the
//! same status and takes the same decision, so it never promotes or rolls back twice.
//!
//! Pure: no IO, unit-tested beside the code. Uses only `analysis` (the verdict it acts
//! on); the controller observes the tracks, runs the analysis and carries the plan out.

mod dynamic;
#[cfg(test)]
mod dynamic_tests;
mod machine;
mod manual;
mod settings;
mod stable_check;
#[cfg(test)]
mod tests;

pub use dynamic::{DynamicScale, stable_bounds};
pub use machine::{CanaryObservation, RolloutEvent, RolloutInput, RolloutPlan, analysis_due, plan};
pub use manual::{ManualAction, removal_patch, requested_action};
pub use settings::{settings_of, stable_check_interval};
pub use stable_check::stable_check_schedule;
// Named only by tests outside the file that defines them.
#[cfg(test)]
pub use {dynamic::TrackSizes, machine::canary_replicas, settings::RolloutSettings};

//! The canary state machine, as pure code: from the spec's desired revision, the status
//! (where all rollout state lives), what the canary pods look like and this round's
//! analysis verdict, to the next status and what to do. A restarted operator reads the
//! same status and takes the same decision, so it never promotes or rolls back twice.

mod dynamic;
#[cfg(test)]
mod dynamic_tests;
mod machine;
mod manual;
#[cfg(test)]
mod tests;

pub use dynamic::{DynamicScale, TrackSizes, stable_bounds};
pub use machine::{
    CanaryObservation, RolloutEvent, RolloutInput, RolloutPlan, RolloutSettings, analysis_due, canary_replicas, plan,
};
pub use manual::{ManualAction, ManualRequest, ROLLOUT_ACTION_ANNOTATION, requested_action};

//! Standard metav1 Conditions with Kubernetes' transition-time semantics.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as the operator decides it; times and generations are filled in by [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The new condition list: `lastTransitionTime` moves only when the status flips, so
/// `kubectl describe` shows how long a condition has held.
pub fn merge(previous: &[Condition], decided: &[Decided], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    decided
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_owned();
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: d.type_.to_owned(),
                status,
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and True. (Only the tests ask.)
#[cfg(test)]
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn decided(status: bool, reason: &'static str) -> Decided {
        Decided { type_: "Available", status, reason, message: reason.to_owned() }
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = merge(&[], &[decided(false, "NoReadyReplicas")], Some(1), &at(10));
        assert_eq!(first[0].last_transition_time, at(10));
        let same = merge(&first, &[decided(false, "StillNothing")], Some(2), &at(20));
        assert_eq!(same[0].last_transition_time, at(10), "same status keeps its time");
        assert_eq!(same[0].reason, "StillNothing");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[decided(true, "MinimumReplicasAvailable")], Some(2), &at(30));
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert!(is_true(&flipped, "Available"));
    }
}

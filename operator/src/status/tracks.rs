//! The two tracks' Deployments as the rollout reads them: how many pods each runs, how
//! many are Ready at the revision they should run, and whether stable has rolled out.

use k8s_openapi::api::apps::v1::Deployment;
use kube_ocr_crds::OcrServiceStatus;

use super::stable::StableObservation;
use crate::rollout::CanaryObservation;

/// Both tracks at the start of a round, from the watched Deployments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackObservation {
    pub stable: Option<StableObservation>,
    /// The canary Deployment's pods of `status.canaryRevision`.
    pub canary: CanaryObservation,
    /// Stable runs `status.stableRevision` on all its replicas.
    pub stable_rolled_out: bool,
    /// Pods stable runs now (what the HPA set), never below the spec's minimum: a dynamic
    /// rollout's base (right after a rollback the HPA may not have grown stable back yet).
    pub stable_size: i32,
    /// Stable pods available at `status.stableRevision`: the handover's progress.
    pub stable_ready: i32,
    /// Stable's pods as the base of the canary's weight (the spec's minimum without a
    /// stable Deployment).
    pub canary_base: i32,
    canary_deployment: Option<StableObservation>,
}

impl TrackObservation {
    pub fn of(
        stable: Option<&Deployment>,
        canary: Option<&Deployment>,
        status: &OcrServiceStatus,
        min_replicas: i32,
    ) -> Self {
        let canary_deployment = canary.map(StableObservation::from_deployment);
        let stable = stable.map(StableObservation::from_deployment);
        let stable_revision = status.stable_revision.as_deref();
        let stable_rolled_out = match (&stable, stable_revision) {
            (Some(stable), Some(revision)) => stable.rolled_out(revision),
            _ => false,
        };
        let stable_ready = match (&stable, stable_revision) {
            (Some(stable), Some(revision)) if stable.revision.as_deref() == Some(revision) => {
                stable.available.min(stable.updated)
            }
            _ => 0,
        };
        let running = stable.as_ref().map(|s| s.desired.max(s.replicas));
        Self {
            canary: observe_canary(canary_deployment.as_ref(), status.canary_revision.as_deref()),
            stable_rolled_out,
            stable_size: running.unwrap_or(0).max(min_replicas),
            stable_ready,
            canary_base: running.unwrap_or(min_replicas),
            stable,
            canary_deployment,
        }
    }

    /// Ready pods of the canary Deployment when it runs `revision`: the route gives the
    /// canary traffic only once it has them.
    pub fn canary_ready_at(&self, revision: Option<&str>) -> i32 {
        self.canary_deployment
            .as_ref()
            .filter(|d| d.revision.is_some() && d.revision.as_deref() == revision)
            .map_or(0, |d| d.ready)
    }
}

/// A canary that has not observed its latest spec, or runs another revision, has no
/// Ready pods yet as far as the rollout is concerned.
fn observe_canary(observed: Option<&StableObservation>, revision: Option<&str>) -> CanaryObservation {
    let (Some(observed), Some(revision)) = (observed, revision) else { return CanaryObservation::default() };
    if observed.revision.as_deref() != Some(revision) || observed.observed_generation < observed.generation {
        return CanaryObservation { desired: observed.desired, ready: 0 };
    }
    CanaryObservation { desired: observed.desired, ready: observed.ready.min(observed.updated) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::names::REVISION_LABEL;

    fn deployment(revision: &str, replicas: i32, ready: i32, generation: i64, observed: i64) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "d", "generation": generation },
            "spec": {
                "replicas": replicas,
                "selector": {},
                "template": { "metadata": { "labels": { REVISION_LABEL: revision } } },
            },
            "status": {
                "observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
                "updatedReplicas": replicas, "availableReplicas": ready,
            },
        }))
        .unwrap()
    }

    fn status(stable: &str, canary: Option<&str>) -> OcrServiceStatus {
        OcrServiceStatus {
            stable_revision: Some(stable.into()),
            canary_revision: canary.map(str::to_owned),
            ..OcrServiceStatus::default()
        }
    }

    #[test]
    fn a_canary_counts_only_ready_pods_of_its_revision_at_its_latest_spec() {
        let status = status("old", Some("new"));
        let current = deployment("new", 2, 1, 3, 3);
        let tracks = TrackObservation::of(None, Some(&current), &status, 1);
        assert_eq!(tracks.canary, CanaryObservation { desired: 2, ready: 1 });
        let unobserved = deployment("new", 2, 2, 4, 3);
        let tracks = TrackObservation::of(None, Some(&unobserved), &status, 1);
        assert_eq!(tracks.canary, CanaryObservation { desired: 2, ready: 0 }, "its pods may be of the old spec");
        let other = deployment("older", 2, 2, 3, 3);
        assert_eq!(TrackObservation::of(None, Some(&other), &status, 1).canary.ready, 0);
        let no_canary = OcrServiceStatus { canary_revision: None, ..status };
        assert_eq!(TrackObservation::of(None, Some(&current), &no_canary, 1).canary, CanaryObservation::default());
    }

    #[test]
    fn stable_sizes_its_base_and_readiness_from_its_revision() {
        let stable = deployment("old", 3, 2, 1, 1);
        let tracks = TrackObservation::of(Some(&stable), None, &status("old", None), 2);
        assert!(!tracks.stable_rolled_out, "one pod is not available yet");
        assert_eq!((tracks.stable_size, tracks.stable_ready, tracks.canary_base), (3, 2, 3));
        let tracks = TrackObservation::of(Some(&stable), None, &status("old", None), 5);
        assert_eq!((tracks.stable_size, tracks.canary_base), (5, 3), "the spec's minimum is the dynamic base's floor");
        let done = deployment("old", 3, 3, 1, 1);
        assert!(TrackObservation::of(Some(&done), None, &status("old", None), 2).stable_rolled_out);
        let tracks = TrackObservation::of(Some(&done), None, &status("newer", None), 2);
        assert_eq!((tracks.stable_rolled_out, tracks.stable_ready), (false, 0), "not at the status' revision");
        let nothing = TrackObservation::of(None, None, &OcrServiceStatus::default(), 2);
        assert_eq!((nothing.stable_size, nothing.canary_base, nothing.stable), (2, 2, None));
    }

    #[test]
    fn the_route_waits_for_ready_pods_of_the_planned_canary() {
        let canary = deployment("new", 2, 1, 1, 1);
        let tracks = TrackObservation::of(None, Some(&canary), &status("old", Some("new")), 1);
        assert_eq!(tracks.canary_ready_at(Some("new")), 1);
        assert_eq!(tracks.canary_ready_at(Some("other")), 0);
        assert_eq!(tracks.canary_ready_at(None), 0);
    }
}

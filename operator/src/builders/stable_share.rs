//! Stable's share of a `dynamicStableScale` rollout, put into the desired state.
//!
//! With the HPA on, the share becomes the HPA's bounds, never the Deployment's `replicas`:
//! the HPA owns that field, and two writers of one field fight. Above `maxReplicas` the HPA
//! scales down at once (no metrics needed, no stabilisation window), below `minReplicas`
//! it scales up at once, so capping its bounds moves stable as surely as writing
//! `replicas` would. With the HPA off the operator owns `replicas` and writes the share.

use kube_ocr_crds::{OcrServiceSpec, OcrServiceStatus};

use super::desired::DesiredState;
use crate::rollout::{DynamicScale, RolloutPlan, stable_bounds};

/// Caps the stable HPA (or sets stable's `replicas` without one) to stable's share while
/// `scale` is `Some`; the spec's bounds otherwise, which restores them after a rollout.
pub fn share_stable(desired: &mut DesiredState, spec: &OcrServiceSpec, scale: Option<&DynamicScale>) {
    if let Some(keda) = &mut desired.keda {
        // KEDA keeps stable within the same share as the HPA would.
        let (min, max) = stable_bounds(spec.replicas.min, spec.replicas.max, scale);
        keda.scaled_object.data["spec"]["minReplicaCount"] = min.into();
        keda.scaled_object.data["spec"]["maxReplicaCount"] = max.into();
        return;
    }
    match &mut desired.autoscaler {
        Some(hpa) => {
            let (min, max) = stable_bounds(spec.replicas.min, spec.replicas.max, scale);
            hpa.spec.min_replicas = Some(min);
            hpa.spec.max_replicas = max;
        }
        None => {
            if let Some(deployment) = desired.stable.spec.as_mut() {
                deployment.replicas = Some(scale.map_or(spec.replicas.min, |s| s.sizes.stable));
            }
        }
    }
}

/// Stable's `replicas` when the operator owns them (no HPA): its share during a dynamic
/// rollout, `replicas.min` otherwise. `None` when the HPA owns them.
pub fn owned_stable_replicas(spec: &OcrServiceSpec, scale: Option<&DynamicScale>) -> Option<i32> {
    (!spec.autoscaling.enabled).then(|| scale.map_or(spec.replicas.min, |s| s.sizes.stable))
}

/// The `replicas` to write once when the operator's HPA takes over from KEDA (the spec
/// switched `autoscaling.provider` back to `hpa`) and stable is at zero: an HPA does not
/// scale a target at zero (`ScalingDisabled`), so without this a service that KEDA had
/// scaled to zero would stay there. `None` otherwise; an HPA never meets a zero of its
/// own making, as its `minReplicas` is at least 1.
pub fn wake_for_hpa(
    spec: &OcrServiceSpec,
    keda_before: bool,
    hpa_now: bool,
    stable_desired: Option<i32>,
) -> Option<i32> {
    (keda_before && hpa_now && stable_desired == Some(0)).then_some(spec.replicas.min.max(1))
}

/// The `replicas` to write once to a stable Deployment that nobody has scaled since it was
/// created (`generation` 1) and that runs fewer than the HPA's minimum (`hpa_min`): the API
/// server starts a Deployment without `replicas` at one, and the HPA raises it only at its
/// next sync (15 s by default), so a service asking for two pods would serve from one
/// until then. `None` otherwise: without an HPA the operator applies `replicas` itself,
/// and a Deployment scaled since (generation above 1) is the HPA's.
pub fn start_at_hpa_min(hpa_min: Option<i32>, generation: Option<i64>, stable_desired: Option<i32>) -> Option<i32> {
    let min = hpa_min?;
    (generation == Some(1) && stable_desired? < min).then_some(min)
}

/// The `replicas` to write on their own to a stable Deployment that keeps its old template
/// this round (it is not applied while a canary is judged): its share during a dynamic
/// rollout, the spec's count after one. `None` when there is nothing to write: stable is
/// applied anyway, the HPA owns `replicas`, no dynamic rollout runs or ran, or stable
/// (which `stable_desired` pods) already has the target.
pub fn stable_rescale(
    spec: &OcrServiceSpec,
    status: &OcrServiceStatus,
    plan: &RolloutPlan,
    desired_revision: &str,
    stable_desired: Option<i32>,
) -> Option<i32> {
    let was_dynamic = status.canary.as_ref().is_some_and(|c| c.stable_replicas.is_some());
    let applied_anyway = plan.stable_revision == desired_revision;
    if applied_anyway || !(spec.rollout.dynamic_stable_scale || was_dynamic) {
        return None;
    }
    let target = owned_stable_replicas(spec, plan.dynamic.as_ref())?;
    (stable_desired? != target).then_some(target)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::desired::desired_state;
    use super::super::settings::BuildSettings;
    use super::super::test_support::ocr_service;
    use super::*;
    use crate::rollout::TrackSizes;
    use kube_ocr_crds::CanaryStatus;

    const STEP: DynamicScale = DynamicScale { sizes: TrackSizes { stable: 1, canary: 3 }, stable_must_reach: false };
    const HANDOVER: DynamicScale = DynamicScale { sizes: TrackSizes { stable: 3, canary: 1 }, stable_must_reach: true };

    #[test]
    fn a_new_stable_starts_at_the_hpas_minimum_once() {
        assert_eq!(start_at_hpa_min(Some(2), Some(1), Some(1)), Some(2), "created at one, the HPA asks for two");
        assert_eq!(start_at_hpa_min(Some(2), Some(2), Some(1)), None, "scaled since: the HPA's to scale");
        assert_eq!(start_at_hpa_min(Some(1), Some(1), Some(1)), None, "already at the minimum");
        assert_eq!(start_at_hpa_min(Some(2), Some(1), Some(3)), None, "never scaled down by the operator");
        assert_eq!(start_at_hpa_min(None, Some(1), Some(1)), None, "no HPA: replicas are applied");
        assert_eq!(start_at_hpa_min(Some(2), Some(1), None), None, "no Deployment observed");
        assert_eq!(start_at_hpa_min(Some(2), None, Some(1)), None, "a generation unknown is not a new one");
    }

    #[test]
    fn a_stable_left_at_zero_by_keda_is_woken_for_the_hpa_once() {
        let spec = ocr_service(json!({ "replicas": { "min": 2, "max": 4 } })).spec;
        assert_eq!(wake_for_hpa(&spec, true, true, Some(0)), Some(2));
        assert_eq!(wake_for_hpa(&spec, true, true, Some(1)), None, "running pods are the HPA's to scale");
        assert_eq!(wake_for_hpa(&spec, true, true, None), None, "no Deployment yet: it starts at one");
        assert_eq!(wake_for_hpa(&spec, false, true, Some(0)), None, "a zero the user set under the HPA stays");
        assert_eq!(wake_for_hpa(&spec, true, false, Some(0)), None, "KEDA still scales it");
    }

    #[test]
    fn the_hpa_is_capped_and_replicas_stay_unset() {
        let ocr = ocr_service(json!({ "replicas": { "min": 2, "max": 6 } }));
        let mut desired = desired_state(&ocr, &BuildSettings::default()).unwrap();
        share_stable(&mut desired, &ocr.spec, Some(&STEP));
        let hpa = desired.autoscaler.as_ref().unwrap();
        assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(1), 1));
        assert_eq!(desired.stable.spec.as_ref().unwrap().replicas, None, "the HPA owns replicas");
        share_stable(&mut desired, &ocr.spec, Some(&HANDOVER));
        let hpa = desired.autoscaler.as_ref().unwrap();
        assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(3), 3));
        share_stable(&mut desired, &ocr.spec, None);
        let hpa = desired.autoscaler.as_ref().unwrap();
        assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 6), "restored from the spec");
    }

    #[test]
    fn keda_gets_the_same_bounds_as_the_hpa_would_and_no_hpa_is_made() {
        let ocr = ocr_service(json!({ "replicas": { "min": 2, "max": 6 }, "autoscaling": { "provider": "keda" } }));
        let mut desired = desired_state(&ocr, &BuildSettings::default()).unwrap();
        assert!(desired.autoscaler.is_none(), "KEDA makes the HPA itself");
        let bounds = |desired: &DesiredState| {
            let spec = &desired.keda.as_ref().unwrap().scaled_object.data["spec"];
            (spec["minReplicaCount"].as_i64(), spec["maxReplicaCount"].as_i64())
        };
        share_stable(&mut desired, &ocr.spec, Some(&STEP));
        assert_eq!(bounds(&desired), (Some(1), Some(1)));
        share_stable(&mut desired, &ocr.spec, Some(&HANDOVER));
        assert_eq!(bounds(&desired), (Some(3), Some(3)));
        share_stable(&mut desired, &ocr.spec, None);
        assert_eq!(bounds(&desired), (Some(2), Some(6)), "restored from the spec");
        assert_eq!(desired.stable.spec.as_ref().unwrap().replicas, None, "KEDA owns replicas");
    }

    #[test]
    fn without_an_hpa_the_operator_writes_the_share() {
        let ocr = ocr_service(json!({ "replicas": { "min": 4, "max": 4 }, "autoscaling": { "enabled": false } }));
        let mut desired = desired_state(&ocr, &BuildSettings::default()).unwrap();
        share_stable(&mut desired, &ocr.spec, Some(&STEP));
        assert_eq!(desired.stable.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(owned_stable_replicas(&ocr.spec, Some(&STEP)), Some(1));
        share_stable(&mut desired, &ocr.spec, None);
        assert_eq!(desired.stable.spec.as_ref().unwrap().replicas, Some(4));
        assert_eq!(owned_stable_replicas(&ocr_service(json!({})).spec, Some(&STEP)), None);
    }

    fn step_plan(stable_revision: &str, dynamic: Option<DynamicScale>) -> RolloutPlan {
        RolloutPlan {
            stable_revision: stable_revision.into(),
            canary_revision: Some("new".into()),
            canary_weight: 50,
            canary: None,
            failed_revision: None,
            rolled_back: false,
            events: Vec::new(),
            requeue_after: None,
            dynamic,
        }
    }

    #[test]
    fn a_stable_kept_on_its_old_template_is_scaled_to_its_share_alone() {
        let fixed = json!({ "replicas": { "min": 4, "max": 4 }, "autoscaling": { "enabled": false } });
        let mut dynamic = fixed.clone();
        dynamic["rollout"] = json!({ "dynamicStableScale": true });
        let spec = ocr_service(dynamic).spec;
        let idle = OcrServiceStatus::default();
        let plan = step_plan("old", Some(STEP));
        assert_eq!(stable_rescale(&spec, &idle, &plan, "new", Some(4)), Some(1));
        assert_eq!(stable_rescale(&spec, &idle, &plan, "new", Some(1)), None, "already there: no write");
        assert_eq!(stable_rescale(&spec, &idle, &plan, "new", None), None, "no stable Deployment to scale");
        assert_eq!(stable_rescale(&spec, &idle, &step_plan("new", Some(STEP)), "new", Some(4)), None, "applied anyway");

        // Turned off mid-rollout: back to the spec's count, once.
        let spec = ocr_service(fixed).spec;
        let was_dynamic = OcrServiceStatus {
            canary: Some(CanaryStatus { stable_replicas: Some(4), ..CanaryStatus::default() }),
            ..OcrServiceStatus::default()
        };
        assert_eq!(stable_rescale(&spec, &was_dynamic, &step_plan("old", None), "new", Some(1)), Some(4));
        assert_eq!(stable_rescale(&spec, &idle, &step_plan("old", None), "new", Some(1)), None, "never dynamic");
    }

    #[test]
    fn the_hpa_keeps_replicas_during_a_dynamic_rollout() {
        let spec = ocr_service(json!({ "rollout": { "dynamicStableScale": true } })).spec;
        let plan = step_plan("old", Some(STEP));
        assert_eq!(stable_rescale(&spec, &OcrServiceStatus::default(), &plan, "new", Some(4)), None);
    }
}

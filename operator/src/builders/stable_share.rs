//! Stable's share of a `dynamicStableScale` rollout, put into the desired state.
//!
//! With the HPA on, the share becomes the HPA's bounds, never the Deployment's `replicas`:
//! the HPA owns that field, and two writers of one field fight. Above `maxReplicas` the HPA
//! scales down at once (no metrics needed, no stabilisation window), below `minReplicas`
//! it scales up at once, so capping its bounds moves stable as surely as writing
//! `replicas` would. With the HPA off the operator owns `replicas` and writes the share.

use kube_ocr_crds::OcrServiceSpec;

use super::DesiredState;
use crate::rollout::{DynamicScale, stable_bounds};

/// Caps the stable HPA (or sets stable's `replicas` without one) to stable's share while
/// `scale` is `Some`; the spec's bounds otherwise, which restores them after a rollout.
pub fn share_stable(desired: &mut DesiredState, spec: &OcrServiceSpec, scale: Option<&DynamicScale>) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::ocr_service;
    use super::super::{BuildSettings, desired_state};
    use super::*;
    use crate::rollout::TrackSizes;

    const STEP: DynamicScale = DynamicScale { sizes: TrackSizes { stable: 1, canary: 3 }, stable_must_reach: false };
    const HANDOVER: DynamicScale = DynamicScale { sizes: TrackSizes { stable: 3, canary: 1 }, stable_must_reach: true };

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
}

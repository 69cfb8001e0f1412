//! `spec.rollout.dynamicStableScale`: both tracks share the capacity stable had when the
//! rollout started (`base`, kept in `status.canary.stableReplicas`), so a cluster whose
//! GPUs are all taken by stable can still roll out.
//!
//! Stable's share is never written to its Deployment: the HPA owns `replicas` there. The
//! operator caps the HPA's bounds instead, and the HPA scales stable down at once when it
//! runs above `maxReplicas` (and up at once below `minReplicas`), without waiting for
//! metrics or its scale-down stabilisation window. The canary's count is the operator's
//! to write, as it is without this setting.

/// Pods per track while a dynamic rollout runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSizes {
    /// Stable's cap (the HPA's `maxReplicas`, and `minReplicas` while stable must grow).
    pub stable: i32,
    pub canary: i32,
}

/// What a dynamic rollout asks of the two tracks this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicScale {
    pub sizes: TrackSizes,
    /// During the promotion's handover stable must grow to its share: the HPA's
    /// `minReplicas` is raised to it too. During steps stable may run below its share
    /// when the HPA sees little load.
    pub stable_must_reach: bool,
}

/// The shares at step weight `weight`: canary ≈ base × w / 100, stable the rest, so the
/// two never need more pods than stable had. Each keeps at least one pod: the canary to be
/// judged, stable because an HPA cannot scale to zero. With `base` 1 that makes two pods,
/// so a one-pod service needs room for one more pod (documented in docs/rollouts.md).
pub fn step_sizes(base: i32, weight: i32) -> TrackSizes {
    let base = base.max(1);
    let exact = f64::from(base) * f64::from(weight.clamp(0, 100)) / 100.0;
    let canary = (exact.round() as i32).clamp(1, (base - 1).max(1));
    TrackSizes { stable: (base - canary).max(1), canary }
}

/// The promotion hands capacity back one pod at a time: with `canary` pods left, stable's
/// cap is the rest of the base (at least one pod).
pub fn handover_sizes(base: i32, canary: i32) -> TrackSizes {
    let canary = canary.max(0);
    TrackSizes { stable: (base - canary).max(1), canary }
}

/// The canary's share of traffic during the handover, in percent. Both tracks run the new
/// revision then, so traffic follows the Ready pods: the canary's that it keeps, and
/// stable's at the new revision. It never goes to a track without Ready pods.
pub fn handover_weight(sizes: TrackSizes, canary_ready: i32, stable_ready: i32) -> i32 {
    let canary = canary_ready.min(sizes.canary).max(0);
    if canary == 0 {
        return 0;
    }
    let stable = stable_ready.max(0);
    (f64::from(canary) * 100.0 / f64::from(canary + stable)).round() as i32
}

/// The stable HPA's (minReplicas, maxReplicas) under `scale`, within the spec's bounds
/// where they allow it. Outside a dynamic rollout the spec's bounds apply unchanged.
pub fn stable_bounds(spec_min: i32, spec_max: i32, scale: Option<&DynamicScale>) -> (i32, i32) {
    let Some(scale) = scale else { return (spec_min, spec_max) };
    let cap = scale.sizes.stable.clamp(1, spec_max.max(1));
    let min = if scale.stable_must_reach { cap } else { spec_min.clamp(1, cap) };
    (min, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_base_at_every_weight() {
        for base in 2..=12 {
            for weight in 1..=100 {
                let sizes = step_sizes(base, weight);
                assert_eq!(sizes.stable + sizes.canary, base, "base {base}, weight {weight}: {sizes:?}");
                assert!(sizes.canary >= 1 && sizes.stable >= 1, "base {base}, weight {weight}: {sizes:?}");
            }
        }
    }

    #[test]
    fn shares_follow_the_weight() {
        assert_eq!(step_sizes(4, 10), TrackSizes { stable: 3, canary: 1 });
        assert_eq!(step_sizes(4, 50), TrackSizes { stable: 2, canary: 2 });
        assert_eq!(step_sizes(4, 100), TrackSizes { stable: 1, canary: 3 });
        assert_eq!(step_sizes(10, 30), TrackSizes { stable: 7, canary: 3 });
        assert_eq!(step_sizes(2, 50), TrackSizes { stable: 1, canary: 1 });
    }

    #[test]
    fn the_canary_never_shrinks_as_the_weight_grows() {
        for base in 1..=12 {
            let mut previous = step_sizes(base, 1);
            for weight in 2..=100 {
                let sizes = step_sizes(base, weight);
                assert!(sizes.canary >= previous.canary && sizes.stable <= previous.stable, "base {base} w {weight}");
                previous = sizes;
            }
        }
    }

    #[test]
    fn one_stable_pod_cannot_make_room() {
        // An HPA cannot scale stable to zero: a one-pod service needs a spare pod's room.
        assert_eq!(step_sizes(1, 50), TrackSizes { stable: 1, canary: 1 });
        assert_eq!(step_sizes(0, 50), TrackSizes { stable: 1, canary: 1 });
    }

    #[test]
    fn the_handover_never_exceeds_base() {
        let sizes: Vec<_> = (0..=3).rev().map(|canary| handover_sizes(4, canary)).collect();
        assert_eq!(
            sizes,
            [
                TrackSizes { stable: 1, canary: 3 },
                TrackSizes { stable: 2, canary: 2 },
                TrackSizes { stable: 3, canary: 1 },
                TrackSizes { stable: 4, canary: 0 },
            ]
        );
        for base in 2..=12 {
            for canary in 0..base {
                let s = handover_sizes(base, canary);
                assert_eq!(s.stable + s.canary, base, "base {base}, canary {canary}");
            }
        }
        assert_eq!(handover_sizes(1, 1), TrackSizes { stable: 1, canary: 1 }, "an HPA cannot scale to zero");
        assert_eq!(handover_sizes(1, 0), TrackSizes { stable: 1, canary: 0 });
        assert_eq!(handover_sizes(4, -1), TrackSizes { stable: 4, canary: 0 });
    }

    #[test]
    fn handover_traffic_follows_the_ready_pods_and_never_goes_to_a_track_without_any() {
        let sizes = |stable, canary| TrackSizes { stable, canary };
        assert_eq!(handover_weight(sizes(1, 3), 3, 0), 100, "stable replaces its pod in place");
        assert_eq!(handover_weight(sizes(1, 3), 3, 1), 75);
        assert_eq!(handover_weight(sizes(2, 2), 3, 1), 67, "the pod the canary gives back no longer counts");
        assert_eq!(handover_weight(sizes(2, 2), 2, 2), 50);
        assert_eq!(handover_weight(sizes(4, 0), 1, 3), 0, "no canary pod left");
        assert_eq!(handover_weight(sizes(2, 2), 0, 0), 0);
    }

    #[test]
    fn hpa_bounds_cap_stable_during_steps_and_pin_it_during_the_handover() {
        assert_eq!(stable_bounds(2, 10, None), (2, 10));
        let steps = DynamicScale { sizes: TrackSizes { stable: 3, canary: 1 }, stable_must_reach: false };
        assert_eq!(stable_bounds(2, 10, Some(&steps)), (2, 3));
        assert_eq!(stable_bounds(4, 4, Some(&steps)), (3, 3), "min never above the cap");
        let handover = DynamicScale { sizes: TrackSizes { stable: 3, canary: 1 }, stable_must_reach: true };
        assert_eq!(stable_bounds(1, 10, Some(&handover)), (3, 3));
        let over = DynamicScale { sizes: TrackSizes { stable: 6, canary: 0 }, stable_must_reach: true };
        assert_eq!(stable_bounds(1, 4, Some(&over)), (4, 4), "never above the spec's max");
    }
}

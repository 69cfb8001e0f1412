//! Status and events from what the operator observed: pure, so every rule is unit-tested.
//! Uses `rollout` (the plan it shows) and `analysis` (the verdicts it names); the
//! controller gathers the observations and writes the result.

mod conditions;
mod diagnosis;
mod event_note;
mod jobs;
mod recheck;
mod rollout_overlay;
mod slim;
mod stable;
mod tracks;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::conditions::{AVAILABLE, DEGRADED, PROGRESSING, reasons};
use kube_ocr_crds::{OcrService, OcrServiceStatus, Phase};

pub use conditions::{Decided, find, merge};
pub use diagnosis::{PodIssue, PodIssueKind, diagnose};
pub use event_note::EventNote;
pub use jobs::{JOBS_STATUS_INTERVAL, JobBacklogReading, jobs_status, jobs_status_due};
pub use recheck::recheck_after;
pub use rollout_overlay::overlay_rollout;
pub use slim::{slim_deployment, slim_pod};
pub use stable::StableObservation;
pub use tracks::TrackObservation;

/// Everything a status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The revision the spec asks for; `None` when the spec cannot be built.
    pub desired_revision: Option<String>,
    pub stable: Option<StableObservation>,
    pub pod_issues: Vec<PodIssue>,
    /// Golden-set ConfigMaps named in the spec that do not exist.
    pub missing_config_maps: Vec<String>,
    /// The claim of a `pvc://` model URI, when it does not exist.
    pub missing_claim: Option<String>,
    /// The first apply error of this reconcile.
    pub apply_error: Option<String>,
    /// Why the spec was admitted but cannot be built.
    pub invalid_spec: Option<String>,
    /// Why the `gatewayAPI` provider cannot put the weights on a route (the first of its
    /// routes that failed): the condition reason and the message telling the user what to do.
    pub traffic_problem: Option<(&'static str, String)>,
}

/// The status to write. Fields this issue does not manage (canary, analysis, failed
/// revision) are carried over from `previous` for the rollout machinery of issue #6.
pub fn compute_status(ocr: &OcrService, observation: &Observation, now: &Time) -> OcrServiceStatus {
    let previous = ocr.status.clone().unwrap_or_default();
    let namespace = ocr.metadata.namespace.as_deref().unwrap_or("default");
    let stable = observation.stable.clone().unwrap_or_default();
    let desired = observation.desired_revision.as_deref();
    let rolled_out = desired.is_some_and(|r| observation.stable.is_some() && stable.rolled_out(r));

    let (stable_revision, stable_version) = if rolled_out {
        (stable.revision.clone(), stable.model_version.clone())
    } else {
        (previous.stable_revision.clone(), previous.stable_version.clone())
    };

    let available = available_condition(&stable, stable_version.as_deref(), observation);
    let progressing = progressing_condition(ocr, &stable, observation, rolled_out, previous.stable_revision.as_deref());
    let degraded = degraded_condition(ocr, namespace, &stable, observation);
    let phase = if degraded.status {
        Phase::Degraded
    } else if available.status && !progressing.status {
        Phase::Healthy
    } else if available.status {
        Phase::Progressing
    } else {
        Phase::Pending
    };
    let conditions = merge(&previous.conditions, &[available, progressing, degraded], ocr.metadata.generation, now);
    OcrServiceStatus {
        phase: Some(phase),
        observed_generation: ocr.metadata.generation,
        desired_revision: observation.desired_revision.clone(),
        stable_revision,
        stable_version,
        replicas: observation.stable.as_ref().map(|s| s.replicas),
        ready_replicas: observation.stable.as_ref().map(|s| s.ready),
        updated_replicas: observation.stable.as_ref().map(|s| s.updated),
        conditions,
        ..previous
    }
}

fn available_condition(stable: &StableObservation, version: Option<&str>, observation: &Observation) -> Decided {
    if stable.ready > 0 {
        let serving = version.map_or(String::new(), |v| format!(", serving model {v}"));
        return Decided {
            type_: AVAILABLE,
            status: true,
            reason: reasons::MINIMUM_REPLICAS_AVAILABLE,
            message: format!("{} of {} stable pods Ready{serving}", stable.ready, stable.desired),
        };
    }
    let message = if observation.pod_issues.is_empty() && observation.apply_error.is_none() {
        "No stable pod is Ready yet: pods load the model and pass their golden self-test before they take traffic"
            .to_owned()
    } else {
        "No stable pod is Ready; the Degraded condition says why".to_owned()
    };
    Decided { type_: AVAILABLE, status: false, reason: reasons::NO_READY_REPLICAS, message }
}

fn progressing_condition(
    ocr: &OcrService,
    stable: &StableObservation,
    observation: &Observation,
    rolled_out: bool,
    previous_stable: Option<&str>,
) -> Decided {
    let desired = observation.desired_revision.as_deref().unwrap_or("unknown");
    let version = &ocr.spec.model.version;
    if rolled_out {
        return Decided {
            type_: PROGRESSING,
            status: false,
            reason: reasons::ROLLOUT_COMPLETE,
            message: format!("All {} stable pods run revision {desired} (model {version})", stable.updated),
        };
    }
    let from = previous_stable.filter(|p| *p != desired).map_or(String::new(), |p| format!(" from revision {p}"));
    Decided {
        type_: PROGRESSING,
        status: true,
        reason: reasons::ROLLING_OUT,
        message: format!(
            "Rolling the stable Deployment{from} to revision {desired} (model {version}): {} of {} pods updated, {} Ready",
            stable.updated, stable.desired, stable.ready
        ),
    }
}

fn degraded_condition(
    ocr: &OcrService,
    namespace: &str,
    stable: &StableObservation,
    observation: &Observation,
) -> Decided {
    let mut causes: Vec<(&'static str, String)> = Vec::new();
    if let Some(reason) = &observation.invalid_spec {
        causes
            .push((reasons::INVALID_SPEC, format!("The spec cannot be realised: {reason}. Fix the OcrService spec.")));
    }
    if let Some(error) = &observation.apply_error {
        causes.push((
            reasons::APPLY_FAILED,
            format!("{error}. The operator retries with backoff; check its RBAC and the API server's message."),
        ));
    }
    if let Some((reason, message)) = &observation.traffic_problem {
        causes.push((reason, message.clone()));
    }
    if !observation.missing_config_maps.is_empty() {
        causes.push((
            reasons::GOLDEN_SET_MISSING,
            format!(
                "Golden-set ConfigMap(s) {} named in spec.rollout.analysis.golden.configMaps do not exist in namespace \
                 {namespace}; create them or remove them from the spec.",
                observation.missing_config_maps.join(", ")
            ),
        ));
    }
    if let Some(claim) = &observation.missing_claim {
        causes.push((
            reasons::MODEL_CLAIM_MISSING,
            format!(
                "PersistentVolumeClaim {claim} of spec.model.uri does not exist in namespace {namespace}; create it \
                 or change the URI."
            ),
        ));
    }
    for issue in &observation.pod_issues {
        let pods = if issue.pods > 1 { format!(" (and {} more)", issue.pods - 1) } else { String::new() };
        let (reason, advice) = match issue.kind {
            PodIssueKind::ImagePull => (
                reasons::IMAGE_PULL_FAILED,
                format!("Check spec.image ({}) and the registry credentials.", ocr.spec.image),
            ),
            PodIssueKind::CrashLoop => (
                reasons::CRASH_LOOPING,
                "Check the pod's logs: a wrong model bundle path, a device the node lacks, or a failed self-test."
                    .to_owned(),
            ),
            PodIssueKind::Unschedulable => (
                reasons::UNSCHEDULABLE,
                match ocr.spec.device.gpu_count() {
                    0 => "Free resources or lower spec.resources.".to_owned(),
                    gpus => format!("Each pod needs {gpus} free nvidia.com/gpu on a node it tolerates."),
                },
            ),
        };
        causes.push((reason, format!("Pod {}{pods}: {}. {advice}", issue.pod, issue.detail)));
    }
    if stable.deadline_exceeded {
        causes.push((
            reasons::PROGRESS_DEADLINE_EXCEEDED,
            "The stable Deployment missed its progress deadline: new pods did not become Ready in time.".to_owned(),
        ));
    }
    match causes.first() {
        None => Decided {
            type_: DEGRADED,
            status: false,
            reason: reasons::AS_EXPECTED,
            message: "No problem found".to_owned(),
        },
        Some((reason, _)) => Decided {
            type_: DEGRADED,
            status: true,
            reason,
            message: causes.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join(" "),
        },
    }
}

/// Events for what changed between two statuses: each decision and transition once, so a
/// steady state publishes nothing.
pub fn transitions(previous: Option<&OcrServiceStatus>, next: &OcrServiceStatus, ocr: &OcrService) -> Vec<EventNote> {
    let empty = OcrServiceStatus::default();
    let previous = previous.unwrap_or(&empty);
    let mut notes = Vec::new();
    if let Some(revision) = &next.desired_revision
        && previous.desired_revision.as_ref() != Some(revision)
    {
        let note = match &previous.desired_revision {
            None => format!(
                "First revision {revision} (model {}, image {}) goes straight to stable",
                ocr.spec.model.version, ocr.spec.image
            ),
            Some(old) => format!(
                "The spec asks for revision {revision} (model {}, image {}) instead of {old}; a canary proves it \
                 before stable takes it (see the rollout events)",
                ocr.spec.model.version, ocr.spec.image
            ),
        };
        notes.push(EventNote { warning: false, reason: reasons::REVISION_APPLIED, note });
    }
    let before = |t: &str| find(&previous.conditions, t);
    let after = |t: &str| find(&next.conditions, t);
    if let Some(now) = after(DEGRADED) {
        let was = before(DEGRADED);
        let was_true = was.is_some_and(|c| c.status == "True");
        if now.status == "True" && (!was_true || was.is_some_and(|c| c.reason != now.reason)) {
            notes.push(EventNote { warning: true, reason: static_reason(&now.reason), note: now.message.clone() });
        } else if now.status == "False" && was_true {
            let cause = was.map_or("", |c| c.reason.as_str());
            notes.push(EventNote { warning: false, reason: reasons::RECOVERED, note: format!("{cause} resolved") });
        }
    }
    if let Some(now) = after(AVAILABLE) {
        let was_true = before(AVAILABLE).is_some_and(|c| c.status == "True");
        if now.status == "True" && !was_true {
            notes.push(EventNote { warning: false, reason: reasons::BECAME_AVAILABLE, note: now.message.clone() });
        } else if now.status == "False" && was_true {
            notes.push(EventNote { warning: true, reason: reasons::BECAME_UNAVAILABLE, note: now.message.clone() });
        }
    }
    if let Some(now) = after(PROGRESSING)
        && now.status == "False"
        && before(PROGRESSING).is_none_or(|c| c.status == "True")
    {
        notes.push(EventNote { warning: false, reason: reasons::ROLLOUT_COMPLETE, note: now.message.clone() });
    }
    notes
}

/// Event reasons are the same constants as condition reasons; map back to the static one.
fn static_reason(reason: &str) -> &'static str {
    [
        reasons::IMAGE_PULL_FAILED,
        reasons::CRASH_LOOPING,
        reasons::UNSCHEDULABLE,
        reasons::GOLDEN_SET_MISSING,
        reasons::MODEL_CLAIM_MISSING,
        reasons::PROGRESS_DEADLINE_EXCEEDED,
        reasons::INVALID_SPEC,
        reasons::APPLY_FAILED,
        reasons::GRPC_ROUTE_NOT_FOUND,
        reasons::GRPC_ROUTE_INVALID,
        reasons::HTTP_ROUTE_NOT_FOUND,
        reasons::HTTP_ROUTE_INVALID,
        reasons::GATEWAY_API_NOT_INSTALLED,
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or(DEGRADED)
}

#[cfg(test)]
mod tests;

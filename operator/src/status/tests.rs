use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::builders::test_support::ocr_service;
use crate::names::{MODEL_VERSION_ANNOTATION, REVISION_LABEL};

fn now(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap())
}

fn stable(desired: i32, ready: i32, updated: i32, revision: &str) -> StableObservation {
    StableObservation {
        generation: Some(2),
        observed_generation: Some(2),
        desired,
        replicas: desired.max(updated),
        ready,
        updated,
        available: ready,
        revision: Some(revision.to_owned()),
        model_version: Some("4.0.0".to_owned()),
        image: Some("img".to_owned()),
        deadline_exceeded: false,
    }
}

fn observe(stable_obs: StableObservation) -> Observation {
    Observation { desired_revision: Some("rev1".into()), stable: Some(stable_obs), ..Observation::default() }
}

fn condition<'a>(
    status: &'a OcrServiceStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    find(&status.conditions, type_).unwrap()
}

#[test]
fn starting_pods_are_pending_not_degraded() {
    let ocr = ocr_service(json!({}));
    let status = compute_status(&ocr, &observe(stable(2, 0, 2, "rev1")), &now(1));
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(condition(&status, AVAILABLE).status, "False");
    assert_eq!(condition(&status, PROGRESSING).status, "True");
    assert_eq!(condition(&status, DEGRADED).reason, reasons::AS_EXPECTED);
    assert_eq!(status.stable_revision, None, "nothing has rolled out yet");
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn all_pods_ready_at_the_revision_is_healthy_and_available() {
    let ocr = ocr_service(json!({}));
    let status = compute_status(&ocr, &observe(stable(2, 2, 2, "rev1")), &now(1));
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!(condition(&status, AVAILABLE).status, "True");
    assert!(condition(&status, AVAILABLE).message.contains("2 of 2 stable pods Ready, serving model 4.0.0"));
    assert_eq!(condition(&status, PROGRESSING).reason, reasons::ROLLOUT_COMPLETE);
    assert_eq!(status.stable_revision.as_deref(), Some("rev1"));
    assert_eq!(status.stable_version.as_deref(), Some("4.0.0"));
    assert_eq!(status.ready_replicas, Some(2));
}

#[test]
fn a_rolling_stable_keeps_its_old_revision_until_done() {
    let mut ocr = ocr_service(json!({ "model": { "version": "4.0.1" } }));
    ocr.status = Some(OcrServiceStatus {
        stable_revision: Some("rev0".into()),
        stable_version: Some("4.0.0".into()),
        desired_revision: Some("rev0".into()),
        ..OcrServiceStatus::default()
    });
    let status = compute_status(&ocr, &observe(stable(2, 2, 1, "rev1")), &now(1));
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert_eq!(status.stable_revision.as_deref(), Some("rev0"));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.reason, reasons::ROLLING_OUT);
    assert!(
        progressing.message.contains("from revision rev0 to revision rev1 (model 4.0.1): 1 of 2"),
        "{}",
        progressing.message
    );
    let events = transitions(ocr.status.as_ref(), &status, &ocr);
    assert!(events.iter().any(|e| e.reason == reasons::REVISION_APPLIED && e.note.contains("instead of rev0")));
}

#[test]
fn the_hpa_choice_of_replicas_is_what_rolled_out_means() {
    // The HPA scaled to 5; 2 of them ready is not done.
    let ocr = ocr_service(json!({}));
    let status = compute_status(&ocr, &observe(stable(5, 2, 5, "rev1")), &now(1));
    assert_eq!(condition(&status, PROGRESSING).status, "True");
    assert!(condition(&status, AVAILABLE).message.contains("2 of 5"));
}

#[test]
fn pod_issues_make_it_degraded_with_advice() {
    let ocr = ocr_service(json!({ "image": "example.com/nope:1" }));
    let mut observation = observe(stable(2, 0, 2, "rev1"));
    observation.pod_issues = vec![PodIssue {
        kind: PodIssueKind::ImagePull,
        pod: "invoices-stable-abc".into(),
        pods: 2,
        detail: "container inference: image not found".into(),
    }];
    let status = compute_status(&ocr, &observation, &now(1));
    assert_eq!(status.phase, Some(Phase::Degraded));
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.reason, reasons::IMAGE_PULL_FAILED);
    assert!(degraded.message.contains("invoices-stable-abc (and 1 more)"), "{}", degraded.message);
    assert!(degraded.message.contains("Check spec.image (example.com/nope:1)"), "{}", degraded.message);
    assert!(condition(&status, AVAILABLE).message.contains("Degraded condition says why"));
}

#[test]
fn missing_golden_config_maps_are_named() {
    let ocr = ocr_service(json!({}));
    let mut observation = observe(stable(2, 2, 2, "rev1"));
    observation.missing_config_maps = vec!["golden-a".into(), "golden-b".into()];
    let status = compute_status(&ocr, &observation, &now(1));
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.reason, reasons::GOLDEN_SET_MISSING);
    assert!(degraded.message.contains("golden-a, golden-b"));
    assert!(degraded.message.contains("namespace team-a"));
    // Serving still works: Available stays true while Degraded.
    assert_eq!(condition(&status, AVAILABLE).status, "True");
    assert_eq!(status.phase, Some(Phase::Degraded));
}

#[test]
fn unschedulable_gpu_pods_say_how_many_gpus_they_need() {
    let ocr = ocr_service(json!({ "device": { "kind": "cuda", "gpus": 2 } }));
    let mut observation = observe(stable(1, 0, 1, "rev1"));
    observation.pod_issues =
        vec![PodIssue { kind: PodIssueKind::Unschedulable, pod: "p".into(), pods: 1, detail: "Insufficient".into() }];
    let status = compute_status(&ocr, &observation, &now(1));
    assert!(condition(&status, DEGRADED).message.contains("2 free nvidia.com/gpu"));
}

#[test]
fn events_fire_once_per_transition_and_never_in_steady_state() {
    let ocr = ocr_service(json!({}));
    let first = compute_status(&ocr, &observe(stable(2, 0, 2, "rev1")), &now(1));
    let events = transitions(None, &first, &ocr);
    assert_eq!(events.iter().map(|e| e.reason).collect::<Vec<_>>(), [reasons::REVISION_APPLIED]);

    let mut ocr = ocr;
    ocr.status = Some(first.clone());
    let ready = compute_status(&ocr, &observe(stable(2, 2, 2, "rev1")), &now(2));
    let reasons_seen: Vec<_> = transitions(Some(&first), &ready, &ocr).iter().map(|e| e.reason).collect();
    assert_eq!(reasons_seen, [reasons::BECAME_AVAILABLE, reasons::ROLLOUT_COMPLETE]);

    ocr.status = Some(ready.clone());
    let again = compute_status(&ocr, &observe(stable(2, 2, 2, "rev1")), &now(3));
    assert_eq!(again, ready, "a steady state computes the identical status (no write)");
    assert!(transitions(Some(&ready), &again, &ocr).is_empty());

    let mut broken = observe(stable(2, 2, 2, "rev1"));
    broken.missing_config_maps = vec!["g".into()];
    ocr.status = Some(again.clone());
    let degraded = compute_status(&ocr, &broken, &now(4));
    let events = transitions(Some(&again), &degraded, &ocr);
    assert_eq!(events.len(), 1);
    assert!(events[0].warning && events[0].reason == reasons::GOLDEN_SET_MISSING);

    ocr.status = Some(degraded.clone());
    let fixed = compute_status(&ocr, &observe(stable(2, 2, 2, "rev1")), &now(5));
    let events = transitions(Some(&degraded), &fixed, &ocr);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, reasons::RECOVERED);
    assert_eq!(events[0].note, "GoldenSetMissing resolved");
}

#[test]
fn progress_deadline_and_apply_errors_are_degraded_causes() {
    let ocr = ocr_service(json!({}));
    let mut obs = stable(2, 1, 1, "rev1");
    obs.deadline_exceeded = true;
    let mut observation = observe(obs);
    observation.apply_error = Some("apply Deployment invoices-stable: forbidden".into());
    let status = compute_status(&ocr, &observation, &now(1));
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.reason, reasons::APPLY_FAILED, "the first cause names the condition");
    assert!(degraded.message.contains("forbidden") && degraded.message.contains("progress deadline"));
}

#[test]
fn rollout_fields_of_issue_6_are_carried_over() {
    let mut ocr = ocr_service(json!({}));
    ocr.status = Some(OcrServiceStatus { failed_revision: Some("bad".into()), ..OcrServiceStatus::default() });
    let status = compute_status(&ocr, &observe(stable(2, 2, 2, "rev1")), &now(1));
    assert_eq!(status.failed_revision.as_deref(), Some("bad"));
}

#[test]
fn stable_observation_reads_the_deployment() {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "x", "generation": 3 },
        "spec": {
            "replicas": 4,
            "selector": {},
            "template": {
                "metadata": { "labels": { REVISION_LABEL: "r9" }, "annotations": { MODEL_VERSION_ANNOTATION: "4.1" } },
                "spec": { "containers": [{ "name": "inference", "image": "img:1" }] },
            },
        },
        "status": {
            "observedGeneration": 3, "replicas": 4, "readyReplicas": 4, "updatedReplicas": 4, "availableReplicas": 4,
            "conditions": [{ "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" }],
        },
    }))
    .unwrap();
    let observed = StableObservation::from_deployment(&deployment);
    assert_eq!(observed.desired, 4);
    assert_eq!(observed.revision.as_deref(), Some("r9"));
    assert_eq!(observed.model_version.as_deref(), Some("4.1"));
    assert_eq!(observed.image.as_deref(), Some("img:1"));
    assert!(observed.rolled_out("r9"));
    assert!(!observed.rolled_out("other"));
    assert!(!observed.deadline_exceeded);
}

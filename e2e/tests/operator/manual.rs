//! Manual control of a rollout on the local cluster, through the one-shot annotation
//! `kube-ocr.dev/rollout-action`: a running canary is aborted (rolled back, its revision
//! recorded as failed), retried, then promoted without waiting for its steps; an unknown
//! value is refused with a Warning. Each request is removed once read and leaves an Event.
//! The operator runs under its own ServiceAccount, so its RBAC is part of the test.

use crate::support::canary::{change_model, healthy_service};
use crate::support::{Load, Scenario, TIMEOUT, merge, wait_for};
use kube::api::{Api, Patch, PatchParams};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

const ACTION: &str = "kube-ocr.dev/rollout-action";

async fn request(s: &Scenario, name: &str, action: &str) {
    let patch = json!({ "metadata": { "annotations": { ACTION: action } } });
    s.api::<OcrService>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Waits until the operator has taken the request off the object.
async fn request_taken(s: &Scenario, name: &str) {
    wait_for("the rollout-action annotation removed", TIMEOUT, async || {
        let ocr = s.api::<OcrService>().get(name).await.ok()?;
        (!ocr.metadata.annotations.unwrap_or_default().contains_key(ACTION)).then_some(())
    })
    .await;
}

/// (type, note) of the events with `reason` about `name`.
async fn events(s: &Scenario, name: &str, reason: &str) -> Vec<(String, String)> {
    s.events_about(name)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| (e.type_.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn wait_event(s: &Scenario, name: &str, reason: &str) -> (String, String) {
    wait_for(&format!("a {reason} event"), TIMEOUT, async || events(s, name, reason).await.into_iter().next()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_retry_and_promote_by_annotation() {
    let s = Scenario::new("manual", Load::Pods).await;
    let operator = s.start_operator().await;
    // Steps that would take an hour: only a human request moves this rollout.
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(&mut rollout, json!({ "rollout": { "stepInterval": "1h" } }));
    let stable = healthy_service(&s, "ocr", rollout).await;
    let api: Api<OcrService> = s.api();

    // A value that is not an action: refused, removed, nothing else happens.
    request(&s, "ocr", "rollback").await;
    request_taken(&s, "ocr").await;
    let (kind, note) = wait_event(&s, "ocr", "InvalidRolloutAction").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("promote, abort or retry"), "{note}");

    change_model(&s, "ocr", "ppocr-v4", "4.0.1").await;
    let canary = s
        .wait_status("ocr", "a canary at 50%", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.canary.as_ref()?.weight == 50).then(|| status.canary_revision.clone()).flatten()
        })
        .await;
    assert_ne!(canary, stable);

    request(&s, "ocr", "abort").await;
    request_taken(&s, "ocr").await;
    s.wait_status("ocr", "rolled back by request", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::RolledBack)
            && status.failed_revision.as_deref() == Some(canary.as_str())
            && status.canary_revision.is_none())
        .then_some(())
    })
    .await;
    assert!(wait_event(&s, "ocr", "ManualAbort").await.1.contains("at 50%"));
    let rolled_back = wait_event(&s, "ocr", "RolledBack").await;
    assert_eq!(rolled_back.0, "Warning");
    assert!(rolled_back.1.contains("aborted by request"), "{}", rolled_back.1);
    let status = api.get("ocr").await.unwrap().status.unwrap();
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()), "stable untouched");

    request(&s, "ocr", "retry").await;
    request_taken(&s, "ocr").await;
    s.wait_status("ocr", "the canary running again", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.canary_revision.as_deref() == Some(canary.as_str()) && status.failed_revision.is_none()).then_some(())
    })
    .await;
    wait_event(&s, "ocr", "ManualRetry").await;

    request(&s, "ocr", "promote").await;
    request_taken(&s, "ocr").await;
    s.wait_status("ocr", "promoted and the canary retired", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::Healthy)
            && status.stable_revision.as_deref() == Some(canary.as_str())
            && status.canary_revision.is_none())
        .then_some(())
    })
    .await;
    assert!(wait_event(&s, "ocr", "ManualPromote").await.1.contains("skipped"));
    let promoted = events(&s, "ocr", "Promoted").await;
    assert_eq!(promoted.len(), 1, "one promotion: {promoted:?}");

    // Nothing left to promote: said so, nothing changes.
    request(&s, "ocr", "promote").await;
    request_taken(&s, "ocr").await;
    let (kind, note) = wait_event(&s, "ocr", "ManualActionIgnored").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("no canary is running"), "{note}");
    assert_eq!(api.get("ocr").await.unwrap().status.unwrap().stable_revision.as_deref(), Some(canary.as_str()));

    operator.shutdown().await;
    s.finish().await;
}

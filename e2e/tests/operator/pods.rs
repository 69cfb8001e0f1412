//! Pod-level situations the API server admits but the operator must explain: a bundle
//! path that crashes the server, GPUs no node has, a `pvc://` claim that does not exist
//! yet (and then serves once it does).

use std::time::Instant;

use crate::support::{Load, MODELS_CLAIM, Scenario, TIMEOUT, condition};
use kube_ocr_crds::Phase;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_and_unschedulable_pods_are_degraded_causes() {
    let s = Scenario::new("ocrs-pods", Load::Pods).await;
    let operator = s.start_operator().await;
    s.create(&s.ocr_service("crashing", json!({ "model": { "uri": "file:///nonexistent/bundle" } }))).await;
    s.create(&s.ocr_service("gpu-hungry", json!({ "device": { "kind": "cuda", "gpus": 8 } }))).await;

    let message = s
        .wait_status("crashing", "Degraded CrashLooping", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && reason == "CrashLooping").then_some(message)
        })
        .await;
    assert!(message.contains("container inference restarted"), "{message}");
    assert!(message.contains("Check the pod's logs"), "{message}");

    let message = s
        .wait_status("gpu-hungry", "Degraded Unschedulable", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && reason == "Unschedulable").then_some(message)
        })
        .await;
    assert!(message.contains("nvidia.com/gpu"), "{message}");
    assert!(message.contains("Each pod needs 8 free nvidia.com/gpu"), "{message}");
    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_model_waits_for_its_claim_then_serves_from_it() {
    let started = Instant::now();
    let s = Scenario::new("ocrs-pvc", Load::Pods).await;
    let operator = s.start_operator().await;
    s.create(&s.ocr_service("claimed", json!({ "model": { "uri": format!("pvc://{MODELS_CLAIM}/ppocr-v4") } }))).await;
    let message = s
        .wait_status("claimed", "Degraded ModelClaimMissing", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && reason == "ModelClaimMissing").then_some(message)
        })
        .await;
    assert!(message.contains("PersistentVolumeClaim models"), "{message}");

    // The claim appears (bound statically to a hostPath volume of the workspace's models/),
    // and the scheduler places the pod.
    s.models_claim().await;

    let status = s
        .wait_status("claimed", "Healthy from the claim", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::Healthy) && status.ready_replicas == Some(1)).then(|| status.clone())
        })
        .await;
    assert_eq!(condition(&s.api().get("claimed").await.unwrap(), "Degraded").unwrap().1, "AsExpected");
    assert!(status.stable_revision.is_some());

    // Steady state: reconciles keep happening (here forced by metadata edits, which do not
    // change the generation), and none of them writes anything.
    let counter = |text: &str, name: &str| -> f64 {
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let before = operator.metrics().await;
    for i in 0..3 {
        let touch = json!({ "metadata": { "annotations": { "e2e/touch": i.to_string() } } });
        s.api::<kube_ocr_crds::OcrService>()
            .patch("claimed", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&touch))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let after = operator.metrics().await;
    let reconciles =
        counter(&after, "ocr_operator_reconciles_total") - counter(&before, "ocr_operator_reconciles_total");
    assert!(reconciles >= 3.0, "the touches must trigger reconciles: {reconciles}");
    let writes = counter(&after, "ocr_operator_api_writes_total") - counter(&before, "ocr_operator_api_writes_total");
    assert_eq!(writes, 0.0, "a steady state writes nothing:\n{after}");
    operator.shutdown().await;
    s.finish().await;
    eprintln!("pvc: healthy from a claim after {:?}", started.elapsed());
}

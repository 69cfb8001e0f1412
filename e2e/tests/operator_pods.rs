//! Pod-level situations the API server admits but the operator must explain: a bundle
//! path that crashes the server, GPUs no node has, a `pvc://` claim that does not exist
//! yet (and then serves once it does).

mod operator_support;

use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use kube_ocr_crds::Phase;
use operator_support::{Scenario, TIMEOUT, condition, workspace_root};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_and_unschedulable_pods_are_degraded_causes() {
    let s = Scenario::new("ocrs-pods").await;
    let (agent, _work_dir) = s.start_agent().await;
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
    operator.shutdown().await.unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_model_waits_for_its_claim_then_serves_from_it() {
    let started = Instant::now();
    let s = Scenario::new("ocrs-pvc").await;
    let (agent, work_dir) = s.start_agent().await;
    let operator = s.start_operator().await;
    s.create(&s.ocr_service("claimed", json!({ "model": { "uri": "pvc://models/ppocr-v4" } }))).await;
    let message = s
        .wait_status("claimed", "Degraded ModelClaimMissing", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && reason == "ModelClaimMissing").then_some(message)
        })
        .await;
    assert!(message.contains("PersistentVolumeClaim models"), "{message}");

    // The node agent keeps a claim's files in <work-dir>/pvc/<namespace>_<claim>; put the
    // bundle there, then bind a claim to a volume statically so the scheduler places the pod.
    let claim_dir = work_dir.path().join("agent/pvc").join(format!("{}_models", s.namespace));
    std::fs::create_dir_all(&claim_dir).unwrap();
    let bundle = workspace_root().join("models/ppocr-v4").canonicalize().unwrap();
    std::os::unix::fs::symlink(&bundle, claim_dir.join("ppocr-v4")).unwrap();
    let volume_name = format!("{}-models", s.namespace);
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": volume_name },
        "spec": {
            "capacity": { "storage": "1Gi" }, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
            "hostPath": { "path": claim_dir }, "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": { "namespace": s.namespace, "name": "models" },
        },
    }))
    .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(s.admin.clone());
    volumes.create(&PostParams::default(), &volume).await.unwrap();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "models" },
        "spec": {
            "accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": volume_name,
            "resources": { "requests": { "storage": "1Gi" } },
        },
    }))
    .unwrap();
    s.api::<PersistentVolumeClaim>().create(&PostParams::default(), &claim).await.unwrap();

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
    let before = operator.metrics().encode();
    for i in 0..3 {
        let touch = json!({ "metadata": { "annotations": { "e2e/touch": i.to_string() } } });
        s.api::<kube_ocr_crds::OcrService>()
            .patch("claimed", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&touch))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let after = operator.metrics().encode();
    let reconciles =
        counter(&after, "ocr_operator_reconciles_total") - counter(&before, "ocr_operator_reconciles_total");
    assert!(reconciles >= 3.0, "the touches must trigger reconciles: {reconciles}");
    let writes = counter(&after, "ocr_operator_api_writes_total") - counter(&before, "ocr_operator_api_writes_total");
    assert_eq!(writes, 0.0, "a steady state writes nothing:\n{after}");
    operator.shutdown().await.unwrap();
    agent.shutdown().await;
    volumes.delete(&volume_name, &DeleteParams::default()).await.unwrap();
    eprintln!("pvc: healthy from a claim after {:?}", started.elapsed());
}

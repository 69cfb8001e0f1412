//! The operator against the real control plane, running in the cluster under its own
//! ServiceAccount with only its generated ClusterRole: an OcrService becomes owned
//! children, Ready inference pods (on the real nodes) and an Available status; a spec
//! change rolls the pods; deletion garbage-collects everything; the HPA's replica count
//! is never taken back; invalid-but-admitted situations surface as Degraded.

use std::time::{Duration, Instant};

use crate::support::{Load, Scenario, TIMEOUT, condition, http_get, merge, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_ocr_crds::{OcrService, Phase};
use kube_ocr_operator::names::{FIELD_MANAGER, REVISION_LABEL};
use serde_json::json;

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, ocr: &OcrService) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "OcrService" && o.uid == ocr.uid().unwrap() && o.controller == Some(true))
}

async fn event_reasons(s: &Scenario, name: &str) -> Vec<String> {
    s.events_about(name).await.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ocr_service_becomes_available_rolls_on_spec_change_and_is_collected() {
    let started = Instant::now();
    let s = Scenario::new("ocrs-lifecycle", Load::Pods).await;
    let operator = s.start_operator().await;
    s.create_golden_config_map("golden-small").await;
    let ocr = s.create(&s.ocr_service("invoices", Scenario::fast_rollout("golden-small"))).await;

    // Children exist, owned by the OcrService as controller.
    let deployments: Api<Deployment> = s.api();
    let stable =
        wait_for("the stable Deployment", TIMEOUT, async || deployments.get_opt("invoices-stable").await.ok()?).await;
    assert!(owned_by(&stable.metadata, &ocr));
    // The children are applied concurrently, so a Service may land after the Deployment.
    for name in ["invoices", "invoices-stable", "invoices-canary"] {
        let service =
            wait_for(&format!("the Service {name}"), TIMEOUT, async || s.api::<Service>().get_opt(name).await.ok()?)
                .await;
        assert!(owned_by(&service.metadata, &ocr), "Service {name}");
    }
    let hpa = wait_for("the HPA", TIMEOUT, async || {
        s.api::<HorizontalPodAutoscaler>().get_opt("invoices-stable").await.ok()?
    })
    .await;
    assert!(owned_by(&hpa.metadata, &ocr));
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(1), 3));
    let pdb =
        wait_for("the PDB", TIMEOUT, async || s.api::<PodDisruptionBudget>().get_opt("invoices").await.ok()?).await;
    assert!(owned_by(&pdb.metadata, &ocr));

    // The pod template the inference pod needs.
    let template = stable.spec.as_ref().unwrap().template.clone();
    let container = &template.spec.as_ref().unwrap().containers[0];
    let args = container.args.clone().unwrap();
    assert!(args.iter().any(|a| a.starts_with("--bundle=/") && a.ends_with("ppocr-v4")), "{args:?}");
    assert!(args.contains(&"--device=cpu".to_owned()));
    assert!(container.startup_probe.as_ref().unwrap().grpc.is_some());
    assert_eq!(container.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    let first_revision = template.metadata.as_ref().unwrap().labels.as_ref().unwrap()[REVISION_LABEL].clone();

    // The kubelets start the pods; the status says Available with the ready count.
    let ready = s
        .wait_status("invoices", "Healthy and Available", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            let available = condition(o, "Available")?;
            (status.phase == Some(Phase::Healthy) && available.0 == "True").then(|| status.clone())
        })
        .await;
    let time_to_available = started.elapsed();
    assert_eq!(ready.ready_replicas, Some(1));
    assert_eq!(ready.stable_revision.as_deref(), Some(first_revision.as_str()));
    assert_eq!(ready.stable_version.as_deref(), Some("4.0.0"));
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(condition(&s.api::<OcrService>().get("invoices").await.unwrap(), "Degraded").unwrap().0, "False");

    // A spec change is a new revision: it is proven on a canary, promoted, stable rolls
    // and status follows (the canary analysis itself is tested in canary.rs).
    let patch = json!({ "spec": { "model": { "version": "4.0.1" } } });
    s.api::<OcrService>().patch("invoices", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let rolled = s
        .wait_status("invoices", "the new revision Healthy", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.observed_generation == Some(2)
                && status.phase == Some(Phase::Healthy)
                && status.stable_version.as_deref() == Some("4.0.1")
                && status.canary_revision.is_none())
            .then(|| status.clone())
        })
        .await;
    assert_ne!(rolled.stable_revision.as_deref(), Some(first_revision.as_str()));
    let pods = s.api::<Pod>().list(&ListParams::default().labels("kube-ocr.dev/ocrservice=invoices")).await.unwrap();
    let live: Vec<_> = pods.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert!(
        live.iter().all(|p| p.labels().get(REVISION_LABEL) == rolled.stable_revision.as_ref()),
        "every live pod runs the new revision"
    );
    let reasons = event_reasons(&s, "invoices").await;
    for expected in ["RevisionApplied", "BecameAvailable", "CanaryStarted", "Promoted", "RolloutComplete"] {
        assert!(reasons.iter().any(|r| r == expected), "no {expected} event in {reasons:?}");
    }

    // The operator's own endpoints.
    let address = operator.http_addr().await;
    let (code, metrics) = http_get(address.ip(), address.port(), "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("ocr_operator_reconciles_total{result=\"success\"}"), "{metrics}");
    assert_eq!(http_get(address.ip(), address.port(), "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(address.ip(), address.port(), "/readyz").await.unwrap().0, 200);
    let lease = s.api::<Lease>().get("kube-ocr-operator").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, Some(operator.pod_name().await), "the pod name is its identity");

    // Deletion: the garbage collector (kube-controller-manager) removes every child.
    s.api::<OcrService>().delete("invoices", &DeleteParams::default()).await.unwrap();
    wait_for("children garbage-collected", TIMEOUT, async || {
        let deployment = deployments.get_opt("invoices-stable").await.ok()?;
        let services = s.api::<Service>().list(&ListParams::default()).await.ok()?.items;
        let hpa = s.api::<HorizontalPodAutoscaler>().get_opt("invoices-stable").await.ok()?;
        let pdb = s.api::<PodDisruptionBudget>().get_opt("invoices").await.ok()?;
        (deployment.is_none() && services.is_empty() && hpa.is_none() && pdb.is_none()).then_some(())
    })
    .await;
    operator.shutdown().await;
    s.finish().await;
    eprintln!("lifecycle: available after {time_to_available:?}, whole scenario {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_never_resets_replicas_the_hpa_owns() {
    let s = Scenario::new("ocrs-hpa", Load::NoPods).await;
    let operator = s.start_operator().await;
    let mut spec = Scenario::unscheduled();
    merge(&mut spec, json!({ "replicas": { "min": 2, "max": 10 } }));
    s.create(&s.ocr_service("scaled", spec)).await;
    let deployments: Api<Deployment> = s.api();

    // The real HPA controller raises the Deployment to min: the operator left it alone.
    wait_for("the HPA to scale the Deployment to min 2", TIMEOUT, async || {
        let d = deployments.get_opt("scaled-stable").await.ok()??;
        (d.spec?.replicas == Some(2)).then_some(())
    })
    .await;

    // Scale as an autoscaler would (the scale subresource, another field manager).
    let scale = json!({ "spec": { "replicas": 5 } });
    deployments
        .patch_scale(
            "scaled-stable",
            &PatchParams { field_manager: Some("e2e-autoscaler".into()), ..Default::default() },
            &Patch::Merge(&scale),
        )
        .await
        .unwrap();

    // Someone edits a field the operator owns; a spec change that keeps the revision (the
    // HPA's max) makes the operator re-apply the stable Deployment. Drift is reverted,
    // replicas are not: the re-apply provably happened and left the autoscaler's count.
    let drift = json!({ "spec": { "revisionHistoryLimit": 7 } });
    let editor = PatchParams { field_manager: Some("e2e-editor".into()), ..Default::default() };
    deployments.patch("scaled-stable", &editor, &Patch::Merge(&drift)).await.unwrap();
    let revision = deployments.get("scaled-stable").await.unwrap().labels()[REVISION_LABEL].clone();
    let patch = json!({ "spec": { "replicas": { "max": 9 } } });
    s.api::<OcrService>().patch("scaled", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let after = wait_for("the new max applied and the drift reverted", TIMEOUT, async || {
        let hpa = s.api::<HorizontalPodAutoscaler>().get("scaled-stable").await.ok()?;
        let d = deployments.get("scaled-stable").await.ok()?;
        (hpa.spec.max_replicas == 9 && d.spec.as_ref()?.revision_history_limit == Some(3)).then_some(d)
    })
    .await;
    assert_eq!(after.labels()[REVISION_LABEL], revision, "replica bounds are not a new revision");
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(5), "the operator took replicas back from the autoscaler");
    // Give any further reconcile (status, pod events) the chance to fight, then look again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = deployments.get("scaled-stable").await.unwrap();
    assert_eq!(settled.spec.as_ref().unwrap().replicas, Some(5));
    let ours = settled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply"))
        .expect("the operator applies the Deployment");
    let fields = serde_json::to_string(&ours.fields_v1).unwrap();
    assert!(!fields.contains("f:replicas"), "the operator owns spec.replicas: {fields}");

    // Autoscaling off: the operator deletes its HPA and now owns replicas (= min).
    let patch = json!({ "spec": { "autoscaling": { "enabled": false }, "replicas": { "min": 3, "max": 3 } } });
    s.api::<OcrService>().patch("scaled", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_for("replicas = min and no HPA", TIMEOUT, async || {
        let d = deployments.get("scaled-stable").await.ok()?;
        let hpa = s.api::<HorizontalPodAutoscaler>().get_opt("scaled-stable").await.ok()?;
        (d.spec?.replicas == Some(3) && hpa.is_none()).then_some(())
    })
    .await;
    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_image_surfaces_as_degraded_with_the_reason() {
    let s = Scenario::new("ocrs-image", Load::Pods).await;
    let operator = s.start_operator().await;
    s.create(&s.ocr_service("broken", json!({ "image": "example.com/no-such-image:1" }))).await;
    let (reason, message) = s
        .wait_status("broken", "Degraded with ImagePullFailed", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && o.status.as_ref()?.phase == Some(Phase::Degraded)).then_some((reason, message))
        })
        .await;
    assert_eq!(reason, "ImagePullFailed", "{message}");
    assert!(message.contains("example.com/no-such-image"), "{message}");
    assert!(message.contains("Check spec.image"), "{message}");
    let available = condition(&s.api::<OcrService>().get("broken").await.unwrap(), "Available").unwrap();
    assert_eq!(available.0, "False");
    wait_for("a Warning event ImagePullFailed", TIMEOUT, async || {
        event_reasons(&s, "broken").await.iter().any(|r| r == "ImagePullFailed").then_some(())
    })
    .await;
    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_golden_config_map_is_degraded_until_it_exists() {
    let s = Scenario::new("ocrs-golden", Load::NoPods).await;
    let operator = s.start_operator().await;
    let mut spec = Scenario::unscheduled();
    merge(&mut spec, json!({ "rollout": { "analysis": { "golden": { "configMaps": ["golden-invoices"] } } } }));
    s.create(&s.ocr_service("golden", spec)).await;
    let message = s
        .wait_status("golden", "Degraded GoldenSetMissing", TIMEOUT, |o| {
            let (status, reason, message) = condition(o, "Degraded")?;
            (status == "True" && reason == "GoldenSetMissing").then_some(message)
        })
        .await;
    assert!(message.contains("golden-invoices") && message.contains(&s.namespace), "{message}");

    let config_map: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "golden-invoices" } })).unwrap();
    s.api::<ConfigMap>().create(&PostParams::default(), &config_map).await.unwrap();
    // No watch covers ConfigMaps: the settling recheck (2 s here) finds it.
    s.wait_status("golden", "GoldenSetMissing resolved", Duration::from_secs(30), |o| {
        let (_, reason, _) = condition(o, "Degraded")?;
        (reason != "GoldenSetMissing").then_some(())
    })
    .await;
    let reasons = event_reasons(&s, "golden").await;
    assert!(reasons.iter().any(|r| r == "GoldenSetMissing"), "{reasons:?}");
    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_elect_one_leader_and_hand_over_on_shutdown() {
    let s = Scenario::new("ocrs-leader", Load::NoPods).await;
    let first = s.start_operator_named("first", &s.operator_config()).await;
    let first_identity = first.pod_name().await;
    let leases: Api<Lease> = s.api();
    let holder = async || leases.get_opt("kube-ocr-operator").await.ok()??.spec?.holder_identity;
    wait_for("first to lead", TIMEOUT, async || (holder().await? == first_identity).then_some(())).await;
    let second = s.start_operator_named("second", &s.operator_config()).await;
    let second_identity = second.pod_name().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(second.metrics().await.contains("ocr_operator_leader 0"), "the standby must not lead");
    assert!(first.metrics().await.contains("ocr_operator_leader 1"));

    // The leader hands the Lease over when its pod stops; the standby takes it and reconciles.
    first.shutdown().await;
    let handed_over = Instant::now();
    assert_ne!(holder().await, Some(first_identity), "a stopped leader releases its Lease rather than let it expire");
    wait_for("second to lead", Duration::from_secs(20), async || (holder().await? == second_identity).then_some(()))
        .await;
    let took_over = handed_over.elapsed();
    assert!(took_over < Duration::from_secs(5), "a released Lease is taken at once, not after expiry: {took_over:?}");
    s.create(&s.ocr_service("led", Scenario::unscheduled())).await;
    wait_for("the new leader reconciles", TIMEOUT, async || {
        s.api::<Deployment>().get_opt("led-stable").await.ok()?.map(|_| ())
    })
    .await;
    second.shutdown().await;
    s.finish().await;
}

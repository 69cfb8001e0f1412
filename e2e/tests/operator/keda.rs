//! A synchronous OcrService autoscaled by KEDA (`autoscaling.provider: keda`,
//! `replicas.min: 1`) on the local cluster: KEDA reads `ocr_in_flight_requests` from every
//! Ready stable pod (the `in-flight` trigger), scales stable out under synchronous load and
//! back in once idle; then a `dynamicStableScale` canary is promoted with the ScaledObject
//! capped to stable's share during the steps and given the spec's bounds back afterwards,
//! as the operator does with its own HPA.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::canary::{change_model, healthy_service};
use crate::support::{Load, Scenario, TIMEOUT, http_post, merge, wait_for, workspace_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

/// Concurrent synchronous callers: three requests in flight against `inFlightPerReplica: 1`
/// ask for three pods, more than `replicas.max`.
const CALLERS: usize = 3;

fn scaled_objects(s: &Scenario) -> kube::Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"));
    kube::Api::namespaced_with(s.admin.clone(), &s.namespace, &resource)
}

/// The ScaledObject's (minReplicaCount, maxReplicaCount).
async fn keda_bounds(s: &Scenario) -> Option<(i64, i64)> {
    let object = scaled_objects(s).get("ocr-stable").await.ok()?;
    let spec = &object.data["spec"];
    Some((spec["minReplicaCount"].as_i64()?, spec["maxReplicaCount"].as_i64()?))
}

/// (spec.replicas, Ready replicas) of the stable Deployment.
async fn stable_replicas(s: &Scenario) -> (i32, i32) {
    match s.api::<Deployment>().get_opt("ocr-stable").await.ok().flatten() {
        Some(d) => (d.spec.and_then(|s| s.replicas).unwrap_or(0), d.status.and_then(|s| s.ready_replicas).unwrap_or(0)),
        None => (0, 0),
    }
}

/// One caller: document requests over HTTP, back to back, to the Ready stable pods in
/// turn, until `stop`. Returns (answered, refused as overloaded, other failures).
async fn caller(s: &Scenario, id: usize, stop: Arc<AtomicBool>) -> (usize, usize, Vec<String>) {
    let image = std::fs::read(workspace_root().join("golden/data/documents/doc-letter-01-clean.png")).unwrap();
    let (mut answered, mut refused, mut failures, mut turn) = (0, 0, Vec::new(), id);
    while !stop.load(Ordering::Relaxed) {
        let addresses = s.ready_addresses("ocr-stable").await;
        let Some(address) = (!addresses.is_empty()).then(|| addresses[turn % addresses.len()].clone()) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        turn += 1;
        // Bytes after the PNG's end: the same page, another sha256, so every call misses the
        // result cache and stays in flight for a whole page.
        let mut body = image.clone();
        body.extend_from_slice(format!("caller {id} call {turn}").as_bytes());
        match http_post(&address, 8000, "/v1/ocr?task=document", "image/png", &body).await {
            Ok((200, _)) => answered += 1,
            // Admission refusing what it cannot finish in time is the pod doing its job.
            Ok((429, _)) => refused += 1,
            Ok((status, body)) => {
                failures.push(format!("{address}: HTTP {status}: {}", String::from_utf8_lossy(&body)))
            }
            Err(error) => failures.push(format!("{address}: {error:#}")),
        }
    }
    (answered, refused, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scales_a_synchronous_service_on_in_flight_requests_and_a_canary_keeps_stables_share() {
    let started = Instant::now();
    let s = Arc::new(Scenario::new("ocrs-keda", Load::Judged).await);
    let keda = s.start_keda().await;
    let operator = s.start_operator().await;
    let mut spec = Scenario::fast_rollout("golden-small");
    merge(
        &mut spec,
        json!({
            "replicas": { "min": 1, "max": 2 },
            "autoscaling": {
                "provider": "keda",
                "keda": { "pollingIntervalSeconds": 1, "idleAfter": "10s", "inFlightPerReplica": 1 },
            },
            "rollout": { "dynamicStableScale": true },
        }),
    );
    let first_revision = healthy_service(&s, "ocr", spec).await;

    // The operator's ScaledObject: the in-flight trigger only (no jobs), the spec's bounds.
    let scaled = wait_for("the ScaledObject", TIMEOUT, async || scaled_objects(&s).get("ocr-stable").await.ok()).await;
    let triggers = scaled.data["spec"]["triggers"].as_array().cloned().unwrap_or_default();
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["name"], "in-flight");
    assert_eq!(keda_bounds(&s).await, Some((1, 2)));
    assert!(
        s.api::<HorizontalPodAutoscaler>().get_opt("ocr-stable").await.unwrap().is_none(),
        "no HPA of the operator's beside KEDA's"
    );
    eprintln!("healthy with KEDA after {:.1?}", started.elapsed());

    // Synchronous load: stable scales out to replicas.max, and the new pod serves.
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|id| {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move { caller(&s, id, stop).await })
        })
        .collect();
    let load_started = Instant::now();
    let hpa_reading = wait_for("KEDA's HPA to read the in-flight requests", TIMEOUT, async || {
        let hpa = s.api::<HorizontalPodAutoscaler>().get("keda-hpa-ocr-stable").await.ok()?;
        let current = hpa.status?.current_metrics?.into_iter().find_map(|m| m.external)?.current;
        let value = current.average_value.or(current.value)?.0;
        (value != "0").then_some(value)
    })
    .await;
    wait_for("a second stable pod, Ready, under load", TIMEOUT, async || {
        (stable_replicas(&s).await == (2, 2)).then_some(())
    })
    .await;
    let scaled_out_after = load_started.elapsed();
    wait_for("both stable pods behind the stable Service", TIMEOUT, async || {
        (s.ready_addresses("ocr-stable").await.len() == 2).then_some(())
    })
    .await;
    // Let both pods take calls before the load stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut answered, mut refused, mut failures) = (0, 0, Vec::new());
    for handle in callers {
        let (a, r, f) = handle.await.unwrap();
        answered += a;
        refused += r;
        failures.extend(f);
    }
    eprintln!(
        "load: HPA read {hpa_reading} in flight per pod; 2 Ready pods after {scaled_out_after:.1?}; {answered} answered, {refused} refused (overloaded)"
    );
    assert!(failures.is_empty(), "synchronous calls failed while KEDA scaled: {failures:#?}");
    assert!(answered > 0);

    // Idle: back to replicas.min after idleAfter.
    let idle_since = Instant::now();
    wait_for("stable back to one pod once idle", Duration::from_secs(120), async || {
        (stable_replicas(&s).await.0 == 1).then_some(())
    })
    .await;
    eprintln!("back to one pod {:.1?} after the load stopped", idle_since.elapsed());

    // A dynamicStableScale canary: the ScaledObject is capped to stable's share (one pod of
    // a base of one) while the canary runs, and the canary is promoted.
    change_model(&s, "ocr", "ppocr-v4", "4.0.1").await;
    let (mut capped, deadline) = (false, Instant::now() + Duration::from_secs(240));
    let promoted = loop {
        capped |= keda_bounds(&s).await == Some((1, 1));
        let current = s.api::<OcrService>().get("ocr").await.unwrap().status.unwrap();
        assert_ne!(current.phase, Some(Phase::RolledBack), "{current:#?}");
        let done = current.phase == Some(Phase::Healthy)
            && current.stable_version.as_deref() == Some("4.0.1")
            && current.canary_revision.is_none();
        if done {
            break current;
        }
        assert!(Instant::now() < deadline, "not promoted; last status {current:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(capped, "the ScaledObject was capped to stable's share during the canary");
    assert_ne!(promoted.stable_revision.as_deref(), Some(first_revision.as_str()));
    wait_for("the spec's bounds back on the ScaledObject", TIMEOUT, async || {
        (keda_bounds(&s).await == Some((1, 2))).then_some(())
    })
    .await;
    wait_for("KEDA's HPA with the spec's bounds", TIMEOUT, async || {
        let hpa = s.api::<HorizontalPodAutoscaler>().get("keda-hpa-ocr-stable").await.ok()?;
        let spec = hpa.spec;
        (spec.min_replicas == Some(1) && spec.max_replicas == 2).then_some(())
    })
    .await;
    eprintln!("done after {:.1?}", started.elapsed());

    drop(keda);
    operator.shutdown().await;
    let s = Arc::into_inner(s).expect("the callers have ended");
    s.finish().await;
}

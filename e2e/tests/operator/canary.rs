//! Canary rollouts on the local cluster with real inference pods: a slower model is
//! caught by the P95 comparison with stable in the same window and rolled back; a model
//! that never becomes Ready is rolled back at the progress deadline. Both leave stable
//! serving, record `failedRevision` and say why in a Warning event. Outside rollouts the
//! golden check keeps running on stable, and drift below the minimum is Degraded.

use std::time::Duration;

use crate::support::canary::{bundle_uri, change_model, healthy_service, warning_notes};
use crate::support::{Load, Scenario, TIMEOUT, http_post, latency_judged, merge, wait_for, workspace_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_canary_is_rolled_back_on_p95_against_stable() {
    let s = Scenario::new("canary-slow", Load::Judged).await;
    let operator = s.start_operator().await;
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(&mut rollout, latency_judged());
    let stable = healthy_service(&s, "ocr", rollout).await;

    // The `slow` bundle reads exactly like the standard one, four times slower.
    change_model(&s, "ocr", "ppocr-v4-slow", "4.0.0-slow").await;
    let canary = s.wait_status("ocr", "a canary", TIMEOUT, |o| o.status.as_ref()?.canary_revision.clone()).await;
    assert_ne!(canary, stable);
    let rolled_back = s
        .wait_status("ocr", "RolledBack", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::RolledBack)).then(|| status.clone())
        })
        .await;
    assert_eq!(rolled_back.failed_revision.as_deref(), Some(canary.as_str()));
    assert_eq!(rolled_back.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(rolled_back.canary_revision, None);
    let analysis = rolled_back.last_analysis.expect("the last analysis is in status");
    assert_eq!(analysis.verdict.as_deref(), Some("Failed"));
    assert!(analysis.reasons.iter().any(|r| r.contains("P95")), "{:?}", analysis.reasons);
    let (stable_p95, canary_p95) =
        (analysis.stable.unwrap().p95_ms.unwrap(), analysis.canary.as_ref().unwrap().p95_ms.unwrap());
    assert!(canary_p95 > 1.5 * stable_p95, "canary {canary_p95} ms vs stable {stable_p95} ms");
    assert!(analysis.canary.unwrap().accuracy.unwrap() >= 0.9, "the slow model reads as well as stable");
    let degraded = s.api::<OcrService>().get("ocr").await.unwrap();
    let condition = degraded.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Degraded").unwrap();
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "RolledBack"));

    let notes = warning_notes(&s, "ocr", "RolledBack").await;
    assert!(notes.iter().any(|n| n.contains("P95") && n.contains("ms")), "{notes:?}");
    wait_for("the canary Deployment to be removed", TIMEOUT, async || {
        s.api::<Deployment>().get_opt("ocr-canary").await.ok()?.is_none().then_some(())
    })
    .await;

    // The failed revision is not retried while the spec asks for it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let still = s.api::<OcrService>().get("ocr").await.unwrap().status.unwrap();
    assert_eq!((still.phase, still.canary_revision), (Some(Phase::RolledBack), None));
    assert_eq!(s.api::<Deployment>().get_opt("ocr-canary").await.unwrap(), None);

    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline() {
    // No analysis judges this canary (it never gets Ready), so no latency verdict to spoil.
    let s = Scenario::new("canary-unready", Load::Pods).await;
    let operator = s.start_operator().await;
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(&mut rollout, json!({ "rollout": { "progressDeadline": "30s" } }));
    let stable = healthy_service(&s, "ocr", rollout).await;

    // The `degraded` bundle fails its own start-up self-test: its pods never get Ready.
    change_model(&s, "ocr", "ppocr-v4-degraded", "4.0.0-degraded").await;
    let rolled_back = s
        .wait_status("ocr", "RolledBack", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::RolledBack)).then(|| status.clone())
        })
        .await;
    assert_eq!(rolled_back.stable_revision.as_deref(), Some(stable.as_str()));
    assert!(rolled_back.failed_revision.is_some());
    let notes = warning_notes(&s, "ocr", "RolledBack").await;
    assert!(notes.iter().any(|n| n.contains("0/1 Ready") && n.contains("progressDeadline")), "{notes:?}");
    // Stable kept serving all along.
    let stable_deployment = s.api::<Deployment>().get("ocr-stable").await.unwrap();
    assert_eq!(stable_deployment.status.unwrap().ready_replicas, Some(1));

    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_accuracy_below_the_minimum_is_degraded_outside_rollouts() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::PostParams;
    use kube_ocr_golden::config_map::{DEFAULT_MAX_BYTES, split_into_config_maps};
    use kube_ocr_golden::{GoldenSet, Truth};
    // Stable's golden accuracy outside rollouts: no latency verdict.
    let s = Scenario::new("stable-drift", Load::Pods).await;
    let operator = s.start_operator().await;

    // A golden set whose expected texts no longer match its images: what drift between
    // the model and the data it is judged on looks like.
    let full = GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
    let items = full
        .items
        .iter()
        .filter(|i| ["line-en-001-clean", "line-en-002-clean"].contains(&i.id.as_str()))
        .cloned()
        .map(|mut item| {
            item.truth = Truth::Text("Completely different words than the picture shows".to_owned());
            item
        })
        .collect();
    let set = GoldenSet { root: full.root.clone(), items };
    let part = split_into_config_maps(&set, "golden-drifted", DEFAULT_MAX_BYTES).unwrap().remove(0);
    let map: ConfigMap = serde_json::from_value(part.to_manifest(Some(&s.namespace), "golden-drifted")).unwrap();
    s.api::<ConfigMap>().create(&PostParams::default(), &map).await.unwrap();
    let mut spec = Scenario::fast_rollout("golden-drifted");
    merge(&mut spec, json!({ "rollout": { "analysis": { "golden": { "stableInterval": "5s" } } } }));
    s.create(&s.ocr_service("ocr", spec)).await;

    let degraded = s
        .wait_status("ocr", "Degraded by the stable golden check", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            let condition = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
            (condition.status == "True" && condition.reason == "AccuracyBelowMinimum").then(|| status.clone())
        })
        .await;
    assert_eq!(degraded.phase, Some(Phase::Degraded));
    let analysis = degraded.last_analysis.unwrap();
    assert!(analysis.canary.is_none());
    let accuracy = analysis.stable.unwrap().accuracy.unwrap();
    assert!(accuracy < 0.9, "{accuracy}");
    let metrics = operator.metrics().await;
    let series =
        format!("ocr_operator_golden_accuracy{{namespace=\"{}\",ocrservice=\"ocr\",track=\"stable\"}}", s.namespace);
    assert!(metrics.contains(&series), "{metrics}");
    assert!(metrics.contains("ocr_operator_golden_min_accuracy{"), "{metrics}");

    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_canary_is_rolled_back_on_golden_accuracy() {
    let s = Scenario::new("canary-degraded", Load::Pods).await;
    let operator = s.start_operator().await;
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(&mut rollout, json!({ "rollout": { "analysis": { "interval": "10s" } } }));
    let stable = healthy_service(&s, "ocr", rollout).await;

    // The `degraded` bundle (noise in the recogniser's weights) would fail its own start-up
    // self-test; lowering that floor lets the canary serve, so the rollout's golden
    // analysis is what must catch it.
    let patch = json!({ "spec": { "model": {
        "uri": bundle_uri("ppocr-v4-degraded"), "version": "4.0.0-degraded", "selfTestMinAccuracy": 0.3,
    } } });
    s.api::<OcrService>().patch("ocr", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    s.wait_status("ocr", "the canary Ready", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.canary_revision.is_some() && status.canary.as_ref()?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let ready_at = std::time::Instant::now();
    let rolled_back = s
        .wait_status("ocr", "RolledBack", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::RolledBack)).then(|| status.clone())
        })
        .await;
    wait_for("the canary Deployment to be removed", TIMEOUT, async || {
        s.api::<Deployment>().get_opt("ocr-canary").await.ok()?.is_none().then_some(())
    })
    .await;
    let to_rollback = ready_at.elapsed();
    // Reported, not asserted (timings belong in reports): goal failureLimit × interval + 10 s.
    eprintln!("degraded canary: Ready → rollback complete in {to_rollback:?} (goal ≤ 2 × 10 s + 10 s = 30 s)");

    assert_eq!(rolled_back.stable_revision.as_deref(), Some(stable.as_str()));
    let analysis = rolled_back.last_analysis.unwrap();
    let (stable_accuracy, canary_accuracy) =
        (analysis.stable.unwrap().accuracy.unwrap(), analysis.canary.unwrap().accuracy.unwrap());
    assert!(stable_accuracy >= 0.9 && canary_accuracy < 0.9, "stable {stable_accuracy}, canary {canary_accuracy}");
    assert!(analysis.reasons.iter().any(|r| r.contains("golden accuracy")), "{:?}", analysis.reasons);
    let notes = warning_notes(&s, "ocr", "RolledBack").await;
    let stable_text = format!("{stable_accuracy:.4}");
    assert!(
        notes.iter().any(|n| n.contains(&format!("{canary_accuracy:.4}")) && n.contains(&stable_text)),
        "the event carries both accuracies: {notes:?}"
    );
    let stable_deployment = s.api::<Deployment>().get("ocr-stable").await.unwrap();
    assert_eq!(stable_deployment.status.unwrap().ready_replicas, Some(1), "stable kept serving");

    operator.shutdown().await;
    s.finish().await;
}

/// Sends LINE requests round-robin over the Ready addresses of the shared Service's
/// EndpointSlices (re-read before each request, as a Kubernetes-aware gRPC resolver
/// would), alternating the gRPC API (port 50051) and the HTTP API (port 8000), until
/// `stop` is set; returns (successes, failures with their reasons).
async fn balanced_client(s: &Scenario, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> (usize, Vec<String>) {
    use kube_ocr_proto::v1::{RecognizeRequest, Task, ocr_client::OcrClient};
    let image = std::fs::read(workspace_root().join("golden/data/lines/line-en-001-clean.png")).unwrap();
    let (mut ok, mut failures, mut turn) = (0, Vec::new(), 0usize);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let addresses = s.ready_addresses("ocr").await;
        if addresses.is_empty() {
            failures.push("no ready endpoint".to_owned());
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        turn += 1;
        let address = &addresses[turn % addresses.len()];
        let request = RecognizeRequest {
            request_id: turn.to_string(),
            image: image.clone(),
            task: Task::Line as i32,
            options: None,
        };
        let over_http = turn % 2 == 1;
        let result = async {
            if over_http {
                let (status, body) = http_post(address, 8000, "/v1/ocr?task=line", "image/png", &request.image)
                    .await
                    .map_err(anyhow::Error::msg)?;
                let body: serde_json::Value = serde_json::from_slice(&body)?;
                anyhow::ensure!(status == 200, "HTTP {status}: {body}");
                return anyhow::Ok(body["text"].as_str().unwrap_or_default().to_owned());
            }
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}:50051"))?
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await?;
            let response = OcrClient::new(channel).recognize(request).await?;
            anyhow::Ok(response.into_inner().text)
        }
        .await;
        let address = if over_http { format!("{address} (HTTP)") } else { address.clone() };
        match result {
            Ok(text) if text == "The quick brown fox jumps over the lazy dog" => ok += 1,
            Ok(text) => failures.push(format!("{address}: wrong text {text:?}")),
            Err(error) => failures.push(format!("{address}: {error:#}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ok, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_promoted_without_a_failed_request_across_an_operator_restart() {
    let s = Scenario::new("canary-good", Load::Pods).await;
    let operator = s.start_operator().await;
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(&mut rollout, json!({ "rollout": { "stepInterval": "10s" } }));
    let first = healthy_service(&s, "ocr", rollout).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (s, stop) = (s.share(), stop.clone());
        tokio::spawn(async move { balanced_client(&s, stop).await })
    };
    let patch = json!({ "spec": { "model": { "version": "4.0.1" } } });
    s.api::<OcrService>().patch("ocr", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    // Mid-step (the canary Ready at 50 %), the operator goes away and a new one takes over.
    s.wait_status("ocr", "the canary Ready at 50%", TIMEOUT, |o| {
        let canary = o.status.as_ref()?.canary.as_ref()?;
        (canary.weight == 50 && canary.ready_replicas == Some(1)).then_some(())
    })
    .await;
    // Its pod is deleted (as a drain would): it stops gracefully, and the replacement the
    // Deployment makes takes the Lease and the rollout over.
    operator.restart().await;

    let promoted = s
        .wait_status("ocr", "promoted and the canary retired", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::Healthy)
                && status.stable_version.as_deref() == Some("4.0.1")
                && status.canary_revision.is_none())
            .then(|| status.clone())
        })
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failures) = client.await.unwrap();
    assert_ne!(promoted.stable_revision.as_deref(), Some(first.as_str()));
    assert!(failures.is_empty(), "{} of {} requests failed: {failures:?}", failures.len(), ok + failures.len());
    assert!(ok >= 20, "the client kept calling throughout ({ok} requests)");

    // Exactly one promotion, even though two operators took part.
    let events: Api<Event> = s.api();
    let promotions = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Promoted"))
        .count();
    assert_eq!(promotions, 1);

    operator.shutdown().await;
    s.finish().await;
}

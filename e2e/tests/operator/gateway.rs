//! The `gatewayAPI` traffic provider on the local cluster: the operator puts each canary
//! step's weight on the backendRefs of the user's GRPCRoute (and HTTPRoute, when the spec
//! names one too), returns it to stable 100 / canary 0 after a promotion or a rollback,
//! writes nothing in a steady state, and says so when the route does not exist. The route
//! CRDs come from the Gateway API module `make setup` caches; no gateway controller runs,
//! a route is an object whose weights the tests read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::canary::{bundle_uri, healthy_service, warning_notes};
use crate::support::gateway_api::{
    RouteKind, create_grpc_route, create_http_route, install_route_crds, route_metadata, route_weights,
    stable_and_canary,
};
use crate::support::{Load, Scenario, TIMEOUT, condition, merge, wait_for};
use kube::api::{Patch, PatchParams};
use kube_ocr_crds::{OcrService, Phase};
use serde_json::json;

fn gateway_rollout(route: &str, steps: &[i32]) -> serde_json::Value {
    let mut rollout = Scenario::fast_rollout("golden-small");
    merge(
        &mut rollout,
        json!({ "rollout": { "steps": steps, "traffic": { "provider": "gatewayAPI", "grpcRoute": route } } }),
    );
    rollout
}

/// Reads the route's (stable, canary) weights every 100 ms until stopped, and once more
/// after (the state the test waited for before stopping may be newer than the last poll);
/// returns each change once, in order.
fn record_weights(
    s: &Scenario,
    kind: RouteKind,
    route: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i64, i64)>> {
    let s = s.share();
    tokio::spawn(async move {
        let mut seen: Vec<(i64, i64)> = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if let Some(weights) = stable_and_canary(&s, kind, route, "ocr").await
                && seen.last() != Some(&weights)
            {
                seen.push(weights);
            }
            if stopping {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn wait_route(s: &Scenario, kind: RouteKind, route: &str, want: (i64, i64)) {
    wait_for(&format!("{} {route} at stable/canary {want:?}", kind.kind()), TIMEOUT, async || {
        (stable_and_canary(s, kind, route, "ocr").await == Some(want)).then_some(())
    })
    .await;
}

async fn resource_version(s: &Scenario, kind: RouteKind, route: &str) -> String {
    route_metadata(s, kind, route).await.resource_version.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_weights_follow_the_canary_steps_and_return_to_stable_after_promotion() {
    let s = Scenario::new("gateway-promote", Load::Pods).await;
    install_route_crds(&s.admin).await;
    let operator = s.start_operator().await;
    // Written before any canary: only the stable Service, at the schema's default weight.
    // gRPC clients come through the GRPCRoute, HTTP/JSON clients through the HTTPRoute.
    let routes = [(RouteKind::Grpc, "ocr-route"), (RouteKind::Http, "ocr-http-route")];
    create_grpc_route(&s, "ocr-route", &[("ocr-stable", 1)]).await;
    create_http_route(&s, "ocr-http-route", &[("ocr-stable", 1)]).await;
    let mut rollout = gateway_rollout("ocr-route", &[25, 50, 100]);
    merge(&mut rollout, json!({ "rollout": { "traffic": { "httpRoute": "ocr-http-route" } } }));
    healthy_service(&s, "ocr", rollout).await;

    // At rest: stable 100, and the canary backendRef added at 0, on both routes.
    let mut at_rest = Vec::new();
    for (kind, route) in routes {
        wait_route(&s, kind, route, (100, 0)).await;
        at_rest.push(resource_version(&s, kind, route).await);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    for ((kind, route), at_rest) in routes.iter().zip(&at_rest) {
        let now = resource_version(&s, *kind, route).await;
        assert_eq!(&now, at_rest, "a steady state writes nothing to the {kind:?} route");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let recorders = routes.map(|(kind, route)| record_weights(&s, kind, route, stop.clone()));
    let patch = json!({ "spec": { "model": { "version": "4.0.1" } } });
    s.api::<OcrService>().patch("ocr", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    for (kind, route) in routes {
        wait_route(&s, kind, route, (50, 50)).await;
    }
    let metrics = operator.metrics().await;
    let series = format!("ocr_operator_canary_weight{{namespace=\"{}\",ocrservice=\"ocr\"}} 50", s.namespace);
    assert!(metrics.contains(&series), "the weight metric is the route's: {metrics}");

    s.wait_status("ocr", "promoted and the canary retired", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::Healthy)
            && status.stable_version.as_deref() == Some("4.0.1")
            && status.canary_revision.is_none())
        .then_some(())
    })
    .await;
    for (kind, route) in routes {
        wait_route(&s, kind, route, (100, 0)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for ((kind, route), recorder) in routes.into_iter().zip(recorders) {
        let seen = recorder.await.unwrap();
        eprintln!("{kind:?} route weights (stable, canary) seen: {seen:?}");
        // The canary gets route traffic once Ready, then each step; at promotion it takes
        // all of it while stable rolls, and stable takes it back when the canary retires.
        // The HTTPRoute goes through the same weights as the GRPCRoute.
        assert_eq!(seen, [(100, 0), (75, 25), (50, 50), (0, 100), (100, 0)], "{kind:?}");
        let weights = route_weights(&s, kind, route).await.unwrap();
        assert_eq!(weights.len(), 2, "one backendRef per track on the {kind:?} route: {weights:?}");
    }

    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_canary_loses_its_route_weight_at_rollback() {
    let s = Scenario::new("gateway-rollback", Load::Pods).await;
    install_route_crds(&s.admin).await;
    let operator = s.start_operator().await;
    create_grpc_route(&s, "ocr-route", &[("ocr-stable", 100), ("ocr-canary", 0)]).await;
    let mut rollout = gateway_rollout("ocr-route", &[50, 100]);
    merge(&mut rollout, json!({ "rollout": { "analysis": { "interval": "5s" } } }));
    let stable = healthy_service(&s, "ocr", rollout).await;
    wait_route(&s, RouteKind::Grpc, "ocr-route", (100, 0)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let recorder = record_weights(&s, RouteKind::Grpc, "ocr-route", stop.clone());
    // The `degraded` bundle serves (its self-test floor lowered) but reads worse than
    // stable: the golden analysis must roll it back.
    let patch = json!({ "spec": { "model": {
        "uri": bundle_uri("ppocr-v4-degraded"), "version": "4.0.0-degraded", "selfTestMinAccuracy": 0.3,
    } } });
    s.api::<OcrService>().patch("ocr", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let rolled_back = s
        .wait_status("ocr", "RolledBack", TIMEOUT, |o| {
            let status = o.status.as_ref()?;
            (status.phase == Some(Phase::RolledBack)).then(|| status.clone())
        })
        .await;
    wait_route(&s, RouteKind::Grpc, "ocr-route", (100, 0)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = recorder.await.unwrap();
    eprintln!("route weights (stable, canary) seen: {seen:?}");
    assert_eq!(seen, [(100, 0), (50, 50), (100, 0)], "the canary served its step, then lost it");
    assert_eq!(rolled_back.stable_revision.as_deref(), Some(stable.as_str()));
    let notes = warning_notes(&s, "ocr", "RolledBack").await;
    assert!(notes.iter().any(|n| n.contains("golden accuracy")), "{notes:?}");

    operator.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_route_is_degraded_with_its_reason_until_it_is_created() {
    let s = Scenario::new("gateway-missing", Load::NoPods).await;
    install_route_crds(&s.admin).await;
    let operator = s.start_operator().await;
    s.create_golden_config_map("golden-small").await;
    // The pods need not run for this.
    let mut spec = gateway_rollout("ocr-route", &[50, 100]);
    merge(&mut spec, Scenario::unscheduled());
    s.create(&s.ocr_service("ocr", spec)).await;

    let (_, _, message) = s
        .wait_status("ocr", "Degraded with GRPCRouteNotFound", TIMEOUT, |o| {
            condition(o, "Degraded").filter(|(status, reason, _)| status == "True" && reason == "GRPCRouteNotFound")
        })
        .await;
    assert!(message.contains("GRPCRoute ocr-route") && message.contains("ocr-stable"), "{message}");
    let notes = warning_notes(&s, "ocr", "GRPCRouteNotFound").await;
    assert!(notes.iter().any(|n| n.contains("does not exist")), "a Warning event says it: {notes:?}");

    // Once the user creates it, the next retry finds it and sets the weights.
    create_grpc_route(&s, "ocr-route", &[("ocr-stable", 1)]).await;
    wait_route(&s, RouteKind::Grpc, "ocr-route", (100, 0)).await;
    // A patch, not an apply: the operator shows up as an Update manager of the route.
    let managers = route_metadata(&s, RouteKind::Grpc, "ocr-route").await.managed_fields.unwrap_or_default();
    let operator_entry = managers.iter().find(|m| m.manager.as_deref() == Some("kube-ocr-operator"));
    eprintln!("managedFields of the operator on the route: {:?}", operator_entry.map(|m| &m.fields_v1));
    assert_eq!(operator_entry.and_then(|m| m.operation.as_deref()), Some("Update"), "{managers:?}");
    s.wait_status("ocr", "GRPCRouteNotFound resolved", TIMEOUT, |o| {
        condition(o, "Degraded").filter(|(_, reason, _)| reason != "GRPCRouteNotFound")
    })
    .await;

    operator.shutdown().await;
    s.finish().await;
}

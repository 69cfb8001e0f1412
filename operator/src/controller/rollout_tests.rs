//! The Kubernetes side of a canary rollout: a canary that starts, a step that advances
//! the weight (by pod counts, and on Gateway API routes), and a rollback. All but the first
//! start from a canary at step 1 (10%) that has been Ready for two minutes, with its last
//! analysis a minute ago, so one is due.

use std::sync::Arc;

use http::Method;
use kube_ocr_crds::OcrService;
use serde_json::{Value, json};

use super::fixtures::{
    self, ApiServer, GivenAnalysis, ago, canary_deployment, desired, in_time, kinds, no_more_requests,
    stable_deployment, verified, with_status,
};
use super::reconcile::{reconcile, reconcile_measured_by};
use crate::analysis::verdict::Verdict;
use crate::builders::test_support::ocr_service;
use crate::error::OperatorError;
use crate::names::REVISION_LABEL;

/// The children applied while a canary runs, sorted by path: the stable Deployment keeps
/// its old template, so it is not among them.
const CHILDREN_BUT_STABLE: [&str; 5] = [
    "/api/v1/namespaces/team-a/services/invoices",
    "/api/v1/namespaces/team-a/services/invoices-canary",
    "/api/v1/namespaces/team-a/services/invoices-stable",
    "/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/invoices-stable",
    "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/invoices",
];
const CANARY: &str = "/apis/apps/v1/namespaces/team-a/deployments/invoices-canary";
const GRPC_ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/team-a/grpcroutes/invoices-grpc";
const HTTP_ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/team-a/httproutes/invoices-http";

/// A spec whose canary weights go on a GRPCRoute and an HTTPRoute.
fn on_both_routes() -> Value {
    json!({ "rollout": { "traffic": {
        "provider": "gatewayAPI", "grpcRoute": "invoices-grpc", "httpRoute": "invoices-http",
    } } })
}

/// A route of `kind` as the API server returns it: one rule with `backend_refs`.
fn stored_route(kind: &str, name: &str, backend_refs: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
        "metadata": { "name": name, "namespace": "team-a", "resourceVersion": "7" },
        "spec": { "parentRefs": [{ "name": "gw" }], "rules": [{ "backendRefs": backend_refs }] },
    })
}

/// The GRPCRoute at the first step's weights (stable 90, canary 10).
fn grpc_route_at_first_step() -> Value {
    stored_route(
        "GRPCRoute",
        "invoices-grpc",
        json!([
            { "name": "invoices-stable", "port": 50051, "weight": 90 },
            { "name": "invoices-canary", "port": 50051, "weight": 10 },
        ]),
    )
}

/// A canary of model 4.1.0 against a stable of 4.0.0, with the status an earlier round
/// wrote, and the watched Deployments: stable 2/2 Ready, canary 1/1 Ready.
struct Canary {
    ocr: OcrService,
    stable_revision: String,
    canary_revision: String,
    ctx: Arc<super::context::Context>,
    server: ApiServer,
}

impl Canary {
    fn at_first_step(spec: Value) -> Self {
        let old = ocr_service(json!({ "model": { "version": "4.0.0" } }));
        let mut new_spec = spec;
        new_spec["model"] = json!({ "version": "4.1.0" });
        let new = ocr_service(new_spec);
        let (stable_revision, canary_revision) = (desired(&old).revision, desired(&new).revision);
        let condition = |type_: &str, status: &str, reason: &str| json!({ "type": type_, "status": status, "reason": reason, "message": "", "lastTransitionTime": ago(600) });
        let ocr = with_status(
            &new,
            json!({
                "phase": "Progressing", "observedGeneration": 1,
                "desiredRevision": canary_revision, "stableRevision": stable_revision, "stableVersion": "4.0.0",
                "canaryRevision": canary_revision, "canaryVersion": "4.1.0",
                "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                "canary": {
                    "step": 0, "weight": 10, "stepStartedAt": ago(120), "failedChecks": 0,
                    "readyReplicas": 1, "readySince": ago(120),
                },
                "lastAnalysis": { "at": ago(60), "verdict": "Passed" },
                "conditions": [
                    condition("Available", "True", "MinimumReplicasAvailable"),
                    condition("Progressing", "True", "CanaryAnalysis"),
                    condition("Degraded", "False", "AsExpected"),
                ],
            }),
        );
        let deployments = vec![stable_deployment(&old, 2, 2), canary_deployment(&new, 1, 1)];
        let (ctx, server) = fixtures::context(deployments, vec![]);
        Self { ocr, stable_revision, canary_revision, ctx, server }
    }
}

/// Answers the children applied after the rollout's own writes.
async fn expect_children_but_stable(server: &mut ApiServer) {
    let children = server.next_together(CHILDREN_BUT_STABLE.len()).await;
    let paths: Vec<&str> = children.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, CHILDREN_BUT_STABLE);
    for call in children {
        call.is_applied_by_the_operator();
        call.reply_with_body();
    }
}

fn condition_of<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

#[tokio::test]
async fn a_new_revision_starts_a_canary_at_the_first_weight() {
    let old = ocr_service(json!({ "model": { "version": "4.0.0" } }));
    let new = ocr_service(json!({ "model": { "version": "4.1.0" } }));
    let (stable_revision, canary_revision) = (desired(&old).revision, desired(&new).revision);
    let healthy = json!({
        "phase": "Healthy", "observedGeneration": 1,
        "desiredRevision": stable_revision, "stableRevision": stable_revision, "stableVersion": "4.0.0",
        "lastAnalysis": { "at": ago(0), "verdict": "StableChecked" },
    });
    let ocr = with_status(&new, healthy);
    let (ctx, mut server) = fixtures::context(vec![stable_deployment(&old, 2, 2)], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        // 10% of stable's 2 pods rounds to the one pod a canary always has.
        let canary = server.next().await;
        canary.is(Method::PATCH, CANARY).is_applied_by_the_operator();
        assert_eq!(canary.body["spec"]["replicas"], 1);
        assert_eq!(canary.body["spec"]["template"]["metadata"]["labels"][REVISION_LABEL], canary_revision.as_str());
        canary.reply_with_body();
        expect_children_but_stable(&mut server).await;

        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "Progressing");
        assert_eq!((&written["canary"]["step"], &written["canary"]["weight"]), (&json!(0), &json!(10)));
        assert_eq!(written["canaryRevision"], canary_revision.as_str());
        assert_eq!(written["stableRevision"], stable_revision.as_str());

        let events = server.events(&stored, 2).await;
        assert_eq!(kinds(&events), [("Normal", "RevisionApplied"), ("Normal", "CanaryStarted")]);
        server
    });
    let result = in_time(reconcile(Arc::new(ocr), ctx.clone())).await;
    let server = verified(script).await;
    result.unwrap();
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_passed_analysis_advances_the_canary_to_the_next_weight() {
    let Canary { ocr, stable_revision, canary_revision, ctx, mut server } = Canary::at_first_step(json!({}));
    let stored = ocr.clone();
    let revision = canary_revision.clone();
    let script = tokio::spawn(async move {
        // 50% of stable's 2 pods: the canary Deployment grows to 2.
        let canary = server.next().await;
        canary.is(Method::PATCH, CANARY).is_applied_by_the_operator();
        assert_eq!(canary.object(), ("Deployment", "invoices-canary"));
        assert_eq!(canary.body["spec"]["replicas"], 2);
        assert_eq!(canary.body["spec"]["template"]["metadata"]["labels"][REVISION_LABEL], revision.as_str());
        canary.reply_with_body();
        expect_children_but_stable(&mut server).await;

        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "Progressing");
        assert_eq!((&written["canary"]["step"], &written["canary"]["weight"]), (&json!(1), &json!(50)));
        assert_eq!(written["canary"]["failedChecks"], 0);
        assert_eq!(written["lastAnalysis"]["verdict"], "Passed");
        assert_eq!(written["canaryRevision"], revision.as_str());
        assert_eq!(written["stableRevision"], stable_revision.as_str(), "stable keeps its revision until promotion");
        let progressing = condition_of(&written, "Progressing");
        assert_eq!(progressing["reason"], "CanaryAnalysis");
        assert!(progressing["message"].as_str().unwrap().contains("at 50% (step 2 of 3)"), "{progressing}");

        let events = server.events(&stored, 1).await;
        assert_eq!(kinds(&events), [("Normal", "StepAdvanced")]);
        assert!(events[0].2.contains("passed 10%") && events[0].2.ends_with("now 50%"), "{events:?}");
        server
    });
    let passed = GivenAnalysis { verdict: Verdict { passed: true, reasons: vec![] } };
    let result = in_time(reconcile_measured_by(Arc::new(ocr), ctx.clone(), &passed)).await;
    let server = verified(script).await;
    result.unwrap();
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains("ocr_operator_canary_weight{namespace=\"team-a\",ocrservice=\"invoices\"} 50"),
        "{metrics}"
    );
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_failed_analysis_at_the_failure_limit_rolls_the_canary_back() {
    // One failed check is the limit. The analysis is the real one: the API server has no
    // golden set and no Ready pod, so the canary has no golden accuracy and fails.
    let spec = json!({ "rollout": { "analysis": { "failureLimit": 1 } } });
    let Canary { ocr, stable_revision, canary_revision, ctx, mut server } = Canary::at_first_step(spec);
    let stored = ocr.clone();
    let failed = canary_revision.clone();
    let script = tokio::spawn(async move {
        // The default golden set, looked for in the OcrService's namespace, then the
        // operator's: by name, then by label.
        for namespace in ["team-a", "default"] {
            let by_name = server.next().await;
            by_name.is(Method::GET, &format!("/api/v1/namespaces/{namespace}/configmaps/ocr-golden-default"));
            by_name.reply_not_found();
            let by_label = server.next().await;
            by_label.is(Method::GET, &format!("/api/v1/namespaces/{namespace}/configmaps"));
            assert_eq!(by_label.query["labelSelector"], "kube-ocr.dev/golden-set=ocr-golden-default");
            by_label.reply_empty_list("ConfigMapList");
        }
        // The Ready pods of each track, at the revision status says it runs.
        for (track, revision) in [("stable", &stable_revision), ("canary", &failed)] {
            let pods = server.next().await;
            pods.is(Method::GET, "/api/v1/namespaces/team-a/pods");
            let selector =
                format!("kube-ocr.dev/ocrservice=invoices,kube-ocr.dev/track={track},kube-ocr.dev/revision={revision}");
            assert_eq!(pods.query["labelSelector"], selector);
            pods.reply_empty_list("PodList");
        }

        // The canary goes away: no pods, no traffic.
        let delete = server.next().await;
        delete.is(Method::DELETE, CANARY);
        delete.reply_deleted();
        expect_children_but_stable(&mut server).await;

        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "RolledBack");
        assert_eq!(written["failedRevision"], failed.as_str());
        assert_eq!(written["stableRevision"], stable_revision.as_str());
        assert!(written.get("canaryRevision").is_none() && written.get("canary").is_none(), "{written}");
        assert_eq!(written["lastAnalysis"]["verdict"], "Failed");
        let reasons = written["lastAnalysis"]["reasons"].as_array().unwrap();
        assert!(reasons[0].as_str().unwrap().contains("no golden accuracy for the canary"), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("golden set")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r == "no Ready canary pod to measure"), "{reasons:?}");
        let degraded = condition_of(&written, "Degraded");
        assert_eq!((&degraded["status"], &degraded["reason"]), (&json!("True"), &json!("RolledBack")));

        // The Degraded condition's Warning (its reason has no event reason of its own), then
        // the rollback's, with the numbers.
        let events = server.events(&stored, 2).await;
        assert_eq!(kinds(&events), [("Warning", "Degraded"), ("Warning", "RolledBack")]);
        let rolled_back = &events[1].2;
        assert!(rolled_back.contains(&format!("rolled back to {stable_revision}")), "{rolled_back}");
        assert!(rolled_back.contains("analysis failed 1 of 1 allowed times at 10%"), "{rolled_back}");
        server
    });
    let result = in_time(reconcile(Arc::new(ocr), ctx.clone())).await;
    let server = verified(script).await;
    result.unwrap();
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains("ocr_operator_rollbacks_total{namespace=\"team-a\",ocrservice=\"invoices\"} 1"),
        "{metrics}"
    );
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_step_puts_the_same_weights_on_the_grpc_route_and_the_http_route() {
    let Canary { ocr, ctx, mut server, .. } = Canary::at_first_step(on_both_routes());
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        // Both routes are read before the analysis, the GRPCRoute first.
        let grpc = server.next().await;
        grpc.is(Method::GET, GRPC_ROUTE);
        grpc.reply(200, &grpc_route_at_first_step());
        let http = server.next().await;
        http.is(Method::GET, HTTP_ROUTE);
        // Written before the first canary: only the stable Service, at the schema's default weight.
        let http_route =
            stored_route("HTTPRoute", "invoices-http", json!([{ "name": "invoices-stable", "port": 8000 }]));
        http.reply(200, &http_route);

        let canary = server.next().await;
        canary.is(Method::PATCH, CANARY).is_applied_by_the_operator();
        assert_eq!(canary.body["spec"]["replicas"], 2);
        canary.reply_with_body();

        // The step's weight, on each route, each behind a test of the resourceVersion read.
        let grpc = server.next().await;
        grpc.is(Method::PATCH, GRPC_ROUTE).is_json_patch_by_the_operator();
        assert_eq!(
            grpc.body,
            json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": "7" },
                { "op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50 },
                { "op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50 },
            ])
        );
        grpc.reply(200, &grpc_route_at_first_step());
        let http = server.next().await;
        http.is(Method::PATCH, HTTP_ROUTE).is_json_patch_by_the_operator();
        assert_eq!(
            http.body,
            json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": "7" },
                { "op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50 },
                { "op": "add", "path": "/spec/rules/0/backendRefs/-",
                  "value": { "name": "invoices-canary", "port": 8000, "weight": 50 } },
            ])
        );
        http.reply(200, &http_route);
        expect_children_but_stable(&mut server).await;

        let written = server.status_apply(&stored).await;
        assert_eq!((&written["canary"]["step"], &written["canary"]["weight"]), (&json!(1), &json!(50)));
        // Only changed conditions are applied: Degraded stays False.
        let conditions = written["conditions"].as_array().unwrap();
        assert!(conditions.iter().all(|c| c["type"] != "Degraded"), "{written}");
        let events = server.events(&stored, 1).await;
        assert_eq!(kinds(&events), [("Normal", "StepAdvanced")]);
        server
    });
    let passed = GivenAnalysis { verdict: Verdict { passed: true, reasons: vec![] } };
    let result = in_time(reconcile_measured_by(Arc::new(ocr), ctx.clone(), &passed)).await;
    let server = verified(script).await;
    result.unwrap();
    let metrics = ctx.metrics.encode();
    for series in [
        "ocr_operator_api_writes_total{kind=\"GRPCRoute\"} 1\n",
        "ocr_operator_api_writes_total{kind=\"HTTPRoute\"} 1\n",
        "ocr_operator_canary_weight{namespace=\"team-a\",ocrservice=\"invoices\"} 50\n",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    no_more_requests(ctx, server).await;
}

/// Answers the reads of both routes when the HTTPRoute does not exist (a 404, then the
/// discovery that tells a missing route from a missing CRD); the GRPCRoute is `grpc_route`.
async fn expect_reads_with_the_http_route_missing(server: &mut ApiServer, grpc_route: &Value) {
    let grpc = server.next().await;
    grpc.is(Method::GET, GRPC_ROUTE);
    grpc.reply(200, grpc_route);
    let http = server.next().await;
    http.is(Method::GET, HTTP_ROUTE);
    http.reply_not_found();
    let discovery = server.next().await;
    discovery.is(Method::GET, "/apis/gateway.networking.k8s.io/v1");
    let resource = |name: &str, kind: &str| json!({ "name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": ["get", "patch"] });
    discovery.reply(
        200,
        &json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "gateway.networking.k8s.io/v1",
            "resources": [resource("grpcroutes", "GRPCRoute"), resource("httproutes", "HTTPRoute")],
        }),
    );
}

/// Asserts that the reconcile failed (for the error backoff) with the HTTPRoute's problem.
fn assert_http_route_not_found(result: Result<kube::runtime::controller::Action, OperatorError>) {
    match result.unwrap_err() {
        OperatorError::SetRouteWeights { kind, reason, .. } => {
            assert_eq!((kind, reason), ("HTTPRoute", "HTTPRouteNotFound"));
        }
        other => panic!("expected the HTTPRoute's error, got {other}"),
    }
}

#[tokio::test]
async fn a_missing_http_route_degrades_with_its_own_reason_and_the_grpc_route_still_gets_its_weights() {
    // At rest: stable Healthy, its golden check just done, no canary.
    let ocr = ocr_service(on_both_routes());
    let revision = desired(&ocr).revision;
    let condition = |type_: &str, status: &str, reason: &str| json!({ "type": type_, "status": status, "reason": reason, "message": "", "lastTransitionTime": ago(600) });
    let ocr = with_status(
        &ocr,
        json!({
            "phase": "Healthy", "observedGeneration": 1,
            "desiredRevision": revision, "stableRevision": revision, "stableVersion": "4.0.0",
            "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
            "lastAnalysis": { "at": ago(0), "verdict": "StableChecked" },
            "conditions": [
                condition("Available", "True", "MinimumReplicasAvailable"),
                condition("Progressing", "False", "RolloutComplete"),
                condition("Degraded", "False", "AsExpected"),
            ],
        }),
    );
    let stable = stable_deployment(&ocr, 2, 2);
    let (ctx, mut server) = fixtures::context(vec![stable.clone()], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        // Written before any canary: only the stable Service.
        let grpc_route =
            stored_route("GRPCRoute", "invoices-grpc", json!([{ "name": "invoices-stable", "port": 50051 }]));
        expect_reads_with_the_http_route_missing(&mut server, &grpc_route).await;
        // The GRPCRoute is usable: it gets stable 100 / canary 0 all the same.
        let grpc = server.next().await;
        grpc.is(Method::PATCH, GRPC_ROUTE).is_json_patch_by_the_operator();
        assert_eq!(
            grpc.body.as_array().unwrap()[1..],
            [
                json!({ "op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100 }),
                json!({ "op": "add", "path": "/spec/rules/0/backendRefs/-",
                        "value": { "name": "invoices-canary", "port": 50051, "weight": 0 } }),
            ]
        );
        grpc.reply(200, &grpc_route);
        let children = server.next_together(CHILDREN_BUT_STABLE.len() + 1).await;
        assert!(children.iter().any(|c| c.object() == ("Deployment", "invoices-stable")));
        for call in children {
            if call.object() == ("Deployment", "invoices-stable") {
                // The API server answers with the stored object: rolled out, Ready.
                call.reply(200, &serde_json::to_value(&stable).unwrap());
            } else {
                call.reply_with_body();
            }
        }

        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "Degraded");
        let degraded = condition_of(&written, "Degraded");
        assert_eq!((&degraded["status"], &degraded["reason"]), (&json!("True"), &json!("HTTPRouteNotFound")));
        let message = degraded["message"].as_str().unwrap();
        assert!(
            message.starts_with("HTTPRoute invoices-http (spec.rollout.traffic.httpRoute) does not exist"),
            "{message}"
        );
        // The event carries the condition's reason, not a generic one.
        let events = server.events(&stored, 1).await;
        assert_eq!(kinds(&events), [("Warning", "HTTPRouteNotFound")]);
        assert_eq!(events[0].2, message);
        server
    });
    let result = in_time(reconcile(Arc::new(ocr), ctx.clone())).await;
    let server = verified(script).await;
    assert_http_route_not_found(result);
    let metrics = ctx.metrics.encode();
    assert!(metrics.contains("ocr_operator_api_writes_total{kind=\"GRPCRoute\"} 1\n"), "{metrics}");
    assert!(!metrics.contains("kind=\"HTTPRoute\""), "{metrics}");
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_canary_is_not_judged_while_its_http_route_is_missing() {
    let Canary { mut ocr, ctx, mut server, .. } = Canary::at_first_step(on_both_routes());
    // An earlier round found the HTTPRoute missing.
    let status = ocr.status.as_mut().unwrap();
    status.phase = Some(kube_ocr_crds::Phase::Degraded);
    let degraded = status.conditions.iter_mut().find(|c| c.type_ == "Degraded").unwrap();
    (degraded.status, degraded.reason) = ("True".into(), "HTTPRouteNotFound".into());
    let earlier_analysis = serde_json::to_value(&status.last_analysis).unwrap();
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        expect_reads_with_the_http_route_missing(&mut server, &grpc_route_at_first_step()).await;
        // No analysis, though one is due and the one handed in passes: the canary keeps its
        // step, and the GRPCRoute keeps that step's weights (no write).
        let canary = server.next().await;
        canary.is(Method::PATCH, CANARY).is_applied_by_the_operator();
        assert_eq!(canary.body["spec"]["replicas"], 1);
        canary.reply_with_body();
        expect_children_but_stable(&mut server).await;

        let written = server.status_apply(&stored).await;
        assert_eq!((&written["canary"]["step"], &written["canary"]["weight"]), (&json!(0), &json!(10)));
        assert_eq!(written["lastAnalysis"], earlier_analysis, "no new analysis");
        assert_eq!(written["phase"], "Degraded");
        server
    });
    let passed = GivenAnalysis { verdict: Verdict { passed: true, reasons: vec![] } };
    let result = in_time(reconcile_measured_by(Arc::new(ocr), ctx.clone(), &passed)).await;
    let server = verified(script).await;
    assert_http_route_not_found(result);
    // While one route cannot be written, the weight reported is 0.
    let weight = "ocr_operator_canary_weight{namespace=\"team-a\",ocrservice=\"invoices\"} 0\n";
    let metrics = ctx.metrics.encode();
    assert!(metrics.contains(weight), "{metrics}");
    assert!(!metrics.contains("_api_writes_total{kind=\"GRPCRoute\""), "{metrics}");
    no_more_requests(ctx, server).await;
}

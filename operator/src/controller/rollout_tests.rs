//! The Kubernetes side of a canary rollout: a canary that starts, a step that advances
//! the weight, and a rollback. The last two start from a canary at step 1 (10%) that has
//! been Ready for two minutes, with its last analysis a minute ago, so one is due.

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

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
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
        let progressing = condition(&written, "Progressing");
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
        let degraded = condition(&written, "Degraded");
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

//! The Kubernetes side of a reconcile outside rollouts: what a new OcrService makes the
//! operator send, and that a steady state sends nothing.

use std::sync::Arc;

use serde_json::json;

use super::fixtures::{
    self, Call, GivenBacklog, ago, desired, in_time, kinds, no_more_requests, stable_deployment, verified, with_status,
};
use super::reconcile::{reconcile, reconcile_measured_by};
use crate::builders::test_support::ocr_service;

/// The children of OcrService `invoices` in `team-a`, sorted by path: (path, kind).
const CHILDREN: [(&str, &str); 6] = [
    ("/api/v1/namespaces/team-a/services/invoices", "Service"),
    ("/api/v1/namespaces/team-a/services/invoices-canary", "Service"),
    ("/api/v1/namespaces/team-a/services/invoices-stable", "Service"),
    ("/apis/apps/v1/namespaces/team-a/deployments/invoices-stable", "Deployment"),
    ("/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/invoices-stable", "HorizontalPodAutoscaler"),
    ("/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/invoices", "PodDisruptionBudget"),
];

/// Asserts that `calls` apply exactly [`CHILDREN`], each owned by the OcrService and under
/// the operator's field manager.
fn assert_children_applied(calls: &[Call]) {
    let sent: Vec<(&str, &str)> = calls.iter().map(|c| (c.path.as_str(), c.object().0)).collect();
    assert_eq!(sent, CHILDREN);
    for call in calls {
        call.is_applied_by_the_operator();
        let owner = &call.body["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("OcrService"), Some("invoices")));
    }
}

/// Answers the children's applies as the API server does: each with the object sent, the
/// stable Deployment with `stable` (the stored object, with its status).
fn reply_to_children(calls: Vec<Call>, stable: &k8s_openapi::api::apps::v1::Deployment) {
    for call in calls {
        if call.object() == ("Deployment", "invoices-stable") {
            call.reply(200, &serde_json::to_value(stable).unwrap());
        } else {
            call.reply_with_body();
        }
    }
}

#[tokio::test]
async fn a_new_ocr_service_gets_its_children_applied_then_its_status() {
    let ocr = ocr_service(json!({}));
    let revision = desired(&ocr).revision;
    let (ctx, mut server) = fixtures::context(vec![], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        // The children do not depend on each other: they are sent together.
        let children = server.next_together(CHILDREN.len()).await;
        assert_children_applied(&children);
        let stable = &children[3].body;
        assert!(stable["spec"].get("replicas").is_none(), "the HPA owns replicas: {stable}");
        children.into_iter().for_each(Call::reply_with_body);

        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "Pending", "{written}");
        assert_eq!(written["desiredRevision"], revision.as_str());
        assert_eq!(written["stableRevision"], revision.as_str(), "the first revision goes straight to stable");

        let events = server.events(&stored, 1).await;
        assert_eq!(kinds(&events), [("Normal", "RevisionApplied")]);
        server
    });
    let result = in_time(reconcile(Arc::new(ocr), ctx.clone())).await;
    let server = verified(script).await;
    result.unwrap();
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_steady_state_sends_nothing() {
    // A running OcrService whose last stable golden check was just now (so none is due).
    let ocr = with_status(&ocr_service(json!({})), json!({ "lastAnalysis": { "at": ago(0) } }));
    let stable = stable_deployment(&ocr, 2, 2);
    let (ctx, mut server) = fixtures::context(vec![stable.clone()], vec![]);

    // The first reconcile of this operator applies everything once and writes the status.
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        let children = server.next_together(CHILDREN.len()).await;
        assert_children_applied(&children);
        reply_to_children(children, &stable);
        let written = server.status_apply(&stored).await;
        assert_eq!(written["phase"], "Healthy", "{written}");
        let events = server.events(&stored, 3).await;
        let expected = [("Normal", "RevisionApplied"), ("Normal", "BecameAvailable"), ("Normal", "RolloutComplete")];
        assert_eq!(kinds(&events), expected);
        (server, written)
    });
    in_time(reconcile(Arc::new(ocr.clone()), ctx.clone())).await.unwrap();
    let (server, written) = verified(script).await;

    // The next reconcile (a pod or status change triggers one) finds the same state
    // applied and the status current: no request at all.
    let no_more = tokio::spawn(server.expect_no_more());
    let current = with_status(&ocr, written);
    let result = in_time(reconcile(Arc::new(current), ctx.clone())).await;
    let writes = ctx.metrics.encode();
    drop(ctx);
    verified(no_more).await;
    result.unwrap();
    assert!(writes.contains("ocr_operator_api_writes_total{kind=\"Deployment\"} 1\n"), "{writes}");
}

#[tokio::test]
async fn a_service_with_jobs_shows_its_backlog_read_on_a_clock_not_on_every_reconcile() {
    let spec = json!({
        "cache": { "redis": { "url": "redis://cache.infra:6379" } },
        "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3.storage:8333", "secretRef": { "name": "s3-auth" } } },
    });
    let ocr = with_status(&ocr_service(spec), json!({ "lastAnalysis": { "at": ago(0) } }));
    let stable = stable_deployment(&ocr, 2, 2);
    let (ctx, mut server) = fixtures::context(vec![stable.clone()], vec![]);
    let analyst = GivenBacklog { backlog: (4, 120), ..GivenBacklog::default() };
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        // The children and the job front's Deployment and Service.
        let children = server.next_together(CHILDREN.len() + 2).await;
        let objects: Vec<(&str, &str)> = children.iter().map(Call::object).collect();
        assert!(objects.contains(&("Deployment", "invoices-jobs")), "{objects:?}");
        assert!(objects.contains(&("Service", "invoices-jobs")), "{objects:?}");
        reply_to_children(children, &stable);
        let written = server.status_apply(&stored).await;
        assert_eq!(
            (written["jobs"]["queued"].as_i64(), written["jobs"]["oldestAgeSeconds"].as_i64()),
            (Some(4), Some(120))
        );
        server.events(&stored, 3).await;
        (server, written)
    });
    let action = in_time(reconcile_measured_by(Arc::new(ocr.clone()), ctx.clone(), &analyst)).await.unwrap();
    let (server, written) = verified(script).await;
    // Rechecked within the backlog's interval, not only at the resync period.
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(30)));
    assert_eq!(analyst.asked.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The reconcile its own status write triggers reads nothing and writes nothing.
    let no_more = tokio::spawn(server.expect_no_more());
    let current = with_status(&ocr, written);
    in_time(reconcile_measured_by(Arc::new(current), ctx.clone(), &analyst)).await.unwrap();
    drop(ctx);
    verified(no_more).await;
    assert_eq!(analyst.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn switching_from_keda_to_the_hpa_at_zero_deletes_kedas_objects_and_wakes_stable() {
    // KEDA had scaled the service to zero; the spec now asks for the HPA (the default).
    let ocr = with_status(
        &ocr_service(json!({ "replicas": { "min": 2, "max": 4 } })),
        json!({ "lastAnalysis": { "at": ago(0) }, "autoscaler": "keda" }),
    );
    let at_zero = stable_deployment(&ocr, 0, 0);
    let (ctx, mut server) = fixtures::context(vec![at_zero.clone()], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        let calls = server.next_together(CHILDREN.len()).await;
        assert_children_applied(&calls);
        reply_to_children(calls, &at_zero);
        // KEDA's objects go (a 404 counts as gone).
        let scaled_object = server.next().await;
        scaled_object
            .is(http::Method::DELETE, "/apis/keda.sh/v1alpha1/namespaces/team-a/scaledobjects/invoices-stable");
        scaled_object.reply_deleted();
        let authentication = server.next().await;
        let path = "/apis/keda.sh/v1alpha1/namespaces/team-a/triggerauthentications/invoices-stable";
        authentication.is(http::Method::DELETE, path);
        authentication.reply_not_found();
        // The HPA does not scale a Deployment at zero: the operator sets replicas.min once.
        let scale = server.next().await;
        scale.is(http::Method::PATCH, "/apis/apps/v1/namespaces/team-a/deployments/invoices-stable");
        assert_eq!(scale.body, json!({ "spec": { "replicas": 2 } }));
        scale.reply(200, &serde_json::to_value(stable_deployment(&stored, 2, 0)).unwrap());
        let written = server.status_apply(&stored).await;
        assert_eq!(written["autoscaler"], "hpa", "{written}");
        // Stable's observation is the Deployment as applied, still at zero.
        let events = server.events(&stored, 2).await;
        assert_eq!(kinds(&events), [("Normal", "RevisionApplied"), ("Normal", "RolloutComplete")]);
        server
    });
    let reconciled = tokio::spawn(reconcile(Arc::new(ocr), ctx.clone()));
    let server = verified(script).await;
    in_time(reconciled).await.unwrap().unwrap();
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_new_stable_below_the_hpas_minimum_is_started_at_it_once() {
    // The API server created stable at one replica (no `replicas` in the apply); the HPA
    // would raise it to two only at its next sync.
    let ocr = with_status(
        &ocr_service(json!({ "replicas": { "min": 2, "max": 4 } })),
        json!({ "lastAnalysis": { "at": ago(0) } }),
    );
    let created = stable_deployment(&ocr, 1, 0);
    let (ctx, mut server) = fixtures::context(vec![], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        let calls = server.next_together(CHILDREN.len()).await;
        assert_children_applied(&calls);
        reply_to_children(calls, &created);
        let scale = server.next().await;
        scale.is(http::Method::PATCH, "/apis/apps/v1/namespaces/team-a/deployments/invoices-stable");
        assert_eq!(scale.body, json!({ "spec": { "replicas": 2 } }));
        let mut scaled = stable_deployment(&stored, 2, 0);
        scaled.metadata.generation = Some(2);
        scale.reply(200, &serde_json::to_value(scaled).unwrap());
        server.status_apply(&stored).await;
        server.events(&stored, 1).await;
        server
    });
    let reconciled = tokio::spawn(reconcile(Arc::new(ocr), ctx.clone()));
    let server = verified(script).await;
    in_time(reconciled).await.unwrap().unwrap();
    no_more_requests(ctx, server).await;
}

#[tokio::test]
async fn a_job_front_left_behind_by_a_failed_delete_is_deleted_again() {
    // The spec no longer has jobs and the status no longer says so (the reconcile that
    // removed them wrote it), but the front's Deployment is still there.
    let with_jobs = ocr_service(json!({
        "cache": { "redis": { "url": "redis://cache.infra:6379" } },
        "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3.storage:8333", "secretRef": { "name": "s3-auth" } } },
    }));
    let front = desired(&with_jobs).jobs_front.expect("a job front").0;
    let ocr = with_status(&ocr_service(json!({})), json!({ "lastAnalysis": { "at": ago(0) } }));
    let stable = stable_deployment(&ocr, 2, 2);
    let (ctx, mut server) = fixtures::context(vec![stable.clone(), front], vec![]);
    let stored = ocr.clone();
    let script = tokio::spawn(async move {
        let calls = server.next_together(CHILDREN.len()).await;
        assert_children_applied(&calls);
        reply_to_children(calls, &stable);
        let service = server.next().await;
        service.is(http::Method::DELETE, "/api/v1/namespaces/team-a/services/invoices-jobs");
        service.reply_not_found();
        let deployment = server.next().await;
        deployment.is(http::Method::DELETE, "/apis/apps/v1/namespaces/team-a/deployments/invoices-jobs");
        deployment.reply_deleted();
        let written = server.status_apply(&stored).await;
        assert!(written.get("jobs").is_none(), "{written}");
        server.events(&stored, 3).await;
        server
    });
    let reconciled = tokio::spawn(reconcile(Arc::new(ocr), ctx.clone()));
    let server = verified(script).await;
    in_time(reconciled).await.unwrap().unwrap();
    no_more_requests(ctx, server).await;
}

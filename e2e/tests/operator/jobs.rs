//! `spec.jobs` with `autoscaling.provider: keda` and `replicas.min: 0` on the local
//! cluster, against a real Redis (the queue), a real S3 server (SeaweedFS, the bucket) and
//! KEDA: the operator makes the job front and the ScaledObject; the idle service sits at
//! zero pods; a job submitted to the front wakes it; a backlog scales it out; its jobs
//! finish; and once idle it returns to zero. The status shows the backlog.

use std::time::Duration;

use crate::support::{Load, Scenario, TIMEOUT, http_get, http_post, wait_for, workspace_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube_ocr_test_servers::{RedisOptions, RedisServer, S3Server};
use serde_json::json;

const BUCKET: &str = "ocr-jobs";
/// Jobs in the backlog: enough that one pod works for longer than the HPA's 15 s sync.
const BACKLOG: usize = 8;

async fn stable_replicas(s: &Scenario, name: &str) -> Option<i32> {
    s.api::<Deployment>().get(&format!("{name}-stable")).await.ok()?.spec?.replicas
}

async fn front_address(s: &Scenario, name: &str) -> Option<String> {
    let pods =
        s.api::<Pod>().list(&ListParams::default().labels(&format!("kube-ocr.dev/jobs-front={name}"))).await.ok()?;
    pods.items.iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        let ready = status.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then(|| status.pod_ip.clone()).flatten()
    })
}

/// Submits a PDF job to the front over HTTP; returns its id.
async fn submit(front: &str, pdf: &[u8], dpi: u32) -> String {
    let path = format!("/v1/jobs?task=document&pdf_dpi={dpi}");
    let (status, body) = http_post(front, 8000, &path, "application/pdf", pdf).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn job_state(front: &str, id: &str) -> Option<String> {
    let (status, body) = http_get(front, 8000, &format!("/v1/jobs/{id}")).await.ok()?;
    (status == 200).then_some(())?;
    let body: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(body["state"].as_str()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_only_service_wakes_from_zero_on_a_job_scales_on_its_backlog_and_returns_to_zero() {
    let s = Scenario::new("ocrs-jobs", Load::Pods).await;
    // On the cluster network, where the pods (and KEDA, and this test) reach them.
    let redis = RedisServer::start_with(RedisOptions { listen: Some(s.host_ip()), ..RedisOptions::default() })
        .expect("redis-server starts (make setup installs it)");
    let s3 = S3Server::start_on(s.host_ip()).expect("the S3 server starts (make setup builds it)");
    s3.create_bucket(BUCKET).unwrap();
    let keda = s.start_keda().await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "s3-auth" },
        "stringData": { "accessKeyId": s3.access_key(), "secretAccessKey": s3.secret_key() },
    }))
    .unwrap();
    s.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let operator = s.start_operator().await;
    let spec = json!({
        "replicas": { "min": 0, "max": 2 },
        "autoscaling": { "provider": "keda", "keda": { "pollingIntervalSeconds": 1, "idleAfter": "10s", "jobsPerReplica": 2 } },
        "cache": { "redis": { "url": redis.url() } },
        "jobs": {
            "bucket": { "name": BUCKET, "endpoint": s3.endpoint(), "secretRef": { "name": "s3-auth" } },
            "claimAfterSeconds": 10,
        },
    });
    s.create(&s.ocr_service("scanner", spec)).await;

    // The operator's objects: the ScaledObject (not an HPA of its own) and the front.
    let scaled_objects: kube::Api<DynamicObject> = kube::Api::namespaced_with(
        s.admin.clone(),
        &s.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject")),
    );
    let scaled = wait_for("the ScaledObject", TIMEOUT, async || scaled_objects.get("scanner-stable").await.ok()).await;
    assert_eq!(scaled.data["spec"]["minReplicaCount"], 0);
    assert_eq!(scaled.data["spec"]["triggers"][0]["type"], "redis-streams");
    let front = wait_for("a ready job front", TIMEOUT, async || front_address(&s, "scanner").await).await;

    // Idle: KEDA keeps the workers at zero.
    wait_for("the idle service at zero pods", TIMEOUT, async || {
        (stable_replicas(&s, "scanner").await == Some(0)).then_some(())
    })
    .await;

    // One job wakes it, and a backlog scales it out.
    let pdf = std::fs::read(workspace_root().join("golden/documents/multipage/pdf-scanned.pdf")).unwrap();
    let first = submit(&front, &pdf, 100).await;
    wait_for("a pod woken by the job", TIMEOUT, async || (stable_replicas(&s, "scanner").await? >= 1).then_some(()))
        .await;
    let mut ids = vec![first];
    for extra in 1..BACKLOG as u32 {
        // Another resolution, another job.
        ids.push(submit(&front, &pdf, 100 + extra * 5).await);
    }
    wait_for("a second pod for the backlog", TIMEOUT, async || {
        (stable_replicas(&s, "scanner").await? >= 2).then_some(())
    })
    .await;
    let status =
        s.wait_status("scanner", "the backlog in the status", TIMEOUT, |o| o.status.as_ref()?.jobs.clone()).await;
    assert!(status.queued.is_some() || status.message.is_some(), "{status:?}");

    // Every job finishes.
    for id in &ids {
        let state = wait_for("the job finished", Duration::from_secs(240), async || {
            job_state(&front, id).await.filter(|state| state != "queued" && state != "running")
        })
        .await;
        assert_eq!(state, "succeeded", "job {id}");
    }

    // Idle again: back to zero, with the front still taking jobs.
    wait_for("back to zero pods once idle", Duration::from_secs(120), async || {
        (stable_replicas(&s, "scanner").await == Some(0)).then_some(())
    })
    .await;
    assert_eq!(job_state(&front, &ids[0]).await.as_deref(), Some("succeeded"));
    drop(keda);
    operator.shutdown().await;
    s.finish().await;
}

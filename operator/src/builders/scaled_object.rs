//! `autoscaling.provider: keda`: a KEDA ScaledObject on the stable Deployment instead of
//! the HPA, and the TriggerAuthentication that hands KEDA the Redis credentials from the
//! user's Secret. Two triggers: the job backlog (the consumer group's lag on the job
//! stream, which also wakes a job-only service from zero) and the in-flight requests of
//! the pods (summed over the stable Service's endpoints; only where pods always run).
//! Plain JSON: KEDA's types are not compiled in, and KEDA is the user's installation.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube_ocr_crds::{AutoscalingProvider, KedaSpec, OcrServiceSpec, RedisCacheSpec, parse_duration};
use serde_json::{Value, json};

use super::owner::Owner;
use crate::names::{HTTP_PORT, Track, autoscaler_name};

/// The consumer group of the job stream (the pods' `workers`).
const JOB_GROUP: &str = "workers";
/// The pods' gauge of requests being processed.
const IN_FLIGHT_METRIC: &str = "ocr_in_flight_requests";

/// KEDA's objects for one OcrService.
#[derive(Debug, Clone, PartialEq)]
pub struct KedaObjects {
    pub scaled_object: DynamicObject,
    /// Present when the Redis needs credentials (or a CA).
    pub trigger_authentication: Option<DynamicObject>,
}

pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"))
}

pub fn trigger_authentication_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "TriggerAuthentication"))
}

/// The name of both objects: the stable Deployment's, as the HPA's is.
pub fn keda_object_name(ocr_service: &str) -> String {
    autoscaler_name(ocr_service)
}

/// KEDA's objects when the spec asks for them.
pub fn keda_objects(owner: &Owner, spec: &OcrServiceSpec) -> Option<KedaObjects> {
    if !spec.autoscaling.enabled || spec.autoscaling.provider != AutoscalingProvider::Keda {
        return None;
    }
    let keda = spec.autoscaling.keda.clone().unwrap_or_default();
    let name = keda_object_name(&owner.name);
    let redis = spec.cache.redis.as_ref();
    let authentication = redis.and_then(|redis| trigger_authentication(owner, &name, redis));
    let mut triggers = Vec::new();
    if let (Some(jobs), Some(redis)) = (&spec.jobs, redis) {
        let authentication = authentication.as_ref().map(|_| name.as_str());
        triggers.push(backlog_trigger(owner, redis, &keda, authentication));
        triggers.push(running_jobs_trigger(owner, redis, jobs.max_concurrent_jobs, authentication));
    }
    if spec.replicas.min >= 1 {
        triggers.push(in_flight_trigger(owner, &keda));
    }
    // The HPA's stabilization window is at most an hour.
    let idle = parse_duration(&keda.idle_after).map_or(600, |idle| idle.as_secs().clamp(1, 3600));
    let object = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": owner.child_meta(name.clone(), Default::default()),
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": Track::Stable.object_name(&owner.name) },
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": keda.polling_interval_seconds,
            // KEDA's cooldown governs the last step to zero; the HPA's stabilization every
            // step down: both wait for the same idle time.
            "cooldownPeriod": idle,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": { "scaleDown": { "stabilizationWindowSeconds": idle } },
                },
            },
            "triggers": triggers,
        },
    });
    Some(KedaObjects {
        scaled_object: dynamic(object, &scaled_object_resource()),
        trigger_authentication: authentication.map(|object| dynamic(object, &trigger_authentication_resource())),
    })
}

/// The consumer group's lag on the job stream: one pod per `jobsPerReplica` waiting
/// jobs, and any waiting job wakes a service at zero.
fn backlog_trigger(owner: &Owner, redis: &RedisCacheSpec, keda: &KedaSpec, authentication: Option<&str>) -> Value {
    let (address, database, tls) = redis_address(&redis.url);
    let mut metadata = json!({
        "address": address,
        "stream": job_stream(owner),
        "consumerGroup": JOB_GROUP,
        "lagCount": keda.jobs_per_replica.to_string(),
        "activationLagCount": "0",
        "databaseIndex": database.to_string(),
    });
    if tls {
        metadata["enableTLS"] = json!("true");
    }
    let mut trigger = json!({ "type": "redis-streams", "name": "job-backlog", "metadata": metadata });
    if let Some(name) = authentication {
        trigger["authenticationRef"] = json!({ "name": name });
    }
    trigger
}

/// Jobs taken and not finished (the group's pending entries): keeps a pod for every
/// `maxConcurrentJobs` of them, so a service is never scaled to zero, nor a pod away,
/// under a job it is working (the backlog trigger counts only jobs nobody took yet).
fn running_jobs_trigger(owner: &Owner, redis: &RedisCacheSpec, per_pod: u32, authentication: Option<&str>) -> Value {
    let (address, database, tls) = redis_address(&redis.url);
    let mut metadata = json!({
        "address": address,
        "stream": job_stream(owner),
        "consumerGroup": JOB_GROUP,
        "pendingEntriesCount": per_pod.to_string(),
        "databaseIndex": database.to_string(),
    });
    if tls {
        metadata["enableTLS"] = json!("true");
    }
    let mut trigger = json!({ "type": "redis-streams", "name": "jobs-running", "metadata": metadata });
    if let Some(name) = authentication {
        trigger["authenticationRef"] = json!({ "name": name });
    }
    trigger
}

/// The job stream of the service: the pods' --redis-key-prefix (builders/shared_cache.rs)
/// and the pod's queue.rs stream name.
fn job_stream(owner: &Owner) -> String {
    format!("kube-ocr:{}:{}:jobs", owner.namespace, owner.name)
}

/// Requests in flight, summed over the stable pods and divided by `inFlightPerReplica`.
fn in_flight_trigger(owner: &Owner, keda: &KedaSpec) -> Value {
    let service = Track::Stable.object_name(&owner.name);
    json!({
        "type": "metrics-api",
        "name": "in-flight",
        "metricType": "AverageValue",
        "metadata": {
            "url": format!("http://{service}.{}.svc:{HTTP_PORT}/metrics", owner.namespace),
            "format": "prometheus",
            "valueLocation": IN_FLIGHT_METRIC,
            "targetValue": keda.in_flight_per_replica.to_string(),
            "aggregateFromKubeServiceEndpoints": "true",
            "aggregationType": "sum",
        },
    })
}

/// The Secret's password (and username, and CA) for KEDA's Redis connection.
fn trigger_authentication(owner: &Owner, name: &str, redis: &RedisCacheSpec) -> Option<Value> {
    let secret = redis.secret_ref.as_ref()?;
    let mut targets = vec![
        json!({ "parameter": "password", "name": secret.name, "key": "password" }),
        json!({ "parameter": "username", "name": secret.name, "key": "username" }),
    ];
    if let Some(ca_key) = &secret.ca_key {
        targets.push(json!({ "parameter": "ca", "name": secret.name, "key": ca_key }));
    }
    Some(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": owner.child_meta(name.to_owned(), Default::default()),
        "spec": { "secretTargetRef": targets },
    }))
}

/// `host:port`, the database index and TLS from a `redis://` or `rediss://` URL (admission
/// has refused credentials in it).
fn redis_address(url: &str) -> (String, u32, bool) {
    let tls = url.starts_with("rediss://");
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, database) = match rest.split_once('/') {
        Some((host, path)) => (host, path.trim_matches('/').parse().unwrap_or(0)),
        None => (rest, 0),
    };
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:6379") };
    (host, database, tls)
}

fn dynamic(object: Value, resource: &ApiResource) -> DynamicObject {
    let mut dynamic: DynamicObject =
        serde_json::from_value(object).expect("the KEDA object has the shape of a Kubernetes object");
    dynamic.types =
        Some(kube::api::TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
    dynamic
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ocr_service;
    use super::*;

    fn objects(spec: Value) -> Option<KedaObjects> {
        let ocr = ocr_service(spec);
        keda_objects(&Owner::of(&ocr).unwrap(), &ocr.spec)
    }

    fn jobs_spec(min: i32) -> Value {
        json!({
            "replicas": { "min": min, "max": 6 },
            "autoscaling": { "provider": "keda", "keda": { "idleAfter": "90s", "jobsPerReplica": 3 } },
            "cache": { "redis": { "url": "redis://cache.infra:6380/2", "secretRef": { "name": "redis-auth" } } },
            "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3:8333", "secretRef": { "name": "s3-auth" } } },
        })
    }

    #[test]
    fn the_hpa_provider_or_autoscaling_off_makes_no_keda_objects() {
        assert!(objects(json!({})).is_none());
        assert!(objects(json!({ "autoscaling": { "enabled": false, "provider": "keda" } })).is_none());
    }

    #[test]
    fn a_job_only_service_scales_from_zero_on_the_backlog_alone() {
        let keda = objects(jobs_spec(0)).unwrap();
        let spec = &keda.scaled_object.data["spec"];
        assert_eq!((spec["minReplicaCount"].as_i64(), spec["maxReplicaCount"].as_i64()), (Some(0), Some(6)));
        assert_eq!(spec["cooldownPeriod"], 90);
        assert_eq!(
            spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            90
        );
        assert_eq!(spec["scaleTargetRef"]["name"], "invoices-stable");
        let triggers = spec["triggers"].as_array().unwrap();
        assert_eq!(triggers.len(), 2, "no in-flight trigger: no pod to measure at zero: {triggers:?}");
        let running = &triggers[1];
        assert_eq!(
            (running["name"].as_str(), running["metadata"]["pendingEntriesCount"].as_str()),
            (Some("jobs-running"), Some("1"))
        );
        assert!(running["metadata"].get("lagCount").is_none(), "pending entries, not lag: {running}");
        let backlog = &triggers[0];
        assert_eq!(backlog["type"], "redis-streams");
        assert_eq!(
            backlog["metadata"],
            json!({
                "address": "cache.infra:6380", "stream": "kube-ocr:team-a:invoices:jobs", "consumerGroup": "workers",
                "lagCount": "3", "activationLagCount": "0", "databaseIndex": "2",
            })
        );
        assert_eq!(backlog["authenticationRef"]["name"], "invoices-stable");
        let authentication = keda.trigger_authentication.unwrap();
        assert_eq!(
            authentication.data["spec"]["secretTargetRef"][0],
            json!({ "parameter": "password", "name": "redis-auth", "key": "password" })
        );
        assert_eq!(keda.scaled_object.metadata.owner_references.as_ref().unwrap()[0].kind, "OcrService");
    }

    #[test]
    fn a_synchronous_service_also_scales_on_in_flight_requests_summed_over_its_pods() {
        let keda = objects(jobs_spec(1)).unwrap();
        let triggers = keda.scaled_object.data["spec"]["triggers"].as_array().unwrap().clone();
        assert_eq!(
            triggers.iter().map(|t| t["type"].as_str().unwrap()).collect::<Vec<_>>(),
            ["redis-streams", "redis-streams", "metrics-api"]
        );
        let in_flight = &triggers[2]["metadata"];
        assert_eq!(in_flight["url"], format!("http://invoices-stable.team-a.svc:{HTTP_PORT}/metrics"));
        assert_eq!(
            (in_flight["valueLocation"].as_str(), in_flight["aggregationType"].as_str()),
            (Some(IN_FLIGHT_METRIC), Some("sum"))
        );
        assert_eq!(in_flight["targetValue"], "4");
        // Without jobs, only the load trigger; without a Secret, no TriggerAuthentication.
        let plain = objects(json!({ "autoscaling": { "provider": "keda" } })).unwrap();
        let triggers = plain.scaled_object.data["spec"]["triggers"].as_array().unwrap().clone();
        assert_eq!(triggers.len(), 1);
        assert!(plain.trigger_authentication.is_none());
    }

    #[test]
    fn redis_urls_become_keda_addresses() {
        assert_eq!(redis_address("redis://cache:6379"), ("cache:6379".to_owned(), 0, false));
        assert_eq!(redis_address("rediss://cache.infra/3"), ("cache.infra:6379".to_owned(), 3, true));
    }
}

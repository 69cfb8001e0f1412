//! `spec.jobs` in the pod template: the job flags, the bucket's credentials from the
//! user's Secret as environment variables (never in the args), the CA as a read-only
//! file, and the pod's own name for the job queue's consumer group.

use kube_ocr_crds::{JobsSpec, OcrServiceSpec};
use serde_json::json;

use super::owner::Owner;
use super::wiring::{ContainerWiring, SecretFile, secret_env};

/// Where the CA key of the bucket's Secret is mounted.
const CA_DIR: &str = "/etc/kube-ocr/s3";
const CA_FILE: &str = "ca.crt";
const CA_VOLUME: &str = "s3-ca";

pub(super) fn jobs_wiring(owner: &Owner, spec: &OcrServiceSpec) -> ContainerWiring {
    let Some(jobs) = &spec.jobs else {
        return ContainerWiring::default();
    };
    let JobsSpec {
        bucket,
        ttl_seconds,
        max_concurrent_jobs,
        pages_in_flight,
        claim_after_seconds,
        max_attempts,
        timeout_seconds,
        slo_seconds,
        front_replicas: _,
    } = jobs;
    let prefix = bucket.prefix.clone().unwrap_or_else(|| format!("kube-ocr/{}/{}", owner.namespace, owner.name));
    let mut wiring = ContainerWiring {
        args: vec![
            format!("--jobs-bucket={}", bucket.name),
            format!("--jobs-s3-endpoint={}", bucket.endpoint),
            format!("--jobs-s3-region={}", bucket.region),
            format!("--jobs-prefix={prefix}"),
            format!("--jobs-ttl-secs={ttl_seconds}"),
            format!("--jobs-max-concurrent={max_concurrent_jobs}"),
            format!("--jobs-pages-in-flight={pages_in_flight}"),
            format!("--jobs-claim-after-secs={claim_after_seconds}"),
            format!("--jobs-max-attempts={max_attempts}"),
            format!("--jobs-timeout-secs={timeout_seconds}"),
            format!("--jobs-slo-secs={slo_seconds}"),
            format!("--jobs-manage-expiry={}", bucket.manage_expiry),
        ],
        // The consumer name in the queue's group: which pod holds a job, in Redis and logs.
        env: vec![json!({ "name": "OCR_POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } })],
        ..ContainerWiring::default()
    };
    if bucket.virtual_hosted {
        wiring.args.push("--jobs-s3-virtual-hosted".to_owned());
    }
    let secret = &bucket.secret_ref;
    // The keys are required: the pod signs every S3 call with them, so without them it
    // cannot work at all, and a missing Secret is best seen as the pod's
    // CreateContainerConfigError naming it. The session token only comes with temporary
    // credentials.
    for (variable, key, optional) in [
        ("AWS_ACCESS_KEY_ID", "accessKeyId", false),
        ("AWS_SECRET_ACCESS_KEY", "secretAccessKey", false),
        ("AWS_SESSION_TOKEN", "sessionToken", true),
    ] {
        wiring.env.push(secret_env(variable, &secret.name, key, optional));
    }
    if let Some(ca_key) = &secret.ca_key {
        wiring.mount_secret_file(SecretFile {
            secret: &secret.name,
            key: ca_key,
            volume: CA_VOLUME,
            dir: CA_DIR,
            file: CA_FILE,
            flag: "jobs-s3-ca-file",
        });
    }
    wiring
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::test_support::ocr_service;
    use super::*;

    fn wiring(spec: Value) -> ContainerWiring {
        let ocr = ocr_service(spec);
        jobs_wiring(&Owner::of(&ocr).unwrap(), &ocr.spec)
    }

    #[test]
    fn no_jobs_spec_adds_nothing() {
        assert_eq!(wiring(json!({})), ContainerWiring::default());
    }

    #[test]
    fn the_bucket_and_the_defaults_become_flags_with_a_prefix_per_service() {
        let wired = wiring(
            json!({ "jobs": { "bucket": { "name": "ocr-jobs", "endpoint": "http://s3.storage:8333", "secretRef": { "name": "s3-auth" } } } }),
        );
        assert_eq!(
            wired.args,
            [
                "--jobs-bucket=ocr-jobs",
                "--jobs-s3-endpoint=http://s3.storage:8333",
                "--jobs-s3-region=us-east-1",
                "--jobs-prefix=kube-ocr/team-a/invoices",
                "--jobs-ttl-secs=86400",
                "--jobs-max-concurrent=1",
                "--jobs-pages-in-flight=2",
                "--jobs-claim-after-secs=60",
                "--jobs-max-attempts=3",
                "--jobs-timeout-secs=3600",
                "--jobs-slo-secs=900",
                "--jobs-manage-expiry=true",
            ]
        );
        assert_eq!(wired.env[0]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
        assert!(wired.volumes.is_empty() && wired.mounts.is_empty());
    }

    #[test]
    fn credentials_come_from_the_secret_as_optional_environment_and_the_ca_as_a_file() {
        let wired = wiring(json!({ "jobs": { "bucket": {
            "name": "ocr-jobs", "endpoint": "https://s3.example.com", "virtualHosted": true,
            "secretRef": { "name": "s3-auth", "caKey": "ca.pem" },
        } } }));
        assert!(!wired.args.iter().any(|arg| arg.to_lowercase().contains("secret")), "{:?}", wired.args);
        let secret = wired.env.iter().find(|e| e["name"] == "AWS_SECRET_ACCESS_KEY").unwrap();
        assert_eq!(
            secret["valueFrom"]["secretKeyRef"],
            json!({ "name": "s3-auth", "key": "secretAccessKey", "optional": false })
        );
        assert!(wired.args.contains(&"--jobs-s3-virtual-hosted".to_owned()));
        assert!(wired.args.contains(&"--jobs-s3-ca-file=/etc/kube-ocr/s3/ca.crt".to_owned()));
        assert_eq!(wired.volumes[0]["secret"]["items"][0], json!({ "key": "ca.pem", "path": "ca.crt" }));
        assert_eq!(wired.mounts[0]["readOnly"], true);
    }
}

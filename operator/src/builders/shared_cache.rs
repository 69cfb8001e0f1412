//! `spec.cache.redis` in the pod template: the inference server's shared cache flags,
//! the credentials from the user's Secret as environment variables (never in the args,
//! which `kubectl describe` shows), and the CA as a read-only file.

use kube_ocr_crds::{OcrServiceSpec, RedisCacheSpec};

use super::owner::Owner;
use super::wiring::{ContainerWiring, SecretFile, secret_env};

/// Where the CA key of the Secret is mounted.
const CA_DIR: &str = "/etc/kube-ocr/redis";
const CA_FILE: &str = "ca.crt";
const CA_VOLUME: &str = "redis-ca";

pub(super) fn shared_cache_wiring(owner: &Owner, spec: &OcrServiceSpec) -> ContainerWiring {
    let Some(redis) = &spec.cache.redis else {
        return ContainerWiring::default();
    };
    let RedisCacheSpec { url, secret_ref, ttl_seconds, timeout_ms } = redis;
    let mut wiring = ContainerWiring {
        args: vec![
            format!("--redis-url={url}"),
            // Both tracks share the prefix: the server's key binds what computes the answer.
            format!("--redis-key-prefix=kube-ocr:{}:{}", owner.namespace, owner.name),
            format!("--shared-cache-ttl-secs={ttl_seconds}"),
            format!("--shared-cache-timeout-ms={timeout_ms}"),
        ],
        ..ContainerWiring::default()
    };
    let Some(secret) = secret_ref else {
        return wiring;
    };
    // Optional keys: a Secret without them (or not there yet) leaves the cache failing
    // AUTH, counted in the pod's metrics, rather than the pods unable to start.
    for (variable, key) in [("OCR_REDIS_PASSWORD", "password"), ("OCR_REDIS_USERNAME", "username")] {
        wiring.env.push(secret_env(variable, &secret.name, key, true));
    }
    if let Some(ca_key) = &secret.ca_key {
        wiring.mount_secret_file(SecretFile {
            secret: &secret.name,
            key: ca_key,
            volume: CA_VOLUME,
            dir: CA_DIR,
            file: CA_FILE,
            flag: "redis-ca-file",
        });
    }
    wiring
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::test_support::ocr_service;
    use super::*;

    fn wiring(spec: Value) -> ContainerWiring {
        let ocr = ocr_service(spec);
        shared_cache_wiring(&Owner::of(&ocr).unwrap(), &ocr.spec)
    }

    #[test]
    fn no_cache_spec_adds_nothing() {
        assert_eq!(wiring(json!({})), ContainerWiring::default());
    }

    #[test]
    fn the_url_prefix_ttl_and_timeout_become_flags() {
        let wired = wiring(json!({ "cache": { "redis": { "url": "redis://cache.infra:6379/2", "ttlSeconds": 600 } } }));
        assert_eq!(
            wired.args,
            [
                "--redis-url=redis://cache.infra:6379/2",
                "--redis-key-prefix=kube-ocr:team-a:invoices",
                "--shared-cache-ttl-secs=600",
                "--shared-cache-timeout-ms=50",
            ]
        );
        assert!(wired.env.is_empty() && wired.volumes.is_empty());
    }

    #[test]
    fn credentials_come_from_the_secret_as_optional_environment() {
        let wired = wiring(json!({ "cache": { "redis": {
            "url": "rediss://cache.infra:6380", "secretRef": { "name": "redis-auth", "caKey": "tls-ca.pem" },
        } } }));
        assert!(!wired.args.iter().any(|arg| arg.contains("password")), "{:?}", wired.args);
        let password = wired.env.iter().find(|e| e["name"] == "OCR_REDIS_PASSWORD").unwrap();
        assert_eq!(
            password["valueFrom"]["secretKeyRef"],
            json!({ "name": "redis-auth", "key": "password", "optional": true })
        );
        assert!(wired.env.iter().any(|e| e["name"] == "OCR_REDIS_USERNAME"));
        assert!(wired.args.contains(&"--redis-ca-file=/etc/kube-ocr/redis/ca.crt".to_owned()));
        assert_eq!(wired.volumes[0]["secret"]["items"][0], json!({ "key": "tls-ca.pem", "path": "ca.crt" }));
        assert_eq!(wired.mounts[0]["readOnly"], true);
    }
}

//! `spec.cache`: the result cache shared by every pod of the service.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Result caching beyond each pod's own in-process cache. A change here starts a new
/// revision (the pods' arguments change).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// A Redis every pod reads and writes results in, so a replica (or a restarted pod)
    /// answers from another's work. Opt-in; Redis is your own installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisCacheSpec>,
}

/// Where the shared cache is. Keys bind the document's sha256, every option that changes
/// the answer and what computes it (the bundle's content, precision, device, server
/// version), so a canary and stable never answer from each other's results. A Redis that
/// is down or slow is skipped (and counted), never an error.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.url.startsWith('redis://') || self.url.startsWith('rediss://')")
        .message("cache.redis.url must start with redis:// or rediss:// (TLS)"),
    validation = Rule::new("!self.url.contains('@')")
        .message("cache.redis.url must not carry credentials: put the password in the Secret named by cache.redis.secretRef"),
    validation = Rule::new("!has(self.secretRef) || !has(self.secretRef.caKey) || self.url.startsWith('rediss://')")
        .message("cache.redis.secretRef.caKey applies to rediss:// (TLS) URLs only")
)]
pub struct RedisCacheSpec {
    /// `redis://host:port[/db]`, or `rediss://` for TLS, e.g.
    /// `redis://redis-master.cache.svc:6379`. Put credentials in `secretRef`, not here.
    #[schemars(length(min = 10, max = 512))]
    pub url: String,
    /// A Secret in the service's namespace with the key `password` (AUTH) and optionally
    /// `username` (an ACL user). Keys that are absent are not sent; a Secret that is
    /// missing leaves the cache failing AUTH (counted), not the pods down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<RedisSecretRef>,
    /// How long a result lives in Redis, in seconds (default 86400, one day).
    #[serde(default = "default_ttl_seconds")]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub ttl_seconds: u32,
    /// Longest a lookup or write may take, in milliseconds, before it is skipped and
    /// counted as an error (default 50). A request waits at most this long for Redis.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1, max = 10_000))]
    pub timeout_ms: u32,
}

/// The Secret holding the Redis credentials (and CA).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A key of the Secret holding the PEM CA that signed the Redis server's certificate
    /// (`rediss://` only, e.g. `ca.crt`); unset: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_key: Option<String>,
}

fn default_ttl_seconds() -> u32 {
    86_400
}

fn default_timeout_ms() -> u32 {
    50
}

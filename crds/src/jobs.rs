//! `spec.jobs`: asynchronous document jobs, their bucket and how the pods work them.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Asynchronous document jobs: callers submit a document (or an `s3://` reference) and
/// poll for the result, so a long PDF never has to fit in one call's deadline. Uploads
/// and results go to your S3-compatible bucket and expire with its lifecycle rule; the
/// queue is a Redis stream in the Redis of `cache.redis`, which jobs therefore need. A
/// change here starts a new revision (the pods' arguments change).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobsSpec {
    /// Where uploads and results are stored.
    pub bucket: JobsBucketSpec,
    /// How long a job, its upload and its result live, in seconds (default 86400, one
    /// day). The bucket expires objects in whole days, so S3 keeps them up to a day
    /// longer; the job's record is gone at the exact TTL.
    #[serde(default = "default_ttl_seconds")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub ttl_seconds: u32,
    /// Jobs each pod works at a time (default 1).
    #[serde(default = "default_max_concurrent_jobs")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_jobs: u32,
    /// The share of a pod's capacity jobs take: pages of a job in the engine at a time
    /// (default 2; a synchronous document takes 4). A synchronous call waits behind at
    /// most this many job pages per running job, so jobs never starve it.
    #[serde(default = "default_pages_in_flight")]
    #[schemars(range(min = 1, max = 64))]
    pub pages_in_flight: u32,
    /// A job whose pod has not heartbeaten it for this long is taken over by another pod
    /// (default 60 s): the delay before a job of a killed pod goes on.
    #[serde(default = "default_claim_after_seconds")]
    #[schemars(range(min = 3, max = 3600))]
    pub claim_after_seconds: u32,
    /// Starts of one job before it fails as a document that kills its pods (default 3).
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Longest one job may run, in seconds (default 3600).
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 10, max = 86_400))]
    pub timeout_seconds: u32,
    /// Pods of the job front `<name>-jobs`, which takes submissions (default 1; 2 for a
    /// front that survives a node's loss).
    #[serde(default = "default_front_replicas")]
    #[schemars(range(min = 1, max = 10))]
    pub front_replicas: i32,
    /// The age past which an unfinished job breaks its objective, in seconds (default
    /// 900): the `OcrJobsOlderThanSlo` alert fires when the oldest job is older.
    #[serde(default = "default_slo_seconds")]
    #[schemars(range(min = 10, max = 604_800))]
    pub slo_seconds: u32,
}

/// The S3-compatible bucket of a service's jobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.endpoint.startsWith('http://') || self.endpoint.startsWith('https://')")
        .message("jobs.bucket.endpoint must start with http:// or https://"),
    validation = Rule::new("!self.endpoint.contains('@')")
        .message("jobs.bucket.endpoint must not carry credentials: put them in the Secret named by jobs.bucket.secretRef"),
    validation = Rule::new("!has(self.secretRef.caKey) || self.endpoint.startsWith('https://')")
        .message("jobs.bucket.secretRef.caKey applies to https:// endpoints only")
)]
pub struct JobsBucketSpec {
    /// The bucket's name; it must exist.
    #[schemars(length(min = 3, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub name: String,
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio.storage:9000`.
    #[schemars(length(min = 8, max = 512))]
    pub endpoint: String,
    /// The region requests are signed for (default `us-east-1`).
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Name buckets in the host (`bucket.endpoint`) instead of the path; AWS prefers it,
    /// most self-hosted servers want the path (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub virtual_hosted: bool,
    /// Key prefix of this service's objects (default `kube-ocr/<namespace>/<name>`); the
    /// expiry rule applies to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub prefix: Option<String>,
    /// A Secret in the service's namespace with the keys `accessKeyId` and
    /// `secretAccessKey` (and `sessionToken` for temporary credentials). Required: the
    /// pods sign every call with static keys; a pod whose Secret is missing waits in
    /// CreateContainerConfigError, naming it.
    pub secret_ref: JobsSecretRef,
    /// The pods set the bucket's expiry rule for the prefix at start, keeping the
    /// bucket's other rules (default true; needs s3:PutLifecycleConfiguration). Turn off
    /// when the bucket's owner manages the rule.
    #[serde(default = "default_true")]
    pub manage_expiry: bool,
}

/// The Secret holding the bucket's credentials (and CA).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A key of the Secret holding the PEM CA of an https endpoint (e.g. `ca.crt`);
    /// unset: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_key: Option<String>,
}

fn default_ttl_seconds() -> u32 {
    86_400
}
fn default_max_concurrent_jobs() -> u32 {
    1
}
fn default_pages_in_flight() -> u32 {
    2
}
fn default_claim_after_seconds() -> u32 {
    60
}
fn default_max_attempts() -> u32 {
    3
}
fn default_timeout_seconds() -> u32 {
    3600
}
fn default_slo_seconds() -> u32 {
    900
}
fn default_front_replicas() -> i32 {
    1
}
fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_true() -> bool {
    true
}

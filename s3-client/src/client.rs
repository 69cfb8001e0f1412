//! [`S3Client`]: the operations, each a signed request sent through the transport, its
//! failure named after the operation.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::Method;
use md5::{Digest, Md5};
use tokio::time::Instant;

use crate::date::AmzDate;
use crate::error::{CallError, S3Error};
use crate::lifecycle::{self, ExpiryRule, LifecyclePlan};
use crate::names::{bucket_name_problem, key_problem};
use crate::request::{Call, Signer};
use crate::retry;
use crate::settings::S3Settings;
use crate::sigv4::{EMPTY_PAYLOAD_SHA256, hex_sha256};
use crate::transport::{Answer, Transport};
use crate::xml::XmlError;

/// Bodies up to this size are hashed on the calling task; larger ones on the blocking
/// pool, so that a big upload does not stall the other tasks of an async thread (SHA-256
/// runs at a few hundred MB/s to a few GB/s).
const INLINE_HASH_BYTES: usize = 1024 * 1024;
/// What is accepted from calls that answer with nothing to read (PUT, DELETE, HEAD).
const SMALL_ANSWER_BYTES: usize = 64 * 1024;
/// A lifecycle configuration holds at most 1,000 rules.
const MAX_LIFECYCLE_BYTES: usize = 4 * 1024 * 1024;

/// A client for one S3 endpoint and identity. Cheap to clone (one `Arc`); connections are
/// pooled and shared by the clones. Every call is bounded by the settings' timeout, and
/// tried up to 3 times within it after a dropped connection or a 500/502/503/504 (every
/// call here is idempotent).
#[derive(Clone)]
pub struct S3Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    signer: Signer,
    /// For Debug and logs.
    endpoint: String,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client").field("endpoint", &self.inner.endpoint).finish_non_exhaustive()
    }
}

impl S3Client {
    /// Checks the settings and sets the client up (for https, loads the system's roots and
    /// the CA file). Connects on first use.
    pub fn new(settings: S3Settings) -> Result<Self, S3Error> {
        let endpoint = settings.check()?;
        let transport = Transport::new(&settings, &endpoint)?;
        let signer = Signer::new(&settings, endpoint);
        Ok(Self { inner: Arc::new(Inner { transport, signer, endpoint: settings.endpoint.to_string() }) })
    }

    /// Writes `body` as the object, replacing any.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), S3Error> {
        let failed = |source| S3Error::PutObject { bucket: bucket.to_owned(), key: key.to_owned(), source };
        check_object(bucket, key).map_err(failed)?;
        let payload_sha256 = payload_sha256(&body).await.map_err(failed)?;
        let call = Call {
            method: Method::PUT,
            bucket,
            key: Some(key),
            query: &[],
            headers: &[("content-type", content_type)],
            body,
            payload_sha256: &payload_sha256,
        };
        self.send("PutObject", &call, SMALL_ANSWER_BYTES).await.map_err(failed)?;
        Ok(())
    }

    /// The object's bytes. A body over `max_bytes` is refused ([`CallError::TooLarge`])
    /// without being read whole; a missing object is [`S3Error::is_not_found`].
    pub async fn get_object(&self, bucket: &str, key: &str, max_bytes: usize) -> Result<Bytes, S3Error> {
        let failed = |source| S3Error::GetObject { bucket: bucket.to_owned(), key: key.to_owned(), source };
        check_object(bucket, key).map_err(failed)?;
        let call = bodiless(Method::GET, bucket, Some(key), &[]);
        let answer = self.send("GetObject", &call, max_bytes).await.map_err(failed)?;
        Ok(answer.body)
    }

    /// Deletes the object. Deleting one that does not exist succeeds, as in S3.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let failed = |source| S3Error::DeleteObject { bucket: bucket.to_owned(), key: key.to_owned(), source };
        check_object(bucket, key).map_err(failed)?;
        let call = bodiless(Method::DELETE, bucket, Some(key), &[]);
        self.send("DeleteObject", &call, SMALL_ANSWER_BYTES).await.map_err(failed)?;
        Ok(())
    }

    /// Whether the bucket exists and these credentials may use it: the check to run at
    /// start, so that a wrong endpoint, bucket or secret shows then, not at the first
    /// upload.
    pub async fn head_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let failed = |source| S3Error::HeadBucket { bucket: bucket.to_owned(), source };
        check_bucket(bucket).map_err(failed)?;
        let call = bodiless(Method::HEAD, bucket, None, &[]);
        self.send("HeadBucket", &call, SMALL_ANSWER_BYTES).await.map_err(failed)?;
        Ok(())
    }

    /// Makes the bucket's lifecycle configuration hold `rule` (by its ID), keeping every
    /// other rule as it was. Writes nothing when the rule is already there unchanged, so
    /// that every replica may call this at start. Two clients editing other rules of the
    /// same bucket at the same instant can lose one edit: S3 offers no conditional write
    /// of a configuration.
    pub async fn ensure_expiry_rule(&self, bucket: &str, rule: &ExpiryRule) -> Result<(), S3Error> {
        if let Some(reason) = rule.problem() {
            return Err(S3Error::ExpiryRule { id: rule.id.clone(), reason });
        }
        let get_failed = |source| S3Error::GetLifecycle { bucket: bucket.to_owned(), source };
        check_bucket(bucket).map_err(get_failed)?;
        let query = [("lifecycle", "")];
        let current = match self
            .send("GetBucketLifecycleConfiguration", &bodiless(Method::GET, bucket, None, &query), MAX_LIFECYCLE_BYTES)
            .await
        {
            Ok(answer) => Some(answer.body),
            Err(CallError::Service(error)) if error.code.as_deref() == Some("NoSuchLifecycleConfiguration") => None,
            Err(error) => return Err(get_failed(error)),
        };
        let current = match &current {
            Some(body) => Some(std::str::from_utf8(body).map_err(|error| {
                get_failed(CallError::Document(XmlError { offset: error.valid_up_to(), reason: "not UTF-8" }))
            })?),
            None => None,
        };
        let plan = lifecycle::plan(current, rule).map_err(|error| get_failed(CallError::Document(error)))?;
        let LifecyclePlan::Put { document, replaced } = plan else {
            tracing::debug!(bucket, rule_id = rule.id, "the S3 lifecycle rule is already in place");
            return Ok(());
        };
        let put_failed = |source| S3Error::PutLifecycle { bucket: bucket.to_owned(), source };
        let body = Bytes::from(document);
        // S3 refuses this call without an integrity header; Content-MD5 is the one every
        // S3-compatible server reads.
        let content_md5 = BASE64.encode(Md5::digest(&body));
        let payload_sha256 = hex_sha256(&body);
        let call = Call {
            method: Method::PUT,
            bucket,
            key: None,
            query: &query,
            headers: &[("content-type", "application/xml"), ("content-md5", &content_md5)],
            body,
            payload_sha256: &payload_sha256,
        };
        self.send("PutBucketLifecycleConfiguration", &call, SMALL_ANSWER_BYTES).await.map_err(put_failed)?;
        tracing::info!(
            bucket,
            rule_id = rule.id,
            prefix = rule.prefix,
            days = rule.days,
            replaced,
            "wrote the S3 lifecycle expiry rule"
        );
        Ok(())
    }

    /// Signs and sends one call, again after a transient failure (see `retry`), all
    /// within the timeout; logs the outcome.
    async fn send(&self, operation: &'static str, call: &Call<'_>, body_limit: usize) -> Result<Answer, CallError> {
        let transport = &self.inner.transport;
        let started = Instant::now();
        let deadline = started + transport.timeout();
        let mut attempt = 1;
        let outcome = loop {
            // Signed again for each try: the signature's time must be recent.
            let request = self.inner.signer.request(call, &AmzDate::now()).map_err(CallError::BuildRequest)?;
            let outcome = transport.send(request, body_limit, deadline).await;
            let pause = retry::backoff(attempt);
            match outcome {
                Err(error)
                    if attempt < retry::MAX_ATTEMPTS
                        && retry::is_transient(&error)
                        && Instant::now() + pause < deadline =>
                {
                    tracing::debug!(
                        operation,
                        bucket = call.bucket,
                        key = call.key,
                        attempt,
                        %error,
                        "S3 call failed; trying again"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                outcome => break outcome,
            }
        };
        let elapsed_ms = started.elapsed().as_millis();
        match &outcome {
            Ok(answer) => tracing::debug!(
                operation,
                bucket = call.bucket,
                key = call.key,
                status = answer.status.as_u16(),
                bytes = answer.body.len(),
                attempt,
                elapsed_ms,
                "S3 call done"
            ),
            Err(error) => tracing::debug!(
                operation,
                bucket = call.bucket,
                key = call.key,
                %error,
                attempt,
                elapsed_ms,
                "S3 call failed"
            ),
        }
        outcome
    }
}

/// A call without a body.
fn bodiless<'a>(method: Method, bucket: &'a str, key: Option<&'a str>, query: &'a [(&'a str, &'a str)]) -> Call<'a> {
    Call { method, bucket, key, query, headers: &[], body: Bytes::new(), payload_sha256: EMPTY_PAYLOAD_SHA256 }
}

fn check_bucket(bucket: &str) -> Result<(), CallError> {
    match bucket_name_problem(bucket) {
        Some(reason) => Err(CallError::BucketName { bucket: bucket.to_owned(), reason }),
        None => Ok(()),
    }
}

fn check_object(bucket: &str, key: &str) -> Result<(), CallError> {
    check_bucket(bucket)?;
    match key_problem(key) {
        Some(reason) => Err(CallError::ObjectKey { reason }),
        None => Ok(()),
    }
}

async fn payload_sha256(body: &Bytes) -> Result<String, CallError> {
    if body.len() <= INLINE_HASH_BYTES {
        return Ok(hex_sha256(body));
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || hex_sha256(&body)).await.map_err(CallError::Hash)
}

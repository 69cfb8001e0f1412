//! Result caches: the in-process LRU ([`memory`]) in front, the optional shared Redis
//! ([`shared`]) behind it. A result found in Redis is kept in memory too, so a document
//! asked for again on the same pod does not cross the network twice.

mod breaker;
mod codec;
mod memory;
mod shared;

use std::sync::Arc;
use std::time::Instant;

pub(crate) use memory::{CacheKey, CacheWeight, ResultCache, image_sha256};
pub(crate) use shared::{SharedCache, SharedLookup, SharedWrite, redis_client};
pub use shared::{SharedCacheError, SharedCacheSettings};

use crate::serve::engine::OcrOutput;
use crate::serve::telemetry::metrics::OcrMetrics;

#[derive(Debug)]
pub(crate) struct ResultCaches {
    memory: ResultCache<OcrOutput>,
    shared: Option<Arc<SharedCache>>,
    metrics: Arc<OcrMetrics>,
    /// What computes the answers (see [`result_identity`]): part of every key.
    identity: String,
}

/// Everything besides the request that decides an answer: the bundle (by content, not
/// only its name and version), the precision and device it runs at, and this server's
/// version. A canary differs from stable in at least one, so neither ever answers from
/// the other's results through the shared cache.
pub(crate) fn result_identity(
    model: (&str, &str, &str),
    bundle_digest: &[u8; 32],
    precision: &str,
    device: &str,
) -> String {
    let (name, version, variant) = model;
    let digest: String = bundle_digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{name}|{version}|{variant}|{digest}|{precision}|{device}|server {}", env!("CARGO_PKG_VERSION"))
}

impl ResultCaches {
    pub(crate) fn new(
        memory: ResultCache<OcrOutput>,
        shared: Option<SharedCache>,
        metrics: Arc<OcrMetrics>,
        identity: String,
    ) -> Self {
        Self { memory, shared: shared.map(Arc::new), metrics, identity }
    }

    /// The key of the answer to the document `sha256` with the request's options that
    /// change the output (`request_shape`), from this server.
    pub(crate) fn key(&self, sha256: &[u8; 32], request_shape: &str) -> CacheKey {
        CacheKey::new(sha256, &format!("{request_shape}|{}", self.identity))
    }

    /// The answer to `key` if a cache holds it: memory first, then Redis (never longer
    /// than the shared cache's timeout).
    pub(crate) async fn lookup(&self, key: &CacheKey) -> Option<OcrOutput> {
        if self.memory.is_enabled() {
            let hit = self.memory.get(key);
            self.metrics.record_cache_lookup(hit.is_some());
            if hit.is_some() {
                return hit;
            }
        }
        let shared = self.shared.as_ref()?;
        let started = Instant::now();
        let found = shared.get(key).await;
        self.metrics.record_shared_lookup(&found, started.elapsed());
        match found {
            SharedLookup::Hit(output) => {
                if self.memory.is_enabled() {
                    self.memory.insert(key.clone(), output.clone());
                }
                Some(output)
            }
            SharedLookup::Miss | SharedLookup::Skipped | SharedLookup::Failed => None,
        }
    }

    /// Keeps a computed answer: in memory now, in Redis in the background.
    pub(crate) fn store(&self, key: CacheKey, output: &OcrOutput) {
        if let Some(shared) = &self.shared {
            shared.put(&key, output);
        }
        if self.memory.is_enabled() {
            self.memory.insert(key, output.clone());
        }
    }

    /// (entries, bytes) in memory.
    pub(crate) fn memory_usage(&self) -> (usize, usize) {
        self.memory.usage()
    }

    /// `None` without a shared cache; else whether it is being asked (not skipped).
    pub(crate) fn shared_available(&self) -> Option<bool> {
        self.shared.as_ref().map(|shared| shared.is_available())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_changes_with_anything_that_computes_the_answer() {
        let base = result_identity(("ppocr", "4.0.0", "standard"), &[1; 32], "fp32", "cpu");
        let others = [
            result_identity(("ppocr", "4.0.1", "standard"), &[1; 32], "fp32", "cpu"),
            result_identity(("ppocr", "4.0.0", "slim"), &[1; 32], "fp32", "cpu"),
            result_identity(("ppocr", "4.0.0", "standard"), &[2; 32], "fp32", "cpu"),
            result_identity(("ppocr", "4.0.0", "standard"), &[1; 32], "fp16", "cpu"),
            result_identity(("ppocr", "4.0.0", "standard"), &[1; 32], "fp32", "cuda:0"),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        assert_eq!(base, result_identity(("ppocr", "4.0.0", "standard"), &[1; 32], "fp32", "cpu"));
    }
}

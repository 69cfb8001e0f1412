//! In-process result cache: least recently used entries are evicted once the cached
//! values exceed a byte budget (an entry count would let a few huge documents blow memory).

use std::sync::Mutex;

use lru::LruCache;
use sha2::{Digest, Sha256};

/// Identifies a result: same image bytes, same task and options, same model version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    /// `image_sha256` is the digest of the request's image bytes; `request_shape` is every
    /// other input that changes the answer (task, options, model name and version).
    pub(crate) fn new(image_sha256: &[u8; 32], request_shape: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(image_sha256);
        hasher.update([0]);
        hasher.update(request_shape.as_bytes());
        Self(hasher.finalize().into())
    }

    pub(crate) fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// sha256 of the image bytes, also logged (never the image itself).
pub(crate) fn image_sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Values report their approximate heap size so the cache can respect its budget.
pub(crate) trait CacheWeight {
    fn weight_bytes(&self) -> usize;
}

#[derive(Debug)]
pub(crate) struct ResultCache<V> {
    inner: Mutex<Inner<V>>,
    budget_bytes: usize,
}

#[derive(Debug)]
struct Inner<V> {
    entries: LruCache<CacheKey, V>,
    used_bytes: usize,
}

impl<V: Clone + CacheWeight> ResultCache<V> {
    /// A cache of at most `budget_bytes`; 0 disables caching.
    pub(crate) fn new(budget_bytes: usize) -> Self {
        Self { inner: Mutex::new(Inner { entries: LruCache::unbounded(), used_bytes: 0 }), budget_bytes }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.budget_bytes > 0
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<V> {
        self.lock().entries.get(key).cloned()
    }

    /// Stores `value`; a value larger than the whole budget is not cached.
    pub(crate) fn insert(&self, key: CacheKey, value: V) {
        let weight = entry_weight(&value);
        if weight > self.budget_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.put(key, value) {
            inner.used_bytes -= entry_weight(&old);
        }
        inner.used_bytes += weight;
        while inner.used_bytes > self.budget_bytes {
            match inner.entries.pop_lru() {
                Some((_, evicted)) => inner.used_bytes -= entry_weight(&evicted),
                None => break,
            }
        }
    }

    /// (entries, bytes) currently held.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.used_bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters more than losing the cache, so recover the guard.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entry_weight<V: CacheWeight>(value: &V) -> usize {
    // Key, LRU node and bookkeeping overhead per entry.
    value.weight_bytes() + 96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Text(String);

    impl CacheWeight for Text {
        fn weight_bytes(&self) -> usize {
            self.0.len()
        }
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::new(&image_sha256(&[n]), "task=line")
    }

    #[test]
    fn keys_differ_by_image_and_by_request_shape() {
        let image = image_sha256(b"png bytes");
        assert_eq!(CacheKey::new(&image, "a"), CacheKey::new(&image, "a"));
        assert_ne!(CacheKey::new(&image, "a"), CacheKey::new(&image, "b"));
        assert_ne!(CacheKey::new(&image, "a"), CacheKey::new(&image_sha256(b"other"), "a"));
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_when_over_budget() {
        let cache = ResultCache::new(3 * (100 + 96));
        for n in 0..3 {
            cache.insert(key(n), Text("x".repeat(100)));
        }
        assert_eq!(cache.usage(), (3, 3 * 196));
        assert!(cache.get(&key(0)).is_some()); // 0 is now the most recent
        cache.insert(key(3), Text("y".repeat(100)));
        assert!(cache.get(&key(1)).is_none(), "1 was least recently used");
        assert!(cache.get(&key(0)).is_some() && cache.get(&key(2)).is_some() && cache.get(&key(3)).is_some());
        assert_eq!(cache.usage(), (3, 3 * 196));
    }

    #[test]
    fn one_big_value_evicts_several_small_ones() {
        let cache = ResultCache::new(1000);
        for n in 0..4 {
            cache.insert(key(n), Text("s".repeat(100)));
        }
        cache.insert(key(9), Text("b".repeat(700)));
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 1000, "{bytes}");
        assert_eq!(entries, 1 + (1000 - 796) / 196);
        assert_eq!(cache.get(&key(9)), Some(Text("b".repeat(700))));
    }

    #[test]
    fn values_larger_than_the_budget_and_a_zero_budget_cache_nothing() {
        let cache = ResultCache::new(150);
        cache.insert(key(1), Text("z".repeat(200)));
        assert_eq!(cache.usage(), (0, 0));
        let disabled = ResultCache::new(0);
        assert!(!disabled.is_enabled());
        disabled.insert(key(1), Text(String::new()));
        assert!(disabled.get(&key(1)).is_none());
    }

    #[test]
    fn replacing_a_key_keeps_the_byte_count_exact() {
        let cache = ResultCache::new(10_000);
        cache.insert(key(1), Text("a".repeat(10)));
        cache.insert(key(1), Text("a".repeat(50)));
        assert_eq!(cache.usage(), (1, 50 + 96));
    }
}

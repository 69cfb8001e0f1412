//! Which desired states were applied recently, so reconciles triggered by pod and status
//! churn send no writes: a steady state is quiet. Manual edits to children are still
//! reverted, at the latest after `--resync-secs`, when the entry is too old to trust.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `namespace/name` → (fingerprint, when applied). The fingerprint includes the owner
/// reference (the uid), so a re-created OcrService of the same name is applied afresh.
#[derive(Debug, Default)]
pub struct AppliedCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl AppliedCache {
    /// Whether `fingerprint` was applied for `uid` less than `max_age` ago.
    pub fn is_fresh(&self, uid: &str, fingerprint: &str, max_age: Duration) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(uid).is_some_and(|(applied, at)| applied == fingerprint && at.elapsed() < max_age)
    }

    pub fn record(&self, uid: &str, fingerprint: String) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.to_owned(), (fingerprint, Instant::now()));
    }

    // No reconcile forgets an entry; the tests use it to reset one.
    #[cfg(test)]
    pub fn forget(&self, uid: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builders::{BuildSettings, desired_state, fingerprint, test_support::ocr_service};

    #[test]
    fn fresh_only_for_the_same_state_within_the_age() {
        let settings = BuildSettings::default();
        let a = fingerprint(&desired_state(&ocr_service(json!({})), &settings).unwrap());
        let b = fingerprint(&desired_state(&ocr_service(json!({ "replicas": { "max": 4 } })), &settings).unwrap());
        assert_ne!(a, b, "an HPA bound change is a change to apply");
        let cache = AppliedCache::default();
        assert!(!cache.is_fresh("u", &a, Duration::from_secs(60)));
        cache.record("u", a.clone());
        assert!(cache.is_fresh("u", &a, Duration::from_secs(60)));
        assert!(!cache.is_fresh("u", &b, Duration::from_secs(60)));
        assert!(!cache.is_fresh("u", &a, Duration::ZERO), "too old: re-apply to revert drift");
        cache.forget("u");
        assert!(!cache.is_fresh("u", &a, Duration::from_secs(60)));
    }
}

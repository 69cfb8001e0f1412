//! Pods' counters at the end of the last analysis, per OcrService and track: the start of
//! the next window. Lost on restart; the first window after one is then the analysis
//! itself (its golden calls), which is shorter but still canary and stable side by side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::analysis::window::PodCounters;
use crate::names::Track;

/// (namespace, OcrService, track).
pub type ScrapeKey = (String, String, Track);

/// Shared by all reconciles; each OcrService's analyses take and put their own entries.
#[derive(Debug, Default)]
pub struct ScrapeMemory {
    last: Mutex<HashMap<ScrapeKey, BTreeMap<String, PodCounters>>>,
}

impl ScrapeMemory {
    /// The counters the last window ended with, removed (the next window puts its own).
    pub fn take(&self, key: &ScrapeKey) -> Option<BTreeMap<String, PodCounters>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    pub fn put(&self, key: ScrapeKey, counters: BTreeMap<String, PodCounters>) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(key, counters);
    }
}

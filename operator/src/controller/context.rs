//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube_ocr_crds::OcrService;

use super::applied::AppliedCache;
use super::cache::ChildCache;
use super::scrape_memory::ScrapeMemory;
use crate::builders::BuildSettings;
use crate::config::OperatorConfig;
use crate::telemetry::Metrics;

/// Shared by all reconciles of one controller run.
pub struct Context {
    pub client: kube::Client,
    pub config: OperatorConfig,
    pub settings: BuildSettings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// The operator's Deployments and the OcrServices' pods, as last watched.
    pub children: ChildCache,
    /// Where the last analysis window of each OcrService ended.
    pub scrapes: ScrapeMemory,
    /// What was applied recently, so unchanged states are not re-sent.
    pub applied: AppliedCache,
    /// Consecutive failures per OcrService, for the error backoff; cleared on success.
    failures: Mutex<HashMap<ObjectRef<OcrService>, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: OperatorConfig,
        metrics: Metrics,
        recorder: Recorder,
        children: ChildCache,
    ) -> Self {
        let settings = config.build_settings();
        Self {
            client,
            config,
            settings,
            metrics,
            recorder,
            children,
            scrapes: ScrapeMemory::default(),
            applied: AppliedCache::default(),
            failures: Mutex::default(),
        }
    }

    /// Counts one more failure and returns the count.
    pub fn failed(&self, object: ObjectRef<OcrService>) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(object).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    pub fn succeeded(&self, object: &ObjectRef<OcrService>) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(object);
    }
}

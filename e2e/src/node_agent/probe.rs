//! Probe bookkeeping: settings with the API defaults, and the kubelet's threshold rules
//! turning single probe results into a probe outcome and an effect on the container.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    /// Lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Readiness => "readiness",
            Self::Liveness => "liveness",
        }
    }
}

/// Timing and thresholds of one probe, defaults applied as the API server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Settings of `probe`: period 10 s, timeout 1 s, success 1, failure 3 unless set
    /// (values below 1 become 1). Startup and liveness probes always use success 1.
    pub fn of(kind: ProbeKind, probe: &Probe) -> Self {
        let at_least_one = |value: Option<i32>, default: i32| value.unwrap_or(default).max(1) as u32;
        let success_threshold = match kind {
            ProbeKind::Readiness => at_least_one(probe.success_threshold, 1),
            ProbeKind::Startup | ProbeKind::Liveness => 1,
        };
        Self {
            initial_delay: Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: Duration::from_secs(at_least_one(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(at_least_one(probe.timeout_seconds, 1).into()),
            success_threshold,
            failure_threshold: at_least_one(probe.failure_threshold, 3),
        }
    }
}

/// The outcome a probe settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Failure,
}

/// What a probe outcome does to its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeEffect {
    /// The startup probe passed: the container is started; readiness and liveness begin.
    Started,
    /// The readiness probe settled on ready / not ready.
    Ready(bool),
    /// Startup or liveness failed: kill the container and restart it per restartPolicy.
    Restart,
}

/// Consecutive results of one probe on one container run (a restart starts a new tracker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    kind: ProbeKind,
    settings: ProbeSettings,
    last: Option<bool>,
    run: u32,
    outcome: Option<ProbeOutcome>,
}

impl ProbeTracker {
    pub fn new(kind: ProbeKind, settings: ProbeSettings) -> Self {
        Self { kind, settings, last: None, run: 0, outcome: None }
    }

    /// Which probe this tracks.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The settled outcome so far (`None` until a threshold was reached).
    pub fn outcome(&self) -> Option<ProbeOutcome> {
        self.outcome
    }

    /// Records one probe result and returns the effect when the outcome changes: `n`
    /// successes in a row (successThreshold) make Success, `n` failures in a row
    /// (failureThreshold) make Failure; anything shorter keeps the previous outcome.
    pub fn record(&mut self, success: bool) -> Option<ProbeEffect> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success { self.settings.success_threshold } else { self.settings.failure_threshold };
        if self.run < threshold {
            return None;
        }
        let outcome = if success { ProbeOutcome::Success } else { ProbeOutcome::Failure };
        if self.outcome == Some(outcome) {
            return None;
        }
        self.outcome = Some(outcome);
        match (self.kind, outcome) {
            (ProbeKind::Startup, ProbeOutcome::Success) => Some(ProbeEffect::Started),
            (ProbeKind::Readiness, outcome) => Some(ProbeEffect::Ready(outcome == ProbeOutcome::Success)),
            (ProbeKind::Startup | ProbeKind::Liveness, ProbeOutcome::Failure) => Some(ProbeEffect::Restart),
            (ProbeKind::Liveness, ProbeOutcome::Success) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn api_defaults_apply() {
        let defaults = ProbeSettings::of(ProbeKind::Readiness, &Probe::default());
        assert_eq!(
            defaults,
            ProbeSettings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let probe = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(0),
            success_threshold: Some(3),
            failure_threshold: Some(7),
            ..Default::default()
        };
        let readiness = ProbeSettings::of(ProbeKind::Readiness, &probe);
        assert_eq!((readiness.initial_delay.as_secs(), readiness.period.as_secs()), (5, 2));
        assert_eq!((readiness.timeout.as_secs(), readiness.success_threshold, readiness.failure_threshold), (1, 3, 7));
        assert_eq!(ProbeSettings::of(ProbeKind::Liveness, &probe).success_threshold, 1);
    }

    #[test]
    fn readiness_needs_consecutive_successes_and_failures() {
        let mut tracker = ProbeTracker::new(ProbeKind::Readiness, settings(2, 3));
        assert_eq!(tracker.record(true), None);
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.record(true), None);
        assert_eq!(tracker.record(true), Some(ProbeEffect::Ready(true)));
        assert_eq!(tracker.record(true), None);
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.record(false), Some(ProbeEffect::Ready(false)));
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.outcome(), Some(ProbeOutcome::Failure));
    }

    #[test]
    fn liveness_restarts_after_failure_threshold_only() {
        let mut tracker = ProbeTracker::new(ProbeKind::Liveness, settings(1, 2));
        assert_eq!(tracker.record(true), None);
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.record(true), None);
        assert_eq!(tracker.record(false), None);
        assert_eq!(tracker.record(false), Some(ProbeEffect::Restart));
    }

    #[test]
    fn startup_starts_on_first_success_or_restarts() {
        let mut started = ProbeTracker::new(ProbeKind::Startup, settings(1, 3));
        assert_eq!(started.record(false), None);
        assert_eq!(started.record(true), Some(ProbeEffect::Started));
        let mut failed = ProbeTracker::new(ProbeKind::Startup, settings(1, 2));
        assert_eq!(failed.record(false), None);
        assert_eq!(failed.record(false), Some(ProbeEffect::Restart));
    }
}

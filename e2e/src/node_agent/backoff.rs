//! Restart decisions and the crash-loop back-off, as the kubelet does them.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;

/// A pod's `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy (`Always` when unset, as the API server defaults it).
    pub fn of(spec: &PodSpec) -> Self {
        match spec.restart_policy.as_deref() {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a main container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }

    /// Whether an init container that exited with `exit_code` is started again: init
    /// containers run to completion, so `Always` behaves like `OnFailure`.
    pub fn restarts_init(self, exit_code: i32) -> bool {
        exit_code != 0 && self != Self::Never
    }
}

/// The crash-loop back-off: `initial`, doubled after every restart, at most `max`; it
/// starts over when the container ran for `reset_after` without exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// The kubelet's values: 10 s doubling to 5 min, reset after 10 min of running.
    fn default() -> Self {
        Self { initial: Duration::from_secs(10), max: Duration::from_secs(300), reset_after: Duration::from_secs(600) }
    }
}

impl Backoff {
    /// The wait before the next start, after `consecutive_crashes` (≥ 1) exits in a row.
    pub fn delay(&self, consecutive_crashes: u32) -> Duration {
        let doublings = consecutive_crashes.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The consecutive crash count after a run that lasted `ran_for`.
    pub fn next_crash_count(&self, previous: u32, ran_for: Duration) -> u32 {
        if ran_for >= self.reset_after { 1 } else { previous + 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::Always.restarts(0) && RestartPolicy::Always.restarts(1));
        assert!(!RestartPolicy::OnFailure.restarts(0) && RestartPolicy::OnFailure.restarts(2));
        assert!(!RestartPolicy::Never.restarts(0) && !RestartPolicy::Never.restarts(1));
        assert!(!RestartPolicy::Always.restarts_init(0) && RestartPolicy::Always.restarts_init(1));
        assert!(!RestartPolicy::Never.restarts_init(1));
        let spec = PodSpec { restart_policy: Some("OnFailure".into()), ..Default::default() };
        assert_eq!(RestartPolicy::of(&spec), RestartPolicy::OnFailure);
        assert_eq!(RestartPolicy::of(&PodSpec::default()), RestartPolicy::Always);
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let backoff = Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(1000).as_secs(), 300);
        assert_eq!(backoff.delay(0).as_secs(), 10);
    }

    #[test]
    fn a_long_run_resets_the_count() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next_crash_count(4, Duration::from_secs(5)), 5);
        assert_eq!(backoff.next_crash_count(4, Duration::from_secs(601)), 1);
    }
}

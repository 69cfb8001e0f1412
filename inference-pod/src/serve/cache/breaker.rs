//! When to stop asking a shared cache that is failing. A Redis that is down or stalled
//! must not cost every request its timeout: after a few failures in a row the cache is
//! skipped for a backoff that doubles while it keeps failing, and one request probes it
//! when the backoff ends.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerPolicy {
    /// Failures in a row that open the breaker.
    pub failures_to_open: u32,
    /// First skip period; it doubles with each failed probe.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failures_to_open: 3, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are skipped until the instant; then one probe goes through, and the next
    /// one a backoff later if it has not reported (a probe whose caller went away never
    /// does).
    Open { until: Instant },
}

/// What a recorded outcome changed, for logging once rather than per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Opened { backoff: Duration },
    Closed,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    failures_in_a_row: u32,
    backoff: Duration,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: BreakerState::Closed, failures_in_a_row: 0, backoff: policy.initial_backoff }
    }

    /// Whether a call may go to the cache now. The first call after the backoff becomes
    /// the probe.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::Open { until: now + self.backoff };
                true
            }
            BreakerState::Open { .. } => false,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == BreakerState::Closed
    }

    pub(crate) fn record_success(&mut self) -> Transition {
        self.failures_in_a_row = 0;
        self.backoff = self.policy.initial_backoff;
        let was_closed = self.is_closed();
        self.state = BreakerState::Closed;
        if was_closed { Transition::None } else { Transition::Closed }
    }

    pub(crate) fn record_failure(&mut self, now: Instant) -> Transition {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        match self.state {
            BreakerState::Closed if self.failures_in_a_row >= self.policy.failures_to_open => {
                self.state = BreakerState::Open { until: now + self.backoff };
                Transition::Opened { backoff: self.backoff }
            }
            BreakerState::Closed => Transition::None,
            BreakerState::Open { .. } => {
                // The probe failed (or a call from before the breaker opened did): wait longer.
                self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
                self.state = BreakerState::Open { until: now + self.backoff };
                Transition::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn breaker() -> Breaker {
        Breaker::new(BreakerPolicy { failures_to_open: 3, initial_backoff: SECOND, max_backoff: 4 * SECOND })
    }

    #[test]
    fn opens_after_failures_in_a_row_only() {
        let now = Instant::now();
        let mut breaker = breaker();
        breaker.record_failure(now);
        breaker.record_failure(now);
        breaker.record_success();
        breaker.record_failure(now);
        breaker.record_failure(now);
        assert!(breaker.allow(now), "a success in between resets the count");
        assert_eq!(breaker.record_failure(now), Transition::Opened { backoff: SECOND });
        assert!(!breaker.allow(now));
        assert!(!breaker.allow(now + SECOND / 2));
    }

    #[test]
    fn one_probe_after_the_backoff_and_it_decides() {
        let now = Instant::now();
        let mut breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure(now);
        }
        assert!(breaker.allow(now + SECOND), "the probe");
        assert!(!breaker.allow(now + SECOND), "only one probe at a time");
        assert!(breaker.allow(now + 2 * SECOND), "a probe that never reported is replaced a backoff later");
        assert_eq!(breaker.record_success(), Transition::Closed);
        assert!(breaker.allow(now + SECOND) && breaker.is_closed());
    }

    #[test]
    fn failed_probes_double_the_backoff_up_to_its_cap() {
        let start = Instant::now();
        let mut breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure(start);
        }
        let mut now = start;
        for expected in [2, 4, 4] {
            now += breaker.backoff;
            assert!(breaker.allow(now));
            breaker.record_failure(now);
            assert_eq!(breaker.backoff, expected * SECOND);
            assert!(!breaker.allow(now + breaker.backoff - Duration::from_millis(1)));
        }
        now += breaker.backoff;
        assert!(breaker.allow(now));
        breaker.record_success();
        assert_eq!(breaker.backoff, SECOND, "a success starts over");
    }
}

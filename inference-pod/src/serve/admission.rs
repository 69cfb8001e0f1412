//! Deadline-aware admission: refuse at once a request whose deadline the server cannot
//! meet, instead of queueing it until it expires.
//!
//! The estimate is Little's law over the whole pipeline. Each admitted request carries an
//! expected *cost*: the model time its items took in recent requests of the same task
//! (each item's share of its batch's compute, summed over stages). The server drains cost
//! at a *rate* measured while it is busy (cost completed per wall second), which folds in
//! whatever the stages' overlap, batching and CPU contention do. A new request then expects
//! to finish after `(cost of everything admitted and unfinished + its own cost) / rate`.
//! A lone request on an idle server measures rate = cost / latency, so the estimate is its
//! own unloaded latency; under load the queued cost ahead dominates.
//!
//! Pure: time comes in as arguments, so the tests drive it without sleeping.

use std::time::{Duration, Instant};

/// A class's cost is the median of this many recent requests: robust to the outliers that
/// first calls per input shape produce (TorchScript specialises on new shapes, taking up
/// to seconds), and quick to follow a change of traffic.
const COST_SAMPLES: usize = 15;
/// How much a new sample moves the rate average: smooth enough that one odd window does
/// not swing admission.
const RATE_WEIGHT: f64 = 0.3;
/// A busy window is sampled once it has lasted this long and seen
/// [`WINDOW_COMPLETIONS`] requests finish, or when the server goes idle. Completions are
/// lumpy: a 250 ms window that happens to hold one finished page (0.8 model seconds) reads
/// 3.2 model seconds per second, twice what the server drains, and admitting a burst on
/// such a sample sends requests into a queue they cannot leave in time (measured in
/// `make bench-inference`'s overload figure).
const RATE_WINDOW: Duration = Duration::from_millis(500);
const WINDOW_COMPLETIONS: usize = 4;
/// Admit only when the estimate fits in this share of the time left: the estimate is an
/// average, and a request refused at once costs the caller less than one that expires
/// after waiting.
const DEADLINE_SHARE: f64 = 0.85;

/// The kinds of request whose costs are tracked apart (a page costs far more than a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CostClass {
    Line,
    Document,
}

/// Why a request was refused before it was queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum AdmissionRefusal {
    /// Even on an idle server this request takes longer than its deadline allows.
    #[error(
        "the deadline leaves {left_ms} ms, and this request takes about {service_ms} ms even on an idle server; \
         raise the deadline"
    )]
    DeadlineTooShort { left_ms: u64, service_ms: u64 },
    /// The work already admitted would make this request miss its deadline.
    #[error(
        "the server is busy: this request would finish in about {expected_ms} ms and the deadline leaves {left_ms} ms; \
         retry in {retry_after_ms} ms or add replicas"
    )]
    Busy { expected_ms: u64, left_ms: u64, retry_after_ms: u64 },
}

impl AdmissionRefusal {
    /// When a retry could be admitted, for RetryInfo / Retry-After; `None` when a retry
    /// with the same deadline cannot help.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after_ms, .. } => Some(Duration::from_millis(*retry_after_ms)),
            Self::DeadlineTooShort { .. } => None,
        }
    }
}

/// One admitted request's claim on the estimate; handed back to [`Admission::finish`] or
/// [`Admission::abandon`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ticket {
    class: CostClass,
    /// The cost added to the outstanding total at admission (removed again at the end).
    expected_cost: f64,
}

/// The median of the last [`COST_SAMPLES`] samples.
#[derive(Debug, Clone, Default, PartialEq)]
struct RecentMedian {
    samples: std::collections::VecDeque<f64>,
}

impl RecentMedian {
    fn add(&mut self, sample: f64) {
        if self.samples.len() == COST_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    fn value(&self) -> Option<f64> {
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }
}

/// An exponentially weighted moving average that starts at its first sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Average {
    value: Option<f64>,
}

impl Average {
    fn add(&mut self, sample: f64, weight: f64) {
        self.value = Some(match self.value {
            Some(value) => value + weight * (sample - value),
            None => sample,
        });
    }
}

/// The estimator's state. Not thread-safe on its own: the engine holds it in a mutex and
/// each call is a few arithmetic operations.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Expected model seconds per request, by class.
    line_cost: RecentMedian,
    document_cost: RecentMedian,
    /// Model seconds completed per wall second while busy.
    rate: Average,
    /// Sum of the expected costs of admitted, unfinished requests.
    outstanding_cost: f64,
    in_flight: usize,
    /// The busy period being measured.
    window: Option<BusyWindow>,
}

/// Part of a busy period: when it started, the model time and the requests finished since.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BusyWindow {
    started: Instant,
    done: f64,
    completions: usize,
}

impl BusyWindow {
    fn starting(at: Instant) -> Self {
        Self { started: at, done: 0.0, completions: 0 }
    }
}

impl Admission {
    fn cost(&self, class: CostClass) -> Option<f64> {
        match class {
            CostClass::Line => self.line_cost.value(),
            CostClass::Document => self.document_cost.value(),
        }
    }

    /// The expected time from now until a new request of `class` finishes; `None` until
    /// the server has measured requests of that class (the bounded queue still applies).
    pub(crate) fn expected_latency(&self, class: CostClass) -> Option<Duration> {
        let cost = self.cost(class)?;
        let rate = self.rate()?;
        Some(Duration::from_secs_f64((self.outstanding_cost + cost) / rate))
    }

    /// The drain rate to plan with: the average over busy windows. It is not the best
    /// recent window: planning with the luckiest sample admits bursts that then expire in
    /// the queue. A rate measured under a passing squeeze (start-up, a noisy neighbour)
    /// cannot starve the server either: an idle server admits whatever fits the service
    /// time, and each window it then measures moves the average back.
    fn rate(&self) -> Option<f64> {
        self.rate.value.filter(|rate| *rate > 0.0)
    }

    /// Admits a request due by `deadline`, or says why not.
    ///
    /// An idle server refuses only a deadline shorter than the request's own service time:
    /// with nothing ahead there is no queue to wait in, and an admitted request refreshes
    /// an estimate that may be stale (measured under a load that has gone).
    pub(crate) fn admit(
        &mut self,
        class: CostClass,
        now: Instant,
        deadline: Instant,
    ) -> Result<Ticket, AdmissionRefusal> {
        let cost = self.cost(class);
        if let (Some(cost), Some(rate)) = (cost, self.rate()) {
            let left = deadline.saturating_duration_since(now).as_secs_f64();
            let budget = left * DEADLINE_SHARE;
            let service = cost / rate;
            let expected = (self.outstanding_cost + cost) / rate;
            let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
            if service > budget {
                return Err(AdmissionRefusal::DeadlineTooShort { left_ms: ms(left), service_ms: ms(service) });
            }
            if expected > budget && self.in_flight > 0 {
                return Err(AdmissionRefusal::Busy {
                    expected_ms: ms(expected),
                    left_ms: ms(left),
                    retry_after_ms: ms(expected - budget).max(1),
                });
            }
        }
        Ok(self.admit_unchecked(class, now))
    }

    /// Admits a request without consulting the estimate (it still counts as work ahead).
    pub(crate) fn admit_unchecked(&mut self, class: CostClass, now: Instant) -> Ticket {
        let expected_cost = self.cost(class).unwrap_or(0.0);
        if self.in_flight == 0 {
            self.window = Some(BusyWindow::starting(now));
        }
        self.in_flight += 1;
        self.outstanding_cost += expected_cost;
        Ticket { class, expected_cost }
    }

    /// A request finished having used `cost` model time: learns its class's cost and the
    /// rate the server drained work at.
    pub(crate) fn finish(&mut self, ticket: Ticket, cost: Duration, now: Instant) {
        let cost = cost.as_secs_f64();
        match ticket.class {
            CostClass::Line => self.line_cost.add(cost),
            CostClass::Document => self.document_cost.add(cost),
        }
        if let Some(window) = self.window.as_mut() {
            window.done += cost;
            window.completions += 1;
        }
        self.release(ticket, now);
    }

    /// A request ended without a measurement (failed, refused later, or its caller left).
    pub(crate) fn abandon(&mut self, ticket: Ticket, now: Instant) {
        self.release(ticket, now);
    }

    fn release(&mut self, ticket: Ticket, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.outstanding_cost =
            if self.in_flight == 0 { 0.0 } else { (self.outstanding_cost - ticket.expected_cost).max(0.0) };
        let Some(window) = self.window else { return };
        let elapsed = now.saturating_duration_since(window.started);
        let long_enough = elapsed >= RATE_WINDOW && window.completions >= WINDOW_COMPLETIONS;
        if (long_enough || self.in_flight == 0) && !elapsed.is_zero() && window.done > 0.0 {
            self.rate.add(window.done / elapsed.as_secs_f64(), RATE_WEIGHT);
            self.window = (self.in_flight > 0).then_some(BusyWindow::starting(now));
        } else if self.in_flight == 0 {
            self.window = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// An admission that has seen one lone DOCUMENT request: 400 ms of model time in a
    /// 500 ms request, so it drains 0.8 model seconds per second.
    fn warmed(start: Instant) -> Admission {
        let mut admission = Admission::default();
        let ticket = admission.admit(CostClass::Document, start, start + ms(20_000)).unwrap();
        admission.finish(ticket, ms(400), start + ms(500));
        admission
    }

    #[test]
    fn a_cold_server_admits_and_has_no_estimate() {
        let now = Instant::now();
        let mut admission = Admission::default();
        assert_eq!(admission.expected_latency(CostClass::Document), None);
        assert!(admission.admit(CostClass::Document, now, now + ms(1)).is_ok());
    }

    #[test]
    fn an_idle_server_expects_a_requests_unloaded_latency() {
        let start = Instant::now();
        let admission = warmed(start);
        assert_eq!(admission.expected_latency(CostClass::Document), Some(ms(500)));
        assert_eq!(admission.expected_latency(CostClass::Line), None, "lines are not measured yet");
    }

    #[test]
    fn queued_work_ahead_adds_to_the_expected_latency() {
        let start = Instant::now();
        let mut admission = warmed(start);
        let now = start + ms(1_000);
        for _ in 0..3 {
            admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap();
        }
        // Three requests of 0.4 s ahead plus its own, at 0.8 model seconds per second.
        assert_eq!(admission.expected_latency(CostClass::Document), Some(ms(2_000)));
    }

    #[test]
    fn a_request_that_cannot_make_its_deadline_behind_the_queue_is_refused_with_a_retry_hint() {
        let start = Instant::now();
        let mut admission = warmed(start);
        let now = start + ms(1_000);
        let deadline = now + ms(1_500);
        // 0.5 s each: the first two fit in 85 % of 1.5 s, the third would finish at 1.5 s.
        admission.admit(CostClass::Document, now, deadline).unwrap();
        admission.admit(CostClass::Document, now, deadline).unwrap();
        let refusal = admission.admit(CostClass::Document, now, deadline).unwrap_err();
        let AdmissionRefusal::Busy { expected_ms, left_ms, retry_after_ms } = refusal.clone() else {
            panic!("expected Busy, got {refusal:?}");
        };
        assert_eq!((expected_ms, left_ms), (1_500, 1_500));
        assert_eq!(retry_after_ms, 225, "1.5 s expected minus the 1.275 s budget");
        assert_eq!(refusal.retry_after(), Some(ms(225)));
        assert!(refusal.to_string().contains("retry in 225 ms"), "{refusal}");
    }

    #[test]
    fn a_deadline_shorter_than_the_service_time_is_refused_without_a_retry_hint() {
        let start = Instant::now();
        let mut admission = warmed(start);
        let now = start + ms(1_000);
        let refusal = admission.admit(CostClass::Document, now, now + ms(300)).unwrap_err();
        assert_eq!(refusal, AdmissionRefusal::DeadlineTooShort { left_ms: 300, service_ms: 500 });
        assert_eq!(refusal.retry_after(), None);
    }

    #[test]
    fn finished_and_abandoned_requests_free_their_share() {
        let start = Instant::now();
        let mut admission = warmed(start);
        let now = start + ms(1_000);
        let first = admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap();
        let second = admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap();
        admission.abandon(first, now + ms(10));
        assert_eq!(admission.expected_latency(CostClass::Document), Some(ms(1_000)));
        admission.finish(second, ms(400), now + ms(500));
        assert_eq!(admission.expected_latency(CostClass::Document), Some(ms(500)));
    }

    #[test]
    fn the_rate_follows_what_the_server_drains_under_load() {
        let start = Instant::now();
        let mut admission = warmed(start);
        // Four requests admitted together finish within 1 s of each other: batching and
        // overlap drain 1.6 model seconds per wall second, twice the idle rate.
        let now = start + ms(1_000);
        let tickets: Vec<_> =
            (0..4).map(|_| admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap()).collect();
        for (i, ticket) in tickets.into_iter().enumerate() {
            admission.finish(ticket, ms(400), now + ms(250 * (i as u64 + 1)));
        }
        let latency = admission.expected_latency(CostClass::Document).unwrap();
        assert!(latency < ms(500), "a faster measured rate shortens the estimate: {latency:?}");
    }

    #[test]
    fn an_idle_server_admits_whatever_a_stale_estimate_says_unless_the_deadline_is_too_short() {
        let start = Instant::now();
        let mut admission = warmed(start);
        // Measured while squeezed: 400 ms of model time took 4 s (the rate falls to 0.59).
        let now = start + ms(1_000);
        let ticket = admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap();
        admission.finish(ticket, ms(400), now + ms(4_000));
        let later = now + ms(10_000);
        assert!(admission.admit(CostClass::Document, later, later + ms(1_000)).is_ok(), "nothing is ahead of it");
        let refusal = admission.admit(CostClass::Document, later, later + ms(1_000)).unwrap_err();
        assert!(matches!(refusal, AdmissionRefusal::Busy { .. }), "{refusal:?}");
    }

    #[test]
    fn one_lumpy_completion_does_not_make_the_server_look_faster() {
        let start = Instant::now();
        let mut admission = warmed(start); // 0.8 model seconds per second
        let now = start + ms(1_000);
        let tickets: Vec<_> =
            (0..5).map(|_| admission.admit(CostClass::Document, now, now + ms(20_000)).unwrap()).collect();
        let mut tickets = tickets.into_iter();
        // The first of five finishes 300 ms in: 0.4 model seconds in 0.3 s reads as 1.33
        // per second, but one completion says little about what the queue drains.
        admission.finish(tickets.next().unwrap(), ms(400), now + ms(300));
        assert_eq!(
            admission.expected_latency(CostClass::Document),
            Some(ms(2_500)),
            "four requests of 0.4 s ahead plus its own, still at 0.8 per second"
        );
        // Four completions over at least the window are a sample: 1.6 model seconds in 1.6 s.
        let mut at = now + ms(300);
        for ticket in tickets.by_ref().take(3) {
            at += ms(433);
            admission.finish(ticket, ms(400), at);
        }
        let rate_then = 1.6 / (at - now).as_secs_f64();
        let expected_rate = 0.8 + RATE_WEIGHT * (rate_then - 0.8);
        let latency = admission.expected_latency(CostClass::Document).unwrap().as_secs_f64();
        assert!((latency - 0.8 / expected_rate).abs() < 1e-3, "{latency} s");
    }

    #[test]
    fn the_rate_moves_window_by_window_after_a_squeeze_and_back() {
        let start = Instant::now();
        let mut admission = warmed(start); // 0.8
        let lone = |admission: &mut Admission, at: Instant, took: u64| {
            let ticket = admission.admit(CostClass::Document, at, at + ms(20_000)).unwrap();
            admission.finish(ticket, ms(400), at + ms(took));
            admission.expected_latency(CostClass::Document).unwrap()
        };
        let mut at = start + ms(1_000);
        let squeezed = lone(&mut admission, at, 4_000); // a 0.1 sample
        assert!(squeezed > ms(500) && squeezed < ms(4_000), "the average moved part of the way: {squeezed:?}");
        let mut previous = squeezed;
        for _ in 0..6 {
            at += ms(5_000);
            let now = lone(&mut admission, at, 500); // 0.8 samples again
            assert!(now < previous, "each window at the old speed brings it back: {now:?} after {previous:?}");
            previous = now;
        }
        assert!(previous < ms(560), "{previous:?}");
    }

    #[test]
    fn a_slow_first_call_does_not_set_the_cost() {
        let mut start = Instant::now();
        let mut admission = Admission::default();
        // The first read of a new shape takes 1.6 s; the next ones 40 ms.
        for cost in [1_600, 40, 40] {
            let ticket = admission.admit(CostClass::Line, start, start + ms(20_000)).unwrap();
            admission.finish(ticket, ms(cost), start + ms(cost));
            start += ms(10_000);
        }
        let latency = admission.expected_latency(CostClass::Line).unwrap();
        assert!(latency <= ms(45), "{latency:?}");
    }

    #[test]
    fn classes_keep_their_own_costs() {
        let start = Instant::now();
        let mut admission = warmed(start);
        let now = start + ms(1_000);
        let line = admission.admit(CostClass::Line, now, now + ms(20_000)).unwrap();
        admission.finish(line, ms(20), now + ms(25));
        let line_latency = admission.expected_latency(CostClass::Line).unwrap();
        let document_latency = admission.expected_latency(CostClass::Document).unwrap();
        assert!(line_latency * 10 < document_latency, "{line_latency:?} vs {document_latency:?}");
    }
}

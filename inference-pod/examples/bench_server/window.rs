//! When a closed loop counts: a window that opens once every caller has had an answer
//! (the ramp-up, when batches first form and new shapes first run, is left out) and
//! closes at the first answer by which it has lasted its length *and* counted its minimum
//! (so a slow task still gets a whole pass over its images into the rate), or at the
//! latest after four lengths.

use std::time::{Duration, Instant};

/// A window closes after this many times its length even short of its count, so a run
/// whose calls keep failing still ends.
const LONGEST: u32 = 4;

#[derive(Debug, Clone)]
pub struct Window {
    ramp: usize,
    min_length: Duration,
    min_count: usize,
    finished: usize,
    counted: usize,
    start: Option<Instant>,
    end: Option<Instant>,
}

impl Window {
    /// Opens after `ramp` finished calls; closes once `min_length` and `min_count` are both reached.
    pub fn after_ramp(ramp: usize, min_length: Duration, min_count: usize) -> Self {
        Self { ramp, min_length, min_count, finished: 0, counted: 0, start: None, end: None }
    }

    /// Open from `start`, never closing: every answer counts.
    pub fn everything(start: Instant) -> Self {
        Self {
            ramp: 0,
            min_length: Duration::MAX,
            min_count: usize::MAX,
            finished: 0,
            counted: 0,
            start: Some(start),
            end: None,
        }
    }

    /// Records a call that finished at `at`; true when it counts as a completion.
    pub fn finish(&mut self, at: Instant, answered: bool) -> bool {
        self.finished += 1;
        let Some(start) = self.start else {
            if self.finished >= self.ramp {
                self.start = Some(at);
            }
            return false;
        };
        if self.end.is_some() {
            return false;
        }
        self.counted += usize::from(answered);
        let lasted = at.saturating_duration_since(start);
        let enough = lasted >= self.min_length && self.counted >= self.min_count;
        if enough || lasted >= self.min_length.saturating_mul(LONGEST) {
            self.end = Some(at);
        }
        answered
    }

    pub fn closed(&self) -> bool {
        self.end.is_some()
    }

    /// From opening to closing, or to `now` while open; zero before it opened.
    pub fn length(&self, now: Instant) -> Duration {
        match self.start {
            Some(start) => self.end.unwrap_or(now).saturating_duration_since(start),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_is_left_out_and_the_window_closes_on_length_and_count_together() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut window = Window::after_ramp(2, Duration::from_millis(100), 3);
        assert!(!window.finish(at(10), true), "ramp");
        assert!(!window.finish(at(20), true), "the ramp's last call opens the window");
        assert!(window.finish(at(50), true));
        assert!(!window.finish(at(60), false), "failed calls are not completions");
        assert!(window.finish(at(130), true), "long enough, but only 2 counted");
        assert!(!window.closed());
        assert!(window.finish(at(140), true), "the third closes it");
        assert!(window.closed());
        assert!(!window.finish(at(150), true), "after the close nothing counts");
        assert_eq!(window.length(at(999)), Duration::from_millis(120));
    }

    #[test]
    fn a_window_short_of_its_count_still_closes_after_four_lengths() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut window = Window::after_ramp(1, Duration::from_millis(100), 1000);
        window.finish(at(0), true);
        assert!(!window.finish(at(399), false));
        assert!(!window.closed());
        assert!(!window.finish(at(400), false), "a failed call closes it but does not count");
        assert!(window.closed());
    }

    #[test]
    fn a_window_over_everything_counts_every_answer_and_stays_open() {
        let t0 = Instant::now();
        let mut window = Window::everything(t0);
        assert!(window.finish(t0 + Duration::from_millis(1), true));
        assert!(!window.closed());
        assert_eq!(window.length(t0 + Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(Window::after_ramp(5, Duration::ZERO, 0).length(t0), Duration::ZERO);
    }
}

//! Open-loop arrival times: a Poisson process (exponential gaps) from a fixed seed, so
//! every run offers the same calls at the same moments.

use std::time::Duration;

/// SplitMix64: a small, fixed pseudo-random sequence (no dependency for one generator).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// Arrival times (from the start) of a Poisson process of `rate` per second over
/// `duration`: exponential gaps, the same for the same seed.
pub fn poisson_arrivals(rate: f64, duration: Duration, seed: u64) -> Vec<Duration> {
    let mut random = SplitMix64(seed);
    let mut arrivals = Vec::new();
    // Not a positive rate (zero, negative or NaN): no arrivals.
    if rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return arrivals;
    }
    let mut at = 0.0;
    loop {
        at += -random.next_unit().ln() / rate;
        if at >= duration.as_secs_f64() {
            return arrivals;
        }
        arrivals.push(Duration::from_secs_f64(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_come_at_the_rate_asked_in_order_and_repeat_per_seed() {
        let arrivals = poisson_arrivals(100.0, Duration::from_secs(20), 7);
        // 2000 expected; the standard deviation is about 45.
        assert!((1850..=2150).contains(&arrivals.len()), "{}", arrivals.len());
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        assert!(arrivals.iter().all(|a| *a < Duration::from_secs(20)));
        assert_eq!(arrivals, poisson_arrivals(100.0, Duration::from_secs(20), 7));
        assert_ne!(arrivals, poisson_arrivals(100.0, Duration::from_secs(20), 8));
        assert!(poisson_arrivals(0.0, Duration::from_secs(20), 7).is_empty());
    }

    #[test]
    fn poisson_gaps_vary_like_an_exponential_not_a_fixed_rate() {
        let arrivals = poisson_arrivals(10.0, Duration::from_secs(200), 1);
        let gaps: Vec<f64> = arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        // An exponential's standard deviation equals its mean (0.1 s here).
        assert!((0.09..0.11).contains(&mean), "{mean}");
        assert!((0.08..0.12).contains(&sd), "{sd}");
    }
}

//! Choosing a batch size from measured throughput. On a 2-core CPU a recogniser batch of
//! 8 mixed-width lines reads fewer lines per second than one line at a time, on a GPU the
//! opposite: so the size is measured per device at start-up, not assumed. Pure: the
//! measuring is `Recognizer::measure_batch_throughput`.

/// A larger batch must read this much faster (relative) than a smaller one to be chosen:
/// below it the difference is measurement noise, and the smaller batch has the lower
/// latency.
pub const BATCH_TIE_TOLERANCE: f64 = 0.02;

/// The batch size with the highest throughput from `(batch size, items per second)`
/// measurements; ties (within [`BATCH_TIE_TOLERANCE`]) go to the smaller size. Sizes of 0
/// and throughputs that are not positive finite numbers are ignored; with no usable
/// measurement the answer is 1 (no batching).
pub fn best_batch_size(measurements: &[(usize, f64)]) -> usize {
    let mut usable: Vec<(usize, f64)> =
        measurements.iter().copied().filter(|&(size, rate)| size > 0 && rate.is_finite() && rate > 0.0).collect();
    usable.sort_by_key(|&(size, _)| size);
    let mut best: Option<(usize, f64)> = None;
    for (size, rate) in usable {
        match best {
            Some((_, best_rate)) if rate <= best_rate * (1.0 + BATCH_TIE_TOLERANCE) => {}
            _ => best = Some((size, rate)),
        }
    }
    best.map_or(1, |(size, _)| size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_batch_size_wins() {
        // This CPU: batch 1 reads more lines per second than batch 8.
        assert_eq!(best_batch_size(&[(1, 38.5), (4, 30.0), (8, 23.5)]), 1);
        // A GPU: throughput grows with the batch.
        assert_eq!(best_batch_size(&[(1, 300.0), (8, 1900.0), (16, 2600.0), (32, 2500.0)]), 16);
    }

    #[test]
    fn ties_go_to_the_smaller_batch() {
        assert_eq!(best_batch_size(&[(8, 40.0), (1, 40.0)]), 1);
        // Within the tolerance counts as a tie...
        assert_eq!(best_batch_size(&[(1, 40.0), (2, 40.0 * (1.0 + BATCH_TIE_TOLERANCE / 2.0))]), 1);
        // ...beyond it does not.
        assert_eq!(best_batch_size(&[(1, 40.0), (2, 40.0 * (1.0 + BATCH_TIE_TOLERANCE * 2.0))]), 2);
    }

    #[test]
    fn order_of_measurements_does_not_matter() {
        let measured = [(16, 10.0), (2, 30.0), (4, 29.9), (1, 12.0)];
        let mut reversed = measured;
        reversed.reverse();
        assert_eq!(best_batch_size(&measured), 2);
        assert_eq!(best_batch_size(&reversed), 2);
    }

    #[test]
    fn nothing_usable_means_no_batching() {
        assert_eq!(best_batch_size(&[]), 1);
        assert_eq!(best_batch_size(&[(0, 100.0), (4, f64::NAN), (8, 0.0), (2, f64::INFINITY)]), 1);
        assert_eq!(best_batch_size(&[(0, 100.0), (4, 5.0)]), 4);
    }
}

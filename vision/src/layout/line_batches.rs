//! Which line crops share a recogniser forward pass.
//!
//! Every crop in a batch is padded to the batch's widest, and padding costs compute (and
//! slightly changes what the model sees), so crops are sorted by width and a batch is
//! closed before its width would grow past `MAX_PADDING_GROWTH` of its narrowest member.
//! Crops narrower than the model's default width are all padded to that default anyway,
//! so they batch together freely.

/// A batch may be at most this much wider than its narrowest (already padded) member.
pub(crate) const MAX_PADDING_GROWTH: f64 = 1.25;

/// Groups line indices into batches of at most `max_batch` whose padded widths stay close.
/// `widths` are the crops' widths after scaling to the model's input height.
pub fn plan_line_batches(widths: &[u32], default_width: u32, max_batch: usize) -> Vec<Vec<usize>> {
    let max_batch = max_batch.max(1);
    let padded = |i: usize| widths[i].max(default_width);
    let mut order: Vec<usize> = (0..widths.len()).collect();
    order.sort_by_key(|&i| (padded(i), i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for index in order {
        match batches.last_mut() {
            Some(batch)
                if batch.len() < max_batch
                    && f64::from(padded(index)) <= f64::from(padded(batch[0])) * MAX_PADDING_GROWTH =>
            {
                batch.push(index)
            }
            _ => batches.push(vec![index]),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_batch_together_up_to_the_limit() {
        let widths = [100, 320, 50, 200, 300, 10, 90];
        let batches = plan_line_batches(&widths, 320, 4);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), widths.len());
        assert!(batches.iter().all(|b| b.len() <= 4));
    }

    #[test]
    fn wide_lines_are_not_padded_far_beyond_their_width() {
        // 320 (default) .. 400 fit together; 1000 and 1200 together; 3000 alone.
        let widths = [1000, 330, 3000, 400, 1200, 100];
        let batches = plan_line_batches(&widths, 320, 16);
        assert_eq!(batches, vec![vec![5, 1, 3], vec![0, 4], vec![2]]);
        for batch in &batches {
            let widest = batch.iter().map(|&i| widths[i].max(320)).max().unwrap();
            let narrowest = batch.iter().map(|&i| widths[i].max(320)).min().unwrap();
            assert!(f64::from(widest) <= f64::from(narrowest) * MAX_PADDING_GROWTH);
        }
    }

    #[test]
    fn every_line_is_planned_exactly_once() {
        let widths: Vec<u32> = (0..100).map(|i| (i * 37 % 1500) + 1).collect();
        let mut seen: Vec<usize> = plan_line_batches(&widths, 320, 6).into_iter().flatten().collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(plan_line_batches(&[], 320, 6).is_empty());
        assert_eq!(plan_line_batches(&[5, 5], 320, 0), vec![vec![0], vec![1]]);
    }
}

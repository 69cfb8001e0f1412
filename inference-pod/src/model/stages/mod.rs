//! The model stages as batch processors: each owns one TorchScript module and turns a
//! batch of prepared inputs into per-item outputs. They run on the batcher's worker
//! thread, never on the async runtime.

mod classify;
mod detect;
mod recognize;

use std::sync::Arc;

pub use classify::{ClassifierInput, ClassifierStage};
pub use detect::DetectorStage;
pub use recognize::Recognizer;
pub use recognize::RecognizerStage;

use crate::model::error::ModelError;

/// Runs a model on a batch. Returns one result per input, in input order; items that
/// failed together (one forward pass) share its error.
pub trait BatchProcessor: Send + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    fn process(&mut self, inputs: Vec<Self::Input>) -> Vec<Result<Self::Output, Arc<Self::Error>>>;
}

/// Runs `run` once per group of input indices (the groups cover `0..count`, each index
/// once) and hands every item its group's output or error, in input order. A group that
/// gets a different number of outputs than it has items fails as a whole.
fn run_groups<O>(
    module: &str,
    count: usize,
    groups: impl IntoIterator<Item = Vec<usize>>,
    mut run: impl FnMut(&[usize]) -> Result<Vec<O>, ModelError>,
) -> Vec<Result<O, Arc<ModelError>>> {
    let mut results: Vec<Option<Result<O, Arc<ModelError>>>> = (0..count).map(|_| None).collect();
    for group in groups {
        let outputs = run(&group).and_then(|outputs| {
            if outputs.len() == group.len() {
                Ok(outputs)
            } else {
                Err(output_count_error(module, outputs.len(), group.len()))
            }
        });
        match outputs {
            Ok(outputs) => {
                for (&index, output) in group.iter().zip(outputs) {
                    results[index] = Some(Ok(output));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for &index in &group {
                    results[index] = Some(Err(error.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(Arc::new(output_count_error(module, 0, 1)))))
        .collect()
}

fn output_count_error(module: &str, outputs: usize, inputs: usize) -> ModelError {
    ModelError::ModelOutputShape { module: module.to_owned(), reason: format!("{outputs} outputs for {inputs} inputs") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_results_go_back_to_their_items_in_input_order() {
        let results = run_groups("test", 4, [vec![3, 0], vec![1, 2]], |group| {
            if group.contains(&1) {
                Err(output_count_error("test", 9, 9))
            } else {
                Ok(group.iter().map(|i| i * 10).collect())
            }
        });
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap(), &0);
        assert_eq!(results[3].as_ref().unwrap(), &30);
        assert!(Arc::ptr_eq(results[1].as_ref().unwrap_err(), results[2].as_ref().unwrap_err()), "one shared error");
    }

    #[test]
    fn a_group_with_too_few_outputs_fails_whole_and_uncovered_items_fail() {
        let results = run_groups("test", 3, [vec![0, 1]], |_| Ok(vec![7]));
        assert!(results.iter().all(Result::is_err));
        assert!(results[0].as_ref().unwrap_err().to_string().contains("1 outputs for 2 inputs"));
    }
}

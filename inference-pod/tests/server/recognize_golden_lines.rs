//! The exported recogniser, run through tch from Rust, reads the golden set's text lines.
//! This proves the whole chain: export → bundle → libtorch linking → pre/post-processing.

use crate::common;

use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Predictions, Task, default_set_dir, evaluate};
use kube_ocr_inference::model::{Bundle, ComputeDevice, ModelOptions, Recognizer};

fn clean_lines(set: &GoldenSet) -> GoldenSet {
    let items = set.items.iter().filter(|item| item.task == Task::Line && item.variant == "clean").cloned().collect();
    GoldenSet { root: set.root.clone(), items }
}

fn decode(set: &GoldenSet, index: usize) -> RgbImage {
    let bytes = set.image_bytes(&set.items[index]).unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[test]
fn clean_golden_lines_are_read_accurately_in_batches() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, ModelOptions::default()).unwrap();
    let set = clean_lines(&GoldenSet::load(default_set_dir()).unwrap());
    assert!(set.items.len() >= 16, "the golden set should have clean lines");
    let images: Vec<RgbImage> = (0..set.items.len()).map(|i| decode(&set, i)).collect();

    // Batches of 6 mix widths, so every batch is padded to its widest line.
    let mut predictions = Predictions::new();
    for (items, batch) in set.items.chunks(6).zip(images.chunks(6)) {
        for (item, line) in items.iter().zip(recognizer.recognize(batch).unwrap()) {
            predictions.insert(item.id.clone(), line.text);
        }
    }
    let report = evaluate(&set, &predictions);
    // onnxruntime's PP-OCRv4 recogniser reaches 0.99 on these (golden/README.md).
    assert!(
        report.overall.accuracy >= 0.95,
        "accuracy {:.3} on clean lines; worst: {:?}",
        report.overall.accuracy,
        report.worst_items(3).iter().map(|i| (&i.truth, &i.prediction)).collect::<Vec<_>>()
    );
}

/// The batch dimension must be truly dynamic in the export (no batch size baked into a
/// Reshape): a line reads the same alone as beside other lines padded to its own width.
/// (Padding a line to a *wider* batch may change what this model reads, which is why the
/// server sorts crops by width before batching.)
#[test]
fn the_batch_dimension_does_not_change_what_is_read() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, ModelOptions::default()).unwrap();
    let set = clean_lines(&GoldenSet::load(default_set_dir()).unwrap());
    let mut images: Vec<RgbImage> = (0..set.items.len()).map(|i| decode(&set, i)).collect();
    images.sort_by_key(|line| std::cmp::Reverse(line.width() * 1000 / line.height()));

    for batch_size in [1, 2, 5, 8] {
        // Widest first, so the batch width is the first line's own width.
        let batch = &images[..batch_size];
        let together = recognizer.recognize(batch).unwrap();
        let alone = recognizer.recognize(&batch[..1]).unwrap().remove(0);
        assert_eq!(together.len(), batch_size);
        assert_eq!(together[0].text, alone.text, "batch of {batch_size} changed the text");
        assert!((together[0].confidence - alone.confidence).abs() < 1e-4);
        assert!(alone.confidence > 0.5 && alone.confidence <= 1.0);
    }
}

#[test]
fn an_empty_batch_runs_nothing() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, ModelOptions::default()).unwrap();
    assert!(recognizer.recognize(&[]).unwrap().is_empty());
}

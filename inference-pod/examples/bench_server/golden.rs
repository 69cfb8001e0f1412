//! The golden images the benchmark sends: encoded bytes for the server and the in-process
//! path, decoded pixels for the raw recogniser loops.

use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Task};

/// One golden image.
#[derive(Debug)]
pub struct Sample {
    pub id: String,
    pub bytes: Vec<u8>,
    pub pixels: RgbImage,
}

/// Every golden image of `task`, all variants, in golden-set order.
pub fn samples(set: &GoldenSet, task: Task) -> anyhow::Result<Vec<Sample>> {
    set.items
        .iter()
        .filter(|item| item.task == task)
        .map(|item| {
            let bytes = set.image_bytes(item)?;
            let pixels = image::load_from_memory(&bytes)?.to_rgb8();
            Ok(Sample { id: item.id.clone(), bytes, pixels })
        })
        .collect()
}

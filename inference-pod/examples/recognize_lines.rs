//! Reads text-line images with a bundle's recogniser and prints what it read.
//! `cargo run -p kube-ocr-inference --example recognize_lines -- --bundle models/ppocr-v4 golden/data/lines/*-clean.png`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use kube_ocr_inference::model::{Bundle, DeviceRequest, ModelOptions, Recognizer, cuda_device_count, resolve_device};

#[derive(Parser)]
struct Args {
    /// Model bundle folder.
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, env = "OCR_DEVICE", default_value = "auto")]
    device: DeviceRequest,
    /// Images, each holding one text line.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = resolve_device(args.device, cuda_device_count())?;
    let bundle = Bundle::load(&args.bundle)?;
    let recognizer = Recognizer::load(&bundle, device, ModelOptions::default())?;
    println!("model {} {} on {device:?}", bundle.manifest.name, bundle.manifest.version);
    for path in &args.images {
        let image = image::open(path).with_context(|| format!("reading {}", path.display()))?.to_rgb8();
        let started = Instant::now();
        let line = recognizer.recognize(std::slice::from_ref(&image))?.remove(0);
        println!(
            "{:<40} {:>6.1} ms  conf {:.3}  {}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            started.elapsed().as_secs_f64() * 1e3,
            line.confidence,
            line.text
        );
    }
    Ok(())
}

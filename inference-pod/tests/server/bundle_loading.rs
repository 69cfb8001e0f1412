//! Loading the exported bundles, and refusing broken ones with a reason.

use crate::common;

use std::fs;

use kube_ocr_inference::model::{Bundle, ComputeDevice, ModelError, ModelOptions, Stage, TorchScriptModule};

#[test]
fn every_exported_bundle_loads_with_a_consistent_charset() {
    for (name, variant) in [("ppocr-v4", "standard"), ("ppocr-v4-degraded", "degraded"), ("ppocr-v4-slow", "slow")] {
        let bundle = Bundle::load(&common::bundle_dir(name)).unwrap();
        assert_eq!(bundle.manifest.variant, variant);
        assert_eq!(bundle.manifest.pipeline, [Stage::Detect, Stage::Classify, Stage::Recognize]);
        assert_eq!(bundle.classes.len(), bundle.manifest.params.recognizer.num_classes);
        // PP-OCRv4's Chinese charset holds thousands of symbols, digits and Latin letters.
        assert!(bundle.classes.len() > 6000);
        for symbol in ["0", "A", "z", "中", " "] {
            assert!(bundle.classes.iter().any(|c| c == symbol), "charset lacks {symbol:?}");
        }
    }
}

/// Copies the standard bundle's manifest and charset into a temp dir with empty model files.
fn bundle_copy() -> tempfile::TempDir {
    let source = common::bundle_dir("ppocr-v4");
    let dir = tempfile::tempdir().unwrap();
    for file in ["bundle.yaml", "charset.txt"] {
        fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    for file in ["det.pt", "cls.pt", "rec.pt"] {
        fs::write(dir.path().join(file), b"").unwrap();
    }
    dir
}

/// The content digest (part of the shared cache key) follows the files: one byte of one
/// model file changes it, loading again does not.
#[test]
fn the_content_digest_tells_bundles_apart_by_their_bytes() {
    let standard = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let degraded = Bundle::load(&common::bundle_dir("ppocr-v4-degraded")).unwrap();
    assert_ne!(standard.content_digest().unwrap(), degraded.content_digest().unwrap());
    assert_eq!(standard.content_digest().unwrap(), standard.content_digest().unwrap());
    let dir = bundle_copy();
    let copy = Bundle::load(dir.path()).unwrap();
    let before = copy.content_digest().unwrap();
    fs::write(dir.path().join("cls.pt"), b"one byte changed").unwrap();
    assert_ne!(copy.content_digest().unwrap(), before);
}

#[test]
fn a_charset_from_another_model_is_refused() {
    let dir = bundle_copy();
    let charset = fs::read_to_string(dir.path().join("charset.txt")).unwrap();
    let shorter: String = charset.lines().skip(10).map(|l| format!("{l}\n")).collect();
    fs::write(dir.path().join("charset.txt"), shorter).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::ValidateBundle { .. }), "{err}");
    assert!(err.to_string().contains("numClasses"), "{err}");
}

#[test]
fn a_missing_model_file_is_named() {
    let dir = bundle_copy();
    fs::remove_file(dir.path().join("cls.pt")).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("cls.pt") && err.contains("missing"), "{err}");
}

#[test]
fn a_missing_manifest_is_a_read_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bundle.yaml"), "{err}");
}

#[test]
fn a_corrupt_torchscript_file_is_an_error_not_a_crash() {
    let dir = bundle_copy();
    fs::write(dir.path().join("rec.pt"), b"PK\x03\x04 definitely not a zip archive").unwrap();
    let err =
        TorchScriptModule::load("recognizer", &dir.path().join("rec.pt"), ComputeDevice::Cpu, ModelOptions::default())
            .unwrap_err();
    assert!(matches!(err, ModelError::LoadTorchScript { .. }), "{err}");
}

/// Without `--no-as-needed` the linker drops libtorch_cuda.so and a GPU build never sees
/// its GPU (see build.rs). Checked on this very test executable, linked like the server.
#[cfg(libtorch_cuda_linked)]
#[test]
fn the_cuda_backend_stays_linked() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("ldd").arg(&exe).output().expect("ldd runs");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains("libtorch_cuda.so"), "ldd {}:\n{listing}", exe.display());
    assert!(!listing.contains("not found"), "unresolved libraries:\n{listing}");
}

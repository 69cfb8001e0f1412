//! How the modules run (`ModelOptions`): reduced precision and channels-last memory format
//! on the real exported bundle and golden inputs. Outputs must stay what fp32 / NCHW gives.

use crate::common;

use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Task, default_set_dir};
use kube_ocr_inference::model::{
    Bundle, ComputeDevice, ModelError, ModelOptions, Precision, Recognizer, TorchScriptModule, best_batch_size,
};
use kube_ocr_vision::input::{classifier_input, line_tensor_data, scaled_width};
use kube_ocr_vision::layout::prepare_document;

const FP32: ModelOptions = ModelOptions { precision: Precision::Fp32, channels_last: false };
const FP32_CHANNELS_LAST: ModelOptions = ModelOptions { precision: Precision::Fp32, channels_last: true };

fn golden_images(task: Task, count: usize) -> Vec<(String, RgbImage)> {
    let set = GoldenSet::load(default_set_dir()).unwrap();
    set.items
        .iter()
        .filter(|item| item.task == task && item.variant == "clean")
        .take(count)
        .map(|item| {
            let bytes = set.image_bytes(item).unwrap();
            (item.truth.text(), image::load_from_memory(&bytes).unwrap().to_rgb8())
        })
        .collect()
}

fn load(bundle: &Bundle, file: &std::path::Path, name: &str, options: ModelOptions) -> TorchScriptModule {
    TorchScriptModule::load(name, &bundle.path_of(file), ComputeDevice::Cpu, options).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Character error rate of `read` against `truth` (Levenshtein distance over characters).
fn cer(truth: &str, read: &str) -> f64 {
    let (t, r): (Vec<char>, Vec<char>) = (truth.chars().collect(), read.chars().collect());
    let mut row: Vec<usize> = (0..=r.len()).collect();
    for (i, tc) in t.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, rc) in r.iter().enumerate() {
            let substitution = diagonal + usize::from(tc != rc);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[r.len()] as f64 / t.len().max(1) as f64
}

#[test]
fn channels_last_gives_the_same_detector_map_on_a_golden_page() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let (_, page) = golden_images(Task::Document, 1).remove(0);
    let input = prepare_document(&page, &bundle.manifest.params).unwrap().detector_input;
    let shape = [3, i64::from(input.height), i64::from(input.width)];
    let file = &bundle.files.detector.file;
    let (nchw, nchw_shape) = load(&bundle, file, "detector", FP32).forward_stacked(&[&input.data], &shape).unwrap();
    let (nhwc, nhwc_shape) =
        load(&bundle, file, "detector", FP32_CHANNELS_LAST).forward_stacked(&[&input.data], &shape).unwrap();
    assert_eq!(nchw_shape, nhwc_shape);
    let diff = max_abs_diff(&nchw, &nhwc);
    assert!(diff <= 1e-4, "detector map differs by {diff} in channels-last");
}

#[test]
fn channels_last_gives_the_same_recognizer_and_classifier_outputs_on_a_golden_line() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let params = &bundle.manifest.params;
    let (_, line) = golden_images(Task::Line, 1).remove(0);

    let rec = &params.recognizer;
    let width = scaled_width(line.width(), line.height(), rec.input_height).max(rec.default_width);
    let data = line_tensor_data(&line, rec.input_height, width, &rec.normalization, params.color_order).unwrap();
    let shape = [3, i64::from(rec.input_height), i64::from(width)];
    let file = &bundle.files.recognizer.file;
    let (nchw, _) = load(&bundle, file, "recognizer", FP32).forward_stacked(&[&data], &shape).unwrap();
    let (nhwc, _) = load(&bundle, file, "recognizer", FP32_CHANNELS_LAST).forward_stacked(&[&data], &shape).unwrap();
    let diff = max_abs_diff(&nchw, &nhwc);
    assert!(diff <= 1e-4, "recogniser output differs by {diff} in channels-last");

    let cls = &params.classifier;
    let data = classifier_input(&line, cls, params.color_order).unwrap();
    let shape = cls.input_shape.map(i64::from);
    let file = &bundle.files.classifier.file;
    let (nchw, _) = load(&bundle, file, "classifier", FP32).forward_stacked(&[&data], &shape).unwrap();
    let (nhwc, _) = load(&bundle, file, "classifier", FP32_CHANNELS_LAST).forward_stacked(&[&data], &shape).unwrap();
    let diff = max_abs_diff(&nchw, &nhwc);
    assert!(diff <= 1e-4, "classifier output differs by {diff} in channels-last");
}

#[test]
fn bf16_on_cpu_reads_golden_lines_almost_as_fp32_does() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let lines = golden_images(Task::Line, 8);
    let crops: Vec<RgbImage> = lines.iter().map(|(_, crop)| crop.clone()).collect();

    // The weights really are bf16: the raw output moves, a little.
    let params = &bundle.manifest.params;
    let rec = &params.recognizer;
    let data = line_tensor_data(&crops[0], rec.input_height, 320, &rec.normalization, params.color_order).unwrap();
    let shape = [3, i64::from(rec.input_height), 320];
    let file = &bundle.files.recognizer.file;
    let bf16_options = ModelOptions { precision: Precision::Bf16, channels_last: false };
    let (fp32_out, _) = load(&bundle, file, "recognizer", FP32).forward_stacked(&[&data], &shape).unwrap();
    let (bf16_out, _) = load(&bundle, file, "recognizer", bf16_options).forward_stacked(&[&data], &shape).unwrap();
    let diff = max_abs_diff(&fp32_out, &bf16_out);
    assert!(diff > 0.0 && diff < 0.5, "bf16 vs fp32 probabilities differ by {diff}");

    for channels_last in [false, true] {
        let options = ModelOptions { precision: Precision::Bf16, channels_last };
        let bf16 = Recognizer::load(&bundle, ComputeDevice::Cpu, options).unwrap();
        let read: Vec<String> =
            crops.iter().map(|crop| bf16.recognize(std::slice::from_ref(crop)).unwrap().remove(0).text).collect();
        let mean_cer =
            lines.iter().zip(&read).map(|((truth, _), text)| cer(truth, text)).sum::<f64>() / lines.len() as f64;
        // fp32 reads these with a CER near 0; bf16 keeps 8 bits of mantissa, so a few
        // characters may change, but the lines must still be read.
        assert!(
            mean_cer <= 0.05,
            "bf16 (channels-last {channels_last}) mean CER {mean_cer:.3}: {:?}",
            lines.iter().map(|(truth, _)| truth).zip(&read).collect::<Vec<_>>()
        );
    }
}

/// What fp16 does on this machine's CPU depends on libtorch's CPU kernels (recent x86 CPUs
/// with AVX512-FP16 have them): either it reads the lines, or loading or the first forward
/// fails with an error that names the precision and the device. Never a crash.
#[test]
fn fp16_on_cpu_reads_golden_lines_or_fails_naming_precision_and_device() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let lines = golden_images(Task::Line, 8);
    let options = ModelOptions { precision: Precision::Fp16, channels_last: false };
    let read = Recognizer::load(&bundle, ComputeDevice::Cpu, options).and_then(|fp16| {
        lines
            .iter()
            .map(|(_, crop)| Ok(fp16.recognize(std::slice::from_ref(crop))?.remove(0).text))
            .collect::<Result<Vec<_>, ModelError>>()
    });
    match read {
        Ok(read) => {
            let mean_cer =
                lines.iter().zip(&read).map(|((truth, _), text)| cer(truth, text)).sum::<f64>() / lines.len() as f64;
            assert!(mean_cer <= 0.05, "fp16 mean CER {mean_cer:.3}: {read:?}");
        }
        Err(error) => {
            assert!(
                matches!(error, ModelError::ConvertTorchScript { .. } | ModelError::RunTorchScript { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains("fp16") && message.contains("cpu"), "{message}");
        }
    }
}

#[test]
fn batch_throughput_is_measured_per_requested_size_with_real_forwards() {
    let bundle = Bundle::load(&common::bundle_dir("ppocr-v4")).unwrap();
    let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, ModelOptions::default()).unwrap();
    let measured = recognizer.measure_batch_throughput(&[320, 200, 480], &[1, 0, 2]).unwrap();
    let sizes: Vec<usize> = measured.iter().map(|&(size, _)| size).collect();
    assert_eq!(sizes, [1, 2], "a batch size of 0 is skipped");
    // Lines of a few hundred pixels: tens of ms each on a CPU, not microseconds (a forward
    // did run) and not minutes.
    assert!(measured.iter().all(|&(_, rate)| rate.is_finite() && rate > 0.05 && rate < 10_000.0), "{measured:?}");
    assert!(sizes.contains(&best_batch_size(&measured)));
    assert!(recognizer.measure_batch_throughput(&[], &[1, 8]).unwrap().is_empty());
}

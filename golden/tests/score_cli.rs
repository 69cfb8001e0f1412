//! End to end over a small golden set in a tempdir: the library evaluation and the
//! built `ocr-golden score` binary must agree, and exit codes must follow the contract
//! (0 ok, 1 below --min-accuracy, 2 input error).

use std::path::Path;
use std::process::{Command, Output};

use kube_ocr_golden::{GoldenSet, Predictions, evaluate};

const TRUTH: &str = r#"{"id": "line-1-clean", "file": "lines/line-1-clean.png", "task": "LINE", "text": "hello world", "group": "line-1", "variant": "clean", "tags": ["lang:en"]}
{"id": "line-1-blur", "file": "lines/line-1-blur.png", "task": "LINE", "text": "hello world", "group": "line-1", "variant": "blur", "tags": ["lang:en"]}

{"id": "line-2-clean", "file": "lines/line-2-clean.png", "task": "LINE", "text": "你好世界", "group": "line-2", "variant": "clean", "tags": ["lang:zh"]}
{"id": "doc-1-clean", "file": "documents/doc-1-clean.png", "task": "DOCUMENT", "lines": ["ACME Ltd.", "Total: $10"], "group": "doc-1", "variant": "clean", "tags": ["kind:invoice"]}
"#;

// line-1-blur: 1 substitution of 11; line-2-clean: 1 of 4; doc: full-width and a line
// break, so exact after normalisation; line-1-clean: missing.
const PREDICTIONS: &str = r#"{"id": "line-1-blur", "text": "hellp world"}
{"id": "line-2-clean", "text": "你好时界", "confidence": 0.8}
{"id": "doc-1-clean", "lines": ["ＡＣＭＥ Ltd.", "Total:  $10"]}
"#;

// Truth graphemes: 11 + 11 + 4 + 20 ("ACME Ltd. Total: $10") = 46; edits 11 + 1 + 1 = 13.
const CER: f64 = 13.0 / 46.0;

fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn golden_dir(truth: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("truth.jsonl"), truth.as_bytes());
    for file in
        ["lines/line-1-clean.png", "lines/line-1-blur.png", "lines/line-2-clean.png", "documents/doc-1-clean.png"]
    {
        // Contents do not matter for scoring; only existence is checked.
        write(&dir.path().join(file), b"\x89PNG not really");
    }
    write(&dir.path().join("predictions.jsonl"), PREDICTIONS.as_bytes());
    dir
}

fn ocr_golden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocr-golden")).args(args).output().unwrap()
}

fn score(dir: &Path, extra: &[&str]) -> Output {
    let set = dir.to_str().unwrap();
    let predictions = dir.join("predictions.jsonl");
    let mut args = vec!["score", "--set", set, "--predictions", predictions.to_str().unwrap()];
    args.extend_from_slice(extra);
    ocr_golden(&args)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn library_evaluation_matches_hand_computed_numbers() {
    let dir = golden_dir(TRUTH);
    let set = GoldenSet::load(dir.path()).unwrap();
    let predictions = Predictions::load(dir.path().join("predictions.jsonl")).unwrap();
    let report = evaluate(&set, &predictions);

    assert_eq!(report.overall.items, 4);
    assert_eq!(report.overall.truth_chars, 46);
    assert_eq!(report.overall.char_edits.total(), 13);
    assert!(close(report.overall.cer, CER));
    assert!(close(report.overall.accuracy, 1.0 - CER));
    assert!(close(report.overall.macro_cer, (1.0 + 1.0 / 11.0 + 0.25 + 0.0) / 4.0));
    assert!(close(report.overall.exact_match_rate, 0.25));
    assert_eq!(report.missing, ["line-1-clean"]);
    assert!(report.unknown.is_empty());
    assert!(close(report.by_task["DOCUMENT"].cer, 0.0));
    assert!(close(report.by_variant["blur"].cer, 1.0 / 11.0));
    let worst = report.consistency.worst.as_ref().unwrap();
    assert_eq!(
        (worst.group.as_str(), worst.best_variant.as_str(), worst.worst_variant.as_str()),
        ("line-1", "blur", "clean")
    );
    assert!(close(worst.spread, 1.0 - 1.0 / 11.0));
    assert_eq!(set.image_bytes(&set.items[0]).unwrap(), b"\x89PNG not really");
}

#[test]
fn score_json_matches_the_library() {
    let dir = golden_dir(TRUTH);
    let output = score(dir.path(), &["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(close(json["overall"]["cer"].as_f64().unwrap(), CER));
    assert!(close(json["overall"]["accuracy"].as_f64().unwrap(), 1.0 - CER));
    assert_eq!(json["overall"]["items"], 4);
    assert_eq!(json["missing"], serde_json::json!(["line-1-clean"]));
    assert_eq!(json["items"].as_array().unwrap().len(), 4);
    let blur = &json["items"][1];
    assert_eq!(blur["id"], "line-1-blur");
    assert_eq!(blur["variant"], "blur");
    assert_eq!(blur["prediction"], "hellp world");
    assert!(close(blur["cer"].as_f64().unwrap(), 1.0 / 11.0));
    assert_eq!(json["by_task"]["LINE"]["items"], 3);
}

#[test]
fn text_output_shows_tables_and_worst_items() {
    let dir = golden_dir(TRUTH);
    let output = score(dir.path(), &["--worst", "2"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in
        ["overall", "task DOCUMENT", "variant clean", "consistency:", "missing predictions: 1", "line-2-clean"]
    {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

#[test]
fn min_accuracy_gates_with_exit_code_1() {
    let dir = golden_dir(TRUTH);
    let below = score(dir.path(), &["--json", "--min-accuracy", "0.9"]);
    assert_eq!(below.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&below.stderr);
    assert!(stderr.contains("accuracy 0.7174 is below --min-accuracy 0.9000"), "{stderr}");
    // The report is still printed, so CI logs show why.
    assert!(serde_json::from_slice::<serde_json::Value>(&below.stdout).is_ok());

    assert_eq!(score(dir.path(), &["--json", "--min-accuracy", "0.7"]).status.code(), Some(0));
    assert_eq!(score(dir.path(), &["--min-accuracy", "1.5"]).status.code(), Some(2));
}

#[test]
fn malformed_truth_line_exits_2_naming_the_line() {
    let broken = TRUTH.replace(r#""task": "DOCUMENT""#, r#""task": "DOCUMENT",,"#);
    let dir = golden_dir(&broken);
    let output = score(dir.path(), &["--json"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("truth.jsonl:5: malformed truth entry"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn unknown_prediction_ids_exit_2_unless_allowed() {
    let dir = golden_dir(TRUTH);
    let mut predictions = PREDICTIONS.to_owned();
    predictions.push_str("{\"id\": \"other-set-item\", \"text\": \"x\"}\n");
    write(&dir.path().join("predictions.jsonl"), predictions.as_bytes());

    let strict = score(dir.path(), &["--json"]);
    assert_eq!(strict.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("other-set-item") && stderr.contains("--allow-unknown"), "{stderr}");

    let lenient = score(dir.path(), &["--json", "--allow-unknown"]);
    assert_eq!(lenient.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&lenient.stdout).unwrap();
    assert_eq!(json["unknown"], serde_json::json!(["other-set-item"]));
    assert!(close(json["overall"]["cer"].as_f64().unwrap(), CER));
}

#[test]
fn duplicate_prediction_exits_2() {
    let dir = golden_dir(TRUTH);
    write(
        &dir.path().join("predictions.jsonl"),
        b"{\"id\": \"a\", \"text\": \"1\"}\n{\"id\": \"a\", \"text\": \"2\"}\n",
    );
    let output = score(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("predictions.jsonl:2: invalid prediction: duplicate id"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ocr_golden(&["score"]).status.code(), Some(2));
    assert_eq!(ocr_golden(&["bogus"]).status.code(), Some(2));
    assert_eq!(ocr_golden(&["--help"]).status.code(), Some(0));
}

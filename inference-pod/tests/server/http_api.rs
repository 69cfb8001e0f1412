//! The HTTP/JSON API against the real server and the real model: it answers like gRPC in
//! every body form and output format, its errors mirror the gRPC codes, metrics count it
//! by protocol, and two real clients check it: schemathesis fuzzes it from its OpenAPI
//! document, hocr-spec validates its hOCR.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use common::{
    api_tool, assert_valid_hocr, golden_image, http_get, http_request, ocr_client, preflight_allowed_origin,
    serving_server, test_config,
};
use kube_ocr_inference::serve::CorsPolicy;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task};

const RECEIPT: &str = "documents/doc-receipt-02-clean.png";

fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "kube-ocr-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"page.png\"\r\nContent-Type: image/png\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn line_texts(response: &serde_json::Value) -> Vec<String> {
    response["lines"].as_array().unwrap().iter().map(|line| line["text"].as_str().unwrap().to_owned()).collect()
}

async fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> common::HttpReply {
    http_request(addr, "POST", path, &[("Content-Type", content_type)], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_like_grpc_in_every_body_form_and_format() {
    let server = serving_server(test_config("ppocr-v4")).await;
    let http = server.http_api_addr;
    let receipt = golden_image(RECEIPT);

    let mut grpc = ocr_client(server.grpc_addr).await;
    let from_grpc = grpc
        .recognize(RecognizeRequest {
            request_id: "grpc-1".into(),
            image: receipt.clone(),
            task: Task::Document as i32,
            options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    let grpc_lines: Vec<String> = from_grpc.lines.iter().map(|line| line.text.clone()).collect();
    assert!(grpc_lines.iter().any(|line| line.contains("CITY CAFE")), "{grpc_lines:?}");

    // The raw body, computed again (bypass_cache): the same lines, boxes and model.
    let raw = post(http, "/v1/ocr?task=document&bypass_cache=true&request_id=raw-1", "image/png", &receipt).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.header("x-request-id"), Some("raw-1"));
    let body = raw.json();
    assert_eq!(body["requestId"], "raw-1");
    assert_eq!(line_texts(&body), grpc_lines);
    assert_eq!(body["cached"], false);
    assert_eq!(body["model"]["name"], from_grpc.model.as_ref().unwrap().name.as_str());
    assert_eq!(body["imageWidth"], from_grpc.image_width);
    assert_eq!(body["text"], from_grpc.text.as_str());
    let first_box = &body["lines"][0]["box"];
    assert_eq!(first_box.as_array().unwrap().len(), 4);
    assert_eq!(first_box[0]["x"].as_f64().unwrap() as f32, from_grpc.lines[0].r#box[0].x);

    // Multipart and JSON with base64: the same answer (now from the cache).
    let (content_type, form) = multipart(&[("task", "document")], &receipt);
    let from_form = post(http, "/v1/ocr", &content_type, &form).await;
    assert_eq!(from_form.status, 200, "{}", from_form.text());
    assert_eq!(line_texts(&from_form.json()), grpc_lines);
    assert_eq!(from_form.json()["cached"], true);
    let json_body = serde_json::json!({
        "image": base64::engine::general_purpose::STANDARD.encode(&receipt),
        "task": "TASK_DOCUMENT",
        "requestId": "json-1",
    });
    let from_json = http_request(
        http,
        "POST",
        "/v1/ocr",
        &[("Content-Type", "application/json")],
        json_body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(from_json.status, 200, "{}", from_json.text());
    assert_eq!(line_texts(&from_json.json()), grpc_lines);
    assert_eq!(from_json.header("x-request-id"), Some("json-1"));

    // A request id from the header, or one made up.
    let with_header = http_request(
        http,
        "POST",
        "/v1/ocr?task=document",
        &[("Content-Type", "image/png"), ("X-Request-Id", "hdr-7")],
        &receipt,
    )
    .await;
    assert_eq!(with_header.json()["requestId"], "hdr-7");
    let made_up = post(http, "/v1/ocr?task=document", "image/png", &receipt).await;
    let id = made_up.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    assert_eq!(made_up.json()["requestId"], id.as_str());

    // Plain text and hOCR, the latter valid by a real hOCR validator.
    let text = post(http, "/v1/ocr?task=document&format=text", "image/png", &receipt).await;
    assert_eq!(text.status, 200);
    assert!(text.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(text.text(), format!("{}\n", grpc_lines.join("\n")));
    let hocr = post(http, "/v1/ocr?task=document&format=hocr", "image/png", &receipt).await;
    assert_eq!(hocr.status, 200);
    assert!(hocr.header("content-type").unwrap().starts_with("text/html"));
    assert!(hocr.text().contains(">CITY</span> <span class=\"ocrx_word\""), "{}", hocr.text());
    assert_eq!(hocr.text().matches("class=\"ocr_line\"").count(), grpc_lines.len());
    assert_valid_hocr(&hocr.body);

    // Word boxes on request: words that spell the line and lie inside its box, the same
    // on both APIs; hOCR has them always.
    let words = post(http, "/v1/ocr?task=document&word_boxes=true", "image/png", &receipt).await.json();
    assert!(raw.json()["lines"][0].get("words").is_none(), "words only on request");
    let total = words["lines"].as_array().unwrap().iter().find(|l| l["text"] == "Total 14.00").expect("a Total line");
    let texts: Vec<&str> = total["words"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Total", "14.00"]);
    let xs = |value: &serde_json::Value| -> Vec<f64> {
        value["box"].as_array().unwrap().iter().map(|p| p["x"].as_f64().unwrap()).collect()
    };
    let (line_xs, first_xs, second_xs) = (xs(total), xs(&total["words"][0]), xs(&total["words"][1]));
    let (line_left, line_right) =
        (line_xs.iter().cloned().fold(f64::MAX, f64::min), line_xs.iter().cloned().fold(f64::MIN, f64::max));
    let first_right = first_xs.iter().cloned().fold(f64::MIN, f64::max);
    let second_left = second_xs.iter().cloned().fold(f64::MAX, f64::min);
    assert!(line_left - 2.0 <= first_xs[0] && first_right < second_left && second_left < line_right, "{total}");
    let grpc_words = grpc
        .recognize(RecognizeRequest {
            image: receipt.clone(),
            task: Task::Document as i32,
            options: Some(RecognizeOptions { word_boxes: true, ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let grpc_total = grpc_words.lines.iter().find(|l| l.text == "Total 14.00").unwrap();
    assert_eq!(grpc_total.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), texts);
    assert_eq!(grpc_total.words[1].r#box[0].x as f64, second_xs[0] as f32 as f64);
    assert!(hocr.text().matches("class=\"ocrx_word\"").count() > grpc_lines.len(), "{}", hocr.text());

    // The LINE task, with the task name as the gRPC enum spells it.
    let line = golden_image("lines/line-en-001-clean.png");
    let read = post(http, "/v1/ocr?task=TASK_LINE", "image/png", &line).await;
    assert_eq!(read.json()["text"], "The quick brown fox jumps over the lazy dog");

    // Errors: JSON with the gRPC code's name and the same message as gRPC.
    let no_task = post(http, "/v1/ocr", "image/png", &receipt).await;
    assert_eq!(no_task.status, 400);
    assert_eq!(no_task.json()["error"]["code"], "INVALID_ARGUMENT");
    assert!(no_task.json()["error"]["message"].as_str().unwrap().contains("task is required"));
    let not_image = post(http, "/v1/ocr?task=line&request_id=bad-1", "image/png", b"not an image").await;
    assert_eq!(not_image.status, 400);
    let grpc_error = grpc
        .recognize(RecognizeRequest { image: b"not an image".to_vec(), task: Task::Line as i32, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(not_image.json()["error"]["message"], grpc_error.message());
    assert_eq!(not_image.json()["error"]["requestId"], "bad-1");
    let wrong_type = post(http, "/v1/ocr?task=line", "text/plain", b"hello").await;
    assert_eq!(wrong_type.status, 415);
    let typo = post(http, "/v1/ocr?task=line&min_confidense=0.5", "image/png", &line).await;
    assert_eq!(typo.status, 400);
    assert!(typo.json()["error"]["message"].as_str().unwrap().contains("min_confidense"));
    // A deadline no request of this kind can meet: refused at once, 504.
    let too_short = post(http, "/v1/ocr?task=document&bypass_cache=true&timeout_ms=1", "image/png", &receipt).await;
    assert_eq!(too_short.status, 504, "{}", too_short.text());
    assert_eq!(too_short.json()["error"]["code"], "DEADLINE_EXCEEDED");

    // No CORS headers unless configured.
    assert_eq!(preflight_allowed_origin(http, "https://app.example").await, None);

    // Metrics count both APIs, by protocol and code.
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    let count = |protocol: &str, code: &str| {
        common::metric_value(
            &metrics
                .lines()
                .filter(|l| l.contains(&format!("protocol=\"{protocol}\"")) && l.contains(&format!("code=\"{code}\"")))
                .collect::<Vec<_>>()
                .join("\n"),
            "ocr_requests_total{",
        )
    };
    assert_eq!(count("grpc", "OK"), 2.0, "{metrics}");
    assert_eq!(count("http", "OK"), 9.0, "{metrics}");
    assert_eq!(count("http", "INVALID_ARGUMENT"), 4.0, "{metrics}");
    assert_eq!(count("http", "DEADLINE_EXCEEDED"), 1.0, "{metrics}");

    // The served OpenAPI document is the code's (the checked-in copy is tested against
    // the same), and schemathesis finds no server error or answer off the document.
    let (status, served) = http_get(http, "/openapi.json").await;
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let from_code: serde_json::Value = serde_json::from_str(&kube_ocr_inference::serve::openapi_json()).unwrap();
    assert_eq!(served, from_code);
    let reports = tempfile::tempdir().unwrap();
    let settings = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/api-check/schemathesis.toml");
    let fuzz = tokio::process::Command::new(api_tool("schemathesis"))
        .arg("--config-file")
        .arg(settings)
        .arg("run")
        .arg(format!("http://{http}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
             response_schema_conformance,negative_data_rejection",
            "--max-examples",
            "100",
            "--seed",
            "20261206",
            // One worker: two threads of the venv's Python 3.11 parsing source at once (hypothesis
            // does, to describe its filters) can fail with "SystemError: AST constructor
            // recursion depth mismatch" (CPython gh-106905), an error of the tool, not of the API.
            "--workers",
            "1",
            "--no-color",
            "--report-dir",
        ])
        .arg(reports.path())
        // Its example database and crash cache go in the temporary folder, not the checkout.
        .current_dir(reports.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&fuzz.stdout), String::from_utf8_lossy(&fuzz.stderr));
    assert!(fuzz.status.success(), "schemathesis found problems:\n{report}");
    assert!(report.contains("passed"), "{report}");

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_and_configured_origins_get_cors() {
    let config = kube_ocr_inference::serve::ServerConfig {
        max_image_bytes: 4000,
        cors: CorsPolicy::from_origins(&["https://app.example".into()]),
        ..test_config("ppocr-v4")
    };
    let server = serving_server(config).await;
    let http = server.http_api_addr;

    // Over the document limit, sent raw: the same message gRPC gives.
    let document = vec![0u8; 5000];
    let too_big = post(http, "/v1/ocr?task=line", "image/png", &document).await;
    assert_eq!(too_big.status, 413, "{}", too_big.text());
    assert_eq!(too_big.json()["error"]["code"], "RESOURCE_EXHAUSTED");
    assert!(too_big.json()["error"]["message"].as_str().unwrap().contains("--max-image-bytes"));
    // Over the body limit (document limit plus framing room): refused before it is read.
    let huge = vec![0u8; 200 << 10];
    let refused = post(http, "/v1/ocr?task=line", "image/png", &huge).await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("request body is over"));
    // Over the pixel limit: a small file declaring a huge image.
    let bomb = common::png_declaring(100_000, 100_000);
    let pixels = post(http, "/v1/ocr?task=document", "image/png", &bomb).await;
    assert_eq!(pixels.status, 413, "{}", pixels.text());
    assert!(pixels.json()["error"]["message"].as_str().unwrap().contains("100000x100000"));

    assert_eq!(preflight_allowed_origin(http, "https://app.example").await.as_deref(), Some("https://app.example"));
    assert_eq!(preflight_allowed_origin(http, "https://evil.example").await, None);
    server.shutdown().await.unwrap();
}

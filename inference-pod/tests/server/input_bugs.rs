//! Inputs that used to fail (issue #14), each sent through the real server over gRPC:
//! text on a transparent background, an upside-down LINE image, the size in the limit
//! error, and reflection for clients that speak only `grpc.reflection.v1alpha`.

use crate::common;

use common::{golden_lines, ocr_client, png_bytes, png_declaring, serving_server, test_config};
use image::{GrayImage, Luma, RgbImage, Rgba, RgbaImage};
use kube_ocr_golden::{GoldenSet, Predictions, default_set_dir, evaluate, score_text};
use kube_ocr_proto::v1::{OCR_SERVICE_NAME, RecognizeOptions, RecognizeRequest, RecognizeResponse, Task};
use tonic::Code;

fn line_request(id: &str, image: Vec<u8>, skip_orientation: bool) -> RecognizeRequest {
    RecognizeRequest {
        request_id: id.into(),
        image,
        task: Task::Line as i32,
        options: Some(RecognizeOptions { skip_orientation, bypass_cache: true, ..Default::default() }),
    }
}

/// `line` (dark text on a light page) as a text layer in `ink`: every pixel that colour,
/// alpha the ink's coverage (0 where the page is), as an editor exports text on nothing.
fn text_layer(line: &RgbImage, ink: [u8; 3]) -> RgbaImage {
    let grey = |pixel: &image::Rgb<u8>| pixel.0.iter().map(|&c| u32::from(c)).sum::<u32>() / 3;
    let page = line.pixels().map(grey).max().unwrap_or(255).max(1);
    RgbaImage::from_fn(line.width(), line.height(), |x, y| {
        let coverage = page.saturating_sub(grey(line.get_pixel(x, y))) * 255 / page;
        Rgba([ink[0], ink[1], ink[2], coverage as u8])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_on_a_transparent_background_is_read_dark_or_light() {
    let server = serving_server(test_config("ppocr-v4")).await;
    let mut client = ocr_client(server.grpc_addr).await;
    for (item, line) in golden_lines(|id| ["line-en-001-clean", "line-mix-003-clean"].contains(&id)) {
        let truth = item.truth.text();
        let opaque = client.recognize(line_request(&item.id, png_bytes(&line), true)).await.unwrap().into_inner();
        let opaque_cer = score_text(&truth, &opaque.text).cer;
        for (shade, ink) in [("dark", [0, 0, 0]), ("light", [255, 255, 255])] {
            let png = png_bytes(&text_layer(&line, ink));
            let read = client.recognize(line_request(&item.id, png, true)).await.unwrap().into_inner();
            let cer = score_text(&truth, &read.text).cer;
            assert!(
                cer <= 0.1 && cer <= opaque_cer + 0.05,
                "{} as {shade} text on transparent: read {:?} (CER {cer:.3}; the opaque line {:?}, CER {opaque_cer:.3})",
                item.id,
                read.text,
                opaque.text
            );
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn golden_lines_turned_upside_down_read_as_upright_and_upright_ones_stay() {
    let server = serving_server(test_config("ppocr-v4")).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let mut recognize = async |id: &str, image: &RgbImage, skip_orientation: bool| -> RecognizeResponse {
        client.recognize(line_request(id, png_bytes(image), skip_orientation)).await.unwrap().into_inner()
    };
    let lines = golden_lines(|_| true);
    assert_eq!(lines.len(), 80, "the golden set's LINE items");
    let set = GoldenSet { root: default_set_dir(), items: lines.iter().map(|(item, _)| item.clone()).collect() };
    let (mut upright_reads, mut turned_reads) = (Predictions::new(), Predictions::new());
    let mut differ = Vec::new();
    for (item, line) in &lines {
        // Orientation must not touch an upright line: it reads exactly as without it.
        let upright = recognize(&item.id, line, true).await;
        let oriented = recognize(&item.id, line, false).await;
        assert_eq!(oriented.text, upright.text, "{}: orientation changed an upright read", item.id);
        assert!(!oriented.lines[0].rotated_180, "{}: an upright line was turned", item.id);

        let turned = recognize(&item.id, &image::imageops::rotate180(line), false).await;
        if turned.text != upright.text || !turned.lines[0].rotated_180 {
            let confidence = |read: &RecognizeResponse| read.lines[0].confidence;
            differ.push(format!(
                "{}: upright {:?} ({:.3}), turned {:?} ({:.3}, rotated_180 {})",
                item.id,
                upright.text,
                confidence(&upright),
                turned.text,
                confidence(&turned),
                turned.lines[0].rotated_180
            ));
        }
        upright_reads.insert(item.id.clone(), upright.text);
        turned_reads.insert(item.id.clone(), turned.text);
    }
    let (upright, turned) = (evaluate(&set, &upright_reads).overall, evaluate(&set, &turned_reads).overall);
    eprintln!(
        "accuracy upright {:.4}, turned {:.4}; turned lines read differently: {differ:#?}",
        upright.accuracy, turned.accuracy
    );
    assert!(
        turned.accuracy >= upright.accuracy - 0.01,
        "turned {:.4} against upright {:.4}: {differ:#?}",
        turned.accuracy,
        upright.accuracy
    );
    assert!(differ.is_empty(), "turned lines read differently from upright: {differ:#?}");

    // The clean English line the classifier once called upside down as a whole image.
    let (item, line) = lines.iter().find(|(item, _)| item.id == "line-en-001-clean").unwrap();
    let turned = recognize(&item.id, &image::imageops::rotate180(line), false).await;
    assert_eq!(turned.text, item.truth.text());
    assert!(turned.lines[0].rotated_180);
    // With skip_orientation the turned line is read as sent: garbage, not turned.
    let as_sent = recognize(&item.id, &image::imageops::rotate180(line), true).await;
    assert!(!as_sent.lines[0].rotated_180);
    assert!(score_text(&item.truth.text(), &as_sent.text).cer > 0.5, "{:?}", as_sent.text);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_over_the_size_limits_is_refused_with_its_real_size() {
    let server = serving_server(test_config("ppocr-v4")).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let tall = png_bytes(&GrayImage::from_pixel(1, 100_000, Luma([255])));
    let cases = [
        ("1x100000", tall, "1x100000 (100000 pixels)"),
        ("30000x30000", png_declaring(30_000, 30_000), "30000x30000 (900000000 pixels)"),
    ];
    for (name, image, size) in cases {
        for task in [Task::Line, Task::Document] {
            let request =
                RecognizeRequest { request_id: name.into(), image: image.clone(), task: task as i32, options: None };
            let status = client.recognize(request).await.expect_err(name);
            // Too big is a limit the caller can act on (downscale), as documented.
            assert_eq!(status.code(), Code::ResourceExhausted, "{name}: {}", status.message());
            let message = status.message();
            assert!(message.contains(size), "{name}: {message}");
            assert!(message.contains("50000000 pixels and 20000 per side"), "{name}: {message}");
        }
    }
    server.shutdown().await.unwrap();
}

/// Lists the services and fetches the file that defines the OCR service through one
/// reflection version's own client; returns the service names and that file's bytes.
macro_rules! reflect {
    ($version:ident, $addr:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", $addr)).unwrap().connect().await.unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol(OCR_SERVICE_NAME.into()),
        ]
        .map(|request| ServerReflectionRequest { host: String::new(), message_request: Some(request) });
        let mut responses =
            client.server_reflection_info(tokio_stream::iter(requests)).await.expect(stringify!($version)).into_inner();
        let (mut services, mut files) = (Vec::new(), Vec::new());
        while let Some(response) = responses.message().await.unwrap() {
            match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    services.extend(list.service.into_iter().map(|s| s.name))
                }
                Some(MessageResponse::FileDescriptorResponse(found)) => files.extend(found.file_descriptor_proto),
                other => panic!("{}: unexpected {other:?}", stringify!($version)),
            }
        }
        (services, files)
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reflection_answers_both_v1_and_v1alpha_clients() {
    let server = serving_server(test_config("ppocr-v4")).await;
    let v1 = reflect!(v1, server.grpc_addr);
    let v1alpha = reflect!(v1alpha, server.grpc_addr);
    for (version, (services, files)) in [("v1", v1), ("v1alpha", v1alpha)] {
        assert!(services.iter().any(|s| s == OCR_SERVICE_NAME), "{version}: {services:?}");
        assert!(services.iter().any(|s| s == "grpc.health.v1.Health"), "{version}: {services:?}");
        let defines_ocr = |file: &Vec<u8>| {
            let text = String::from_utf8_lossy(file);
            text.contains("kube_ocr/v1/ocr.proto") && text.contains("Recognize")
        };
        assert!(files.iter().any(defines_ocr), "{version}: no descriptor of {OCR_SERVICE_NAME}");
    }
    server.shutdown().await.unwrap();
}

//! Pages that arrive turned: every clean golden document, sent upright and turned 90°,
//! 180° and 270° clockwise, is read with its rotation reported and an accuracy within 2
//! points of the upright pages (the bar), with its boxes on the image as sent.

use crate::common;

use common::{http_get, metric_value, ocr_client, png_bytes, serving_server, test_config};
use image::imageops::{rotate90, rotate180, rotate270};
use kube_ocr_golden::{GoldenSet, Task as GoldenTask, score_text};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_pages_are_read_turned_back_as_well_as_upright_ones() {
    let set = GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
    let documents: Vec<_> = set
        .items
        .iter()
        .filter(|item| item.task == GoldenTask::Document && item.variant == "clean")
        .map(|item| (item, image::load_from_memory(&set.image_bytes(item).unwrap()).unwrap().to_rgb8()))
        .collect();
    assert!(documents.len() >= 4, "{} clean documents", documents.len());
    let server = serving_server(test_config("ppocr-v4")).await;
    let mut client = ocr_client(server.grpc_addr).await;

    // Detector passes, from the batch-size histogram's count (one request at a time: one
    // pass is one batch).
    let detector_passes = async || {
        let (_, metrics) = http_get(server.http_addr, "/metrics").await;
        metric_value(&metrics, "ocr_batch_size_count{model=\"ppocr-v4\",version=\"4.0.0\",stage=\"detect\"}")
    };
    let mut accuracy = Vec::new();
    for degrees in [0u32, 90, 180, 270] {
        let passes_before = detector_passes().await;
        let mut sum = 0.0;
        for (item, page) in &documents {
            let sent = match degrees {
                0 => page.clone(),
                90 => rotate90(page),
                180 => rotate180(page),
                _ => rotate270(page),
            };
            let response = client
                .recognize(RecognizeRequest {
                    request_id: format!("{}-{degrees}", item.id),
                    image: png_bytes(&sent),
                    task: Task::Document as i32,
                    options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(response.page_rotation, degrees, "{} turned {degrees}°: {}", item.id, response.text);
            assert_eq!((response.image_width, response.image_height), sent.dimensions());
            for line in &response.lines {
                for point in &line.r#box {
                    let inside = (0.0..=sent.width() as f32).contains(&point.x)
                        && (0.0..=sent.height() as f32).contains(&point.y);
                    assert!(inside, "{} turned {degrees}°: a box off the image as sent: {line:?}", item.id);
                }
            }
            sum += 1.0 - score_text(&item.truth.text(), &response.text).cer;
        }
        accuracy.push(sum / documents.len() as f64);
        let passes = detector_passes().await - passes_before;
        eprintln!("turned {degrees}°: {passes} detector passes for {} pages", documents.len());
        if degrees == 0 {
            assert_eq!(passes, documents.len() as f64, "an upright page costs one detector pass, no more");
        }
    }
    eprintln!("accuracy (1 - CER) upright, 90°, 180°, 270°: {accuracy:.4?}");
    for (turned, degrees) in accuracy[1..].iter().zip([90, 180, 270]) {
        assert!(
            accuracy[0] - turned <= 0.02,
            "turned {degrees}°: accuracy {turned:.4} against {:.4} upright",
            accuracy[0]
        );
    }
    server.shutdown().await.unwrap();
}

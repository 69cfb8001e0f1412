//! The golden document set (golden/documents) through the server, scored with
//! kube-ocr-golden: PDFs and a multi-page TIFF read page by page, pages turned 90/180/270
//! read within 2 points of the same page upright, and text on a transparent background
//! read whichever its colour.

use crate::common;

use std::collections::BTreeMap;

use common::{ocr_client, serving_server, test_config};
use kube_ocr_golden::{GoldenSet, Predictions, evaluate};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task};

/// Turned pages may lose at most this much accuracy against the same page upright.
const ROTATION_TOLERANCE: f64 = 0.02;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_set_reads_as_well_as_its_upright_single_pages() {
    let set = GoldenSet::load(kube_ocr_golden::document_set_dir()).unwrap();
    // Whole documents on a loaded machine can take longer than the default 25 s.
    let config = kube_ocr_inference::serve::ServerConfig {
        request_timeout: std::time::Duration::from_secs(120),
        ..test_config("ppocr-v4")
    };
    let server = serving_server(config).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let mut predictions = Predictions::new();
    for item in &set.items {
        let request = RecognizeRequest {
            request_id: item.id.clone(),
            image: set.image_bytes(item).unwrap(),
            task: Task::Document as i32,
            options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
        };
        let response =
            grpc.recognize(request).await.unwrap_or_else(|status| panic!("{}: {status:?}", item.id)).into_inner();
        let text = if response.pages.is_empty() { response.text } else { response.document_text };
        predictions.insert(item.id.clone(), text);
    }
    let report = evaluate(&set, &predictions);
    let accuracy: BTreeMap<&str, f64> =
        report.items.iter().map(|item| (item.id.as_str(), 1.0 - item.score.cer)).collect();
    for (id, accuracy) in &accuracy {
        eprintln!("{id:40} accuracy {accuracy:.4}");
    }

    for group in ["doc-invoice-01", "doc-notice-01"] {
        let upright = accuracy[format!("{group}-clean").as_str()];
        for turn in ["rot90", "rot180", "rot270"] {
            let turned = accuracy[format!("{group}-{turn}").as_str()];
            assert!(turned >= upright - ROTATION_TOLERANCE, "{group} {turn}: {turned:.4} against {upright:.4} upright");
        }
    }
    for id in ["pdf-scanned", "tiff-multipage", "pdf-born-digital"] {
        assert!(accuracy[id] > 0.95, "{id}: {:.4}", accuracy[id]);
    }
    assert!(
        (accuracy["pdf-scanned"] - accuracy["tiff-multipage"]).abs() <= ROTATION_TOLERANCE,
        "the same pages as a PDF ({:.4}) and as a TIFF ({:.4})",
        accuracy["pdf-scanned"],
        accuracy["tiff-multipage"]
    );
    for id in accuracy.keys().filter(|id| id.starts_with("transparent-")) {
        assert!(accuracy[id] > 0.9, "{id}: {:.4}", accuracy[id]);
    }
    server.shutdown().await.unwrap();
}

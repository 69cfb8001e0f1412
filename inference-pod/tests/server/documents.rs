//! Documents of several pages (a multi-page TIFF) through both APIs: one result per page,
//! each page read as it is read alone, the document's text, the page limit and page ranges, and hOCR with
//! a page per page that a real hOCR validator accepts.

use crate::common;

use std::io::Cursor;

use common::{assert_valid_hocr, golden_image, http_request, ocr_client, serving_server, test_config};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task};
use tiff::encoder::{TiffEncoder, colortype};
use tonic::Code;

const PAGES: [&str; 3] =
    ["documents/doc-receipt-02-clean.png", "documents/doc-invoice-01-clean.png", "documents/doc-letter-01-clean.png"];

/// The golden pages as one RGB TIFF, a page each.
fn tiff_of(files: &[&str]) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    let mut encoder = TiffEncoder::new(&mut bytes).unwrap();
    for file in files {
        let page = image::load_from_memory(&golden_image(file)).unwrap().to_rgb8();
        encoder.write_image::<colortype::RGB8>(page.width(), page.height(), page.as_raw()).unwrap();
    }
    bytes.into_inner()
}

fn document(image: Vec<u8>, task: Task) -> RecognizeRequest {
    RecognizeRequest {
        request_id: "doc".into(),
        image,
        task: task as i32,
        options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_page_tiff_is_read_page_by_page_on_both_apis() {
    let config = kube_ocr_inference::serve::ServerConfig { max_pages: 3, ..test_config("ppocr-v4") };
    let server = serving_server(config).await;
    let mut grpc = ocr_client(server.grpc_addr).await;

    // Each page alone, as the reference.
    let mut alone = Vec::new();
    for file in PAGES {
        let response = grpc.recognize(document(golden_image(file), Task::Document)).await.unwrap().into_inner();
        alone.push(response.text);
    }

    let tiff = tiff_of(&PAGES);
    let response = grpc.recognize(document(tiff.clone(), Task::Document)).await.unwrap().into_inner();
    assert_eq!(response.pages.len(), 3);
    for (index, page) in response.pages.iter().enumerate() {
        assert_eq!(page.page_number as usize, index + 1);
        assert_eq!(page.text, alone[index], "page {}", index + 1);
        assert!(!page.lines.is_empty());
    }
    assert_eq!(response.text, alone[0], "the top-level fields are the first page's");
    assert_eq!(response.document_text, alone.join("\n\u{c}\n"));
    let single = grpc.recognize(document(golden_image(PAGES[0]), Task::Document)).await.unwrap().into_inner();
    assert!(single.pages.is_empty() && single.document_text.is_empty(), "a single image has no pages");

    // Over HTTP: the same pages as JSON, the document as text, and hOCR a real validator accepts.
    let http = server.http_api_addr;
    let post = |query: &'static str, body: Vec<u8>| async move {
        http_request(http, "POST", query, &[("Content-Type", "image/tiff")], &body).await
    };
    let json = post("/v1/ocr?task=document", tiff.clone()).await;
    assert_eq!(json.status, 200, "{}", json.text());
    let body = json.json();
    let pages = body["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2]["text"], alone[2].as_str());
    assert_eq!(pages[1]["pageNumber"], 2);
    assert_eq!(body["documentText"], response.document_text.as_str());
    let text = post("/v1/ocr?task=document&format=text", tiff.clone()).await;
    assert_eq!(text.text(), format!("{}\n", response.document_text));
    let hocr = post("/v1/ocr?task=document&format=hocr", tiff.clone()).await;
    assert_eq!(hocr.text().matches("class=\"ocr_page\"").count(), 3);
    assert_valid_hocr(&hocr.body);

    // Limits and misuse: a clear error before any page is decoded.
    let four = tiff_of(&[PAGES[0], PAGES[1], PAGES[2], PAGES[0]]);
    let too_many = grpc.recognize(document(four.clone(), Task::Document)).await.unwrap_err();
    assert_eq!(too_many.code(), Code::ResourceExhausted);
    assert!(
        too_many.message().contains("reads 4 pages") && too_many.message().contains("at most 3 per request"),
        "{}",
        too_many.message()
    );
    assert!(too_many.message().contains("first_page, last_page"), "{}", too_many.message());
    assert_eq!(post("/v1/ocr?task=document", four.clone()).await.status, 413);
    // A range within the limit reads those pages, numbered as in the document.
    let mut last_three = document(four, Task::Document);
    last_three.options = Some(RecognizeOptions { first_page: 2, bypass_cache: true, ..Default::default() });
    let ranged = grpc.recognize(last_three).await.unwrap().into_inner();
    let numbers: Vec<u32> = ranged.pages.iter().map(|page| page.page_number).collect();
    assert_eq!(numbers, [2, 3, 4]);
    assert_eq!(ranged.document_page_count, 4);
    assert_eq!(ranged.pages[2].text, alone[0], "page 4 is the first page again");
    let as_line = grpc.recognize(document(tiff, Task::Line)).await.unwrap_err();
    assert_eq!(as_line.code(), Code::InvalidArgument);
    assert!(as_line.message().contains("this TIFF has 3 pages"), "{}", as_line.message());

    server.shutdown().await.unwrap();
}

//! PDF documents through both APIs and the streaming call: every page read by OCR at the
//! server's resolution (within reach of the same pages sent as images), a born-digital
//! page's own text when asked for, page ranges, pages streamed in order, and every limit
//! and broken document answered with its reason. The renderer is the real
//! `ocr-pdf-render` child process.

use crate::common;

use common::{
    assert_valid_hocr, golden_document, golden_document_pages, golden_image, http_get, http_request,
    labelled_metric_sum, metrics_once_at_least, ocr_client, serving_server, test_config,
};
use futures::StreamExt;
use kube_ocr_golden::score_text;
use kube_ocr_inference::serve::{PdfSettings, ServerConfig};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, RecognizeResponse, Task, TextSource};
use tonic::Code;

const SCANNED: &str = "multipage/pdf-scanned.pdf";
const BORN_DIGITAL: &str = "multipage/pdf-born-digital.pdf";
/// The default set's pages the PDFs were made from, in page order.
const SOURCE_PAGES: [&str; 3] =
    ["documents/doc-invoice-01-clean.png", "documents/doc-letter-01-clean.png", "documents/doc-receipt-02-clean.png"];

/// The test server, with room for whole documents on a loaded machine: the tests of this
/// file run side by side, each with its own server on the same cores, and a document of
/// three full pages can take longer than the default 25 s there.
fn config() -> ServerConfig {
    ServerConfig { request_timeout: std::time::Duration::from_secs(120), ..test_config("ppocr-v4") }
}

fn request(document: Vec<u8>, options: RecognizeOptions) -> RecognizeRequest {
    RecognizeRequest {
        request_id: "pdf".into(),
        image: document,
        task: Task::Document as i32,
        options: Some(RecognizeOptions { bypass_cache: true, ..options }),
    }
}

/// 1 − CER of each page against its truth lines.
fn page_accuracies(response: &RecognizeResponse, truth: &[Vec<String>]) -> Vec<f64> {
    response.pages.iter().zip(truth).map(|(page, lines)| 1.0 - score_text(&lines.join("\n"), &page.text).cer).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_is_read_page_by_page_on_every_api() {
    let server = serving_server(config()).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let truth = golden_document_pages("pdf-scanned");

    // The scanned PDF: every page by OCR, within 2 points of the same pages sent as PNGs.
    let response = grpc.recognize(request(golden_document(SCANNED), Default::default())).await.unwrap().into_inner();
    assert_eq!((response.pages.len(), response.document_page_count), (3, 3));
    for (index, page) in response.pages.iter().enumerate() {
        assert_eq!(page.page_number as usize, index + 1);
        assert_eq!(page.text_source(), TextSource::Ocr);
        // 200 dpi by default: the scan's own size (its MediaBox is its pixels at 200 dpi).
        let source = image::load_from_memory(&golden_image(SOURCE_PAGES[index])).unwrap();
        assert!(page.image_width.abs_diff(source.width()) <= 1, "{} vs {}", page.image_width, source.width());
    }
    assert_eq!(response.text, response.pages[0].text);
    let texts: Vec<&str> = response.pages.iter().map(|page| page.text.as_str()).collect();
    assert_eq!(response.document_text, texts.join("\n\u{c}\n"));
    let mut as_images = Vec::new();
    for file in SOURCE_PAGES {
        let page = grpc.recognize(request(golden_image(file), Default::default())).await.unwrap().into_inner();
        as_images.push(page.text);
    }
    let image_truth: Vec<f64> =
        as_images.iter().zip(&truth).map(|(text, lines)| 1.0 - score_text(&lines.join("\n"), text).cer).collect();
    for (page, (pdf, png)) in page_accuracies(&response, &truth).iter().zip(&image_truth).enumerate() {
        eprintln!("page {}: accuracy {pdf:.4} from the PDF, {png:.4} from the PNG", page + 1);
        assert!(*pdf >= png - 0.02, "page {}: {pdf:.4} from the PDF vs {png:.4} as an image", page + 1);
    }

    // The born-digital PDF: its own text, exactly, when asked; by OCR otherwise.
    let digital_truth = golden_document_pages("pdf-born-digital");
    let layer = RecognizeOptions { pdf_text_layer: true, word_boxes: true, ..Default::default() };
    let from_layer = grpc.recognize(request(golden_document(BORN_DIGITAL), layer)).await.unwrap().into_inner();
    for (page, lines) in from_layer.pages.iter().zip(&digital_truth) {
        assert_eq!(page.text_source(), TextSource::PdfTextLayer);
        let texts: Vec<&str> = page.lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, *lines, "page {}", page.page_number);
        assert!(page.lines.iter().all(|line| line.confidence == 1.0 && !line.words.is_empty()));
    }
    let first_page = RecognizeOptions { last_page: 1, ..Default::default() };
    let by_ocr = grpc.recognize(request(golden_document(BORN_DIGITAL), first_page)).await.unwrap().into_inner();
    assert_eq!(by_ocr.pages.len(), 1);
    assert!(by_ocr.pages.iter().all(|page| page.text_source() == TextSource::Ocr));
    for (page, accuracy) in page_accuracies(&by_ocr, &digital_truth).iter().enumerate() {
        assert!(*accuracy > 0.9, "page {} of the born-digital PDF by OCR: {accuracy:.4}", page + 1);
    }

    // A range reads only its pages, numbered as in the document.
    let range = RecognizeOptions { first_page: 2, last_page: 2, ..Default::default() };
    let second = grpc.recognize(request(golden_document(SCANNED), range)).await.unwrap().into_inner();
    assert_eq!(second.pages.len(), 1);
    assert_eq!((second.pages[0].page_number, second.document_page_count), (2, 3));
    assert_eq!(second.pages[0].text, response.pages[1].text);

    // HTTP: the raw PDF, its pages as JSON, the text layer, and hOCR with a page per page.
    let http = server.http_api_addr;
    let post = |query: &'static str| async move {
        http_request(http, "POST", query, &[("Content-Type", "application/pdf")], &golden_document(BORN_DIGITAL)).await
    };
    let json = post("/v1/ocr?task=document&pdf_text_layer=true&last_page=2").await;
    assert_eq!(json.status, 200, "{}", json.text());
    let body = json.json();
    assert_eq!(body["documentPageCount"], 3);
    assert_eq!(body["pages"].as_array().unwrap().len(), 2);
    assert_eq!(body["pages"][1]["textSource"], "TEXT_SOURCE_PDF_TEXT_LAYER");
    assert_eq!(body["pages"][1]["text"], digital_truth[1].join("\n"));
    let hocr = post("/v1/ocr?task=document&format=hocr&pdf_text_layer=true").await;
    assert_eq!(hocr.text().matches("class=\"ocr_page\"").count(), 3);
    assert_valid_hocr(&hocr.body);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_document_streams_the_plan_then_every_page_in_order() {
    let server = serving_server(config()).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let layer = RecognizeOptions { pdf_text_layer: true, ..Default::default() };
    let mut stream = grpc.recognize_document(request(golden_document(BORN_DIGITAL), layer)).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.page.is_none(), "the first message is the plan");
    assert_eq!((first.document_page_count, first.pages_to_read), (3, 3));
    let mut numbers = Vec::new();
    while let Some(message) = stream.next().await {
        let message = message.unwrap();
        let page = message.page.expect("every later message carries a page");
        assert_eq!(message.pages_to_read, 3);
        numbers.push(page.page_number);
    }
    assert_eq!(numbers, [1, 2, 3]);

    // A single image is a document of one page.
    let image = golden_image(SOURCE_PAGES[0]);
    let messages: Vec<_> =
        grpc.recognize_document(request(image, Default::default())).await.unwrap().into_inner().collect().await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].as_ref().unwrap().page.as_ref().unwrap().page_number, 1);

    // A broken document ends the stream with the status Recognize would answer.
    let broken = b"%PDF-1.7\nnot a PDF after all".to_vec();
    let mut stream = grpc.recognize_document(request(broken, Default::default())).await.unwrap().into_inner();
    let status = loop {
        match stream.next().await {
            Some(Ok(message)) => assert!(message.page.is_none(), "no page of a broken PDF: {message:?}"),
            Some(Err(status)) => break status,
            None => panic!("the stream ended without the error"),
        }
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("cannot be read"), "{}", status.message());
    server.shutdown().await.unwrap();
}

/// A caller that stops reading a document stream stops the work: the call ends CANCELLED
/// at once (its renderer killed, its pages out of the queues) rather than reading every
/// page for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_stream_whose_caller_leaves_stops_its_work() {
    let server = serving_server(config()).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let mut stream =
        grpc.recognize_document(request(golden_document(SCANNED), Default::default())).await.unwrap().into_inner();
    let plan = stream.next().await.unwrap().unwrap();
    assert_eq!(plan.pages_to_read, 3);
    drop(stream);
    let cancelled = "ocr_requests_total{model=\"ppocr-v4\",version=\"4.0.0\",task=\"document\",protocol=\"grpc\",code=\"CANCELLED\"}";
    let metrics = metrics_once_at_least(server.http_addr, cancelled, 1.0, std::time::Duration::from_secs(20)).await;
    assert!(metrics.contains(&format!("{cancelled} 1")), "the call must end CANCELLED:\n{metrics}");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("ocr_pages_total") && l.contains("task=\"document\"") && l.ends_with(" 3")),
        "the three pages must not all have been read:\n{metrics}"
    );
    // The server goes on serving.
    grpc.recognize(request(golden_image(SOURCE_PAGES[0]), Default::default())).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdfs_over_a_limit_or_broken_are_refused_with_the_reason() {
    let config = ServerConfig {
        max_pages: 2,
        decode_limits: kube_ocr_vision::image::DecodeLimits { max_pixels: 2_000_000, max_side: 20_000 },
        ..config()
    };
    let server = serving_server(config).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let recognize = |document: Vec<u8>, options: RecognizeOptions| {
        let mut grpc = grpc.clone();
        async move { grpc.recognize(request(document, options)).await.unwrap_err() }
    };
    let first_two = RecognizeOptions { last_page: 2, ..Default::default() };
    let cases = [
        (golden_document(SCANNED), RecognizeOptions::default(), Code::ResourceExhausted, "reads at most 2 per request"),
        (
            golden_document(SCANNED),
            RecognizeOptions { first_page: 5, ..Default::default() },
            Code::InvalidArgument,
            "first_page 5 is past its end",
        ),
        (
            golden_document(SCANNED),
            RecognizeOptions { pdf_dpi: 2400, ..Default::default() },
            Code::InvalidArgument,
            "pdf_dpi must be between 50 and 600",
        ),
        // Letter at 300 dpi is 8.4 megapixels; this server renders at most 2.
        (
            golden_document(BORN_DIGITAL),
            RecognizeOptions { pdf_dpi: 300, ..first_two },
            Code::ResourceExhausted,
            "send a lower pdf_dpi",
        ),
        (b"%PDF-1.4\n%%EOF".to_vec(), RecognizeOptions::default(), Code::InvalidArgument, "PDF"),
    ];
    for (document, options, code, message) in cases {
        let status = recognize(document, options).await;
        assert_eq!(status.code(), code, "{message}: {status:?}");
        assert!(status.message().contains(message), "expected {message:?} in {:?}", status.message());
    }
    let line = grpc
        .recognize(RecognizeRequest { image: golden_document(SCANNED), task: Task::Line as i32, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(line.code(), Code::InvalidArgument);
    assert!(line.message().contains("send a PDF as a DOCUMENT"), "{}", line.message());

    // Over HTTP the same refusals are JSON with the mirrored status.
    let http = server.http_api_addr;
    let response = http_request(
        http,
        "POST",
        "/v1/ocr?task=document&pdf_dpi=2400",
        &[("Content-Type", "application/pdf")],
        &golden_document(SCANNED),
    )
    .await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("pdf_dpi must be between"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_that_hits_its_memory_limit_or_is_missing_is_a_clear_error() {
    let starved = PdfSettings { memory_limit_bytes: 16 << 20, ..config().pdf };
    let server = serving_server(ServerConfig { pdf: starved, ..config() }).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let status = grpc.recognize(request(golden_document(SCANNED), Default::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("went past the renderer's limits"), "{}", status.message());
    // The server is fine and serves the next image.
    grpc.recognize(request(golden_image(SOURCE_PAGES[0]), Default::default())).await.unwrap();
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(render_failures(&metrics, "limit"), 1.0, "{metrics}");
    server.shutdown().await.unwrap();

    let missing = PdfSettings::with_program("/nonexistent/ocr-pdf-render".into());
    let server = serving_server(ServerConfig { pdf: missing, ..config() }).await;
    let mut grpc = ocr_client(server.grpc_addr).await;
    let status = grpc.recognize(request(golden_document(SCANNED), Default::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("/nonexistent/ocr-pdf-render"), "{}", status.message());
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(render_failures(&metrics, "spawn"), 1.0, "{metrics}");
    assert_eq!(render_failures(&metrics, "limit"), 0.0, "{metrics}");
    server.shutdown().await.unwrap();
}

/// `ocr_pdf_render_failures_total` for `reason`.
fn render_failures(metrics: &str, reason: &str) -> f64 {
    labelled_metric_sum(metrics, "ocr_pdf_render_failures_total", "reason", reason)
}

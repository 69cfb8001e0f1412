//! The `ocr` binary against a stand-in gRPC server that answers on cue: a document's pages
//! streamed (`RecognizeDocument`) with the options passed through, the fallback to
//! `Recognize` for a server without the stream, and a stream that fails after a page.
//! The real server's side is in inference-pod/tests/server/clients.rs.

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use kube_ocr_proto::v1::ocr_server::{Ocr, OcrServer};
use kube_ocr_proto::v1::{
    CancelJobRequest, GetJobRequest, GetJobResultRequest, GetModelInfoRequest, Job, JobResultChunk, ModelInfo,
    PageResult, RecognizeDocumentResponse, RecognizeOptions, RecognizeRequest, RecognizeResponse,
    RecognizeStreamResponse, SubmitJobRequest, TextLine, TextSource,
};
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::{Request, Response, Status, Streaming};

const TIFF: &[u8] = b"II*\0 the stand-in server does not decode";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n nor this";

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Streams two of three pages.
    Pages,
    /// Has no RecognizeDocument.
    NoStream,
    /// Streams one page of two, then fails.
    FailsAfterOnePage,
}

#[derive(Debug, Default)]
struct Seen {
    calls: Vec<&'static str>,
    options: Vec<RecognizeOptions>,
}

struct StandIn {
    mode: Mode,
    seen: Arc<Mutex<Seen>>,
}

fn page(number: u32, text: &str, source: TextSource) -> PageResult {
    PageResult {
        page_number: number,
        image_width: 100,
        image_height: 200,
        lines: vec![TextLine { text: text.into(), confidence: 0.9, ..Default::default() }],
        text: text.into(),
        text_source: source as i32,
        ..Default::default()
    }
}

fn streamed(
    head: (u32, u32),
    pages: Vec<PageResult>,
    then: Option<Status>,
) -> Vec<Result<RecognizeDocumentResponse, Status>> {
    let mut messages = vec![Ok(RecognizeDocumentResponse {
        document_page_count: head.0,
        pages_to_read: head.1,
        ..Default::default()
    })];
    messages
        .extend(pages.into_iter().map(|page| Ok(RecognizeDocumentResponse { page: Some(page), ..Default::default() })));
    messages.extend(then.map(Err));
    messages
}

type DocumentStream = Pin<Box<dyn Stream<Item = Result<RecognizeDocumentResponse, Status>> + Send>>;
type ManyStream = Pin<Box<dyn Stream<Item = Result<RecognizeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Ocr for StandIn {
    async fn recognize(&self, request: Request<RecognizeRequest>) -> Result<Response<RecognizeResponse>, Status> {
        let request = request.into_inner();
        let mut seen = self.seen.lock().unwrap();
        seen.calls.push("Recognize");
        seen.options.push(request.options.unwrap_or_default());
        if request.image.starts_with(b"\x89PNG") {
            return Ok(Response::new(RecognizeResponse { text: "an image".into(), ..Default::default() }));
        }
        let pages = vec![page(1, "alpha", TextSource::Ocr), page(2, "beta", TextSource::Ocr)];
        Ok(Response::new(RecognizeResponse {
            text: "alpha".into(),
            document_text: "alpha\n\u{c}\nbeta".into(),
            pages,
            ..Default::default()
        }))
    }

    type RecognizeStreamStream = ManyStream;

    async fn recognize_stream(
        &self,
        _request: Request<Streaming<RecognizeRequest>>,
    ) -> Result<Response<ManyStream>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    async fn submit_job(&self, _request: Request<SubmitJobRequest>) -> Result<Response<Job>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    async fn get_job(&self, _request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    async fn cancel_job(&self, _request: Request<CancelJobRequest>) -> Result<Response<Job>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    type GetJobResultStream = Pin<Box<dyn Stream<Item = Result<JobResultChunk, Status>> + Send>>;

    async fn get_job_result(
        &self,
        _request: Request<GetJobResultRequest>,
    ) -> Result<Response<Self::GetJobResultStream>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    type RecognizeDocumentStream = DocumentStream;

    async fn recognize_document(&self, request: Request<RecognizeRequest>) -> Result<Response<DocumentStream>, Status> {
        let request = request.into_inner();
        let mut seen = self.seen.lock().unwrap();
        seen.calls.push("RecognizeDocument");
        seen.options.push(request.options.unwrap_or_default());
        let messages = match self.mode {
            Mode::NoStream => return Err(Status::unimplemented("unknown method RecognizeDocument")),
            Mode::Pages => streamed(
                (3, 2),
                vec![page(1, "alpha", TextSource::Ocr), page(2, "beta", TextSource::PdfTextLayer)],
                None,
            ),
            Mode::FailsAfterOnePage => {
                streamed((2, 2), vec![page(1, "alpha", TextSource::Ocr)], Some(Status::unavailable("draining")))
            }
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn get_model_info(&self, _request: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }
}

/// Serves a stand-in on a free port; its endpoint and what it was asked.
async fn stand_in(mode: Mode) -> (String, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let service = OcrServer::new(StandIn { mode, seen: seen.clone() });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (endpoint, seen)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn ocr(endpoint: &str, args: &[&str], path: &Path) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ocr"));
    command.args(["--endpoint", endpoint]).args(args).arg(path);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn a_document_is_streamed_page_by_page_with_its_options() {
    let (endpoint, seen) = stand_in(Mode::Pages).await;
    let dir = tempfile::tempdir().unwrap();
    let tiff = dir.path().join("fax.tiff");
    std::fs::write(&tiff, TIFF).unwrap();
    let flags = ["--first-page", "1", "--last-page", "2", "--pdf-dpi", "150", "--pdf-text-layer"];
    let run = ocr(&endpoint, &flags, &tiff).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "-- page 1 of 3 --\nalpha\n-- page 2 of 3 (PDF text layer) --\nbeta\n");
    assert_eq!(run.stderr, "", "no progress bar off a terminal");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.calls, ["RecognizeDocument"]);
        let asked =
            RecognizeOptions { first_page: 1, last_page: 2, pdf_dpi: 150, pdf_text_layer: true, ..Default::default() };
        assert_eq!(seen.options[0], asked);
    }

    let json = ocr(&endpoint, &["--json"], &tiff).await;
    let object: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(object["documentPageCount"], 3);
    assert_eq!(object["documentText"], "alpha\n\u{c}\nbeta");
    assert_eq!(object["pages"][1]["page"], 2);
    assert_eq!(object["pages"][1]["textSource"], "pdf_text_layer");
    assert_eq!(object["pages"][1]["lines"][0]["text"], "beta");
}

#[tokio::test]
async fn a_server_without_the_stream_is_asked_with_recognize() {
    let (endpoint, seen) = stand_in(Mode::NoStream).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.tif"), TIFF).unwrap();
    std::fs::write(dir.path().join("b.pdf"), b"%PDF-1.7 stand-in").unwrap();
    std::fs::write(dir.path().join("c.png"), PNG).unwrap();
    let run = ocr(&endpoint, &[], dir.path()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let expected = format!(
        "== {a}\n-- page 1 of 2 --\nalpha\n-- page 2 of 2 --\nbeta\n== {b}\n-- page 1 of 2 --\nalpha\n-- page 2 of 2 --\nbeta\n== {c}\nan image\n",
        a = dir.path().join("a.tif").display(),
        b = dir.path().join("b.pdf").display(),
        c = dir.path().join("c.png").display(),
    );
    assert_eq!(run.stdout, expected);
    // Asked once: the server's UNIMPLEMENTED is remembered for the rest of the folder.
    assert_eq!(seen.lock().unwrap().calls, ["RecognizeDocument", "Recognize", "Recognize", "Recognize"]);
}

#[tokio::test]
async fn pages_read_before_a_failure_are_printed_with_it() {
    let (endpoint, _) = stand_in(Mode::FailsAfterOnePage).await;
    let dir = tempfile::tempdir().unwrap();
    let tiff = dir.path().join("fax.tiff");
    std::fs::write(&tiff, TIFF).unwrap();
    let run = ocr(&endpoint, &[], &tiff).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "-- page 1 of 2 --\nalpha\n");
    assert_eq!(run.stderr.trim(), format!("{}: UNAVAILABLE: draining", tiff.display()));
    let json = ocr(&endpoint, &["--json"], &tiff).await;
    assert_eq!(json.code, Some(1));
    let object: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(object["pages"].as_array().unwrap().len(), 1);
    assert_eq!(object["error"], "UNAVAILABLE: draining");
}

#[tokio::test]
async fn images_and_lines_use_recognize() {
    let (endpoint, seen) = stand_in(Mode::Pages).await;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("page.png");
    std::fs::write(&png, PNG).unwrap();
    let run = ocr(&endpoint, &[], &png).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "an image\n"), "{}", run.stderr);
    let tiff = dir.path().join("line.tiff");
    std::fs::write(&tiff, TIFF).unwrap();
    assert_eq!(ocr(&endpoint, &["--task", "line"], &tiff).await.code, Some(0));
    assert_eq!(seen.lock().unwrap().calls, ["Recognize", "Recognize"]);
}

//! The command line: flags (each with its environment variable), checked into
//! [`Settings`], and the rule that tells a gRPC endpoint from an HTTP API URL.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kube_ocr_proto::v1::{RecognizeOptions, Task};

/// The default gRPC endpoint (the pod's `--grpc-port`).
const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:50051";
/// The default HTTP API address (the pod's `--http-api-port`).
const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:8000";
/// The HTTP API's OCR operation, below the URL given.
pub const OCR_PATH: &str = "/v1/ocr";

const EXAMPLES: &str = "\
Examples:
  ocr page.png                                          gRPC on 127.0.0.1:50051
  ocr --endpoint ocr-invoices.ns.svc:50051 scans/       every image, PDF and TIFF in scans/
  ocr --first-page 2 --last-page 5 --pdf-dpi 200 report.pdf
  ocr --pdf-text-layer --json report.pdf                born-digital pages from their own text
  ocr --api http --endpoint http://127.0.0.1:8000 fax.tiff    the HTTP API (POST /v1/ocr)

A document of several pages prints each page under a `-- page N of M --` line (in JSON:
`pages` and `documentText`). Over gRPC its pages are streamed (RecognizeDocument) with a
progress bar on a terminal; servers without that call are asked with Recognize.
Exit status: 0 every file was read, 1 some requests failed, 2 usage or input error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Find and read every line of a page.
    Document,
    /// The image is a single text line.
    Line,
}

/// Which of the service's APIs `--endpoint` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// The gRPC `kube_ocr.v1.Ocr` service (the pods' port 50051).
    Grpc,
    /// The HTTP/JSON API, `POST /v1/ocr` (the pods' port 8000).
    Http,
}

#[derive(Debug, Parser)]
#[command(
    name = "ocr",
    version,
    about = "Read text from images, PDFs and TIFFs with a kube-ocr service (gRPC or HTTP API).",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// An image (PNG, JPEG, WebP, BMP), PDF or TIFF file, or a folder whose files with these
    /// extensions (.png .jpg .jpeg .jfif .webp .bmp .tif .tiff .pdf) are all read.
    path: PathBuf,
    /// Which API --endpoint speaks: `grpc`, or `http` for the HTTP API.
    #[arg(long, env = "OCR_API", value_enum, default_value = "grpc")]
    api: Api,
    /// The service: `host:port` or `http://host:port` [default: http://127.0.0.1:50051 with
    /// --api grpc, http://127.0.0.1:8000 with --api http]. With --api http a path is kept
    /// as a prefix (`http://gw/ocr` posts to `http://gw/ocr/v1/ocr`; a URL that already
    /// ends in /v1/ocr is used as it is). https:// is not supported.
    #[arg(long, env = "OCR_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "OCR_TASK", value_enum, default_value = "document")]
    task: TaskArg,
    /// Leave out lines below this confidence (0..=1).
    #[arg(long, env = "OCR_MIN_CONFIDENCE", default_value_t = 0.0)]
    min_confidence: f32,
    /// Documents of several pages (PDF, multi-page TIFF): the first page to read, from 1
    /// [default: the first].
    #[arg(long, env = "OCR_FIRST_PAGE", value_parser = clap::value_parser!(u32).range(1..))]
    first_page: Option<u32>,
    /// Documents of several pages: the last page to read, inclusive [default: the last].
    #[arg(long, env = "OCR_LAST_PAGE", value_parser = clap::value_parser!(u32).range(1..))]
    last_page: Option<u32>,
    /// PDF: render pages at this many dots per inch [default: the server's --pdf-dpi].
    #[arg(long, env = "OCR_PDF_DPI", value_parser = clap::value_parser!(u32).range(1..))]
    pdf_dpi: Option<u32>,
    /// PDF: answer a page that carries its own text (a born-digital page) from that text
    /// instead of reading it by OCR.
    #[arg(long, env = "OCR_PDF_TEXT_LAYER")]
    pdf_text_layer: bool,
    /// Print one JSON object per file instead of text.
    #[arg(long, env = "OCR_JSON")]
    json: bool,
    /// Deadline of each request (one whole document), in milliseconds.
    #[arg(long, env = "OCR_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

/// What one request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings {
    pub task: Task,
    pub options: RecognizeOptions,
    pub timeout: Duration,
}

/// The checked command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub api: Api,
    /// `http://host:port` for gRPC; the full `POST` URL for the HTTP API.
    pub endpoint: String,
    pub json: bool,
    pub request: RequestSettings,
}

impl Cli {
    pub fn settings(self) -> anyhow::Result<Settings> {
        anyhow::ensure!((0.0..=1.0).contains(&self.min_confidence), "--min-confidence must be between 0 and 1");
        if let (Some(first), Some(last)) = (self.first_page, self.last_page) {
            anyhow::ensure!(first <= last, "--first-page {first} is after --last-page {last}");
        }
        let endpoint = match (self.api, self.endpoint.as_deref()) {
            (Api::Grpc, None) => DEFAULT_GRPC_ENDPOINT.to_owned(),
            (Api::Http, None) => format!("{DEFAULT_HTTP_ENDPOINT}{OCR_PATH}"),
            (Api::Grpc, Some(given)) => grpc_endpoint(given)?,
            (Api::Http, Some(given)) => http_ocr_url(given)?,
        };
        Ok(Settings {
            path: self.path,
            api: self.api,
            endpoint,
            json: self.json,
            request: RequestSettings {
                task: match self.task {
                    TaskArg::Document => Task::Document,
                    TaskArg::Line => Task::Line,
                },
                options: RecognizeOptions {
                    min_confidence: self.min_confidence,
                    first_page: self.first_page.unwrap_or(0),
                    last_page: self.last_page.unwrap_or(0),
                    pdf_dpi: self.pdf_dpi.unwrap_or(0),
                    pdf_text_layer: self.pdf_text_layer,
                    ..Default::default()
                },
                timeout: Duration::from_millis(self.timeout_ms),
            },
        })
    }
}

/// `given` split into `http://authority` and its path (without a trailing `/`); a missing
/// scheme is `http`, and `https` is refused with what to do instead.
fn split_endpoint(given: &str) -> anyhow::Result<(String, String)> {
    let trimmed = given.trim();
    let rest = match trimmed.split_once("://") {
        None => trimmed,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => anyhow::bail!(
            "--endpoint {given}: https is not supported; inside the cluster use http:// (the pods serve plain \
             HTTP and gRPC), or port-forward and use http://127.0.0.1:PORT"
        ),
        Some((scheme, _)) => anyhow::bail!("--endpoint {given}: unknown scheme {scheme:?}; use http://host:port"),
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(authority, path)| (authority, path));
    anyhow::ensure!(!authority.is_empty(), "--endpoint {given:?} names no host; use host:port or http://host:port");
    anyhow::ensure!(
        !authority.contains(['?', '#', '@', ' ']),
        "--endpoint {given:?} is not host:port or http://host:port"
    );
    let path = path.trim_end_matches('/');
    Ok((format!("http://{authority}"), if path.is_empty() { String::new() } else { format!("/{path}") }))
}

/// A gRPC endpoint: `http://host:port`, no path.
fn grpc_endpoint(given: &str) -> anyhow::Result<String> {
    let (origin, path) = split_endpoint(given)?;
    anyhow::ensure!(
        path.is_empty(),
        "--endpoint {given}: a gRPC endpoint is host:port without a path; for the HTTP API's URL add --api http"
    );
    Ok(origin)
}

/// The URL the HTTP API's OCR operation is posted to.
fn http_ocr_url(given: &str) -> anyhow::Result<String> {
    let (origin, path) = split_endpoint(given)?;
    let prefix = path.strip_suffix(OCR_PATH).unwrap_or(&path);
    Ok(format!("{origin}{prefix}{OCR_PATH}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut argv = vec!["ocr"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.settings()
    }

    #[test]
    fn grpc_endpoints_take_host_port_with_or_without_the_scheme() {
        assert_eq!(grpc_endpoint("10.0.0.7:50051").unwrap(), "http://10.0.0.7:50051");
        assert_eq!(grpc_endpoint("http://svc.ns:50051/").unwrap(), "http://svc.ns:50051");
        assert_eq!(grpc_endpoint("HTTP://[::1]:50051").unwrap(), "http://[::1]:50051");
        let error = grpc_endpoint("http://host:8000/v1/ocr").unwrap_err().to_string();
        assert!(error.contains("--api http"), "{error}");
    }

    #[test]
    fn http_urls_get_the_ocr_path_once() {
        assert_eq!(http_ocr_url("http://127.0.0.1:8000").unwrap(), "http://127.0.0.1:8000/v1/ocr");
        assert_eq!(http_ocr_url("127.0.0.1:8000/").unwrap(), "http://127.0.0.1:8000/v1/ocr");
        assert_eq!(http_ocr_url("http://gw/ocr/v1/ocr").unwrap(), "http://gw/ocr/v1/ocr");
        assert_eq!(http_ocr_url("http://gw/ocr").unwrap(), "http://gw/ocr/v1/ocr");
    }

    #[test]
    fn https_and_other_schemes_are_refused_with_what_to_do() {
        for given in ["https://ocr.example.com", "HTTPS://x:443"] {
            let error = http_ocr_url(given).unwrap_err().to_string();
            assert!(error.contains("https is not supported") && error.contains("http://"), "{error}");
            assert!(grpc_endpoint(given).is_err());
        }
        assert!(grpc_endpoint("grpc://x:1").unwrap_err().to_string().contains("unknown scheme"));
        assert!(grpc_endpoint("http://").unwrap_err().to_string().contains("names no host"));
        assert!(grpc_endpoint("http://user@host:1").is_err());
    }

    #[test]
    fn the_default_endpoint_follows_the_api() {
        assert_eq!(parse(&["x.png"]).unwrap().endpoint, DEFAULT_GRPC_ENDPOINT);
        let http = parse(&["--api", "http", "x.png"]).unwrap();
        assert_eq!((http.api, http.endpoint.as_str()), (Api::Http, "http://127.0.0.1:8000/v1/ocr"));
    }

    #[test]
    fn document_flags_fill_the_request_options() {
        let settings =
            parse(&["--first-page", "2", "--last-page", "3", "--pdf-dpi", "150", "--pdf-text-layer", "a.pdf"]).unwrap();
        let options = &settings.request.options;
        assert_eq!((options.first_page, options.last_page, options.pdf_dpi), (2, 3, 150));
        assert!(options.pdf_text_layer);
        let defaults = parse(&["a.pdf"]).unwrap().request.options;
        assert_eq!(defaults, RecognizeOptions::default());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(parse(&["--first-page", "0", "a.pdf"]).is_err());
        assert!(parse(&["--pdf-dpi", "0", "a.pdf"]).is_err());
        assert!(parse(&["--timeout-ms", "0", "a.pdf"]).is_err());
        let error = parse(&["--first-page", "4", "--last-page", "2", "a.pdf"]).unwrap_err().to_string();
        assert_eq!(error, "--first-page 4 is after --last-page 2");
        assert!(parse(&["--min-confidence", "1.5", "a.png"]).is_err());
    }
}

//! `ocr-pdf-render`: renders one PDF for the inference pod. The pod starts one per PDF
//! request, writes the document to its standard input and reads pages back from its
//! standard output as they are rendered (the frames of `kube_ocr_vision::pdf::wire`).
//!
//! It exists so that a hostile PDF (a decompression bomb in an image stream, a page tree
//! of a million pages, a content stream that loops) costs one short-lived process under
//! an address-space and CPU limit, never the server holding the model: what the limits
//! stop ends here with a signal, and the pod answers the caller with the reason.

mod resource_limits;
mod session;

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use kube_ocr_vision::image::PageRange;
use kube_ocr_vision::pdf::PdfLimits;

/// Every flag has an environment variable, as every kube-ocr binary's does; the pod
/// passes flags.
#[derive(Debug, Parser)]
#[command(
    name = "ocr-pdf-render",
    version,
    about = "Render one PDF from stdin as frames on stdout (run by ocr-inference-pod)."
)]
struct Args {
    /// Resolution to render at, in dots per inch.
    #[arg(long, env = "OCR_PDF_RENDER_DPI", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=2400))]
    dpi: u32,
    /// First page to read, 1-based (0: the first).
    #[arg(long, env = "OCR_PDF_RENDER_FIRST_PAGE", default_value_t = 0)]
    first_page: u32,
    /// Last page to read, 1-based and inclusive (0: the last).
    #[arg(long, env = "OCR_PDF_RENDER_LAST_PAGE", default_value_t = 0)]
    last_page: u32,
    /// Most pages read.
    #[arg(long, env = "OCR_PDF_RENDER_MAX_PAGES", default_value_t = PdfLimits::default().max_pages)]
    max_pages: usize,
    /// Most pages the document may have.
    #[arg(long, env = "OCR_PDF_RENDER_MAX_DOCUMENT_PAGES", default_value_t = PdfLimits::default().max_document_pages)]
    max_document_pages: usize,
    /// Largest rendered page, width × height in pixels.
    #[arg(long, env = "OCR_PDF_RENDER_MAX_PAGE_PIXELS", default_value_t = PdfLimits::default().max_page_pixels)]
    max_page_pixels: u64,
    /// Longest rendered side, in pixels.
    #[arg(long, env = "OCR_PDF_RENDER_MAX_SIDE", default_value_t = PdfLimits::default().max_side)]
    max_side: u32,
    /// Answer a page that has a text layer with its text instead of its pixels.
    #[arg(long, env = "OCR_PDF_RENDER_TEXT_LAYER")]
    text_layer: bool,
    /// Address-space limit of this process, in bytes (0: none).
    #[arg(long, env = "OCR_PDF_RENDER_MEMORY_LIMIT_BYTES", default_value_t = 0)]
    memory_limit_bytes: u64,
    /// CPU-time limit of this process, in seconds (0: none).
    #[arg(long, env = "OCR_PDF_RENDER_CPU_SECONDS", default_value_t = 0)]
    cpu_seconds: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Limits first, before a byte of the document is read.
    if let Err(error) = resource_limits::apply(args.memory_limit_bytes, args.cpu_seconds) {
        eprintln!("ocr-pdf-render: cannot set resource limits: {error}");
        return ExitCode::from(3);
    }
    let mut document = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut document) {
        eprintln!("ocr-pdf-render: reading the document from stdin: {error}");
        return ExitCode::from(3);
    }
    let request = session::Request {
        dpi: args.dpi,
        range: PageRange { first: args.first_page, last: args.last_page },
        limits: PdfLimits {
            max_pages: args.max_pages,
            max_document_pages: args.max_document_pages,
            max_page_pixels: args.max_page_pixels,
            max_side: args.max_side,
        },
        text_layer: args.text_layer,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match session::run(document, &request, &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The pod stopped reading (its caller went away, or a deadline passed).
        Err(error) => {
            eprintln!("ocr-pdf-render: writing frames: {error}");
            ExitCode::from(4)
        }
    }
}

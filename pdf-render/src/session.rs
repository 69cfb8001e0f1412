//! One document: open, plan, then each page as a frame, flushed as soon as it is ready
//! so the pod reads page 1 while page 2 renders.

use std::io::Write;

use kube_ocr_vision::image::PageRange;
use kube_ocr_vision::pdf::wire::{Frame, frame_prefix};
use kube_ocr_vision::pdf::{PageRenderer, PdfDocument, PdfLimits, page_text};

#[derive(Debug)]
pub struct Request {
    pub dpi: u32,
    pub range: PageRange,
    pub limits: PdfLimits,
    pub text_layer: bool,
}

/// Writes the frames for `document`; an unreadable document is a [`Frame::Failed`], not
/// an error (errors are the pod's pipe going away).
pub fn run(document: Vec<u8>, request: &Request, out: &mut impl Write) -> std::io::Result<()> {
    let document = match PdfDocument::open(document) {
        Ok(document) => document,
        Err(error) => return write_frame(out, &Frame::Failed { error }, &[]),
    };
    let pages = match document.plan(request.range, request.dpi, &request.limits) {
        Ok(pages) => pages,
        Err(error) => return write_frame(out, &Frame::Failed { error }, &[]),
    };
    write_frame(out, &Frame::Document { page_count: document.page_count(), pages: pages.clone() }, &[])?;
    let renderer = PageRenderer::new(&document, request.dpi);
    for mut page in pages {
        if request.text_layer {
            let lines = page_text(&document, &page, request.dpi);
            if !lines.is_empty() {
                write_frame(out, &Frame::Page { page, text_layer: Some(lines) }, &[])?;
                continue;
            }
        }
        let pixels = renderer.render(&page);
        // The canvas is sized by the same arithmetic as the plan; the frame carries what
        // was drawn, so the pod never misreads the pixels should the two ever differ.
        (page.width, page.height) = pixels.dimensions();
        write_frame(out, &Frame::Page { page, text_layer: None }, pixels.as_raw())?;
    }
    Ok(())
}

fn write_frame(out: &mut impl Write, frame: &Frame, payload: &[u8]) -> std::io::Result<()> {
    let prefix = frame_prefix(frame, payload.len() as u64).map_err(std::io::Error::other)?;
    out.write_all(&prefix)?;
    out.write_all(payload)?;
    out.flush()
}

//! `ocr-pdf-render` on real and hostile PDFs: pages and text come back as frames, every
//! unreadable or oversized document as a reason, and a decompression bomb dies at the
//! memory limit instead of taking the machine.

mod common;

use common::{encrypted_pdf, golden_document, image_bomb_pdf, pages_pdf, render};
use kube_ocr_vision::image::PageRangeError;
use kube_ocr_vision::pdf::PdfError;
use kube_ocr_vision::pdf::wire::Frame;

/// The truth of a multi-page item of the golden document set, page by page.
fn truth_pages(id: &str) -> Vec<Vec<String>> {
    let truth = String::from_utf8(golden_document("truth.jsonl")).unwrap();
    let item: serde_json::Value = truth
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in golden/documents/truth.jsonl"));
    serde_json::from_value(item["pages"].clone()).unwrap()
}

#[test]
fn every_page_comes_back_as_pixels_of_the_planned_size() {
    let rendered = render(&golden_document("multipage/pdf-scanned.pdf"), &["--dpi", "200"]);
    assert!(rendered.success, "{}", rendered.stderr);
    let Frame::Document { page_count, pages } = &rendered.frames[0].0 else { panic!("{:?}", rendered.frames[0].0) };
    assert_eq!((*page_count, pages.len()), (3, 3));
    for ((frame, pixels), planned) in rendered.frames[1..].iter().zip(pages) {
        let Frame::Page { page, text_layer: None } = frame else { panic!("{frame:?}") };
        assert_eq!(page, planned);
        assert_eq!(pixels.len(), page.width as usize * page.height as usize * 3);
        // Scanned at 200 dpi and rendered at 200 dpi: about the scan's own pixels, with ink on them.
        assert!(pixels.iter().any(|&v| v < 100), "page {} is blank", page.number());
    }
}

#[test]
fn a_born_digital_page_answers_with_its_own_text_when_asked() {
    let truth = truth_pages("pdf-born-digital");
    let rendered = render(&golden_document("multipage/pdf-born-digital.pdf"), &["--text-layer", "--dpi", "150"]);
    assert!(rendered.success, "{}", rendered.stderr);
    let pages = rendered.pages();
    assert_eq!(pages.len(), truth.len());
    for (frame, truth) in pages.iter().zip(&truth) {
        let Frame::Page { page, text_layer: Some(lines) } = frame else { panic!("{frame:?}") };
        let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, *truth, "page {}", page.number());
        for line in lines {
            let [left, top, right, bottom] = line.bbox;
            assert!(0.0 <= left && left < right && right <= page.width as f32, "{line:?} in {page:?}");
            assert!(0.0 <= top && top < bottom && bottom <= page.height as f32, "{line:?} in {page:?}");
        }
    }
    // Without the option the same pages are pixels; a scan has no text layer to give.
    assert!(
        render(&golden_document("multipage/pdf-born-digital.pdf"), &[])
            .pages()
            .iter()
            .all(|frame| matches!(frame, Frame::Page { text_layer: None, .. }))
    );
    let scanned = render(&golden_document("multipage/pdf-scanned.pdf"), &["--text-layer"]);
    assert!(scanned.pages().iter().all(|frame| matches!(frame, Frame::Page { text_layer: None, .. })));
}

#[test]
fn a_page_range_reads_only_those_pages() {
    let rendered =
        render(&golden_document("multipage/pdf-born-digital.pdf"), &["--first-page", "2", "--last-page", "3"]);
    let numbers: Vec<usize> = rendered
        .pages()
        .iter()
        .map(|frame| match frame {
            Frame::Page { page, .. } => page.number(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(numbers, [2, 3]);
    let past = render(&golden_document("multipage/pdf-born-digital.pdf"), &["--first-page", "4"]);
    assert_eq!(past.failure(), Some(&PdfError::Range(PageRangeError::PastTheEnd { first: 4, page_count: 3 })));
    assert!(past.pages().is_empty());
}

#[test]
fn unreadable_documents_fail_with_their_reason() {
    type Expected = fn(&PdfError) -> bool;
    let cases: [(&str, Vec<u8>, Expected); 5] = [
        ("garbage", b"%PDF-1.7\nthis is not a PDF at all".to_vec(), |e| *e == PdfError::Unreadable),
        // Cut inside the page tree: the parser repairs what it can and finds no page.
        ("truncated", golden_document("multipage/pdf-born-digital.pdf")[..600].to_vec(), |e| {
            matches!(e, PdfError::Unreadable | PdfError::NoPages)
        }),
        ("encrypted", encrypted_pdf(), |e| *e == PdfError::Encrypted),
        ("no pages", pages_pdf(&[], ""), |e| *e == PdfError::NoPages),
        ("too many pages", pages_pdf(&[(612.0, 792.0); 60], ""), |e| {
            matches!(e, PdfError::Range(PageRangeError::TooManyPages { selected: 60, max_pages: 50 }))
        }),
    ];
    for (name, document, expected) in cases {
        let rendered = render(&document, &[]);
        let failure = rendered.failure().unwrap_or_else(|| panic!("{name}: no failure in {:?}", rendered.frames));
        assert!(expected(failure), "{name}: {failure:?}");
        assert!(rendered.pages().is_empty(), "{name}");
    }
}

#[test]
fn bombs_are_refused_before_rendering_by_plan() {
    // A page 200 inches square at 300 dpi, and a long document.
    let huge = render(&pages_pdf(&[(612.0, 792.0), (14_400.0, 14_400.0)], ""), &["--dpi", "300"]);
    assert!(matches!(huge.failure(), Some(PdfError::PageTooLarge { page: 2, .. })), "{:?}", huge.frames);
    assert!(huge.pages().is_empty(), "no page is rendered when a later one is too large");
    let long = render(&pages_pdf(&[(612.0, 792.0); 40], ""), &["--max-document-pages", "30", "--last-page", "1"]);
    assert_eq!(long.failure(), Some(&PdfError::DocumentTooLong { page_count: 40, max_pages: 30 }));
}

#[test]
fn a_decompression_bomb_dies_at_the_memory_limit() {
    // 16384² RGB pixels = 768 MiB inflated from under a megabyte; the limit is 256 MiB.
    let bomb = image_bomb_pdf(16_384);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let limited = render(&bomb, &["--memory-limit-bytes", &(256u64 << 20).to_string()]);
    assert!(!limited.success, "the renderer survived a 768 MiB image under a 256 MiB limit");
    assert!(limited.pages().is_empty(), "a page came back: {:?}", limited.pages());
    assert!(matches!(limited.frames.first(), Some((Frame::Document { .. }, _))), "{:?}", limited.frames);
    eprintln!("bomb stopped after {:?}: {}", limited.elapsed, limited.stderr.lines().last().unwrap_or(""));
}

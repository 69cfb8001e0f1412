//! What is printed for an answer: its text (a `-- page N of M --` line over each page of
//! a document of several pages) or one JSON object.

use std::path::Path;

use kube_ocr_proto::v1::{PageResult, RecognizeOptions, RecognizeResponse, TextLine, TextSource};

/// Writes one line to stdout; false when stdout is closed.
pub fn emit(line: impl std::fmt::Display) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

/// The text of an answer: an image's lines, or each page's under its heading.
pub fn text_lines(response: &RecognizeResponse) -> Vec<String> {
    if response.pages.is_empty() {
        return vec![response.text.clone()];
    }
    let count = page_count(response);
    response
        .pages
        .iter()
        .flat_map(|page| {
            let source = if page.text_source == TextSource::PdfTextLayer as i32 { " (PDF text layer)" } else { "" };
            [format!("-- page {} of {count}{source} --", page.page_number), page.text.clone()]
        })
        .collect()
}

/// A warning when `--first-page`/`--last-page` asked for pages the answer's are outside
/// of: a server that predates page ranges ignores them and reads every page.
pub fn range_warning(response: &RecognizeResponse, options: &RecognizeOptions) -> Option<String> {
    let (first, last) = (response.pages.first()?.page_number, response.pages.last()?.page_number);
    let before = options.first_page > 0 && first < options.first_page;
    let after = options.last_page > 0 && last > options.last_page;
    (before || after).then(|| {
        format!(
            "the server read pages {first} to {last}, outside --first-page/--last-page (it predates page ranges \
             and ignored them)"
        )
    })
}

/// The document's page count (an older server does not say; then the pages it sent).
fn page_count(response: &RecognizeResponse) -> usize {
    if response.document_page_count > 0 { response.document_page_count as usize } else { response.pages.len() }
}

fn lines_json(lines: &[TextLine]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| {
            serde_json::json!({
                "text": line.text,
                "confidence": line.confidence,
                "box": line.r#box.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
                "rotated180": line.rotated_180,
            })
        })
        .collect()
}

fn text_source_name(page: &PageResult) -> &'static str {
    match TextSource::try_from(page.text_source) {
        Ok(TextSource::PdfTextLayer) => "pdf_text_layer",
        _ => "ocr",
    }
}

/// One file's answer as JSON; `error` when the pages in it are all that came before a
/// failure.
pub fn response_json(path: &Path, response: &RecognizeResponse, error: Option<&str>) -> serde_json::Value {
    let pages: Vec<serde_json::Value> = response
        .pages
        .iter()
        .map(|page| {
            serde_json::json!({
                "page": page.page_number,
                "text": page.text,
                "lines": lines_json(&page.lines),
                "width": page.image_width,
                "height": page.image_height,
                "pageRotation": page.page_rotation,
                "textSource": text_source_name(page),
                "cached": page.cached,
            })
        })
        .collect();
    let timings = response.timings.unwrap_or_default();
    let mut json = serde_json::json!({
        "file": path.display().to_string(),
        "text": response.text,
        "lines": lines_json(&response.lines),
        "width": response.image_width,
        "height": response.image_height,
        "pageRotation": response.page_rotation,
        "pages": pages,
        "documentText": response.document_text,
        "documentPageCount": if response.pages.is_empty() { 1 } else { page_count(response) },
        "cached": response.cached,
        "model": response.model.as_ref().map(|m| format!("{}:{}", m.name, m.version)),
        "timingsUs": {
            "queue": timings.queue_us, "preprocess": timings.preprocess_us, "inference": timings.inference_us,
            "postprocess": timings.postprocess_us, "total": timings.total_us,
        },
    });
    if let Some(error) = error {
        json["error"] = serde_json::Value::from(error);
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str, source: TextSource) -> PageResult {
        PageResult {
            page_number: number,
            text: text.into(),
            lines: vec![TextLine { text: text.into(), ..Default::default() }],
            text_source: source as i32,
            ..Default::default()
        }
    }

    #[test]
    fn an_image_prints_its_text_alone() {
        let response = RecognizeResponse { text: "a\nb".into(), ..Default::default() };
        assert_eq!(text_lines(&response), ["a\nb"]);
        let json = response_json(Path::new("x.png"), &response, None);
        assert_eq!((json["pages"].as_array().unwrap().len(), &json["documentPageCount"]), (0, &1.into()));
        assert!(json.get("error").is_none());
    }

    #[test]
    fn pages_print_under_their_headings() {
        let response = RecognizeResponse {
            text: "two".into(),
            pages: vec![page(2, "two", TextSource::Ocr), page(3, "three", TextSource::PdfTextLayer)],
            document_text: "two\n\u{c}\nthree".into(),
            document_page_count: 7,
            ..Default::default()
        };
        assert_eq!(text_lines(&response), ["-- page 2 of 7 --", "two", "-- page 3 of 7 (PDF text layer) --", "three"]);
        let json = response_json(Path::new("r.pdf"), &response, Some("UNAVAILABLE: gone"));
        assert_eq!(json["pages"][1]["page"], 3);
        assert_eq!(json["pages"][1]["textSource"], "pdf_text_layer");
        assert_eq!(json["pages"][0]["textSource"], "ocr");
        assert_eq!(json["pages"][0]["lines"][0]["text"], "two");
        assert_eq!(json["documentText"], "two\n\u{c}\nthree");
        assert_eq!(json["documentPageCount"], 7);
        assert_eq!(json["error"], "UNAVAILABLE: gone");
    }

    #[test]
    fn a_range_the_server_ignored_is_warned_of() {
        let response = RecognizeResponse {
            pages: vec![page(1, "a", TextSource::Ocr), page(2, "b", TextSource::Ocr)],
            ..Default::default()
        };
        let range = |first_page, last_page| RecognizeOptions { first_page, last_page, ..Default::default() };
        assert!(range_warning(&response, &range(2, 0)).unwrap().starts_with("the server read pages 1 to 2"));
        assert!(range_warning(&response, &range(0, 1)).is_some());
        assert_eq!(range_warning(&response, &range(1, 2)), None);
        assert_eq!(range_warning(&response, &range(0, 0)), None);
        assert_eq!(range_warning(&RecognizeResponse::default(), &range(2, 2)), None, "an image has no pages");
    }

    #[test]
    fn an_older_server_is_counted_by_its_pages() {
        let response = RecognizeResponse {
            pages: vec![page(1, "a", TextSource::Ocr), page(2, "b", TextSource::Ocr)],
            ..Default::default()
        };
        assert_eq!(text_lines(&response)[0], "-- page 1 of 2 --");
    }
}

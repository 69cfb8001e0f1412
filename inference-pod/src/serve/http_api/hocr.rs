//! hOCR 1.2 (<http://kba.github.io/hocr-spec/1.2/>): an `ocr_page` per page, an `ocr_line` per
//! recognised line and an `ocrx_word` per word, each with its bounding box; words carry
//! their confidence. A line without words (nothing could be boxed) gets one word spanning
//! it. Pure: a string from the result.

use kube_ocr_vision::image::Quad;
use kube_ocr_vision::postprocess::Word;

/// One page as hOCR needs it.
#[derive(Debug, Clone)]
pub(crate) struct HocrPage<'a> {
    pub width: u32,
    pub height: u32,
    pub lines: Vec<HocrLine<'a>>,
}

/// One line as hOCR needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HocrLine<'a> {
    pub text: &'a str,
    pub confidence: f32,
    pub quad: &'a Quad,
    pub words: &'a [Word],
}

/// The hOCR document of `pages`; `system` names the engine (the `ocr-system` metadata).
pub(crate) fn render_hocr(system: &str, pages: &[HocrPage<'_>]) -> String {
    let lines: usize = pages.iter().map(|page| page.lines.len()).sum();
    let mut html = String::with_capacity(1024 + lines * 256);
    html.push_str(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" ",
        "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
        "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n",
        "<head>\n<title></title>\n",
        "<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n",
    ));
    html.push_str(&format!("<meta name=\"ocr-system\" content=\"{}\"/>\n", escape(system)));
    html.push_str("<meta name=\"ocr-capabilities\" content=\"ocr_page ocr_line ocrx_word\"/>\n</head>\n<body>\n");
    for (page_index, page) in pages.iter().enumerate() {
        render_page(&mut html, page_index + 1, page);
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// One `ocr_page` (ids are numbered per page: `line_<page>_<n>`, `word_<page>_<n>`).
fn render_page(html: &mut String, number: usize, page: &HocrPage<'_>) {
    let (width, height) = (page.width, page.height);
    html.push_str(&format!(
        "<div class=\"ocr_page\" id=\"page_{number}\" title=\"bbox 0 0 {width} {height}; ppageno {}\">\n",
        number - 1
    ));
    let mut word_number = 0;
    for (index, line) in page.lines.iter().enumerate() {
        let (x0, y0, x1, y1) = bounding_box(line.quad, width, height);
        let line_number = index + 1;
        html.push_str(&format!(
            "<span class=\"ocr_line\" id=\"line_{number}_{line_number}\" title=\"bbox {x0} {y0} {x1} {y1}\">"
        ));
        let spanning = [(line.text, line.confidence, line.quad)];
        let words: Vec<(&str, f32, &Quad)> = if line.words.is_empty() {
            spanning.to_vec()
        } else {
            line.words.iter().map(|word| (word.text.as_str(), word.confidence, &word.quad)).collect()
        };
        for (position, (text, confidence, quad)) in words.into_iter().enumerate() {
            word_number += 1;
            let (x0, y0, x1, y1) = bounding_box(quad, width, height);
            let confidence = (f64::from(confidence.clamp(0.0, 1.0)) * 100.0).round();
            if position > 0 {
                html.push(' ');
            }
            html.push_str(&format!(
                "<span class=\"ocrx_word\" id=\"word_{number}_{word_number}\" title=\"bbox {x0} {y0} {x1} {y1}; x_wconf {confidence}\">{}</span>",
                escape(text)
            ));
        }
        html.push_str("</span>\n");
    }
    html.push_str("</div>\n");
}

/// The quad's axis-aligned box in whole pixels, inside the page.
fn bounding_box(quad: &Quad, width: u32, height: u32) -> (u32, u32, u32, u32) {
    let clamp = |value: f32, limit: u32| value.max(0.0).min(limit as f32);
    let xs = quad.iter().map(|&(x, _)| clamp(x, width));
    let ys = quad.iter().map(|&(_, y)| clamp(y, height));
    let (x0, x1) = xs.fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (y0, y1) = ys.fold((f32::MAX, f32::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    (x0.floor() as u32, y0.floor() as u32, x1.ceil() as u32, y1.ceil() as u32)
}

/// Text and attribute values with XML's five special characters escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // XML 1.0 has no way to write most control characters, even escaped.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_boxed_lines_with_confidences() {
        let quad: Quad = [(10.4, 20.0), (110.2, 21.0), (109.0, 40.7), (9.6, 39.0)];
        let lines = vec![HocrLine { text: "Total 14.00", confidence: 0.936, quad: &quad, words: &[] }];
        let html = render_hocr("kube-ocr ppocr-v4 4.0.0", &[HocrPage { width: 200, height: 100, lines }]);
        assert!(html.contains(r#"<div class="ocr_page" id="page_1" title="bbox 0 0 200 100; ppageno 0">"#), "{html}");
        assert!(html.contains(r#"<span class="ocr_line" id="line_1_1" title="bbox 9 20 111 41">"#), "{html}");
        assert!(html.contains(r#"title="bbox 9 20 111 41; x_wconf 94">Total 14.00</span>"#), "{html}");
        assert!(html.contains(r#"<meta name="ocr-system" content="kube-ocr ppocr-v4 4.0.0"/>"#));
    }

    #[test]
    fn words_become_ocrx_words_numbered_across_lines() {
        let line: Quad = [(0.0, 0.0), (100.0, 0.0), (100.0, 10.0), (0.0, 10.0)];
        let word = |text: &str, x0: f32, x1: f32| Word {
            text: text.into(),
            confidence: 0.5,
            quad: [(x0, 0.0), (x1, 0.0), (x1, 10.0), (x0, 10.0)],
        };
        let first = [word("Total", 0.0, 50.0), word("14.00", 60.0, 100.0)];
        let second = [word("Paid", 0.0, 40.0)];
        let lines = vec![
            HocrLine { text: "Total 14.00", confidence: 0.5, quad: &line, words: &first },
            HocrLine { text: "Paid", confidence: 0.5, quad: &line, words: &second },
        ];
        let second_page = vec![HocrLine { text: "Paid", confidence: 0.5, quad: &line, words: &second }];
        let html = render_hocr(
            "s",
            &[HocrPage { width: 100, height: 20, lines }, HocrPage { width: 100, height: 20, lines: second_page }],
        );
        assert!(html.contains(r#"<div class="ocr_page" id="page_2" title="bbox 0 0 100 20; ppageno 1">"#), "{html}");
        assert!(html.contains(r#"id="word_2_1" title="bbox 0 0 40 10; x_wconf 50">Paid</span>"#), "{html}");
        assert!(html.contains(r#"id="word_1_1" title="bbox 0 0 50 10; x_wconf 50">Total</span> <span class="ocrx_word" id="word_1_2" title="bbox 60 0 100 10; x_wconf 50">14.00</span>"#), "{html}");
        assert!(html.contains(r#"id="word_1_3" title="bbox 0 0 40 10; x_wconf 50">Paid</span>"#), "{html}");
    }

    #[test]
    fn text_is_escaped_and_boxes_stay_on_the_page() {
        let quad: Quad = [(-5.0, -3.0), (50.0, -3.0), (50.0, 130.0), (-5.0, 130.0)];
        let lines = vec![HocrLine { text: "a<b & \"c\"\u{7}", confidence: 2.0, quad: &quad, words: &[] }];
        let html = render_hocr("s", &[HocrPage { width: 40, height: 100, lines }]);
        assert!(html.contains("bbox 0 0 40 100; x_wconf 100\">a&lt;b &amp; &quot;c&quot;\u{FFFD}</span>"), "{html}");
    }
}

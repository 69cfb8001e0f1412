//! A page's own text: the glyphs its content stream draws (visible or not: a scan made
//! searchable carries an invisible OCR layer), with their Unicode values from the fonts'
//! ToUnicode maps or encodings, grouped into lines and words with boxes in the rendered
//! page's pixels.

use hayro::hayro_interpret::font::Glyph;
use hayro::hayro_interpret::font::GlyphRun;
use hayro::hayro_interpret::hayro_cmap::BfString;
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, Image, ImageDrawProps, InterpreterCache,
    InterpreterSettings, SoftMask, TransformExt, interpret_page,
};
use hayro::kurbo::{Affine, BezPath, Point, Rect};
use serde::{Deserialize, Serialize};

use super::document::{PdfDocument, PlannedPage};

/// An axis-aligned box in pixels: left, top, right, bottom.
pub type PixelBox = [f32; 4];

/// One drawn glyph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextGlyph {
    /// Its Unicode text (one character, or several for a ligature); U+FFFD when the font
    /// does not say.
    pub text: String,
    pub bbox: PixelBox,
}

/// A word of the text layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLayerWord {
    pub text: String,
    pub bbox: PixelBox,
}

/// A line of the text layer, its words separated by single spaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLayerLine {
    pub text: String,
    pub bbox: PixelBox,
    pub words: Vec<TextLayerWord>,
}

/// The lines of `page`'s text layer in reading order, boxed in the pixels of the page
/// rendered at `dpi`; empty when the page has no text (a scan).
pub fn page_text(document: &PdfDocument, page: &PlannedPage, dpi: u32) -> Vec<TextLayerLine> {
    let pdf_page = &document.pdf().pages()[page.index];
    let scale = f64::from(dpi as f32 / 72.0);
    let transform = Affine::scale(scale) * pdf_page.initial_transform(true).to_kurbo();
    let cache = InterpreterCache::new();
    let canvas = Rect::new(0.0, 0.0, f64::from(page.width), f64::from(page.height));
    let mut context = Context::new(transform, canvas, &cache, pdf_page.xref(), InterpreterSettings::default());
    let mut device = GlyphCollector { glyphs: Vec::new() };
    interpret_page(pdf_page, &mut context, &mut device);
    group_glyphs(&device.glyphs)
}

/// A hayro device that keeps each glyph's text and box and draws nothing.
struct GlyphCollector {
    glyphs: Vec<TextGlyph>,
}

/// The glyph box in glyph space (1000 units per em): from below the baseline by a
/// typical descender to a typical ascender, one advance wide.
const DESCENT: f64 = -200.0;
const ASCENT: f64 = 800.0;

impl<'a> Device<'a> for GlyphCollector {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, _: &DrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_image(&mut self, _: Image<'a, '_>, _: ImageDrawProps<'a>) {}
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}

    fn draw_glyph_run(&mut self, run: &GlyphRun<'_, 'a>, props: DrawProps<'a>, _: &DrawMode) {
        for glyph in run.glyphs() {
            let to_page = props.transform * glyph.transform();
            let advance = f64::from(match &**glyph {
                Glyph::Outline(outline) => outline.advance_width().unwrap_or(500.0),
                Glyph::Type3(type3) => type3.advance_width().unwrap_or(500.0),
            });
            let corners = [(0.0, DESCENT), (advance, DESCENT), (0.0, ASCENT), (advance, ASCENT)]
                .map(|(x, y)| to_page * Point::new(x, y));
            let rect = corners.iter().fold(Rect::from_points(corners[0], corners[0]), |rect, p| rect.union_pt(*p));
            let text = match glyph.as_unicode() {
                Some(BfString::Char(c)) => c.to_string(),
                Some(BfString::String(s)) => s,
                None => char::REPLACEMENT_CHARACTER.to_string(),
            };
            self.glyphs
                .push(TextGlyph { text, bbox: [rect.x0 as f32, rect.y0 as f32, rect.x1 as f32, rect.y1 as f32] });
        }
    }
}

/// Groups glyphs, in the order the page draws them, into lines and words. A glyph joins
/// the line being built when it sits on the same band (its vertical centre within half
/// a glyph height of the line's) and does not jump back left or far right; a gap wider
/// than a quarter of the glyph height (or a drawn space) starts a new word. Lines come
/// out top to bottom, then left to right.
pub fn group_glyphs(glyphs: &[TextGlyph]) -> Vec<TextLayerLine> {
    let mut lines: Vec<LineBuilder> = Vec::new();
    for glyph in glyphs {
        let height = glyph.bbox[3] - glyph.bbox[1];
        // Degenerate transforms give empty or non-finite boxes; control characters are
        // what fonts without a Unicode map decode to.
        if !glyph.bbox.iter().all(|v| v.is_finite()) || height <= 0.0 || glyph.text.chars().all(char::is_control) {
            continue;
        }
        let blank = glyph.text.trim().is_empty();
        let joins = lines.last().is_some_and(|line| line.continues_with(glyph));
        if !joins {
            if blank {
                continue;
            }
            lines.push(LineBuilder::default());
        }
        let line = lines.last_mut().expect("a line was just pushed or continued");
        line.push(glyph, blank);
    }
    reading_order(lines.into_iter().filter_map(LineBuilder::finish).collect())
}

/// Lines top to bottom in bands, each band left to right. Taken from the top down, a line
/// joins the band being built when it shares more than half of the shorter height with the
/// band's first (topmost) line, else it starts the next band. (Comparing two lines at a
/// time, "the same band? then by x, else by y", is no order: a line may share one
/// neighbour's band and that neighbour the next's while the first and the last do not,
/// and the sort may then panic.)
fn reading_order(mut lines: Vec<TextLayerLine>) -> Vec<TextLayerLine> {
    lines.sort_by(|a, b| a.bbox[1].total_cmp(&b.bbox[1]));
    let mut bands: Vec<Vec<TextLayerLine>> = Vec::new();
    for line in lines {
        match bands.last_mut() {
            Some(band) if vertical_overlap(&band[0].bbox, &line.bbox) > 0.5 => band.push(line),
            _ => bands.push(vec![line]),
        }
    }
    bands
        .into_iter()
        .flat_map(|mut band| {
            band.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
            band
        })
        .collect()
}

/// The share of the shorter box's height that two boxes have in common vertically.
fn vertical_overlap(a: &PixelBox, b: &PixelBox) -> f32 {
    let common = a[3].min(b[3]) - a[1].max(b[1]);
    let shorter = (a[3] - a[1]).min(b[3] - b[1]);
    if shorter > 0.0 { (common / shorter).max(0.0) } else { 0.0 }
}

#[derive(Default)]
struct LineBuilder {
    words: Vec<TextLayerWord>,
    /// The next glyph starts a new word (a space was drawn).
    word_ended: bool,
    last: Option<PixelBox>,
}

impl LineBuilder {
    fn continues_with(&self, glyph: &TextGlyph) -> bool {
        let Some(last) = self.last else { return false };
        let height = (last[3] - last[1]).max(glyph.bbox[3] - glyph.bbox[1]);
        let centre = |b: &PixelBox| (b[1] + b[3]) / 2.0;
        let same_band = (centre(&last) - centre(&glyph.bbox)).abs() < height / 2.0;
        let gap = glyph.bbox[0] - last[2];
        same_band && gap > -height / 2.0 && gap < height * 3.0
    }

    fn push(&mut self, glyph: &TextGlyph, blank: bool) {
        if blank {
            self.word_ended = true;
            return;
        }
        let height = glyph.bbox[3] - glyph.bbox[1];
        let gap = self.last.map_or(0.0, |last| glyph.bbox[0] - last[2]);
        let new_word = self.words.is_empty() || self.word_ended || gap > height / 4.0;
        if new_word {
            self.words.push(TextLayerWord { text: glyph.text.clone(), bbox: glyph.bbox });
        } else if let Some(word) = self.words.last_mut() {
            word.text.push_str(&glyph.text);
            word.bbox = union(&word.bbox, &glyph.bbox);
        }
        self.word_ended = false;
        self.last = Some(glyph.bbox);
    }

    fn finish(self) -> Option<TextLayerLine> {
        let first = self.words.first()?;
        let bbox = self.words.iter().fold(first.bbox, |bbox, word| union(&bbox, &word.bbox));
        let text = self.words.iter().map(|word| word.text.as_str()).collect::<Vec<_>>().join(" ");
        Some(TextLayerLine { text, bbox, words: self.words })
    }
}

fn union(a: &PixelBox, b: &PixelBox) -> PixelBox {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` set from `x` on a baseline band `top..top+10`, 6 px per
    /// character, as a simple font would place them.
    fn set(text: &str, x: f32, top: f32) -> Vec<TextGlyph> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                let left = x + 6.0 * i as f32;
                TextGlyph { text: c.to_string(), bbox: [left, top, left + 6.0, top + 10.0] }
            })
            .collect()
    }

    #[test]
    fn drawn_spaces_and_gaps_split_words() {
        let mut glyphs = set("Total: $12", 10.0, 20.0);
        // A word placed by positioning alone (a TJ kerning gap), no space glyph.
        glyphs.extend(set("paid", 10.0 + 6.0 * 10.0 + 8.0, 20.0));
        let lines = group_glyphs(&glyphs);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "Total: $12 paid");
        let words: Vec<&str> = lines[0].words.iter().map(|word| word.text.as_str()).collect();
        assert_eq!(words, ["Total:", "$12", "paid"]);
        assert_eq!(lines[0].bbox, [10.0, 20.0, 10.0 + 6.0 * 14.0 + 8.0, 30.0]);
        assert_eq!(lines[0].words[1].bbox, [10.0 + 6.0 * 7.0, 20.0, 10.0 + 6.0 * 10.0, 30.0]);
    }

    #[test]
    fn lines_come_out_in_reading_order_whatever_the_drawing_order() {
        let mut glyphs = set("second", 10.0, 40.0);
        glyphs.extend(set("right", 300.0, 20.0));
        glyphs.extend(set("first", 10.0, 20.0));
        let texts: Vec<String> = group_glyphs(&glyphs).into_iter().map(|line| line.text).collect();
        assert_eq!(texts, ["first", "right", "second"]);
    }

    #[test]
    fn a_far_jump_on_the_same_band_is_another_column() {
        let mut glyphs = set("left", 10.0, 20.0);
        glyphs.extend(set("column", 400.0, 20.0));
        assert_eq!(group_glyphs(&glyphs).len(), 2);
    }

    /// The `pdf_document` fuzz target found a page whose text layer made the sort panic
    /// ("does not correctly implement a total order"); these 21 lines do it without a PDF.
    /// Their bands overlap in chains (a line shares more than half its height with the
    /// next, not with the one after), so the old pairwise "same band? by x : by y"
    /// comparison was no order at all.
    #[test]
    fn chained_bands_still_sort() {
        let boxes: [PixelBox; 21] = [
            [580.0, 32.0, 586.0, 42.0],
            [640.0, 14.0, 646.0, 20.0],
            [820.0, 26.0, 826.0, 34.0],
            [0.0, 26.0, 6.0, 42.0],
            [200.0, 32.0, 206.0, 38.0],
            [320.0, 34.0, 326.0, 40.0],
            [780.0, 38.0, 786.0, 44.0],
            [440.0, 4.0, 446.0, 16.0],
            [860.0, 10.0, 866.0, 14.0],
            [680.0, 76.0, 686.0, 94.0],
            [580.0, 70.0, 586.0, 74.0],
            [320.0, 62.0, 326.0, 72.0],
            [20.0, 42.0, 26.0, 60.0],
            [380.0, 38.0, 386.0, 56.0],
            [120.0, 74.0, 126.0, 80.0],
            [360.0, 58.0, 366.0, 64.0],
            [0.0, 6.0, 6.0, 16.0],
            [380.0, 56.0, 386.0, 66.0],
            [380.0, 46.0, 386.0, 60.0],
            [760.0, 56.0, 766.0, 64.0],
            [940.0, 44.0, 946.0, 60.0],
        ];
        let glyphs: Vec<TextGlyph> = boxes.iter().map(|&bbox| TextGlyph { text: "x".into(), bbox }).collect();
        let lines = group_glyphs(&glyphs);
        let glyph_count: usize = lines.iter().map(|line| line.text.chars().filter(|c| *c == 'x').count()).sum();
        assert_eq!(glyph_count, boxes.len());
    }

    /// Three lines where a shares c's band and c shares b's, but a and b are apart: c and
    /// a make the first band (the topmost line's), read left to right, then b.
    #[test]
    fn a_line_joins_the_band_of_its_topmost_line() {
        let mut glyphs = set("a", 100.0, 0.0);
        glyphs.extend(set("b", 0.0, 6.0));
        glyphs.extend(set("c", 50.0, 3.0));
        let texts: Vec<String> = group_glyphs(&glyphs).into_iter().map(|line| line.text).collect();
        assert_eq!(texts, ["c", "a", "b"]);
    }

    #[test]
    fn blank_and_degenerate_glyphs_make_no_line() {
        let mut glyphs = set("   ", 10.0, 20.0);
        glyphs.push(TextGlyph { text: "x".into(), bbox: [5.0, 5.0, 9.0, 5.0] });
        glyphs.push(TextGlyph { text: "\u{0}".into(), bbox: [5.0, 5.0, 9.0, 15.0] });
        assert!(group_glyphs(&glyphs).is_empty());
    }
}

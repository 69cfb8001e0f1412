//! Word boxes from the CTC time steps (the approach of PaddleOCR's `return_word_box`): each
//! recognised character was read over a run of the recogniser's time steps, each step
//! covers a fixed slice of the input width, so a word's run gives its horizontal span in
//! the line crop; the crop's map back onto the page turns that span into a quad. Words
//! split at spaces; CJK characters (written without spaces) are words of their own.

use crate::image::Quad;
use crate::image::perspective::Homography;
use crate::postprocess::ctc::DecodedChar;

/// How a line went through the recogniser: the batch's padded input width and the width
/// its own content was scaled to (both in input pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineInput {
    pub steps: u32,
    pub padded_width: u32,
    pub content_width: u32,
}

/// Where the crop the recogniser read came from: its quad on the page, whether the crop
/// was turned a quarter (vertical text) and whether it was then read upside down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinePlacement {
    pub quad: Quad,
    pub quarter_turned: bool,
    pub half_turned: bool,
}

/// One word: its text, the mean confidence of its characters, and its corners on the page
/// (clockwise from the top-left of the word as read).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub confidence: f32,
    pub quad: Quad,
}

/// The words of a line read as `chars`.
pub fn word_boxes(chars: &[DecodedChar], input: LineInput, placement: &LinePlacement) -> Vec<Word> {
    if input.steps == 0 || input.content_width == 0 {
        return Vec::new();
    }
    let corners = placement.quad.map(|(x, y)| (f64::from(x), f64::from(y)));
    let Some(to_page) = Homography::from_rectangle(1.0, 1.0, corners) else {
        return Vec::new();
    };
    let step_width = f64::from(input.padded_width) / f64::from(input.steps);
    let fraction = |step: u32| (f64::from(step) * step_width / f64::from(input.content_width)).clamp(0.0, 1.0);
    group_words(chars)
        .into_iter()
        .map(|word| {
            let (start, end) = (fraction(word[0].first_step), fraction(word[word.len() - 1].last_step + 1));
            let reading_frame = [(start, 0.0), (end, 0.0), (end, 1.0), (start, 1.0)];
            let quad = reading_frame.map(|(u, v)| {
                let (u, v) = to_crop(u, v, placement);
                let (x, y) = to_page.apply(u, v);
                (x as f32, y as f32)
            });
            Word {
                text: word.iter().map(|c| c.text.as_str()).collect(),
                confidence: word.iter().map(|c| c.confidence).sum::<f32>() / word.len() as f32,
                quad,
            }
        })
        .collect()
}

/// A point of the recogniser's input (fractions of its content) in the warped crop's frame
/// (fractions of the quad's rectangle), undoing the half turn and then the quarter turn.
fn to_crop(u: f64, v: f64, placement: &LinePlacement) -> (f64, f64) {
    let (u, v) = if placement.half_turned { (1.0 - u, 1.0 - v) } else { (u, v) };
    // The quarter counter-clockwise turn took (u, v) to (v, 1 − u).
    if placement.quarter_turned { (1.0 - v, u) } else { (u, v) }
}

/// Runs of characters between spaces; a CJK character is a run of its own.
fn group_words(chars: &[DecodedChar]) -> Vec<&[DecodedChar]> {
    let mut words = Vec::new();
    let mut start = None;
    for (index, c) in chars.iter().enumerate() {
        let is_space = c.text.chars().all(char::is_whitespace);
        let stands_alone = c.text.chars().any(is_cjk);
        if is_space || stands_alone {
            if let Some(first) = start.take() {
                words.push(&chars[first..index]);
            }
            if stands_alone {
                words.push(&chars[index..=index]);
            }
        } else if start.is_none() {
            start = Some(index);
        }
    }
    if let Some(first) = start {
        words.push(&chars[first..]);
    }
    words
}

/// Scripts written without spaces between words: CJK ideographs, kana, Hangul, and the
/// full-width forms.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF
        | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn char_at(text: &str, first_step: u32, last_step: u32) -> DecodedChar {
        DecodedChar { text: text.into(), confidence: 0.5, first_step, last_step }
    }

    /// "ab cd" over 10 steps of a 100-pixel input whose content is 80 pixels wide.
    fn ab_cd() -> (Vec<DecodedChar>, LineInput) {
        let chars =
            vec![char_at("a", 0, 0), char_at("b", 1, 2), char_at(" ", 3, 3), char_at("c", 4, 4), char_at("d", 5, 6)];
        (chars, LineInput { steps: 10, padded_width: 100, content_width: 80 })
    }

    fn assert_quad(actual: &Quad, expected: [(f32, f32); 4]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a.0 - e.0).abs() < 1e-3 && (a.1 - e.1).abs() < 1e-3, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn words_split_at_spaces_and_span_their_steps() {
        let (chars, input) = ab_cd();
        // An axis-aligned line 160 × 20 at (10, 10): one input pixel is two page pixels.
        let placement = LinePlacement {
            quad: [(10.0, 10.0), (170.0, 10.0), (170.0, 30.0), (10.0, 30.0)],
            quarter_turned: false,
            half_turned: false,
        };
        let words = word_boxes(&chars, input, &placement);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["ab", "cd"]);
        // "ab": steps 0..=2 → input x 0..30 → 0..0.375 of the content → page x 10..70.
        assert_quad(&words[0].quad, [(10.0, 10.0), (70.0, 10.0), (70.0, 30.0), (10.0, 30.0)]);
        // "cd": steps 4..=6 → input x 40..70 → page x 90..150.
        assert_quad(&words[1].quad, [(90.0, 10.0), (150.0, 10.0), (150.0, 30.0), (90.0, 30.0)]);
        assert!((words[0].confidence - 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_line_read_upside_down_maps_back_mirrored() {
        let (chars, input) = ab_cd();
        let placement = LinePlacement {
            quad: [(10.0, 10.0), (170.0, 10.0), (170.0, 30.0), (10.0, 30.0)],
            quarter_turned: false,
            half_turned: true,
        };
        let words = word_boxes(&chars, input, &placement);
        // The first word read is at the right end of the page's line, its corners turned.
        assert_quad(&words[0].quad, [(170.0, 30.0), (110.0, 30.0), (110.0, 10.0), (170.0, 10.0)]);
    }

    #[test]
    fn vertical_text_maps_onto_the_quads_height() {
        let (chars, input) = ab_cd();
        // A column 20 wide and 160 high: its crop was turned a quarter counter-clockwise,
        // so reading left to right in the crop is reading top to bottom on the page.
        let placement = LinePlacement {
            quad: [(10.0, 10.0), (30.0, 10.0), (30.0, 170.0), (10.0, 170.0)],
            quarter_turned: true,
            half_turned: false,
        };
        let words = word_boxes(&chars, input, &placement);
        let ab = &words[0].quad;
        let (ys, xs): (Vec<f32>, Vec<f32>) = ab.iter().map(|&(x, y)| (y, x)).unzip();
        assert!(ys.iter().all(|&y| (10.0 - 1e-3..=70.0 + 1e-3).contains(&y)), "{ab:?}");
        assert!(xs.iter().any(|&x| (x - 10.0).abs() < 1e-3) && xs.iter().any(|&x| (x - 30.0).abs() < 1e-3), "{ab:?}");
    }

    #[test]
    fn cjk_characters_are_words_of_their_own() {
        let chars = vec![char_at("本", 0, 1), char_at("店", 2, 3), char_at("A", 5, 5), char_at("1", 6, 6)];
        let words = group_words(&chars);
        let texts: Vec<String> = words.iter().map(|w| w.iter().map(|c| c.text.as_str()).collect()).collect();
        assert_eq!(texts, ["本", "店", "A1"]);
    }

    #[test]
    fn nothing_read_or_no_steps_gives_no_words() {
        let placement = LinePlacement {
            quad: [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
            quarter_turned: false,
            half_turned: false,
        };
        assert!(word_boxes(&[], LineInput { steps: 10, padded_width: 100, content_width: 100 }, &placement).is_empty());
        let (chars, _) = ab_cd();
        assert!(
            word_boxes(&chars, LineInput { steps: 0, padded_width: 100, content_width: 100 }, &placement).is_empty()
        );
    }
}

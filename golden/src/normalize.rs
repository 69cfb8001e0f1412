//! Text normalisation and tokenisation applied before every comparison.
//!
//! OCR engines disagree on things no reader would call an error: full-width `Ａ１，`
//! versus ASCII `A1,`, compatibility ligatures (`ﬁ`), an ideographic space versus a
//! normal one, trailing spaces, and whether a page's lines end in `\n` or are joined by
//! spaces. Scoring those as edits would make CER measure the engine's formatting habits
//! rather than its reading. So both sides are folded with NFKC (the Unicode
//! compatibility normalisation that maps exactly these width and presentation variants
//! to their plain forms), trimmed, and every run of Unicode whitespace (including
//! newlines) becomes a single ASCII space. Case and punctuation are kept: they are
//! content.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// NFKC, trim, and collapse every run of Unicode whitespace to one ASCII space.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().collect();
    // split_whitespace uses the Unicode White_Space property, so it trims and splits on
    // newlines, tabs, NBSP and the ideographic space alike.
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Extended grapheme clusters: what a reader counts as one character. An emoji with
/// modifiers or a letter with combining accents is one unit, so an engine is not
/// charged several edits for one misread symbol.
pub fn graphemes(normalized: &str) -> Vec<&str> {
    normalized.graphemes(true).collect()
}

/// Word tokens for WER: whitespace-separated tokens, except that every CJK grapheme
/// (Han ideographs, kana, hangul, bopomofo, CJK punctuation) is a token of its own.
///
/// Chinese and Japanese are written without spaces, so whitespace tokenisation would
/// make a whole sentence one "word" and WER would be 0 or 1. Splitting per character is
/// the usual convention (it makes WER on CJK equal to CER there) and needs no
/// dictionary; Latin runs inside a mixed token ("VIP会员") stay whole ("VIP", "会", "员").
/// Hangul is split the same way for simplicity, although Korean does use spaces.
pub fn words(normalized: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    for chunk in normalized.split_whitespace() {
        let mut run_start: Option<usize> = None;
        for (offset, grapheme) in chunk.grapheme_indices(true) {
            if grapheme.chars().next().is_some_and(is_cjk) {
                if let Some(start) = run_start.take() {
                    tokens.push(&chunk[start..offset]);
                }
                tokens.push(grapheme);
            } else if run_start.is_none() {
                run_start = Some(offset);
            }
        }
        if let Some(start) = run_start {
            tokens.push(&chunk[start..]);
        }
    }
    tokens
}

/// Scripts written without spaces between words (plus hangul, see [`words`]).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK and Kangxi radicals
        | 0x3000..=0x303F     // CJK symbols and punctuation (。、「」 ...)
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul compatibility jamo
        | 0x31A0..=0x31FF     // Bopomofo extended, CJK strokes, Katakana extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xA960..=0xA97F     // Hangul Jamo extended-A
        | 0xAC00..=0xD7FF     // Hangul syllables, Jamo extended-B
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // Half-width katakana (NFKC folds most of these anyway)
        | 0x20000..=0x3134F   // CJK extensions B..G and compatibility supplement
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_full_width_ascii_and_punctuation() {
        assert_eq!(normalize("ＡＢＣ１２３，．！"), "ABC123,.!");
        assert_eq!(normalize("Total：＄１,２３４"), "Total:$1,234");
    }

    #[test]
    fn folds_ligatures_but_keeps_case() {
        assert_eq!(normalize("ﬁle Name"), "file Name");
    }

    #[test]
    fn collapses_whitespace_runs_including_newlines_and_ideographic_space() {
        assert_eq!(normalize("  a \t b\n\nc\u{3000}d\u{00A0}e  "), "a b c d e");
        assert_eq!(normalize(" \n\t "), "");
    }

    #[test]
    fn composes_combining_sequences() {
        // e + COMBINING ACUTE and the precomposed é compare equal after NFKC.
        assert_eq!(normalize("cafe\u{0301}"), normalize("café"));
    }

    #[test]
    fn graphemes_keep_combining_marks_and_emoji_sequences_whole() {
        // A skin-tone emoji, a ZWJ family emoji, a flag.
        assert_eq!(graphemes("👍🏽ok").len(), 3);
        assert_eq!(graphemes("a👨‍👩‍👧b").len(), 3);
        assert_eq!(graphemes("🇨🇳!").len(), 2);
        // A combining mark NFKC cannot precompose stays with its base.
        assert_eq!(graphemes("x\u{0301}y"), vec!["x\u{0301}", "y"]);
    }

    #[test]
    fn words_split_on_whitespace() {
        assert_eq!(words("The quick  brown"), vec!["The", "quick", "brown"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn words_split_cjk_per_character_and_keep_latin_runs() {
        assert_eq!(words("你好世界"), vec!["你", "好", "世", "界"]);
        assert_eq!(words("备注 Notes: VIP会员"), vec!["备", "注", "Notes:", "VIP", "会", "员"]);
        assert_eq!(words("東京タワーは333m。"), vec!["東", "京", "タ", "ワ", "ー", "は", "333m", "。"]);
        assert_eq!(words("한국어 OK"), vec!["한", "국", "어", "OK"]);
    }
}

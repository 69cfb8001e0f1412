//! The recogniser's output classes from its charset file.

use kube_ocr_vision::params::RecognizerConfig;

/// Builds the class-index → text table from the charset file (one symbol per line, split
/// on `\n` only: a line may be a space or U+3000) and the recogniser's declared layout; any
/// disagreement means the charset belongs to another model.
pub(crate) fn output_classes(config: &RecognizerConfig, charset_text: &str) -> Result<Vec<String>, String> {
    let symbols: Vec<&str> = charset_text.strip_suffix('\n').unwrap_or(charset_text).split('\n').collect();
    if symbols.iter().any(|s| s.is_empty()) {
        return Err("charset has an empty line; every line must hold one symbol".to_owned());
    }
    let expected = config.charset_offset + symbols.len();
    if expected != config.num_classes {
        return Err(format!(
            "charset has {} symbols, which with charsetOffset {} makes {expected} classes, \
             but the recogniser declares numClasses {}",
            symbols.len(),
            config.charset_offset,
            config.num_classes
        ));
    }
    if config.blank_index >= config.charset_offset {
        return Err(format!("blankIndex {} collides with the charset", config.blank_index));
    }
    let mut classes = vec![String::new(); config.charset_offset];
    classes.extend(symbols.iter().map(|s| (*s).to_owned()));
    if let Some(space) = config.space_index
        && classes.get(space).map(String::as_str) != Some(" ")
    {
        return Err(format!("spaceIndex {space} does not hold a space in the charset"));
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_ocr_vision::params::Normalization;

    fn recognizer(num_classes: usize, space_index: Option<usize>) -> RecognizerConfig {
        RecognizerConfig {
            input_height: 48,
            default_width: 320,
            normalization: Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 },
            blank_index: 0,
            charset_offset: 1,
            space_index,
            num_classes,
        }
    }

    #[test]
    fn classes_place_blank_then_charset_lines_verbatim() {
        let classes = output_classes(&recognizer(6, Some(5)), "a\n\u{3000}\nb\n中\n \n").unwrap();
        assert_eq!(classes, ["", "a", "\u{3000}", "b", "中", " "]);
    }

    #[test]
    fn a_charset_of_the_wrong_size_is_refused() {
        let err = output_classes(&recognizer(6, Some(5)), "a\nb\n中\n").unwrap_err();
        assert!(err.contains("3 symbols") && err.contains("numClasses 6"), "{err}");
    }

    #[test]
    fn a_space_index_that_is_not_a_space_is_refused() {
        let err = output_classes(&recognizer(4, Some(3)), "a\nb\nc\n").unwrap_err();
        assert!(err.contains("spaceIndex 3"), "{err}");
    }

    #[test]
    fn an_empty_charset_line_is_refused() {
        assert!(output_classes(&recognizer(4, None), "a\n\nb\n").is_err());
    }
}

//! Predictions: what an engine read for each golden item, by id.
//!
//! JSONL, one `{"id": ..., "text": ...}` or `{"id": ..., "lines": [...]}` per line
//! (either form for either task; `lines` are joined with `"\n"`). Extra fields are
//! ignored so that richer engine dumps can be scored as they are.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::GoldenError;

/// Predicted text by item id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Predictions {
    texts: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RawPrediction {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    lines: Option<Vec<String>>,
}

#[derive(Serialize)]
struct SavedPrediction<'a> {
    id: &'a str,
    text: &'a str,
}

impl Predictions {
    /// No predictions yet.
    pub fn new() -> Predictions {
        Predictions::default()
    }

    /// Reads a predictions JSONL file.
    pub fn load(path: impl AsRef<Path>) -> Result<Predictions, GoldenError> {
        let path = path.as_ref();
        let content = std::fs::read_to_string(path)
            .map_err(|source| GoldenError::ReadPredictions { path: path.to_path_buf(), source })?;
        Predictions::parse(&content, path)
    }

    /// Parses predictions JSONL. Blank lines are skipped; a duplicate or empty id, or an
    /// entry with both or neither of `text`/`lines`, is an error naming the line (an
    /// ambiguous entry would otherwise be scored against a guess). `path` only labels
    /// errors.
    pub fn parse(content: &str, path: &Path) -> Result<Predictions, GoldenError> {
        let mut texts = BTreeMap::new();
        let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
        let content = content.strip_prefix('\u{FEFF}').unwrap_or(content);
        for (index, text) in content.lines().enumerate() {
            let line = index + 1;
            if text.trim().is_empty() {
                continue;
            }
            let invalid = |reason: String| GoldenError::ValidatePredictions { path: path.to_path_buf(), line, reason };
            let raw: RawPrediction = serde_json::from_str(text).map_err(|source| GoldenError::ParsePredictions {
                path: path.to_path_buf(),
                line,
                source,
            })?;
            if raw.id.trim().is_empty() {
                return Err(invalid("`id` is empty".into()));
            }
            let predicted = match (raw.text, raw.lines) {
                (Some(text), None) => text,
                (None, Some(lines)) => lines.join("\n"),
                (Some(_), Some(_)) => return Err(invalid("has both `text` and `lines`; give exactly one".into())),
                (None, None) => return Err(invalid("needs `text` or `lines`".into())),
            };
            match first_lines.entry(raw.id.clone()) {
                Entry::Occupied(first) => {
                    return Err(invalid(format!("duplicate id {:?} (first on line {})", raw.id, first.get())));
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
            }
            texts.insert(raw.id, predicted);
        }
        Ok(Predictions { texts })
    }

    /// Records a prediction, returning the one it replaces.
    pub fn insert(&mut self, id: impl Into<String>, text: impl Into<String>) -> Option<String> {
        self.texts.insert(id.into(), text.into())
    }

    /// The predicted text for an id.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.texts.get(id).map(String::as_str)
    }

    /// Number of predictions.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// No predictions at all.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// `(id, text)` pairs ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts.iter().map(|(id, text)| (id.as_str(), text.as_str()))
    }

    /// Writes the predictions as JSONL (`{"id", "text"}` per line, ordered by id), the
    /// format [`Predictions::parse`] reads back.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        for (id, text) in self.iter() {
            serde_json::to_writer(&mut out, &SavedPrediction { id, text })?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Writes the predictions to a file (see [`Predictions::write_jsonl`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), GoldenError> {
        let path = path.as_ref();
        let error = |source| GoldenError::WritePredictions { path: path.to_path_buf(), source };
        let file = std::fs::File::create(path).map_err(error)?;
        self.write_jsonl(std::io::BufWriter::new(file)).map_err(error)
    }
}

impl FromIterator<(String, String)> for Predictions {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Predictions {
        Predictions { texts: iter.into_iter().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(content: &str) -> Result<Predictions, GoldenError> {
        Predictions::parse(content, Path::new("p.jsonl"))
    }

    #[test]
    fn reads_text_and_lines_forms_and_ignores_extra_fields() {
        let p = parse(
            "{\"id\": \"a\", \"text\": \"Hi\", \"confidence\": 0.9}\n\n{\"id\": \"b\", \"lines\": [\"x\", \"y\"]}\n",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.get("a"), Some("Hi"));
        assert_eq!(p.get("b"), Some("x\ny"));
        assert_eq!(p.get("c"), None);
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let message =
            parse("{\"id\": \"a\", \"text\": \"1\"}\n{\"id\": \"a\", \"text\": \"2\"}").unwrap_err().to_string();
        assert_eq!(message, "p.jsonl:2: invalid prediction: duplicate id \"a\" (first on line 1)");
    }

    #[test]
    fn ambiguous_or_empty_entries_are_errors() {
        assert!(parse(r#"{"id": "a"}"#).unwrap_err().to_string().contains("needs `text` or `lines`"));
        assert!(parse(r#"{"id": "a", "text": "", "lines": []}"#).unwrap_err().to_string().contains("both"));
        assert!(parse(r#"{"id": "", "text": "x"}"#).unwrap_err().to_string().contains("`id` is empty"));
    }

    #[test]
    fn malformed_lines_are_parse_errors_with_line_numbers() {
        let error = parse("{\"id\": \"a\", \"text\": \"1\"}\n[1, 2]").unwrap_err();
        assert!(matches!(error, GoldenError::ParsePredictions { line: 2, .. }), "{error}");
    }

    #[test]
    fn saved_predictions_read_back() {
        let mut p = Predictions::new();
        assert!(p.is_empty());
        p.insert("b", "two\nlines");
        p.insert("a", "\"quoted\"");
        let mut out = Vec::new();
        p.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"id\":\"a\""));
        assert_eq!(parse(&text).unwrap(), p);
    }
}

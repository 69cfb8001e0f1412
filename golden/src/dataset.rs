//! The golden-set format: a folder with `truth.jsonl` and the images it names.
//!
//! One JSON object per line; blank lines are allowed. LINE items carry `text`, DOCUMENT
//! items carry `lines` in reading order. Unknown extra fields are ignored so that the
//! generator can add provenance without breaking older readers; everything the scorer
//! relies on is validated on load so that a broken set fails loudly with its line number
//! instead of silently lowering accuracy.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::GoldenError;

/// Name of the truth file inside a golden-set folder.
pub const TRUTH_FILE: &str = "truth.jsonl";

/// What the engine is asked to do with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Task {
    /// A single cropped text line: recognition only.
    Line,
    /// A page: detection, then recognition of every line.
    Document,
}

impl Task {
    /// The name used in truth files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Line => "LINE",
            Task::Document => "DOCUMENT",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The expected text of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    /// The text of a LINE item.
    Text(String),
    /// The lines of a DOCUMENT item, in reading order.
    Lines(Vec<String>),
}

impl Truth {
    /// The whole text; document lines are joined with `"\n"`, as the gRPC API joins
    /// them (normalisation turns the newlines into spaces anyway).
    pub fn text(&self) -> String {
        match self {
            Truth::Text(text) => text.clone(),
            Truth::Lines(lines) => lines.join("\n"),
        }
    }
}

/// One image of the golden set with its expected text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenItem {
    /// Unique id within the set.
    pub id: String,
    /// Image path relative to the set's folder (validated to stay inside it).
    pub file: PathBuf,
    /// LINE or DOCUMENT.
    pub task: Task,
    /// The expected text.
    pub truth: Truth,
    /// Content group: items showing the same text under different variants.
    pub group: String,
    /// How this rendering differs (free-form: "clean", "blur", "jpeg" ...).
    pub variant: String,
    /// Free-form labels ("lang:en", "kind:invoice") used for report breakdowns.
    pub tags: Vec<String>,
}

/// A loaded, validated golden set.
#[derive(Debug, Clone)]
pub struct GoldenSet {
    /// The folder the set was loaded from; item files are relative to it.
    pub root: PathBuf,
    /// Items in file order.
    pub items: Vec<GoldenItem>,
}

/// A truth line exactly as written; turned into a [`GoldenItem`] by validation.
#[derive(Debug, Deserialize)]
struct RawItem {
    id: String,
    file: String,
    task: Task,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    lines: Option<Vec<String>>,
    group: String,
    variant: String,
    #[serde(default)]
    tags: Vec<String>,
}

impl GoldenSet {
    /// Loads and validates `<root>/truth.jsonl`: unique ids, `text` on LINE and `lines`
    /// on DOCUMENT items (not both), non-empty id/group/variant, one item per
    /// (group, variant), and an existing image file inside `root`.
    pub fn load(root: impl AsRef<Path>) -> Result<GoldenSet, GoldenError> {
        let root = root.as_ref().to_path_buf();
        let path = root.join(TRUTH_FILE);
        let content =
            std::fs::read_to_string(&path).map_err(|source| GoldenError::ReadTruth { path: path.clone(), source })?;
        let items = parse_truth(&content, &path)?;
        // Existence is checked after parsing so a syntax error is reported first.
        let resolved_root =
            root.canonicalize().map_err(|source| GoldenError::ReadTruth { path: path.clone(), source })?;
        for (line, item) in &items {
            check_image(&root, &resolved_root, item).map_err(|reason| GoldenError::ValidateTruth {
                path: path.clone(),
                line: *line,
                reason,
            })?;
        }
        Ok(GoldenSet { root, items: items.into_iter().map(|(_, item)| item).collect() })
    }

    /// The image's path on disk.
    pub fn image_path(&self, item: &GoldenItem) -> PathBuf {
        self.root.join(&item.file)
    }

    /// Reads the image's bytes (encoded as stored; the engine decodes them).
    pub fn image_bytes(&self, item: &GoldenItem) -> Result<Vec<u8>, GoldenError> {
        let path = self.image_path(item);
        std::fs::read(&path).map_err(|source| GoldenError::ReadImage { path, source })
    }

    /// The item with this id, if any.
    pub fn get(&self, id: &str) -> Option<&GoldenItem> {
        self.items.iter().find(|item| item.id == id)
    }
}

/// Parses and validates the text of a truth file, without touching the file system.
/// Returns each item with its 1-based line number. `path` only labels errors.
pub fn parse_truth(content: &str, path: &Path) -> Result<Vec<(usize, GoldenItem)>, GoldenError> {
    let mut items = Vec::new();
    let mut id_lines: HashMap<String, usize> = HashMap::new();
    let mut variant_lines: HashMap<(String, String), usize> = HashMap::new();
    // Editors on some platforms prepend a byte-order mark; it is not part of the JSON.
    let content = content.strip_prefix('\u{FEFF}').unwrap_or(content);
    for (index, text) in content.lines().enumerate() {
        let line = index + 1;
        if text.trim().is_empty() {
            continue;
        }
        let invalid = |reason: String| GoldenError::ValidateTruth { path: path.to_path_buf(), line, reason };
        let raw: RawItem = serde_json::from_str(text).map_err(|source| GoldenError::ParseTruth {
            path: path.to_path_buf(),
            line,
            source,
        })?;
        let item = validate_item(raw).map_err(invalid)?;
        if let Some(first) = id_lines.insert(item.id.clone(), line) {
            return Err(invalid(format!("duplicate id {:?} (first on line {first})", item.id)));
        }
        if let Some(first) = variant_lines.insert((item.group.clone(), item.variant.clone()), line) {
            return Err(invalid(format!(
                "group {:?} already has variant {:?} (line {first})",
                item.group, item.variant
            )));
        }
        items.push((line, item));
    }
    if items.is_empty() {
        return Err(GoldenError::EmptyTruth { path: path.to_path_buf() });
    }
    Ok(items)
}

/// Checks one entry's own fields; the reason becomes part of a line-numbered error.
fn validate_item(raw: RawItem) -> Result<GoldenItem, String> {
    for (field, value) in [("id", &raw.id), ("group", &raw.group), ("variant", &raw.variant), ("file", &raw.file)] {
        if value.trim().is_empty() {
            return Err(format!("`{field}` is empty"));
        }
    }
    let truth = match (raw.task, raw.text, raw.lines) {
        (Task::Line, Some(text), None) => Truth::Text(text),
        (Task::Document, None, Some(lines)) => Truth::Lines(lines),
        (_, Some(_), Some(_)) => return Err("has both `text` and `lines`; give exactly one".into()),
        (Task::Line, None, _) => return Err("LINE item needs `text` (not `lines`)".into()),
        (Task::Document, _, None) => return Err("DOCUMENT item needs `lines` (not `text`)".into()),
    };
    let file = relative_path(&raw.file)?;
    Ok(GoldenItem { id: raw.id, file, task: raw.task, truth, group: raw.group, variant: raw.variant, tags: raw.tags })
}

/// Accepts only plain relative paths: a golden set must be self-contained so that it
/// can be copied or mounted anywhere (and a truth file cannot make us read /etc).
fn relative_path(file: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(file);
    // `\` is only a separator on Windows; reject it everywhere so a set behaves alike.
    if file.contains('\\') {
        return Err(format!("`file` {file:?} must use `/` separators"));
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`file` {file:?} must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`file` {file:?} must be relative to the set's folder"));
            }
        }
    }
    Ok(path)
}

/// The image exists, is a regular file, and (after resolving symlinks) lies inside root.
fn check_image(root: &Path, resolved_root: &Path, item: &GoldenItem) -> Result<(), String> {
    let path = root.join(&item.file);
    let shown = item.file.display();
    let resolved = path.canonicalize().map_err(|e| format!("image {shown} not found under {}: {e}", root.display()))?;
    if !resolved.is_file() {
        return Err(format!("image {shown} is not a regular file"));
    }
    if !resolved.starts_with(resolved_root) {
        return Err(format!("image {shown} resolves outside the set's folder"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id": "a", "file": "lines/a.png", "task": "LINE", "text": "Hi", "group": "g", "variant": "clean", "tags": ["lang:en"]}"#;
    const DOC: &str =
        r#"{"id": "d", "file": "d.png", "task": "DOCUMENT", "lines": ["A", "B"], "group": "h", "variant": "clean"}"#;

    fn parse(content: &str) -> Result<Vec<(usize, GoldenItem)>, GoldenError> {
        parse_truth(content, Path::new("truth.jsonl"))
    }

    fn error(content: &str) -> String {
        parse(content).unwrap_err().to_string()
    }

    #[test]
    fn parses_both_tasks_and_skips_blank_lines() {
        let items = parse(&format!("\u{FEFF}{LINE}\n\n  \n{DOC}\n")).unwrap();
        assert_eq!(items.len(), 2);
        let (line, item) = &items[0];
        assert_eq!((*line, item.task, item.truth.text().as_str()), (1, Task::Line, "Hi"));
        assert_eq!(item.tags, vec!["lang:en"]);
        let (line, doc) = &items[1];
        assert_eq!((*line, doc.task, doc.truth.text().as_str()), (4, Task::Document, "A\nB"));
        assert!(doc.tags.is_empty());
    }

    #[test]
    fn extra_fields_are_ignored() {
        let content = LINE.replace(r#""task""#, r#""source": "generator v2", "task""#);
        assert_eq!(parse(&content).unwrap().len(), 1);
    }

    #[test]
    fn malformed_json_names_the_line() {
        let message = error(&format!("{LINE}\n\n{{not json\n"));
        assert!(message.starts_with("truth.jsonl:3: malformed truth entry"), "{message}");
    }

    #[test]
    fn unknown_task_and_missing_fields_are_parse_errors() {
        assert!(error(&LINE.replace("LINE", "PAGE")).contains("truth.jsonl:1: malformed"));
        assert!(error(&LINE.replace(r#", "group": "g""#, "")).contains("missing field `group`"));
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let second = LINE.replace(r#""group": "g""#, r#""group": "other""#);
        let message = error(&format!("{LINE}\n{second}"));
        assert!(
            message.contains("truth.jsonl:2:") && message.contains("duplicate id \"a\" (first on line 1)"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_group_variant_pairs_are_rejected() {
        let second = LINE.replace(r#""id": "a""#, r#""id": "b""#);
        assert!(error(&format!("{LINE}\n{second}")).contains("group \"g\" already has variant \"clean\" (line 1)"));
    }

    #[test]
    fn task_and_truth_fields_must_agree() {
        assert!(error(&LINE.replace(r#""text": "Hi""#, r#""lines": ["Hi"]"#)).contains("LINE item needs `text`"));
        assert!(
            error(&DOC.replace(r#""lines": ["A", "B"]"#, r#""text": "A""#)).contains("DOCUMENT item needs `lines`")
        );
        assert!(
            error(&LINE.replace(r#""text": "Hi""#, r#""text": "Hi", "lines": []"#)).contains("both `text` and `lines`")
        );
    }

    #[test]
    fn empty_identity_fields_are_rejected() {
        assert!(error(&LINE.replace(r#""variant": "clean""#, r#""variant": " ""#)).contains("`variant` is empty"));
        assert!(error(&LINE.replace(r#""id": "a""#, r#""id": """#)).contains("`id` is empty"));
    }

    #[test]
    fn files_must_stay_inside_the_set() {
        for bad in ["/etc/passwd", "../x.png", "lines/../../x.png", "lines\\\\a.png"] {
            let content = LINE.replace("lines/a.png", bad);
            assert!(error(&content).contains("invalid truth entry: `file`"), "{bad}: {}", error(&content));
        }
        assert!(parse(&LINE.replace("lines/a.png", "./lines/a.png")).is_ok());
    }

    #[test]
    fn an_empty_file_is_an_error() {
        assert!(matches!(parse("\n \n"), Err(GoldenError::EmptyTruth { .. })));
    }

    #[test]
    fn load_checks_images_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TRUTH_FILE), format!("{DOC}\n{LINE}\n")).unwrap();
        std::fs::write(dir.path().join("d.png"), b"png").unwrap();
        let message = GoldenSet::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("truth.jsonl:2: invalid truth entry: image lines/a.png not found"), "{message}");

        std::fs::create_dir(dir.path().join("lines")).unwrap();
        std::fs::write(dir.path().join("lines/a.png"), b"img").unwrap();
        let set = GoldenSet::load(dir.path()).unwrap();
        assert_eq!(set.items.len(), 2);
        let item = set.get("a").unwrap();
        assert_eq!(set.image_bytes(item).unwrap(), b"img");
        assert!(set.get("zz").is_none());
    }

    #[test]
    fn a_missing_truth_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(GoldenSet::load(dir.path()), Err(GoldenError::ReadTruth { .. })));
    }
}

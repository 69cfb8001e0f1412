//! Just enough XML for S3's answers: a document parsed into a tree of elements, each with
//! its text and its byte span in the source, so that a caller can read values and also
//! copy or splice parts of the document verbatim (the lifecycle rules this client does not
//! own are written back exactly as the server gave them).
//!
//! Not a general parser: attributes are skipped, not read; names keep their prefix
//! (S3 uses the default namespace); a DOCTYPE is refused, so there are no custom entities
//! to expand. Nesting is bounded, because dropping a deep tree recurses.

use std::ops::Range;

/// The deepest nesting accepted; S3's documents need 5.
const MAX_DEPTH: usize = 32;

/// Why a document does not parse: what was wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML at byte {offset}: {reason}")]
pub struct XmlError {
    pub offset: usize,
    pub reason: &'static str,
}

/// One element: its name, text (unescaped, direct children's text only), children, and
/// where it lies in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
    /// From the `<` of the start tag to the `>` of the end tag, inclusive.
    pub span: Range<usize>,
    /// The start tag alone (the whole element when it is empty, `<a/>`).
    pub start_tag: Range<usize>,
    pub self_closing: bool,
}

impl Element {
    pub(crate) fn child(&self, name: &str) -> Option<&Self> {
        self.children.iter().find(|child| child.name == name)
    }

    /// The trimmed text of the child `name`.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.trim())
    }

    /// Whether the element says nothing: no children and only white space.
    pub(crate) fn is_blank(&self) -> bool {
        self.children.is_empty() && self.text.trim().is_empty()
    }
}

/// Parses `document` into its root element.
pub(crate) fn parse(document: &str) -> Result<Element, XmlError> {
    let bytes = document.as_bytes();
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'<' {
            let end = find(bytes, at, b"<").unwrap_or(bytes.len());
            let raw = &document[at..end];
            match open.last_mut() {
                Some(element) => element.text.push_str(&unescape(raw, at)?),
                None if raw.trim().is_empty() => {}
                None => return Err(XmlError { offset: at, reason: "text outside the root element" }),
            }
            at = end;
            continue;
        }
        let rest = &bytes[at..];
        if rest.starts_with(b"<?") {
            at = after(bytes, at, b"?>", "an unterminated processing instruction")?;
        } else if rest.starts_with(b"<!--") {
            at = after(bytes, at + 4, b"-->", "an unterminated comment")?;
        } else if rest.starts_with(b"<![CDATA[") {
            let end =
                find(bytes, at + 9, b"]]>").ok_or(XmlError { offset: at, reason: "an unterminated CDATA section" })?;
            let element = open.last_mut().ok_or(XmlError { offset: at, reason: "CDATA outside the root element" })?;
            element.text.push_str(&document[at + 9..end]);
            at = end + 3;
        } else if rest.starts_with(b"<!") {
            return Err(XmlError { offset: at, reason: "a DOCTYPE or declaration (refused)" });
        } else if rest.starts_with(b"</") {
            let end = tag_end(bytes, at)?;
            let name = document[at + 2..end].trim();
            let mut element = open.pop().ok_or(XmlError { offset: at, reason: "an end tag without a start tag" })?;
            if element.name != name {
                return Err(XmlError { offset: at, reason: "an end tag that does not match its start tag" });
            }
            element.span.end = end + 1;
            close(element, &mut open, &mut root, at)?;
            at = end + 1;
        } else {
            let end = tag_end(bytes, at)?;
            let self_closing = bytes[end - 1] == b'/';
            let inner = &document[at + 1..if self_closing { end - 1 } else { end }];
            let name = inner.split(|c: char| c.is_ascii_whitespace()).next().unwrap_or("");
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(XmlError { offset: at, reason: "a tag without a valid name" });
            }
            if open.len() >= MAX_DEPTH {
                return Err(XmlError { offset: at, reason: "elements nested too deep" });
            }
            let element = Element {
                name: name.to_owned(),
                text: String::new(),
                children: Vec::new(),
                span: at..end + 1,
                start_tag: at..end + 1,
                self_closing,
            };
            if self_closing {
                close(element, &mut open, &mut root, at)?;
            } else {
                open.push(element);
            }
            at = end + 1;
        }
    }
    if !open.is_empty() {
        return Err(XmlError { offset: bytes.len(), reason: "the document ends inside an element" });
    }
    root.ok_or(XmlError { offset: 0, reason: "no root element" })
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(element: Element, open: &mut [Element], root: &mut Option<Element>, at: usize) -> Result<(), XmlError> {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_some() => return Err(XmlError { offset: at, reason: "a second root element" }),
        None => *root = Some(element),
    }
    Ok(())
}

/// The `>` that ends the tag opened at `start`, skipping any inside quoted attribute values.
fn tag_end(bytes: &[u8], start: usize) -> Result<usize, XmlError> {
    let mut quote = None;
    for (index, &byte) in bytes.iter().enumerate().skip(start + 1) {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(open), _) if open == byte => quote = None,
            (None, b'>') => return Ok(index),
            (None, b'<') => break,
            _ => {}
        }
    }
    Err(XmlError { offset: start, reason: "an unterminated tag" })
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|found| from + found)
}

fn after(bytes: &[u8], from: usize, needle: &[u8], reason: &'static str) -> Result<usize, XmlError> {
    find(bytes, from, needle).map(|found| found + needle.len()).ok_or(XmlError { offset: from, reason })
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Text with its five predefined entities and character references replaced.
fn unescape(raw: &str, offset: usize) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let entity_end =
            rest[amp..].find(';').ok_or(XmlError { offset, reason: "an entity without its closing ';'" })? + amp;
        let entity = &rest[amp + 1..entity_end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => match entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().and_then(char::from_u32),
                None => entity.strip_prefix('#').and_then(|decimal| decimal.parse().ok()).and_then(char::from_u32),
            },
        };
        out.push(decoded.ok_or(XmlError { offset, reason: "an unknown entity or character reference" })?);
        rest = &rest[entity_end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` safe inside an element or a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Carriage returns would be normalised away by the reader; keep them.
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether `c` may appear in an XML 1.0 document at all (most control characters may
/// not, not even escaped).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_s3_error() {
        let document = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
                        <Message>The resource you requested does not exist</Message>\
                        <Resource>/mybucket/a &amp; b.pdf</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>";
        let root = parse(document).unwrap();
        assert_eq!(root.name, "Error");
        assert_eq!(root.child_text("Code"), Some("NoSuchKey"));
        assert_eq!(root.child_text("Resource"), Some("/mybucket/a & b.pdf"));
        assert_eq!(root.child_text("Missing"), None);
        assert_eq!(&document[root.span.clone()], &document[document.find("<Error>").unwrap()..]);
    }

    #[test]
    fn keeps_spans_for_verbatim_copies() {
        let document = "<A xmlns=\"urn:x\"><B  k='>'>one<C/>two</B><!-- c --><B>3</B></A>";
        let root = parse(document).unwrap();
        assert_eq!(&document[root.start_tag.clone()], "<A xmlns=\"urn:x\">");
        let first = &root.children[0];
        assert_eq!(&document[first.span.clone()], "<B  k='>'>one<C/>two</B>");
        assert_eq!(first.text, "onetwo");
        assert!(first.children[0].self_closing);
        assert_eq!(&document[first.children[0].span.clone()], "<C/>");
        assert_eq!(root.children.len(), 2);
    }

    #[test]
    fn decodes_entities_character_references_and_cdata() {
        let root = parse("<a>&lt;&gt;&amp;&quot;&apos;&#233;&#x20AC;<![CDATA[<raw & text>]]></a>").unwrap();
        assert_eq!(root.text, "<>&\"'é€<raw & text>");
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        let cases = [
            ("", "no root element"),
            ("<a>", "the document ends inside an element"),
            ("<a></b>", "an end tag that does not match its start tag"),
            ("<a/><b/>", "a second root element"),
            ("text<a/>", "text outside the root element"),
            ("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "a DOCTYPE or declaration (refused)"),
            ("<a>&bogus;</a>", "an unknown entity or character reference"),
            ("<a>&amp</a>", "an entity without its closing ';'"),
            ("<a", "an unterminated tag"),
            ("<>", "a tag without a valid name"),
            ("</a>", "an end tag without a start tag"),
        ];
        for (document, reason) in cases {
            assert_eq!(parse(document).map_err(|error| error.reason), Err(reason), "{document:?}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).map_err(|error| error.reason), Err("elements nested too deep"));
    }

    #[test]
    fn escaped_text_reads_back_the_same() {
        let text = "a<b>&\"c'\r\nd é";
        let root = parse(&format!("<x>{}</x>", escape(text))).unwrap();
        assert_eq!(root.text, text);
    }

    #[test]
    fn control_characters_are_not_xml() {
        assert!(is_xml_char('a') && is_xml_char('\n') && is_xml_char('é'));
        assert!(!is_xml_char('\u{0}') && !is_xml_char('\u{1b}') && !is_xml_char('\u{FFFE}'));
    }
}

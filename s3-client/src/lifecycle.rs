//! One expiry rule kept in a bucket's lifecycle configuration beside rules others own.
//! S3 has no call to add a rule: a configuration is read and written whole. So the
//! document the server gave is edited in place: the rule with our ID is replaced (or ours
//! is added before the end), and every other byte, other rules included, is written back
//! as it was, so that fields this client does not know survive.

use crate::xml::{self, Element, XmlError};

/// The namespace S3's documents are in.
const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// S3's limits on a rule's ID and on a key (and so a prefix).
const MAX_ID_CHARS: usize = 255;
const MAX_PREFIX_BYTES: usize = 1024;

/// Objects under `prefix` are deleted `days` days after they were written. S3 counts in
/// whole days from the object's creation, rounded up to the next midnight UTC on AWS;
/// other servers count differently (SeaweedFS built for its tests makes a day 10 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryRule {
    /// The rule's ID in the bucket, unique there: this client owns the rule by it.
    pub id: String,
    /// Key prefix the rule applies to; empty = the whole bucket.
    pub prefix: String,
    /// At least 1.
    pub days: u32,
}

impl ExpiryRule {
    /// Why S3 would refuse this rule, if it would.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.id.trim().is_empty() {
            Some("the rule ID is empty")
        } else if self.id.chars().count() > MAX_ID_CHARS {
            Some("the rule ID is longer than 255 characters")
        } else if self.prefix.len() > MAX_PREFIX_BYTES {
            Some("the prefix is longer than 1024 bytes")
        } else if self.days == 0 {
            Some("days must be at least 1")
        } else if !self.id.chars().chain(self.prefix.chars()).all(xml::is_xml_char) {
            Some("the rule ID or the prefix holds a control character, which XML cannot carry")
        } else {
            None
        }
    }

    fn to_xml(&self) -> String {
        format!(
            "<Rule><ID>{}</ID><Filter><Prefix>{}</Prefix></Filter><Status>Enabled</Status>\
             <Expiration><Days>{}</Days></Expiration></Rule>",
            xml::escape(&self.id),
            xml::escape(&self.prefix),
            self.days
        )
    }

    /// Whether `rule` (an element of the bucket's configuration) does exactly what this
    /// rule does. Compared by meaning, not bytes: servers write the document back in
    /// their own form (another order, empty elements, the legacy top-level `Prefix`).
    fn is_same_as(&self, rule: &Element) -> bool {
        let enabled = rule.child_text("Status") == Some("Enabled");
        let prefix_matches = match rule.child("Filter") {
            Some(filter) => {
                let only_prefix = filter.children.iter().all(|child| child.name == "Prefix");
                only_prefix && filter.child("Prefix").map_or("", |prefix| prefix.text.as_str()) == self.prefix
            }
            None => rule.child("Prefix").map_or("", |prefix| prefix.text.as_str()) == self.prefix,
        };
        let expires_after_days = rule.child("Expiration").is_some_and(|expiration| {
            let days = expiration.child_text("Days").and_then(|days| days.parse::<u32>().ok());
            let nothing_else = expiration.children.iter().all(|child| child.name == "Days" || child.is_blank());
            days == Some(self.days) && nothing_else
        });
        // A transition or another action added to our rule makes it a different rule.
        let no_other_action = rule.children.iter().all(|child| {
            matches!(child.name.as_str(), "ID" | "Filter" | "Prefix" | "Status" | "Expiration") || child.is_blank()
        });
        enabled && prefix_matches && expires_after_days && no_other_action
    }
}

/// What to do with the bucket's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LifecyclePlan {
    /// Our rule is there, as it should be: write nothing.
    Unchanged,
    /// Write this document.
    Put { document: String, replaced: bool },
}

/// The plan for `rule`, given the bucket's configuration (`None` when it has none).
pub(crate) fn plan(current: Option<&str>, rule: &ExpiryRule) -> Result<LifecyclePlan, XmlError> {
    let Some(current) = current.filter(|document| !document.trim().is_empty()) else {
        let document = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration \
             xmlns=\"{S3_NAMESPACE}\">{}</LifecycleConfiguration>",
            rule.to_xml()
        );
        return Ok(LifecyclePlan::Put { document, replaced: false });
    };
    let root = xml::parse(current)?;
    if root.name != "LifecycleConfiguration" {
        return Err(XmlError { offset: root.span.start, reason: "the root element is not LifecycleConfiguration" });
    }
    let ours: Vec<&Element> = root
        .children
        .iter()
        .filter(|child| child.name == "Rule" && child.child_text("ID") == Some(rule.id.as_str()))
        .collect();
    if let [only] = ours.as_slice()
        && rule.is_same_as(only)
    {
        return Ok(LifecyclePlan::Unchanged);
    }
    let document = match ours.split_first() {
        // Ours replaces the first rule with our ID; any duplicates (which S3 would refuse)
        // go.
        Some((first, duplicates)) => {
            let mut edits = vec![(first.span.clone(), rule.to_xml())];
            edits.extend(duplicates.iter().map(|duplicate| (duplicate.span.clone(), String::new())));
            splice(current, edits)
        }
        None if root.self_closing => {
            // `<LifecycleConfiguration .../>`: open it, keeping its attributes.
            let tag = &current[root.start_tag.clone()];
            let open = tag.trim_end_matches('>').trim_end_matches('/');
            let element = format!("{open}>{}</{}>", rule.to_xml(), root.name);
            splice(current, vec![(root.span.clone(), element)])
        }
        None => {
            // Before the root's end tag.
            let end_tag = current[..root.span.end].rfind("</").unwrap_or(root.span.end);
            splice(current, vec![(end_tag..end_tag, rule.to_xml())])
        }
    };
    Ok(LifecyclePlan::Put { document, replaced: !ours.is_empty() })
}

/// `source` with each range replaced by its text; the ranges do not overlap.
fn splice(source: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(source.len() + 256);
    let mut copied = 0;
    for (range, text) in edits {
        out.push_str(&source[copied..range.start]);
        out.push_str(&text);
        copied = range.end;
    }
    out.push_str(&source[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ExpiryRule {
        ExpiryRule { id: "kube-ocr-jobs".into(), prefix: "jobs/".into(), days: 1 }
    }

    const FOREIGN: &str = "<Rule><ID>archive</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key>\
                           <Value>v</Value></Tag></And></Filter><Status>Enabled</Status><Transition><Days>30</Days>\
                           <StorageClass>GLACIER</StorageClass></Transition></Rule>";

    fn put(plan: LifecyclePlan) -> (String, bool) {
        match plan {
            LifecyclePlan::Put { document, replaced } => (document, replaced),
            LifecyclePlan::Unchanged => panic!("expected a PUT"),
        }
    }

    #[test]
    fn a_bucket_without_configuration_gets_ours_alone() {
        let (document, replaced) = put(plan(None, &rule()).unwrap());
        assert!(!replaced);
        let root = xml::parse(&document).unwrap();
        assert_eq!(root.children.len(), 1);
        assert!(rule().is_same_as(&root.children[0]), "{document}");
        assert_eq!(plan(Some(&document), &rule()).unwrap(), LifecyclePlan::Unchanged);
    }

    #[test]
    fn ours_is_added_and_foreign_rules_kept_verbatim() {
        let current = format!(
            "<?xml version=\"1.0\"?>\n<LifecycleConfiguration xmlns=\"{S3_NAMESPACE}\">\n  \
             {FOREIGN}\n</LifecycleConfiguration>"
        );
        let (document, replaced) = put(plan(Some(&current), &rule()).unwrap());
        assert!(!replaced);
        assert!(document.contains(FOREIGN), "{document}");
        assert!(document.starts_with("<?xml version=\"1.0\"?>\n<LifecycleConfiguration xmlns="));
        assert!(document.ends_with(&format!("{}</LifecycleConfiguration>", rule().to_xml())), "{document}");
        assert_eq!(plan(Some(&document), &rule()).unwrap(), LifecyclePlan::Unchanged);
    }

    #[test]
    fn a_changed_rule_of_ours_is_replaced_in_place() {
        let old = "<Rule><ID>kube-ocr-jobs</ID><Filter><Prefix>jobs/</Prefix></Filter><Status>Enabled</Status>\
                   <Expiration><Days>7</Days></Expiration></Rule>";
        let current = format!("<LifecycleConfiguration>{old}{FOREIGN}</LifecycleConfiguration>");
        let (document, replaced) = put(plan(Some(&current), &rule()).unwrap());
        assert!(replaced);
        assert_eq!(document, format!("<LifecycleConfiguration>{}{FOREIGN}</LifecycleConfiguration>", rule().to_xml()));
    }

    #[test]
    fn duplicates_of_our_id_are_removed() {
        let current = format!("<LifecycleConfiguration>{0}{FOREIGN}{0}</LifecycleConfiguration>", rule().to_xml());
        let (document, replaced) = put(plan(Some(&current), &rule()).unwrap());
        assert!(replaced);
        assert_eq!(document, format!("<LifecycleConfiguration>{}{FOREIGN}</LifecycleConfiguration>", rule().to_xml()));
    }

    #[test]
    fn the_same_rule_in_another_form_is_unchanged() {
        // As a server may write it back: another order, the legacy Prefix, empty actions.
        let legacy = "<LifecycleConfiguration><Rule><Status>Enabled</Status><Prefix>jobs/</Prefix>\
                      <Expiration><Days> 1 </Days><ExpiredObjectDeleteMarker></ExpiredObjectDeleteMarker></Expiration>\
                      <Transition></Transition><ID>kube-ocr-jobs</ID></Rule></LifecycleConfiguration>";
        assert_eq!(plan(Some(legacy), &rule()).unwrap(), LifecyclePlan::Unchanged);
    }

    #[test]
    fn any_difference_in_meaning_is_a_change() {
        let variants = [
            ("<Status>Disabled</Status>", "<Status>Enabled</Status>"),
            ("<Prefix>other/</Prefix>", "<Prefix>jobs/</Prefix>"),
            ("<Days>2</Days>", "<Days>1</Days>"),
            (
                "<Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>",
                "<Status>Enabled</Status>",
            ),
            (
                "<Filter><Prefix>jobs/</Prefix><Tag><Key>a</Key><Value>b</Value></Tag></Filter>",
                "<Filter><Prefix>jobs/</Prefix></Filter>",
            ),
        ];
        for (changed, original) in variants {
            let current = format!(
                "<LifecycleConfiguration>{}</LifecycleConfiguration>",
                rule().to_xml().replace(original, changed)
            );
            assert!(
                matches!(plan(Some(&current), &rule()).unwrap(), LifecyclePlan::Put { replaced: true, .. }),
                "{current}"
            );
        }
    }

    #[test]
    fn an_empty_configuration_element_is_opened() {
        let (document, _) = put(plan(Some("<LifecycleConfiguration xmlns=\"urn:x\"/>"), &rule()).unwrap());
        assert_eq!(
            document,
            format!("<LifecycleConfiguration xmlns=\"urn:x\">{}</LifecycleConfiguration>", rule().to_xml())
        );
    }

    #[test]
    fn special_characters_are_escaped() {
        let odd = ExpiryRule { id: "a&b<c>".into(), prefix: "x y/é\"'".into(), days: 3 };
        let (document, _) = put(plan(None, &odd).unwrap());
        let root = xml::parse(&document).unwrap();
        assert_eq!(root.children[0].child_text("ID"), Some("a&b<c>"));
        assert_eq!(plan(Some(&document), &odd).unwrap(), LifecyclePlan::Unchanged);
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(plan(Some("<Error><Code>x</Code></Error>"), &rule()).is_err());
        assert!(plan(Some("<LifecycleConfiguration>"), &rule()).is_err());
    }

    #[test]
    fn rules_s3_would_refuse_are_named() {
        let bad = |change: fn(&mut ExpiryRule)| {
            let mut rule = rule();
            change(&mut rule);
            rule.problem()
        };
        assert_eq!(rule().problem(), None);
        assert_eq!(bad(|rule| rule.id = " ".into()), Some("the rule ID is empty"));
        assert_eq!(bad(|rule| rule.id = "x".repeat(256)), Some("the rule ID is longer than 255 characters"));
        assert_eq!(bad(|rule| rule.days = 0), Some("days must be at least 1"));
        assert_eq!(bad(|rule| rule.prefix = "p".repeat(1025)), Some("the prefix is longer than 1024 bytes"));
        assert!(bad(|rule| rule.prefix = "a\u{1}".into()).is_some());
    }
}

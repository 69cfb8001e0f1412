//! Manual control of a rollout: a human asks for `promote`, `abort` or `retry` with the
//! one-shot annotation `kube-ocr.dev/rollout-action`. The operator removes the annotation
//! before acting on it, so a request is carried out at most once, and a leftover value
//! can never act on a later revision.

use std::collections::BTreeMap;
use std::fmt;

/// The annotation a human sets (`kubectl annotate ocrs NAME kube-ocr.dev/rollout-action=promote`).
pub const ROLLOUT_ACTION_ANNOTATION: &str = "kube-ocr.dev/rollout-action";

/// What a human asked the rollout to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualAction {
    /// Skip the remaining steps and analyses: stable takes the canary's revision now.
    Promote,
    /// Roll the canary back now, as a failed analysis would (its revision is not retried
    /// until the spec changes or a `retry`).
    Abort,
    /// Start a canary again for the revision that was rolled back.
    Retry,
}

impl ManualAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Retry => "retry",
        }
    }
}

impl fmt::Display for ManualAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request found on the object: the raw value (what the removal must match) and what
/// it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRequest {
    pub value: String,
    pub action: Result<ManualAction, String>,
}

/// The request in `annotations`, if any. Values are case- and space-insensitive; anything
/// else is an error that says what is accepted.
pub fn requested_action(annotations: Option<&BTreeMap<String, String>>) -> Option<ManualRequest> {
    let value = annotations?.get(ROLLOUT_ACTION_ANNOTATION)?.clone();
    let action = match value.trim().to_ascii_lowercase().as_str() {
        "promote" => Ok(ManualAction::Promote),
        "abort" => Ok(ManualAction::Abort),
        "retry" => Ok(ManualAction::Retry),
        _ => Err(format!("{ROLLOUT_ACTION_ANNOTATION}={value:?} is not a rollout action: use promote, abort or retry")),
    };
    Some(ManualRequest { value, action })
}

/// The JSON patch that removes the annotation if it still holds `value`: its `test`
/// makes a request changed in between fail the patch, so it is left for the next round
/// (its change triggers one) instead of being dropped unread.
pub fn removal_patch(value: &str) -> serde_json::Value {
    // JSON pointer escaping: "~" is "~0" and "/" in the key is "~1".
    let path = format!("/metadata/annotations/{}", ROLLOUT_ACTION_ANNOTATION.replace('~', "~0").replace('/', "~1"));
    serde_json::json!([
        { "op": "test", "path": path, "value": value },
        { "op": "remove", "path": path },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("other".to_owned(), "x".to_owned()), (ROLLOUT_ACTION_ANNOTATION.to_owned(), value.to_owned())])
    }

    #[test]
    fn each_action_is_read_whatever_its_case() {
        for (value, action) in
            [("promote", ManualAction::Promote), (" Abort ", ManualAction::Abort), ("RETRY", ManualAction::Retry)]
        {
            let request = requested_action(Some(&annotations(value))).unwrap();
            assert_eq!(request.action, Ok(action));
            assert_eq!(request.value, value, "removal must match the value as written");
        }
    }

    #[test]
    fn no_annotation_is_no_request() {
        assert_eq!(requested_action(None), None);
        assert_eq!(requested_action(Some(&BTreeMap::from([("other".to_owned(), "promote".to_owned())]))), None);
    }

    #[test]
    fn the_removal_tests_the_value_first_and_escapes_the_key() {
        let path = "/metadata/annotations/kube-ocr.dev~1rollout-action";
        assert_eq!(
            removal_patch(" Abort "),
            serde_json::json!([
                { "op": "test", "path": path, "value": " Abort " },
                { "op": "remove", "path": path },
            ])
        );
    }

    #[test]
    fn an_unknown_value_says_what_is_accepted() {
        let request = requested_action(Some(&annotations("rollback"))).unwrap();
        let error = request.action.unwrap_err();
        assert!(error.contains("\"rollback\"") && error.contains("promote, abort or retry"), "{error}");
    }
}

//! The Events a reconcile publishes about an OcrService, as the recorder takes them.

use kube::runtime::events::{Event, EventType};

use crate::rollout::RolloutEvent;

/// An Event to publish about the OcrService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// Longest note sent, in bytes: the API server refuses Events whose note exceeds 1 kB.
const MAX_NOTE: usize = 1000;

impl EventNote {
    /// The Event the recorder publishes: the note cut at [`MAX_NOTE`] bytes (on a character
    /// boundary, marked with "…").
    pub fn event(&self) -> Event {
        Event {
            type_: if self.warning { EventType::Warning } else { EventType::Normal },
            reason: self.reason.to_owned(),
            note: Some(truncate(&self.note, MAX_NOTE)),
            action: "Reconcile".to_owned(),
            secondary: None,
        }
    }
}

impl From<&RolloutEvent> for EventNote {
    fn from(event: &RolloutEvent) -> Self {
        Self { warning: event.warning, reason: event.reason, note: event.message.clone() }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_normal_events_keep_reason_and_note() {
        let note = EventNote { warning: true, reason: "RolledBack", note: "rolled back to abc".into() };
        let event = note.event();
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!((event.reason.as_str(), event.note.as_deref()), ("RolledBack", Some("rolled back to abc")));
        assert_eq!(event.action, "Reconcile");
        let normal = EventNote { warning: false, ..note }.event();
        assert_eq!(normal.type_, EventType::Normal);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let long = format!("{}é tail", "a".repeat(MAX_NOTE - 1));
        let event = EventNote { warning: false, reason: "X", note: long }.event();
        let note = event.note.unwrap();
        assert_eq!(note, format!("{}…", "a".repeat(MAX_NOTE - 1)), "é straddles the limit and is left out whole");
        assert_eq!(truncate("short", MAX_NOTE), "short");
    }

    #[test]
    fn rollout_events_become_notes() {
        let event = RolloutEvent { warning: false, reason: "StepAdvanced", message: "now 50%".into() };
        assert_eq!(
            EventNote::from(&event),
            EventNote { warning: false, reason: "StepAdvanced", note: "now 50%".into() }
        );
    }
}

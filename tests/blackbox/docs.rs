//! Docs that must match the code: every event type is documented in proto-docs/events.md.

use crate::support::repo_root;
use latchkey_domain::Event;

#[test]
fn every_event_type_is_documented() {
    let path = repo_root().join("proto-docs/events.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let missing: Vec<_> = Event::ALL_TYPES
        .iter()
        .filter(|t| !doc.contains(&format!("### `{t}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in {}: {missing:?}",
        path.display()
    );
}

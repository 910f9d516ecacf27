//! Domain values to wire values, by hand (domain types never go on the wire). The names
//! live once, with the JSON of events, in `latchkey_admin::json`.

pub use latchkey_admin::json::{kind, rfc3339, scope};

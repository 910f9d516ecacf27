//! Domain values to wire values, by hand (domain types never go on the wire). The names
//! live once, with the JSON of events, in `latchkey_admin::json`.

pub use latchkey_admin::json::{
    domain_scope, domain_visibility, rfc3339, wire_kind, wire_scope, wire_scopes, wire_visibility,
};

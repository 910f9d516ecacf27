//! Domain values to wire values, by hand (domain types never go on the wire). The names
//! live once, with the JSON of events, in `latchkey_admin::json`.

use latchkey_domain::{RoomVisibility, Scope, TokenKind};
use latchkey_proto as proto;

pub use latchkey_admin::json::rfc3339;

/// A token kind on the wire.
pub fn wire_kind(k: TokenKind) -> proto::TokenKind {
    match k {
        TokenKind::Session => proto::TokenKind::Session,
        TokenKind::Device => proto::TokenKind::Device,
        TokenKind::Personal => proto::TokenKind::Personal,
    }
}

/// A scope on the wire.
pub fn wire_scope(s: Scope) -> proto::Scope {
    match s {
        Scope::ChatRead => proto::Scope::ChatRead,
        Scope::ChatWrite => proto::Scope::ChatWrite,
        Scope::Admin => proto::Scope::Admin,
    }
}

/// Scopes on the wire.
pub fn wire_scopes(s: &[Scope]) -> Vec<proto::Scope> {
    s.iter().copied().map(wire_scope).collect()
}

/// A scope from the wire.
pub fn domain_scope(s: proto::Scope) -> Scope {
    match s {
        proto::Scope::ChatRead => Scope::ChatRead,
        proto::Scope::ChatWrite => Scope::ChatWrite,
        proto::Scope::Admin => Scope::Admin,
    }
}

/// A room's visibility on the wire.
pub fn wire_visibility(v: RoomVisibility) -> proto::RoomVisibility {
    match v {
        RoomVisibility::Public => proto::RoomVisibility::Public,
        RoomVisibility::Private => proto::RoomVisibility::Private,
    }
}

/// A room's visibility from the wire.
pub fn domain_visibility(v: proto::RoomVisibility) -> RoomVisibility {
    match v {
        proto::RoomVisibility::Public => RoomVisibility::Public,
        proto::RoomVisibility::Private => RoomVisibility::Private,
    }
}

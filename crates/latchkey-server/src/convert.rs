//! Domain values to wire values, by hand (domain types never go on the wire). The names
//! live once, with the JSON of events, in `latchkey_admin::json`.

use latchkey_domain::{RoomVisibility, Scope, Timestamp, TokenKind};
use latchkey_proto as proto;

/// RFC 3339 UTC with a `Z`, e.g. `2026-11-24T01:02:03.456Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.0) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.0.to_string())
}

/// `session`, `device`, `personal`.
pub fn kind(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Session => "session",
        TokenKind::Device => "device",
        TokenKind::Personal => "personal",
    }
}

/// `chat:read`, `chat:write`, `admin`.
pub fn scope(s: Scope) -> &'static str {
    match s {
        Scope::ChatRead => "chat:read",
        Scope::ChatWrite => "chat:write",
        Scope::Admin => "admin",
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp(1_000)), "1970-01-01T00:00:01Z");
    }
}

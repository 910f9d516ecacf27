//! Domain values to wire values, by hand (domain types never go on the wire).

use latchkey_domain::{Scope, Timestamp, TokenKind};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp(1_000)), "1970-01-01T00:00:01Z");
    }
}

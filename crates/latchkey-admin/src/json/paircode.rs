//! Pairing-code events as JSON for admins (`pairing_code.*` in `proto-docs/events.md`):
//! the code's hash hex, times RFC 3339. The code itself is never stored, so never shown.

use super::{rfc3339, scope};
use latchkey_domain::PairingEvent;
use serde_json::{json, Value};

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields of a pairing-code event; `None` for any other event.
pub fn paircode_event_json(e: &PairingEvent) -> Option<Value> {
    Some(match e {
        PairingEvent::PairingCodeMinted {
            code_id,
            user_id,
            code_hash,
            scopes,
            note,
            by,
            created_at,
            expires_at,
        } => json!({
            "code_id": code_id.to_string(), "user_id": user_id.to_string(),
            "code_hash": hex(code_hash),
            "scopes": scopes.iter().map(|s| scope(*s)).collect::<Vec<_>>(),
            "note": note, "by": by.map(|u| u.to_string()),
            "created_at": rfc3339(*created_at), "expires_at": rfc3339(*expires_at)}),
        PairingEvent::PairingCodeRedeemed {
            token_id,
            device_name,
            key_id,
            at,
        } => json!({
            "token_id": token_id.to_string(), "device_name": device_name,
            "key_id": key_id.map(|k| k.to_string()), "at": rfc3339(*at)}),
        PairingEvent::PairingCodeRevoked { by, at } => {
            json!({"by": by.map(|u| u.to_string()), "at": rfc3339(*at)})
        }
        PairingEvent::PairingCodeExpired { at } => json!({"at": rfc3339(*at)}),
        _ => return None,
    })
}

//! Device authorization events as JSON for admins (`device.*` in `proto-docs/events.md`):
//! hashes hex, times RFC 3339. No device code or user code is stored, so none is shown.

use super::{rfc3339, scope};
use latchkey_domain::{KeyChallenge, PairingEvent};
use serde_json::{json, Value};

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_challenge(k: &KeyChallenge) -> Value {
    json!({
        "key": {"type": k.key.algorithm.as_str(), "fingerprint": k.key.fingerprint,
                "comment": k.key.comment, "openssh": k.key.openssh},
        "server": k.server, "expires_at": rfc3339(k.expires_at)})
}

/// The fields of a device event; `None` for the challenge events (`json.rs` has those).
pub(super) fn device_event_json(e: &PairingEvent) -> Option<Value> {
    Some(match e {
        PairingEvent::DeviceAuthorizationRequested {
            pairing_id,
            client_id,
            scopes,
            device_name,
            device_code_hash,
            user_code_hash,
            key,
            interval_secs,
            requested_at,
            expires_at,
            ip,
            user_agent,
        } => json!({
            "pairing_id": pairing_id.to_string(), "client_id": client_id,
            "scopes": scopes.iter().map(|s| scope(*s)).collect::<Vec<_>>(),
            "device_name": device_name, "device_code_hash": hex(device_code_hash),
            "user_code_hash": hex(user_code_hash), "key": key.as_ref().map(key_challenge),
            "interval_secs": interval_secs, "requested_at": rfc3339(*requested_at),
            "expires_at": rfc3339(*expires_at), "ip": ip.map(|i| i.to_string()),
            "user_agent": user_agent}),
        PairingEvent::DeviceApproved {
            by,
            scopes,
            device_name,
            token_ttl_secs,
            key_id,
            at,
        } => json!({
            "by": by.to_string(), "scopes": scopes.iter().map(|s| scope(*s)).collect::<Vec<_>>(),
            "device_name": device_name, "token_ttl_secs": token_ttl_secs,
            "key_id": key_id.map(|k| k.to_string()), "at": rfc3339(*at)}),
        PairingEvent::DeviceDenied { by, at } => {
            json!({"by": by.to_string(), "at": rfc3339(*at)})
        }
        PairingEvent::DeviceTokenIssued { token_id, at } => {
            json!({"token_id": token_id.to_string(), "at": rfc3339(*at)})
        }
        PairingEvent::DeviceKeyProven { at }
        | PairingEvent::DeviceAuthorizationCancelled { at }
        | PairingEvent::DeviceAuthorizationExpired { at } => json!({"at": rfc3339(*at)}),
        PairingEvent::ChallengeIssued { .. }
        | PairingEvent::SignatureVerified { .. }
        | PairingEvent::SignatureRejected { .. }
        | PairingEvent::ChallengeExpired { .. } => return None,
        other => return super::paircode::paircode_event_json(other),
    })
}

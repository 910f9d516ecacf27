//! Events as JSON for admins: field names as in `proto-docs/events.md`, times RFC 3339,
//! hashes hex. A token hash is not a secret (only SHA-256 of it is ever stored).

use crate::convert::{kind, rfc3339, scope};
use crate::frames::visibility;
use latchkey_domain::{
    ChallengePurpose, Event, LeaveReason, PairingEvent, RejectReason, RevokeReason, RoomEvent,
    SshPublicKey, UserEvent,
};
use serde_json::{json, Value};

fn key(k: &SshPublicKey) -> Value {
    json!({"type": k.algorithm.as_str(), "fingerprint": k.fingerprint, "comment": k.comment, "openssh": k.openssh})
}

fn revoke_reason(r: RevokeReason) -> &'static str {
    match r {
        RevokeReason::Logout => "logout",
        RevokeReason::Revoked => "revoked",
        RevokeReason::RevokeAll => "revoke_all",
        RevokeReason::KeyRemoved => "key_removed",
        RevokeReason::UserDisabled => "user_disabled",
        RevokeReason::Admin => "admin",
        RevokeReason::Replaced => "replaced",
    }
}

fn reject_reason(r: RejectReason) -> &'static str {
    match r {
        RejectReason::Expired => "expired",
        RejectReason::InvalidSignature => "invalid_signature",
        RejectReason::UserPresenceMissing => "user_presence_missing",
        RejectReason::KeyUnknown => "key_unknown",
    }
}

/// The event's fields as a JSON object.
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::User(e) => match e {
            UserEvent::UserRegistered {
                user_id,
                handle,
                key_id,
                key: k,
                admin,
                at,
            } => json!({
                "user_id": user_id.to_string(), "handle": handle, "key_id": key_id.to_string(),
                "key": key(k), "admin": admin, "at": rfc3339(*at)}),
            UserEvent::KeyAdded { key_id, key: k, at } => {
                json!({"key_id": key_id.to_string(), "key": key(k), "at": rfc3339(*at)})
            }
            UserEvent::KeyRemoved {
                key_id,
                fingerprint,
            } => {
                json!({"key_id": key_id.to_string(), "fingerprint": fingerprint})
            }
            UserEvent::TokenMinted {
                token_id,
                hash,
                kind: k,
                scopes,
                name,
                device_name,
                user_agent,
                ip,
                key_fingerprint,
                created_at,
                expires_at,
            } => json!({
                "token_id": token_id.to_string(), "hash": hex_hash(hash), "kind": kind(*k),
                "scopes": scopes.iter().map(|s| scope(*s)).collect::<Vec<_>>(), "name": name,
                "device_name": device_name, "user_agent": user_agent,
                "ip": ip.map(|i| i.to_string()), "key_fingerprint": key_fingerprint,
                "created_at": rfc3339(*created_at), "expires_at": expires_at.map(rfc3339)}),
            UserEvent::TokenUsed { token_id, at } => {
                json!({"token_id": token_id.to_string(), "at": rfc3339(*at)})
            }
            UserEvent::TokenRevoked {
                token_id,
                reason,
                at,
            } => json!({
                "token_id": token_id.to_string(), "reason": revoke_reason(*reason), "at": rfc3339(*at)}),
            UserEvent::TokenExpired { token_id } => json!({"token_id": token_id.to_string()}),
            UserEvent::UserDisabled { at } | UserEvent::UserEnabled { at } => {
                json!({"at": rfc3339(*at)})
            }
        },
        Event::Pairing(e) => match e {
            PairingEvent::ChallengeIssued {
                challenge_id,
                server,
                key: k,
                nonce: _,
                purpose,
                issued_at,
                expires_at,
                ip,
            } => json!({
                "challenge_id": challenge_id.to_string(), "server": server, "key": key(k),
                "purpose": match purpose {
                    ChallengePurpose::SignIn => "sign_in".to_string(),
                    ChallengePurpose::AddKey(u) => format!("add_key:{u}"),
                },
                "issued_at": rfc3339(*issued_at), "expires_at": rfc3339(*expires_at),
                "ip": ip.map(|i| i.to_string())}),
            PairingEvent::SignatureVerified { user_id, at } => {
                json!({"user_id": user_id.to_string(), "at": rfc3339(*at)})
            }
            PairingEvent::SignatureRejected { reason, at } => {
                json!({"reason": reject_reason(*reason), "at": rfc3339(*at)})
            }
            PairingEvent::ChallengeExpired { at } => json!({"at": rfc3339(*at)}),
            other => super::device_json::device_event_json(other).unwrap_or(Value::Null),
        },
        Event::Room(e) => match e {
            RoomEvent::RoomCreated {
                room_id,
                name,
                visibility: v,
                owner,
                at,
            } => json!({
                "room_id": room_id.to_string(), "name": name, "visibility": visibility(*v),
                "owner": owner.to_string(), "at": rfc3339(*at)}),
            RoomEvent::MemberJoined { user_id, by, at } => json!({
                "user_id": user_id.to_string(), "by": by.to_string(), "at": rfc3339(*at)}),
            RoomEvent::MemberLeft {
                user_id,
                by,
                reason,
                at,
            } => json!({
                "user_id": user_id.to_string(), "by": by.to_string(),
                "reason": match reason { LeaveReason::Left => "left", LeaveReason::Removed => "removed" },
                "at": rfc3339(*at)}),
            RoomEvent::MessagePosted {
                message_id,
                sender,
                body,
                target_user_ids,
                reply_to,
                at,
            } => json!({
                "message_id": message_id.to_string(), "sender": sender.to_string(), "body": body,
                "target_user_ids": target_user_ids.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                "reply_to": reply_to.map(|r| r.to_string()), "at": rfc3339(*at)}),
        },
    }
}

fn hex_hash(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

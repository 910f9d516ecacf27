//! Events as JSON, the one place: [`event_json`] for admins (every field, names as in
//! `proto-docs/events.md`) and [`room_event_data`] for WebSocket frames (the documented
//! `data` of the room events), with the wire name of every domain enum once. Times
//! are RFC 3339, hashes hex. A token hash is not a secret (only SHA-256 of it is stored).

use latchkey_domain::{
    ChallengePurpose, DeleteReason, Event, LeaveReason, PairingEvent, RejectReason, RevokeReason,
    RoomEvent, RoomVisibility, Scope, SshPublicKey, Timestamp, TokenKind, UserEvent,
};
use latchkey_proto as proto;
use latchkey_proto::ws::{MemberData, MessageDeletedData, RoomCreatedData};
use latchkey_proto::Message;
use serde_json::{json, Value};

mod device;
mod paircode;

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
    wire_kind(k).as_str()
}

/// `chat:read`, `chat:write`, `admin`.
pub fn scope(s: Scope) -> &'static str {
    match s {
        Scope::ChatRead => "chat:read",
        Scope::ChatWrite => "chat:write",
        Scope::Admin => "admin",
    }
}

/// `public` / `private`.
pub fn visibility(v: RoomVisibility) -> &'static str {
    wire_visibility(v).as_str()
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

/// `sender` / `admin`.
pub fn delete_reason(r: DeleteReason) -> &'static str {
    match r {
        DeleteReason::Sender => "sender",
        DeleteReason::Admin => "admin",
    }
}

/// `left` / `removed`.
pub fn leave_reason(r: LeaveReason) -> &'static str {
    match r {
        LeaveReason::Left => "left",
        LeaveReason::Removed => "removed",
    }
}

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
        Event::User(e) => user_json(e),
        Event::Pairing(e) => pairing_json(e),
        Event::Room(e) => room_json(e),
    }
}

fn user_json(e: &UserEvent) -> Value {
    match e {
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
    }
}

fn pairing_json(e: &PairingEvent) -> Value {
    match e {
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
        other => device::device_event_json(other).unwrap_or(Value::Null),
    }
}

fn room_json(e: &RoomEvent) -> Value {
    match e {
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
                "reason": leave_reason(*reason), "at": rfc3339(*at)}),
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
        RoomEvent::MessagePostedV2 {
            message_id,
            sender,
            body_hash,
            target_user_ids,
            reply_to,
            at,
            body,
        } => json!({
                "message_id": message_id.to_string(), "sender": sender.to_string(),
                "body": body.as_ref().map(|b| b.text.clone()), "body_hash": hex_hash(body_hash),
                "target_user_ids": target_user_ids.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                "reply_to": reply_to.map(|r| r.to_string()), "at": rfc3339(*at)}),
        RoomEvent::MessageDeleted {
            message_id,
            sender,
            target_user_ids,
            by,
            reason,
            at,
        } => json!({
                "message_id": message_id.to_string(), "sender": sender.to_string(),
                "target_user_ids": target_user_ids.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                "by": by.map(|b| b.to_string()), "reason": delete_reason(*reason), "at": rfc3339(*at)}),
    }
}

/// A hash as lowercase hex.
pub fn hex_hash(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The WebSocket `data` of a room event.
pub fn room_event_data(event: &RoomEvent) -> Value {
    let value = match event {
        RoomEvent::RoomCreated {
            name,
            visibility: v,
            owner,
            at,
            ..
        } => serde_json::to_value(RoomCreatedData {
            name: name.clone(),
            visibility: wire_visibility(*v),
            owner: owner.to_string(),
            created_at: rfc3339(*at),
        }),
        RoomEvent::MemberJoined { user_id, by, .. } => serde_json::to_value(MemberData {
            user_id: user_id.to_string(),
            by: by.to_string(),
            reason: None,
        }),
        RoomEvent::MemberLeft {
            user_id,
            by,
            reason,
            ..
        } => serde_json::to_value(MemberData {
            user_id: user_id.to_string(),
            by: by.to_string(),
            reason: Some(leave_reason(*reason).into()),
        }),
        RoomEvent::MessagePosted {
            message_id,
            sender,
            body,
            target_user_ids,
            reply_to,
            at,
        } => serde_json::to_value(message(
            message_id.to_string(),
            None,
            sender.to_string(),
            Some(body.clone()),
            target_user_ids.iter().map(|u| u.to_string()).collect(),
            reply_to.map(|r| r.to_string()),
            *at,
        )),
        RoomEvent::MessagePostedV2 {
            message_id,
            sender,
            target_user_ids,
            reply_to,
            at,
            body,
            ..
        } => serde_json::to_value(message(
            message_id.to_string(),
            None,
            sender.to_string(),
            body.as_ref().map(|b| b.text.clone()),
            target_user_ids.iter().map(|u| u.to_string()).collect(),
            reply_to.map(|r| r.to_string()),
            *at,
        )),
        RoomEvent::MessageDeleted {
            message_id,
            sender,
            by,
            reason,
            ..
        } => serde_json::to_value(MessageDeletedData {
            message_id: message_id.to_string(),
            sender: sender.to_string(),
            by: by.map(|b| b.to_string()),
            reason: delete_reason(*reason).into(),
        }),
    };
    value.unwrap_or(Value::Null)
}

/// A message on the wire (history and `message.posted` data).
pub fn message(
    message_id: String,
    seq: Option<u64>,
    sender: String,
    body: Option<String>,
    target_user_ids: Vec<String>,
    reply_to: Option<String>,
    sent_at: Timestamp,
) -> Message {
    Message {
        message_id,
        seq,
        sender,
        body,
        target_user_ids,
        reply_to,
        sent_at: rfc3339(sent_at),
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

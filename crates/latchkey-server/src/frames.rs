//! WebSocket event frames: the one encoder of room events to JSON, used for live fanout
//! (encoded once per event, shared by every recipient) and for resume replay alike.

use crate::convert::rfc3339;
use bytestring::ByteString;
use latchkey_domain::{LeaveReason, RoomEvent, RoomId, RoomVisibility, Timestamp};
use latchkey_proto::ws::{MemberData, RoomCreatedData, ServerFrame};
use latchkey_proto::Message;
use latchkey_store::Recorded;

/// `public` / `private`.
pub fn visibility(v: RoomVisibility) -> &'static str {
    match v {
        RoomVisibility::Public => "public",
        RoomVisibility::Private => "private",
    }
}

/// The `data` of a room event.
pub fn event_data(event: &RoomEvent) -> serde_json::Value {
    let value = match event {
        RoomEvent::RoomCreated {
            name,
            visibility: v,
            owner,
            at,
            ..
        } => serde_json::to_value(RoomCreatedData {
            name: name.clone(),
            visibility: visibility(*v).into(),
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
            reason: Some(
                match reason {
                    LeaveReason::Left => "left",
                    LeaveReason::Removed => "removed",
                }
                .into(),
            ),
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
            body.clone(),
            target_user_ids.iter().map(|u| u.to_string()).collect(),
            reply_to.map(|r| r.to_string()),
            *at,
        )),
    };
    value.unwrap_or(serde_json::Value::Null)
}

/// A message on the wire (history and `message.posted` data).
pub fn message(
    message_id: String,
    seq: Option<u64>,
    sender: String,
    body: String,
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

/// The full `event` frame text for a room event.
pub fn event_frame(rec: &Recorded, room: RoomId, event: &RoomEvent) -> ByteString {
    let frame = ServerFrame::Event {
        seq: rec.seq(),
        room_id: room.to_string(),
        event: rec.envelope.event_type.clone(),
        data: event_data(event),
    };
    ByteString::from(text(&frame))
}

/// Any server frame as JSON text.
pub fn text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| "{\"type\":\"error\"}".into())
}

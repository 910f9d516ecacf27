//! WebSocket event frames, used for live fanout (encoded once per event, shared by every
//! recipient) and for resume replay alike. The event's `data` comes from the one JSON
//! encoder of events, `latchkey_admin::json`.

use bytestring::ByteString;
use latchkey_domain::{RoomEvent, RoomId};
use latchkey_proto::ws::ServerFrame;
use latchkey_store::Recorded;

pub use latchkey_admin::json::{message, room_event_data, visibility};

/// The full `event` frame text for a room event.
pub fn event_frame(rec: &Recorded, room: RoomId, event: &RoomEvent) -> ByteString {
    let frame = ServerFrame::Event {
        seq: rec.seq(),
        room_id: room.to_string(),
        event: rec.envelope.event_type.clone(),
        data: room_event_data(event),
    };
    ByteString::from(text(&frame))
}

/// Any server frame as JSON text.
pub fn text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| "{\"type\":\"error\"}".into())
}

//! The WebSocket close codes: the one definition of each number. They are part of the
//! wire protocol (`proto-docs/websocket.md`, documented beside the frames in
//! `latchkey-proto`'s `ws` module), and live here because the hub sends two of them and
//! the actors do not depend on `latchkey-proto`.

/// A frame that is not a valid client frame, or an oversized or binary one.
pub const CLOSE_MALFORMED: u16 = 4000;
/// The credential was revoked or expired, or the user was disabled.
pub const CLOSE_CREDENTIAL: u16 = 4001;
/// The send queue overflowed (slow consumer); resume from the last seq.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Too many client frames.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// The server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// A normal close (the client said goodbye).
pub const CLOSE_NORMAL: u16 = 1000;
/// The peer stopped answering pings.
pub const CLOSE_NO_PONG: u16 = 1011;

//! `latchkey tail`: built on `latchkey-client`; the command lives in `client::tail`.

pub use crate::client::tail::{run, TailArgs};

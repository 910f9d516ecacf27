//! Signs in with an SSH key (through ssh-agent when `SSH_AUTH_SOCK` is set, else the key
//! file given), stores the token, posts to a room and follows live events.
//!
//! ```text
//! cargo run -p latchkey-client --example sign_in_and_follow -- http://127.0.0.1:8080 [KEY_FILE]
//! ```

use latchkey_client::ws::SubscriptionOptions;
use latchkey_client::{login, Api, LoginOptions, Signer, Subscription, SubscriptionEvent};
use latchkey_proto::{PostMessageRequest, RoomVisibility};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let signer = match args.next() {
        Some(key) => Signer::from_key_file(&PathBuf::from(key))?,
        None => Signer::from_agent_env(None)?,
    };
    let api = Api::new(&server)?;
    // Refuses, having signed nothing, a challenge for another server or key.
    let signed_in = login(&api, &signer, &LoginOptions::default())?;
    println!(
        "signed in as {} with {}",
        signed_in.token.user.handle, signed_in.fingerprint
    );
    let api = api.with_token(&signed_in.token.token);

    let room = api.create_room("example", RoomVisibility::Public)?;
    let posted = api.post(
        &room.id,
        &PostMessageRequest {
            body: "hello from latchkey-client".into(),
            target_user_ids: None,
            reply_to: None,
        },
    )?;
    println!("posted seq {}", posted.seq);

    // Replays from just before the post, then follows; reconnects and resumes by itself.
    let mut sub = Subscription::new(
        api,
        SubscriptionOptions {
            since: Some(posted.seq.saturating_sub(1)),
            ..SubscriptionOptions::default()
        },
    );
    loop {
        match sub.next_event()? {
            SubscriptionEvent::Event {
                seq, event, data, ..
            } => println!("{seq} {event} {data}"),
            SubscriptionEvent::Resumed { .. } => println!("(caught up; following live events)"),
            other => println!("{other:?}"),
        }
    }
}

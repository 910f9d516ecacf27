//! The subscription against a scripted WebSocket server: reconnects with backoff (a fake
//! sleeper, no real waiting), resumes from the last seq, and drops a replayed duplicate.

use super::*;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct FakeSleeper(Arc<Mutex<Vec<Duration>>>);

impl Sleeper for FakeSleeper {
    fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

fn event(seq: u64) -> String {
    format!(
        r#"{{"type":"event","seq":{seq},"room_id":"r","event":"message.posted","data":{{"body":"m{seq}"}}}}"#
    )
}

fn hello(head: u64) -> String {
    format!(r#"{{"type":"hello","user_id":"u","connection_id":"c","head":{head},"rooms":["r"]}}"#)
}

/// Serves two connections: the first sends 1..=2 then drops; the second expects
/// `resume since 2`, replays 2 (a duplicate) and 3, then closes with 4001.
fn scripted_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let firsts = Arc::new(Mutex::new(Vec::new()));
    let log = firsts.clone();
    std::thread::spawn(move || {
        for n in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(stream).unwrap();
            let first = ws.read().unwrap().into_text().unwrap().to_string();
            log.lock().unwrap().push(first);
            let frames = if n == 0 {
                vec![hello(0), event(1), event(2)]
            } else {
                vec![
                    hello(3),
                    event(2),
                    event(3),
                    r#"{"type":"resumed","from":2,"to":3}"#.into(),
                ]
            };
            for f in frames {
                ws.send(tungstenite::Message::text(f)).unwrap();
            }
            if n == 1 {
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: 4001.into(),
                    reason: "revoked".into(),
                }));
                let _ = ws.flush();
                let _ = ws.read();
            }
            // The first connection just drops (as a killed server would).
        }
    });
    (url, firsts)
}

#[test]
fn resumes_after_a_drop_with_no_gap_and_no_duplicate_then_stops_on_4001() {
    let (url, firsts) = scripted_server();
    let sleeper = FakeSleeper::default();
    let api = Api::new(&url).unwrap().with_token("lks_t");
    let mut sub = Subscription::new(api, SubscriptionOptions::default())
        .with_sleeper(Box::new(sleeper.clone()));
    let mut seqs = Vec::new();
    let mut reconnects = 0;
    let err = loop {
        match sub.next_event() {
            Ok(SubscriptionEvent::Event { seq, .. }) => seqs.push(seq),
            Ok(SubscriptionEvent::Reconnecting { .. }) => reconnects += 1,
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(seqs, [1, 2, 3], "each seq once, in order");
    assert_eq!(reconnects, 1);
    assert!(
        matches!(err, Error::CredentialClosed { code: 4001, .. }),
        "{err}"
    );
    assert_eq!(
        *firsts.lock().unwrap(),
        [r#"{"op":"ping"}"#, r#"{"op":"resume","since":2}"#]
    );
    assert_eq!(*sleeper.0.lock().unwrap(), [Duration::from_millis(100)]);
}

#[test]
fn a_server_never_reached_is_an_error_not_an_endless_retry() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut sub = Subscription::new(Api::new(&closed).unwrap(), SubscriptionOptions::default());
    assert!(matches!(sub.next_event(), Err(Error::Unreachable { .. })));
}

use super::*;
use crate::testing::serve;
use std::sync::{Arc, Mutex};

/// Records every wait instead of sleeping.
#[derive(Clone, Default)]
struct FakeSleeper(Arc<Mutex<Vec<Duration>>>);

impl Sleeper for FakeSleeper {
    fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

fn code(interval: u32, expires_in: i64) -> DeviceCodeResponse {
    DeviceCodeResponse {
        device_code: "dc-secret".into(),
        user_code: "WDJB-MJHT".into(),
        verification_uri: "http://x/device".into(),
        verification_uri_complete: "http://x/device?user_code=WDJB-MJHT".into(),
        expires_in,
        interval,
        comparison_code: None,
        key_challenge: None,
    }
}

fn oauth(code: &str) -> (u16, String) {
    (
        400,
        format!(r#"{{"error":"{code}","error_description":"d"}}"#),
    )
}

#[test]
fn comparison_code_matches_the_worked_example() {
    let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    assert_eq!(comparison_code("WDJB-MJHT", fp), "242540");
    assert_eq!(comparison_code("wdjb mjht", fp), "242540");
    assert_ne!(
        comparison_code(
            "WDJB-MJHT",
            "SHA256:aNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
        ),
        "242540"
    );
}

#[test]
fn polls_at_the_interval_and_slows_down_by_five_seconds_for_good() {
    let token =
        r#"{"access_token":"lkd_x","token_type":"Bearer","expires_in":60,"scope":"chat:read"}"#;
    let server = serve(vec![
        oauth("authorization_pending"),
        oauth("slow_down"),
        oauth("authorization_pending"),
        (200, token.to_string()),
    ]);
    let sleeper = FakeSleeper::default();
    let flow =
        DeviceFlow::new(Api::new(&server.url).unwrap()).with_sleeper(Box::new(sleeper.clone()));
    let mut outcomes = Vec::new();
    let got = flow
        .poll(&code(5, 600), "cli", |o| outcomes.push(o.clone()))
        .unwrap();
    assert_eq!(got.access_token, "lkd_x");
    let secs: Vec<u64> = sleeper
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(secs, [5, 5, 10, 10]);
    assert_eq!(
        outcomes[1],
        PollOutcome::SlowDown {
            interval: Duration::from_secs(10)
        }
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert!(seen
        .iter()
        .all(|s| s.method == "POST" && s.path == "/api/auth/device/token"));
    assert!(seen[0]
        .body
        .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"));
    assert!(seen[0].body.contains("client_id=cli"));
}

#[test]
fn waits_out_a_rate_limit_without_giving_up() {
    let token = r#"{"access_token":"lkd_y","token_type":"Bearer","scope":"chat:read"}"#;
    let server = serve(vec![
        (
            429,
            r#"{"error":"rate_limited","error_description":"d"}"#.into(),
        ),
        (200, token.to_string()),
    ]);
    let sleeper = FakeSleeper::default();
    let flow =
        DeviceFlow::new(Api::new(&server.url).unwrap()).with_sleeper(Box::new(sleeper.clone()));
    let got = flow.poll(&code(5, 600), "cli", |_| {}).unwrap();
    assert_eq!(got.access_token, "lkd_y");
    let secs: Vec<u64> = sleeper
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(secs, [5, 3, 5], "the interval, Retry-After, the interval");
}

#[test]
fn stops_on_access_denied_and_on_expired_token() {
    for stop in ["access_denied", "expired_token"] {
        let server = serve(vec![oauth("authorization_pending"), oauth(stop)]);
        let flow = DeviceFlow::new(Api::new(&server.url).unwrap())
            .with_sleeper(Box::new(FakeSleeper::default()));
        let err = flow.poll(&code(5, 600), "cli", |_| {}).unwrap_err();
        assert_eq!(err.code(), Some(stop));
        assert!(!err.to_string().contains("dc-secret"), "{err}");
        assert_eq!(server.seen.lock().unwrap().len(), 2);
    }
}

#[test]
fn gives_up_locally_once_the_code_has_lapsed() {
    let server = serve(vec![
        oauth("authorization_pending"),
        oauth("authorization_pending"),
    ]);
    let sleeper = FakeSleeper::default();
    let flow =
        DeviceFlow::new(Api::new(&server.url).unwrap()).with_sleeper(Box::new(sleeper.clone()));
    let err = flow.poll(&code(5, 10), "cli", |_| {}).unwrap_err();
    assert_eq!(err.code(), Some("expired_token"));
    assert_eq!(sleeper.0.lock().unwrap().len(), 2);
}

#[test]
fn approve_omits_an_absent_lifetime_and_sends_null_for_never() {
    let ok = r#"{"status":"approved","client_id":"c","device_name":null,"scopes":["chat:read"],"token_expires_in":null,"key_added":null}"#;
    let server = serve(vec![(200, ok.into()), (200, ok.into())]);
    let flow = DeviceFlow::new(Api::new(&server.url).unwrap().with_token("lks_t"));
    let mut req = DeviceApproveRequest {
        user_code: "wdjb-mjht".into(),
        ..Default::default()
    };
    flow.approve(&req).unwrap();
    req.expires_in = Some(None);
    flow.approve(&req).unwrap();
    let seen = server.seen.lock().unwrap();
    assert!(!seen[0].body.contains("expires_in"), "{}", seen[0].body);
    assert!(
        seen[1].body.contains("\"expires_in\":null"),
        "{}",
        seen[1].body
    );
}

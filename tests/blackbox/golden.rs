//! Golden bytes of the log codec: one fixed sample of every event type, and one envelope.
//! A failure means an encoding changed, which breaks every stored log: add a new variant
//! or schema instead. Regenerate only for a deliberate format change:
//! `LATCHKEY_UPDATE_GOLDEN=1 cargo test -p latchkey-tests golden`.

use crate::support::repo_root;
use latchkey_domain::*;
use latchkey_store::codec;
use latchkey_store::Envelope;
use std::collections::BTreeMap;
use uuid::Uuid;

const FIXTURE: &str = "tests/fixtures/codec-golden.txt";

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn key() -> SshPublicKey {
    SshPublicKey {
        algorithm: KeyAlgorithm::Ed25519,
        openssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden".into(),
        fingerprint: "SHA256:golden".into(),
        comment: "alice@laptop".into(),
    }
}

fn samples() -> Vec<Event> {
    let t = Timestamp(1_790_000_000_000);
    let user = UserId(id(1));
    let other = UserId(id(2));
    vec![
        UserEvent::UserRegistered {
            user_id: user,
            handle: "alice".into(),
            key_id: KeyId(id(3)),
            key: key(),
            admin: true,
            at: t,
        }
        .into(),
        UserEvent::KeyAdded {
            key_id: KeyId(id(4)),
            key: SshPublicKey {
                algorithm: KeyAlgorithm::SkEd25519,
                ..key()
            },
            at: t,
        }
        .into(),
        UserEvent::KeyRemoved {
            key_id: KeyId(id(4)),
            fingerprint: "SHA256:golden".into(),
        }
        .into(),
        UserEvent::TokenMinted {
            token_id: TokenId(id(5)),
            hash: [7; 32],
            kind: TokenKind::Session,
            scopes: vec![Scope::ChatRead, Scope::ChatWrite, Scope::Admin],
            name: Some("laptop".into()),
            device_name: Some("mbp".into()),
            user_agent: Some("latchkey/0.1".into()),
            ip: Some("192.0.2.0".parse().unwrap()),
            key_fingerprint: Some("SHA256:golden".into()),
            created_at: t,
            expires_at: Some(Timestamp(1_792_592_000_000)),
        }
        .into(),
        UserEvent::TokenUsed {
            token_id: TokenId(id(5)),
            at: t,
        }
        .into(),
        UserEvent::TokenRevoked {
            token_id: TokenId(id(5)),
            reason: RevokeReason::KeyRemoved,
            at: t,
        }
        .into(),
        UserEvent::TokenExpired {
            token_id: TokenId(id(5)),
        }
        .into(),
        UserEvent::UserDisabled { at: t }.into(),
        UserEvent::UserEnabled { at: t }.into(),
        PairingEvent::ChallengeIssued {
            challenge_id: PairingId(id(6)),
            server: "https://chat.example".into(),
            key: key(),
            nonce: [9; 32],
            purpose: ChallengePurpose::AddKey(user),
            issued_at: t,
            expires_at: Timestamp(1_790_000_060_000),
            ip: Some("2001:db8::".parse().unwrap()),
        }
        .into(),
        PairingEvent::SignatureVerified {
            user_id: user,
            at: t,
        }
        .into(),
        PairingEvent::SignatureRejected {
            reason: RejectReason::UserPresenceMissing,
            at: t,
        }
        .into(),
        PairingEvent::ChallengeExpired { at: t }.into(),
        RoomEvent::RoomCreated {
            room_id: RoomId(id(7)),
            name: "general".into(),
            visibility: RoomVisibility::Private,
            owner: user,
            at: t,
        }
        .into(),
        RoomEvent::MemberJoined {
            user_id: other,
            by: user,
            at: t,
        }
        .into(),
        RoomEvent::MemberLeft {
            user_id: other,
            by: user,
            reason: LeaveReason::Removed,
            at: t,
        }
        .into(),
        RoomEvent::MessagePosted {
            message_id: MessageId(id(8)),
            sender: user,
            body: "héllo".into(),
            target_user_ids: vec![other],
            reply_to: Some(MessageId(id(9))),
            at: t,
        }
        .into(),
        // The detached body is never in the payload: decoding gives `body: None`.
        RoomEvent::MessagePostedV2 {
            message_id: MessageId(id(13)),
            sender: user,
            body_hash: [0x5A; 32],
            target_user_ids: vec![other],
            reply_to: Some(MessageId(id(8))),
            at: t,
            body: None,
        }
        .into(),
        RoomEvent::MessageDeleted {
            message_id: MessageId(id(13)),
            sender: user,
            target_user_ids: vec![other],
            by: Some(user),
            reason: DeleteReason::Sender,
            at: t,
        }
        .into(),
    ]
    .into_iter()
    .chain(crate::device::golden_samples())
    .chain(crate::pairing_codes::golden_samples())
    .collect()
}

fn envelope() -> Envelope {
    let event: Event = UserEvent::UserEnabled { at: Timestamp(1) }.into();
    Envelope {
        format: 1,
        seq: 42,
        stream: UserId(id(1)).stream(),
        version: 3,
        event_id: id(10),
        command_id: id(11),
        recorded_at: Timestamp(1_790_000_000_123),
        actor: Actor::Admin(UserId(id(12))),
        prev_hash: [0xAB; 32],
        event_type: event.event_type().into(),
        schema: SCHEMA,
        payload: codec::encode(&event).unwrap(),
    }
}

/// The fixture's name for a sample: its type, and a suffix for a second encoding of one
/// type (`message.posted` has the legacy and the detached-body variant).
fn label(e: &Event) -> String {
    match e {
        Event::Room(RoomEvent::MessagePostedV2 { .. }) => "message.posted.v2".into(),
        _ => e.event_type().to_string(),
    }
}

fn current() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in samples() {
        out.insert(label(&e), hex::encode(codec::encode(&e).unwrap()));
    }
    out.insert(
        "envelope".into(),
        hex::encode(codec::encode(&envelope()).unwrap()),
    );
    out
}

#[test]
fn encodings_match_the_golden_bytes() {
    let path = repo_root().join(FIXTURE);
    let now = current();
    if std::env::var_os("LATCHKEY_UPDATE_GOLDEN").is_some() {
        let text: String = now.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let golden: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let covered: Vec<&str> = samples().iter().map(|e| e.event_type()).collect();
    for t in Event::ALL_TYPES {
        assert!(covered.contains(t), "no golden sample for {t}");
    }
    assert_eq!(golden, now, "an encoding changed; see the module docs");
    // Old bytes still decode to the same values.
    for e in samples() {
        let bytes = hex::decode(&golden[&label(&e)]).unwrap();
        assert_eq!(codec::decode::<Event>(&bytes, "golden").unwrap(), e);
    }
    let env_bytes = hex::decode(&golden["envelope"]).unwrap();
    assert_eq!(
        codec::decode::<Envelope>(&env_bytes, "golden").unwrap(),
        envelope()
    );
}

#[test]
fn a_detached_body_never_reaches_the_payload() {
    let without = samples()
        .into_iter()
        .find(|e| label(e) == "message.posted.v2")
        .unwrap();
    let mut with = without.clone();
    if let Event::Room(RoomEvent::MessagePostedV2 { body, .. }) = &mut with {
        *body = Some(MessageBody {
            text: "secret text".into(),
            secret: [1; 32],
        });
    }
    assert_eq!(
        codec::encode(&with).unwrap(),
        codec::encode(&without).unwrap()
    );
}

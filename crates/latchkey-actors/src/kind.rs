//! Ties each domain decider to the log's `Event` enum, its passivation time and its
//! snapshot format, so the generic entity and registry can rehydrate and append any
//! aggregate.
//!
//! **Snapshot formats.** A kind with long streams (users, rooms) stores snapshots of its
//! state (DESIGN §15). `SNAPSHOT_FORMAT` names the byte layout of that state: bump it
//! whenever the state type changes, and snapshots of the old layout are ignored (folded
//! from the log again). The golden test in this module's tests fails when the encoding of
//! a sample state changes under an unchanged format id.

use latchkey_domain::{
    Decider, Event, PairingDecider, PairingEvent, RoomDecider, RoomEvent, UserDecider, UserEvent,
};
use latchkey_store::{codec, StoreResult};
use std::time::Duration;

/// An aggregate an entity actor can host.
pub trait Kind:
    Decider<
        State: Clone + Send + Sync + Unpin + 'static,
        Command: Clone + Send + Unpin + 'static,
        Error: Send + Unpin + 'static,
        Event: Clone + Send + Unpin + 'static,
    > + Send
    + Unpin
    + 'static
{
    /// How long an idle entity stays in memory (DESIGN §5).
    const PASSIVATE_AFTER: Duration;
    /// This aggregate's event inside a log event, if it is one.
    fn extract(event: &Event) -> Option<&Self::Event>;
    /// Wraps this aggregate's event for the log.
    fn wrap(event: Self::Event) -> Event;
    /// The layout id of this kind's snapshots; `None`: its streams are short, so it takes
    /// no snapshots and always folds from event 1.
    const SNAPSHOT_FORMAT: Option<u32> = None;
    /// The state as snapshot bytes (`None` for a kind without snapshots).
    fn encode_state(_state: &Self::State) -> Option<StoreResult<Vec<u8>>> {
        None
    }
    /// A state back from snapshot bytes (`None` for a kind without snapshots).
    fn decode_state(_bytes: &[u8]) -> Option<StoreResult<Self::State>> {
        None
    }
}

impl Kind for UserDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(600);
    fn extract(event: &Event) -> Option<&UserEvent> {
        match event {
            Event::User(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: UserEvent) -> Event {
        Event::User(event)
    }
    // 2: the state keeps live tokens only.
    const SNAPSHOT_FORMAT: Option<u32> = Some(2);
    fn encode_state(state: &Self::State) -> Option<StoreResult<Vec<u8>>> {
        Some(codec::encode(state))
    }
    fn decode_state(bytes: &[u8]) -> Option<StoreResult<Self::State>> {
        Some(codec::decode(bytes, "user snapshot"))
    }
}

impl Kind for PairingDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(60);
    fn extract(event: &Event) -> Option<&PairingEvent> {
        match event {
            Event::Pairing(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: PairingEvent) -> Event {
        Event::Pairing(event)
    }
}

impl Kind for RoomDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(600);
    fn extract(event: &Event) -> Option<&RoomEvent> {
        match event {
            Event::Room(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: RoomEvent) -> Event {
        Event::Room(event)
    }
    // 3: the state keeps the deleted messages' ids, not every message.
    const SNAPSHOT_FORMAT: Option<u32> = Some(3);
    fn encode_state(state: &Self::State) -> Option<StoreResult<Vec<u8>>> {
        Some(codec::encode(state))
    }
    fn decode_state(bytes: &[u8]) -> Option<StoreResult<Self::State>> {
        Some(codec::decode(bytes, "room snapshot"))
    }
}

#[cfg(test)]
mod tests {
    //! Golden bytes of the snapshot formats: a sample state of each kind with every field
    //! set, encoded, against `tests/fixtures/snapshot-golden.txt` (`kind format hex`). A
    //! changed encoding under an unchanged `SNAPSHOT_FORMAT` fails: bump the format id,
    //! then add its line with `LATCHKEY_UPDATE_GOLDEN=1 cargo test -p latchkey-actors
    //! snapshot_formats`. Lines of old format ids stay, so an id is never reused.
    use super::Kind;
    use latchkey_domain::room::Room;
    use latchkey_domain::user::{TokenRecord, TokenStatus, User, UserKey};
    use latchkey_domain::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;
    use uuid::Uuid;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
    }

    fn token(n: u128) -> (TokenId, TokenRecord) {
        let t = Timestamp(1_790_000_000_000);
        let record = TokenRecord {
            hash: [n as u8; 32],
            kind: TokenKind::Personal,
            scopes: vec![Scope::ChatRead, Scope::Admin],
            name: Some("ci".into()),
            device_name: Some("laptop".into()),
            user_agent: Some("latchkey/1".into()),
            ip: Some([192, 0, 2, 0].into()),
            key_fingerprint: Some("SHA256:golden".into()),
            created_at: t,
            expires_at: Some(t.plus_secs(60)),
            last_used_at: Some(t.plus_secs(30)),
            status: TokenStatus::Live,
        };
        (TokenId(id(n)), record)
    }

    fn user_sample() -> UserState {
        let t = Timestamp(1_790_000_000_000);
        let tokens: BTreeMap<TokenId, TokenRecord> = [token(10), token(11)].into_iter().collect();
        UserState::Registered(User {
            id: UserId(id(1)),
            handle: "alice".into(),
            admin: true,
            disabled: true,
            keys: vec![UserKey {
                key_id: KeyId(id(2)),
                key: SshPublicKey {
                    algorithm: KeyAlgorithm::Ed25519,
                    openssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden".into(),
                    fingerprint: "SHA256:golden".into(),
                    comment: "alice@laptop".into(),
                },
                added_at: t,
            }],
            tokens,
        })
    }

    fn room_sample() -> RoomState {
        RoomState::Active(Room {
            id: RoomId(id(20)),
            name: "general".into(),
            visibility: RoomVisibility::Private,
            owner: UserId(id(1)),
            members: BTreeSet::from([UserId(id(1)), UserId(id(2))]),
            created_at: Timestamp(1_790_000_000_000),
            deleted: BTreeSet::from([
                latchkey_domain::MessageId(id(30)),
                latchkey_domain::MessageId(id(31)),
            ]),
        })
    }

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/snapshot-golden.txt")
    }

    #[test]
    fn snapshot_formats_match_their_golden_bytes() {
        let current = [
            (
                "user",
                UserDecider::SNAPSHOT_FORMAT,
                UserDecider::encode_state(&user_sample()),
            ),
            (
                "room",
                RoomDecider::SNAPSHOT_FORMAT,
                RoomDecider::encode_state(&room_sample()),
            ),
        ];
        let text = std::fs::read_to_string(fixture()).unwrap_or_default();
        let golden: BTreeMap<(String, u32), String> = text
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let kind = parts.next()?.to_string();
                let format = parts.next()?.parse().ok()?;
                Some(((kind, format), parts.next()?.to_string()))
            })
            .collect();
        let update = std::env::var_os("LATCHKEY_UPDATE_GOLDEN").is_some();
        let mut added = String::new();
        for (kind, format, bytes) in current {
            let format = format.unwrap();
            let hex = hex_of(&bytes.unwrap().unwrap());
            match golden.get(&(kind.to_string(), format)) {
                Some(g) => assert_eq!(
                    *g, hex,
                    "the {kind} snapshot encoding changed under format {format}: bump its \
                     SNAPSHOT_FORMAT in kind.rs, then LATCHKEY_UPDATE_GOLDEN=1"
                ),
                None if update => added.push_str(&format!("{kind} {format} {hex}\n")),
                None => panic!(
                    "no golden line for {kind} snapshot format {format}: run with \
                     LATCHKEY_UPDATE_GOLDEN=1"
                ),
            }
        }
        if !added.is_empty() {
            std::fs::write(fixture(), format!("{text}{added}")).unwrap();
        }
    }

    #[test]
    fn kinds_without_snapshots_encode_nothing() {
        assert_eq!(PairingDecider::SNAPSHOT_FORMAT, None);
        assert!(PairingDecider::encode_state(&PairingState::None).is_none());
    }

    #[test]
    fn a_state_survives_its_snapshot_bytes() {
        let bytes = UserDecider::encode_state(&user_sample()).unwrap().unwrap();
        let back = UserDecider::decode_state(&bytes).unwrap().unwrap();
        assert_eq!(back, user_sample());
        let bytes = RoomDecider::encode_state(&room_sample()).unwrap().unwrap();
        assert_eq!(
            RoomDecider::decode_state(&bytes).unwrap().unwrap(),
            room_sample()
        );
    }

    /// The snapshot size of `D`'s state after `events`.
    fn state_bytes<D: Kind>(events: &[D::Event]) -> usize {
        let state = events.iter().fold(D::State::default(), D::evolve);
        D::encode_state(&state).unwrap().unwrap().len()
    }

    #[test]
    fn a_state_does_not_grow_with_its_history() {
        let t = Timestamp(1_790_000_000_000);
        let (room, alice) = (RoomId(id(20)), UserId(id(1)));
        let post = |n: u128| RoomEvent::MessagePostedV2 {
            message_id: MessageId(id(1000 + n)),
            sender: alice,
            body_hash: [0; 32],
            target_user_ids: vec![UserId(id(2))],
            reply_to: None,
            at: t,
            body: None,
        };
        let created = RoomEvent::RoomCreated {
            room_id: room,
            name: "r".into(),
            visibility: RoomVisibility::Public,
            owner: alice,
            at: t,
        };
        let mut few = vec![created.clone(), post(0)];
        let mut many = vec![created];
        many.extend((0..10_000).map(post));
        assert_eq!(
            state_bytes::<RoomDecider>(&few),
            state_bytes::<RoomDecider>(&many),
            "a room's state does not grow with its posts"
        );
        few.push(RoomEvent::MessageDeleted {
            message_id: MessageId(id(1000)),
            sender: alice,
            target_user_ids: vec![],
            by: Some(alice),
            reason: DeleteReason::Sender,
            at: t,
        });
        assert!(state_bytes::<RoomDecider>(&few) > state_bytes::<RoomDecider>(&many[..2]));

        let UserState::Registered(user) = user_sample() else {
            unreachable!()
        };
        let registered = UserEvent::UserRegistered {
            user_id: user.id,
            handle: user.handle.clone(),
            key_id: user.keys[0].key_id,
            key: user.keys[0].key.clone(),
            admin: false,
            at: t,
        };
        let session = |n: u128| {
            let (token_id, r) = token(n);
            [
                UserEvent::TokenMinted {
                    token_id,
                    hash: r.hash,
                    kind: TokenKind::Session,
                    scopes: r.scopes,
                    name: None,
                    device_name: None,
                    user_agent: r.user_agent,
                    ip: r.ip,
                    key_fingerprint: r.key_fingerprint,
                    created_at: t,
                    expires_at: r.expires_at,
                },
                UserEvent::TokenRevoked {
                    token_id,
                    reason: RevokeReason::Logout,
                    at: t,
                },
            ]
        };
        let many: Vec<UserEvent> = std::iter::once(registered.clone())
            .chain((0..5_000).flat_map(session))
            .collect();
        assert_eq!(
            state_bytes::<UserDecider>(&[registered]),
            state_bytes::<UserDecider>(&many),
            "a user's state does not grow with tokens minted and revoked"
        );
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

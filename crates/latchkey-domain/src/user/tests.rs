//! Tests of `user`.

use super::*;
use crate::decider::testing::{given, given_nothing};
use crate::events::KeyAlgorithm;
use crate::handle::HandleError;
use uuid::Uuid;

/// Whether a token of this user may be used at `now`: the user exists and is enabled, and
/// the token is live and not past its expiry.
fn token_is_valid_at(state: &UserState, token_id: TokenId, now: Timestamp) -> bool {
    state
        .user()
        .is_some_and(|u| !u.disabled && u.tokens.get(&token_id).is_some_and(|t| t.is_valid_at(now)))
}

const T0: Timestamp = Timestamp(1_700_000_000_000);
const MIN: i64 = 60_000;

fn at(minutes: i64) -> Timestamp {
    Timestamp(T0.0 + minutes * MIN)
}
fn uid() -> UserId {
    UserId(Uuid::from_u128(1))
}
fn kid(n: u128) -> KeyId {
    KeyId(Uuid::from_u128(100 + n))
}
fn tid(n: u128) -> TokenId {
    TokenId(Uuid::from_u128(200 + n))
}
fn key(n: u8) -> SshPublicKey {
    SshPublicKey {
        algorithm: KeyAlgorithm::Ed25519,
        openssh: format!("ssh-ed25519 KEY{n}"),
        fingerprint: format!("SHA256:fp{n}"),
        comment: String::new(),
    }
}

fn registered(admin: bool) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: uid(),
        handle: "alice".into(),
        key_id: kid(1),
        key: key(1),
        admin,
        at: T0,
    }
}
fn key_added(n: u8) -> UserEvent {
    UserEvent::KeyAdded {
        key_id: kid(n.into()),
        key: key(n),
        at: T0,
    }
}
fn minted(n: u128, kind: TokenKind, fp: Option<u8>, expires_at: Option<Timestamp>) -> UserEvent {
    UserEvent::TokenMinted {
        token_id: tid(n),
        hash: [n as u8; 32],
        kind,
        scopes: vec![Scope::ChatRead, Scope::ChatWrite],
        name: None,
        device_name: None,
        user_agent: None,
        ip: None,
        key_fingerprint: fp.map(|n| key(n).fingerprint),
        created_at: T0,
        expires_at,
    }
}
fn session(n: u128, fp: u8) -> UserEvent {
    minted(n, TokenKind::Session, Some(fp), Some(at(30 * 24 * 60)))
}
fn revoked_ev(n: u128, reason: RevokeReason, when: Timestamp) -> UserEvent {
    UserEvent::TokenRevoked {
        token_id: tid(n),
        reason,
        at: when,
    }
}
fn mint_cmd(n: u128, kind: TokenKind, scopes: Vec<Scope>) -> UserCommand {
    UserCommand::MintToken(MintToken {
        token_id: tid(n),
        hash: [n as u8; 32],
        kind,
        scopes,
        name: Some("ci".into()),
        device_name: Some("laptop".into()),
        user_agent: Some("latchkey/0.1".into()),
        ip: Some("192.0.2.0".parse().unwrap()),
        key_fingerprint: Some(key(1).fingerprint),
        expires_at: Some(at(60)),
        now: T0,
    })
}
fn minted_from_cmd(n: u128, kind: TokenKind, scopes: Vec<Scope>) -> UserEvent {
    UserEvent::TokenMinted {
        token_id: tid(n),
        hash: [n as u8; 32],
        kind,
        scopes,
        name: Some("ci".into()),
        device_name: Some("laptop".into()),
        user_agent: Some("latchkey/0.1".into()),
        ip: Some("192.0.2.0".parse().unwrap()),
        key_fingerprint: Some(key(1).fingerprint),
        created_at: T0,
        expires_at: Some(at(60)),
    }
}

// ---- Register ----

fn register_cmd(handle: &str) -> UserCommand {
    UserCommand::Register {
        user_id: uid(),
        handle: handle.into(),
        key_id: kid(1),
        key: key(1),
        admin: false,
        now: T0,
    }
}

#[test]
fn register_creates_the_user() {
    let state = given_nothing::<UserDecider>()
        .when(register_cmd("alice"))
        .then(vec![registered(false)]);
    let user = state.user().unwrap();
    assert_eq!(user.handle, "alice");
    assert_eq!(user.keys.len(), 1);
    assert!(!user.disabled);
}

#[test]
fn register_twice_is_already_exists() {
    given(vec![registered(false)])
        .when(register_cmd("alice"))
        .then_error(UserError::AlreadyExists);
}

#[test]
fn register_with_bad_handle_is_invalid_handle() {
    given_nothing::<UserDecider>()
        .when(register_cmd("Alice!"))
        .then_error(UserError::InvalidHandle(HandleError::InvalidChar('A')));
    given_nothing::<UserDecider>()
        .when(register_cmd(""))
        .then_error(UserError::InvalidHandle(HandleError::Empty));
}

// ---- AddKey ----

#[test]
fn add_key_adds_it() {
    let state = given(vec![registered(false)])
        .when(UserCommand::AddKey {
            key_id: kid(2),
            key: key(2),
            now: T0,
        })
        .then(vec![key_added(2)]);
    assert_eq!(state.user().unwrap().keys.len(), 2);
}

#[test]
fn add_key_with_known_fingerprint_is_idempotent() {
    given(vec![registered(false)])
        .when(UserCommand::AddKey {
            key_id: kid(9),
            key: key(1),
            now: T0,
        })
        .then_nothing();
}

#[test]
fn add_key_with_used_key_id_is_key_exists() {
    given(vec![registered(false)])
        .when(UserCommand::AddKey {
            key_id: kid(1),
            key: key(2),
            now: T0,
        })
        .then_error(UserError::KeyExists);
}

#[test]
fn add_key_to_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::AddKey {
            key_id: kid(2),
            key: key(2),
            now: T0,
        })
        .then_error(UserError::NotFound);
}

#[test]
fn add_key_to_disabled_user_is_disabled() {
    given(vec![registered(false), UserEvent::UserDisabled { at: T0 }])
        .when(UserCommand::AddKey {
            key_id: kid(2),
            key: key(2),
            now: T0,
        })
        .then_error(UserError::Disabled);
}

// ---- RemoveKey ----

#[test]
fn remove_key_revokes_only_its_live_sessions() {
    given(vec![
        registered(false),
        key_added(2),
        session(1, 1), // by key 1: stays
        session(2, 2), // by key 2: revoked
        session(3, 2), // by key 2, already revoked
        revoked_ev(3, RevokeReason::Logout, at(1)),
        minted(4, TokenKind::Personal, Some(2), None), // PAT: stays
        minted(5, TokenKind::Device, Some(2), None),   // device: stays
        session(6, 2),                                 // by key 2: revoked
    ])
    .when(UserCommand::RemoveKey {
        key_id: kid(2),
        now: at(5),
    })
    .then(vec![
        UserEvent::KeyRemoved {
            key_id: kid(2),
            fingerprint: key(2).fingerprint,
        },
        revoked_ev(2, RevokeReason::KeyRemoved, at(5)),
        revoked_ev(6, RevokeReason::KeyRemoved, at(5)),
    ]);
}

#[test]
fn remove_unknown_key_is_key_not_found() {
    given(vec![registered(false), key_added(2)])
        .when(UserCommand::RemoveKey {
            key_id: kid(7),
            now: T0,
        })
        .then_error(UserError::KeyNotFound);
}

#[test]
fn remove_last_key_is_last_key() {
    given(vec![registered(false)])
        .when(UserCommand::RemoveKey {
            key_id: kid(1),
            now: T0,
        })
        .then_error(UserError::LastKey);
}

#[test]
fn remove_key_of_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::RemoveKey {
            key_id: kid(1),
            now: T0,
        })
        .then_error(UserError::NotFound);
}

#[test]
fn removed_key_is_gone_from_state() {
    let state = given(vec![registered(false), key_added(2)])
        .when(UserCommand::RemoveKey {
            key_id: kid(1),
            now: T0,
        })
        .then(vec![UserEvent::KeyRemoved {
            key_id: kid(1),
            fingerprint: key(1).fingerprint,
        }]);
    let user = state.user().unwrap();
    assert!(user.key(kid(1)).is_none());
    assert!(user.key_by_fingerprint(&key(2).fingerprint).is_some());
}

// ---- MintToken ----

#[test]
fn mint_session_by_a_key_the_user_no_longer_has_is_refused() {
    let removed = UserEvent::KeyRemoved {
        key_id: kid(1),
        fingerprint: key(1).fingerprint,
    };
    given(vec![registered(false), key_added(2), removed])
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then_error(UserError::SigningKeyUnknown);
}

// ---- PatTerms ----

#[test]
fn pat_terms_trim_the_name_and_default_the_scopes() {
    let t = PatTerms::new("  ci  ", None, Some(60), T0).unwrap();
    assert_eq!(t.name, "ci");
    assert_eq!(t.scopes, default_pat_scopes());
    assert_eq!(t.expires_at, Some(at(1)));
    let t = PatTerms::new("ci", Some(vec![]), None, T0).unwrap();
    assert_eq!(t.scopes, default_pat_scopes());
    assert_eq!(t.expires_at, None);
    let t = PatTerms::new("ci", Some(vec![Scope::ChatRead]), Some(MAX_PAT_SECS), T0).unwrap();
    assert_eq!(t.scopes, vec![Scope::ChatRead]);
}

#[test]
fn pat_terms_refuse_bad_names_and_lifetimes() {
    let long = "x".repeat(MAX_PAT_NAME_CHARS + 1);
    for name in ["", "   ", long.as_str()] {
        assert_eq!(
            PatTerms::new(name, None, None, T0),
            Err(UserError::InvalidTokenName),
            "{name:?}"
        );
    }
    let max = "é".repeat(MAX_PAT_NAME_CHARS);
    assert!(
        PatTerms::new(&max, None, None, T0).is_ok(),
        "64 characters, not bytes"
    );
    assert_eq!(
        PatTerms::new("ci", None, Some(0), T0),
        Err(UserError::InvalidExpiry)
    );
    assert_eq!(
        PatTerms::new("ci", None, Some(MAX_PAT_SECS + 1), T0),
        Err(UserError::ExpiryTooFar)
    );
}

#[test]
fn mint_session_carries_every_scope_of_its_user() {
    given(vec![registered(false)])
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Session,
            session_scopes(false),
        )]);
    given(vec![registered(true)])
        .when(mint_cmd(1, TokenKind::Session, vec![Scope::ChatRead]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Session,
            session_scopes(true),
        )]);
    assert_eq!(
        session_scopes(true),
        vec![Scope::ChatRead, Scope::ChatWrite, Scope::Admin]
    );
}

#[test]
fn mint_admin_session_for_admin_is_allowed() {
    given(vec![registered(true)])
        .when(mint_cmd(1, TokenKind::Session, vec![Scope::Admin]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Session,
            session_scopes(true),
        )]);
}

#[test]
fn mint_pat_without_scopes_gets_read_write() {
    given(vec![registered(false)])
        .when(mint_cmd(1, TokenKind::Personal, vec![]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Personal,
            vec![Scope::ChatRead, Scope::ChatWrite],
        )]);
}

#[test]
fn mint_pat_keeps_the_scopes_it_was_given() {
    given(vec![registered(false)])
        .when(mint_cmd(
            1,
            TokenKind::Personal,
            vec![Scope::ChatWrite, Scope::ChatRead, Scope::ChatRead],
        ))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Personal,
            vec![Scope::ChatRead, Scope::ChatWrite],
        )]);
    given(vec![registered(false)])
        .when(mint_cmd(1, TokenKind::Device, vec![Scope::ChatRead]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Device,
            vec![Scope::ChatRead],
        )]);
}

#[test]
fn mint_admin_scope_by_non_admin_is_scope_not_allowed() {
    given(vec![registered(false)])
        .when(mint_cmd(1, TokenKind::Session, vec![Scope::Admin]))
        .then_error(UserError::ScopeNotAllowed);
}

#[test]
fn mint_admin_scope_on_pat_is_scope_not_allowed() {
    for kind in [TokenKind::Personal, TokenKind::Device] {
        given(vec![registered(true)])
            .when(mint_cmd(1, kind, vec![Scope::Admin]))
            .then_error(UserError::ScopeNotAllowed);
    }
}

#[test]
fn mint_for_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then_error(UserError::NotFound);
}

#[test]
fn mint_for_disabled_user_is_disabled() {
    given(vec![registered(false), UserEvent::UserDisabled { at: T0 }])
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then_error(UserError::Disabled);
}

#[test]
fn mint_duplicate_token_id_is_token_exists() {
    given(vec![registered(false), session(1, 1)])
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then_error(UserError::TokenExists);
}

#[test]
fn mint_already_expired_is_invalid_expiry() {
    let mut cmd = mint_cmd(1, TokenKind::Personal, vec![]);
    if let UserCommand::MintToken(MintToken { expires_at, .. }) = &mut cmd {
        *expires_at = Some(T0);
    }
    given(vec![registered(false)])
        .when(cmd)
        .then_error(UserError::InvalidExpiry);
}

#[test]
fn minted_token_is_valid_until_its_expiry() {
    let state = given(vec![registered(false)])
        .when(mint_cmd(1, TokenKind::Session, vec![]))
        .then(vec![minted_from_cmd(
            1,
            TokenKind::Session,
            session_scopes(false),
        )]);
    assert!(token_is_valid_at(&state, tid(1), T0));
    assert!(token_is_valid_at(&state, tid(1), at(59)));
    assert!(!token_is_valid_at(&state, tid(1), at(60)));
    assert!(!token_is_valid_at(&state, tid(2), T0));
    assert!(!token_is_valid_at(&UserState::default(), tid(1), T0));
}

// ---- RecordTokenUse ----

fn use_cmd(n: u128, when: Timestamp) -> UserCommand {
    UserCommand::RecordTokenUse {
        token_id: tid(n),
        now: when,
    }
}
fn used(n: u128, when: Timestamp) -> UserEvent {
    UserEvent::TokenUsed {
        token_id: tid(n),
        at: when,
    }
}

#[test]
fn record_first_use() {
    let state = given(vec![registered(false), session(1, 1)])
        .when(use_cmd(1, at(1)))
        .then(vec![used(1, at(1))]);
    assert_eq!(
        state.user().unwrap().tokens[&tid(1)].last_used_at,
        Some(at(1))
    );
}

#[test]
fn record_use_within_five_minutes_is_idempotent() {
    given(vec![registered(false), session(1, 1), used(1, at(1))])
        .when(use_cmd(1, Timestamp(at(6).0 - 1)))
        .then_nothing();
}

#[test]
fn record_use_after_five_minutes() {
    given(vec![registered(false), session(1, 1), used(1, at(1))])
        .when(use_cmd(1, at(6)))
        .then(vec![used(1, at(6))]);
}

#[test]
fn record_use_of_revoked_or_expired_token_is_idempotent() {
    given(vec![
        registered(false),
        session(1, 1),
        revoked_ev(1, RevokeReason::Logout, at(1)),
    ])
    .when(use_cmd(1, at(10)))
    .then_nothing();
    given(vec![
        registered(false),
        session(1, 1),
        UserEvent::TokenExpired { token_id: tid(1) },
    ])
    .when(use_cmd(1, at(10)))
    .then_nothing();
    // Past expiry but not yet swept.
    given(vec![
        registered(false),
        minted(1, TokenKind::Personal, None, Some(at(5))),
    ])
    .when(use_cmd(1, at(10)))
    .then_nothing();
}

#[test]
fn record_use_of_unknown_token_changes_nothing() {
    given(vec![registered(false)])
        .when(use_cmd(1, at(1)))
        .then_nothing();
}

#[test]
fn record_use_for_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(use_cmd(1, at(1)))
        .then_error(UserError::NotFound);
}

// ---- RevokeToken ----

fn revoke_cmd(n: u128, when: Timestamp) -> UserCommand {
    UserCommand::RevokeToken {
        token_id: tid(n),
        reason: RevokeReason::Revoked,
        now: when,
    }
}

#[test]
fn revoke_token_revokes_it() {
    let state = given(vec![registered(false), session(1, 1)])
        .when(revoke_cmd(1, at(2)))
        .then(vec![revoked_ev(1, RevokeReason::Revoked, at(2))]);
    assert!(
        !state.user().unwrap().tokens.contains_key(&tid(1)),
        "a revoked token leaves the state"
    );
    assert!(!token_is_valid_at(&state, tid(1), at(2)));
    let history = token_history(&[session(1, 1), revoked_ev(1, RevokeReason::Revoked, at(2))]);
    assert_eq!(
        history[&tid(1)].status,
        TokenStatus::Revoked {
            reason: RevokeReason::Revoked,
            at: at(2)
        }
    );
}

#[test]
fn revoke_token_twice_is_idempotent() {
    given(vec![
        registered(false),
        session(1, 1),
        revoked_ev(1, RevokeReason::Revoked, at(2)),
    ])
    .when(revoke_cmd(1, at(3)))
    .then_nothing();
}

#[test]
fn revoke_expired_token_is_idempotent() {
    given(vec![
        registered(false),
        session(1, 1),
        UserEvent::TokenExpired { token_id: tid(1) },
    ])
    .when(revoke_cmd(1, at(3)))
    .then_nothing();
}

#[test]
fn revoke_unknown_token_changes_nothing() {
    // The state keeps live tokens only: "unknown" and "already revoked" look the same,
    // and callers check that the token exists against the tokens read model.
    given(vec![registered(false)])
        .when(revoke_cmd(1, at(3)))
        .then_nothing();
}

#[test]
fn the_state_keeps_live_tokens_only_and_the_history_keeps_all() {
    let mut events = vec![registered(false)];
    for n in 1..=50 {
        events.push(session(n, 1));
        events.push(revoked_ev(n, RevokeReason::Logout, at(1)));
    }
    events.push(session(51, 1));
    events.push(minted(52, TokenKind::Personal, None, Some(at(5))));
    events.push(UserEvent::TokenExpired { token_id: tid(52) });
    let state = given(events.clone())
        .when(revoke_cmd(99, at(2)))
        .then_nothing();
    let live: Vec<TokenId> = state.user().unwrap().tokens.keys().copied().collect();
    assert_eq!(
        live,
        vec![tid(51)],
        "only the live token stays in the state"
    );
    let history = token_history(&events[1..]);
    assert_eq!(history.len(), 52);
    assert_eq!(history[&tid(51)].status, TokenStatus::Live);
    assert_eq!(history[&tid(52)].status, TokenStatus::Expired);
    assert!(matches!(
        history[&tid(7)].status,
        TokenStatus::Revoked {
            reason: RevokeReason::Logout,
            ..
        }
    ));
}

#[test]
fn revoke_token_of_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(revoke_cmd(1, at(3)))
        .then_error(UserError::NotFound);
}

// ---- RevokeAllTokens ----

#[test]
fn revoke_all_keeps_the_current_token() {
    given(vec![
        registered(false),
        session(1, 1),
        session(2, 1),
        minted(3, TokenKind::Personal, None, None),
        session(4, 1),
        revoked_ev(4, RevokeReason::Logout, at(1)),
    ])
    .when(UserCommand::RevokeAllTokens {
        keep: Some(tid(2)),
        now: at(5),
    })
    .then(vec![
        revoked_ev(1, RevokeReason::RevokeAll, at(5)),
        revoked_ev(3, RevokeReason::RevokeAll, at(5)),
    ]);
}

#[test]
fn revoke_all_without_keep_revokes_every_live_token() {
    given(vec![registered(false), session(1, 1), session(2, 1)])
        .when(UserCommand::RevokeAllTokens {
            keep: None,
            now: at(5),
        })
        .then(vec![
            revoked_ev(1, RevokeReason::RevokeAll, at(5)),
            revoked_ev(2, RevokeReason::RevokeAll, at(5)),
        ]);
}

#[test]
fn revoke_all_with_nothing_live_is_idempotent() {
    given(vec![registered(false)])
        .when(UserCommand::RevokeAllTokens {
            keep: None,
            now: at(5),
        })
        .then_nothing();
}

#[test]
fn revoke_all_of_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::RevokeAllTokens {
            keep: None,
            now: at(5),
        })
        .then_error(UserError::NotFound);
}

// ---- ExpireTokens ----

#[test]
fn expire_tokens_sweeps_what_has_lapsed() {
    let state = given(vec![
        registered(false),
        minted(1, TokenKind::Personal, None, Some(at(10))), // lapsed exactly now
        minted(2, TokenKind::Personal, None, Some(at(11))), // not yet
        minted(3, TokenKind::Personal, None, None),         // never
        minted(4, TokenKind::Personal, None, Some(at(5))),  // lapsed
        minted(5, TokenKind::Personal, None, Some(at(5))),  // lapsed but revoked
        revoked_ev(5, RevokeReason::Revoked, at(1)),
    ])
    .when(UserCommand::ExpireTokens { now: at(10) })
    .then(vec![
        UserEvent::TokenExpired { token_id: tid(1) },
        UserEvent::TokenExpired { token_id: tid(4) },
    ]);
    let user = state.user().unwrap();
    assert!(
        !user.tokens.contains_key(&tid(1)),
        "a swept token leaves the state"
    );
    assert!(user.tokens.contains_key(&tid(2)) && user.tokens.contains_key(&tid(3)));
}

#[test]
fn expire_tokens_twice_is_idempotent() {
    given(vec![
        registered(false),
        minted(1, TokenKind::Personal, None, Some(at(10))),
        UserEvent::TokenExpired { token_id: tid(1) },
    ])
    .when(UserCommand::ExpireTokens { now: at(20) })
    .then_nothing();
}

#[test]
fn expire_tokens_of_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::ExpireTokens { now: at(20) })
        .then_error(UserError::NotFound);
}

// ---- Disable / Enable ----

#[test]
fn disable_revokes_every_live_token() {
    let state = given(vec![
        registered(false),
        session(1, 1),
        minted(2, TokenKind::Personal, None, None),
        minted(3, TokenKind::Device, None, None),
        UserEvent::TokenExpired { token_id: tid(3) },
    ])
    .when(UserCommand::Disable { now: at(3) })
    .then(vec![
        UserEvent::UserDisabled { at: at(3) },
        revoked_ev(1, RevokeReason::UserDisabled, at(3)),
        revoked_ev(2, RevokeReason::UserDisabled, at(3)),
    ]);
    assert!(state.user().unwrap().disabled);
}

#[test]
fn disable_twice_is_idempotent() {
    given(vec![registered(false), UserEvent::UserDisabled { at: T0 }])
        .when(UserCommand::Disable { now: at(3) })
        .then_nothing();
}

#[test]
fn disable_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::Disable { now: at(3) })
        .then_error(UserError::NotFound);
}

#[test]
fn enable_does_not_bring_tokens_back() {
    let state = given(vec![
        registered(false),
        session(1, 1),
        UserEvent::UserDisabled { at: at(1) },
        revoked_ev(1, RevokeReason::UserDisabled, at(1)),
    ])
    .when(UserCommand::Enable { now: at(2) })
    .then(vec![UserEvent::UserEnabled { at: at(2) }]);
    assert!(!state.user().unwrap().disabled);
    assert!(!token_is_valid_at(&state, tid(1), at(2)));
}

#[test]
fn enable_when_not_disabled_is_idempotent() {
    given(vec![registered(false)])
        .when(UserCommand::Enable { now: at(2) })
        .then_nothing();
}

#[test]
fn enable_unknown_user_is_not_found() {
    given_nothing::<UserDecider>()
        .when(UserCommand::Enable { now: at(2) })
        .then_error(UserError::NotFound);
}

#[test]
fn disabled_users_tokens_are_not_valid() {
    // Even a token whose revocation has not been folded yet (defence in depth).
    let state = crate::decider::fold::<UserDecider>(&[
        registered(false),
        session(1, 1),
        UserEvent::UserDisabled { at: at(1) },
    ]);
    assert!(!token_is_valid_at(&state, tid(1), at(1)));
}

#[test]
fn evolve_ignores_events_before_registration() {
    let state = crate::decider::fold::<UserDecider>(&[session(1, 1), key_added(2)]);
    assert_eq!(state, UserState::Unregistered);
}

//! Tests of `paircode`: every command and every refusal, as given/when/then on the pairing
//! stream.

use super::*;
use crate::decider::testing::{given, given_nothing};
use crate::device::DeviceCommand;
use crate::pairing::{PairingCommand, PairingDecider, PairingError, PairingState};
use crate::Decider;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn cid() -> PairingId {
    PairingId(Uuid::from_u128(7))
}
fn alice() -> UserId {
    UserId(Uuid::from_u128(1))
}
fn root() -> UserId {
    UserId(Uuid::from_u128(99))
}
fn token_id() -> TokenId {
    TokenId(Uuid::from_u128(77))
}
fn key_id() -> KeyId {
    KeyId(Uuid::from_u128(9))
}
fn secs(s: i64) -> Timestamp {
    T0.plus_secs(s)
}

fn mint_cmd(scopes: Vec<Scope>, ttl_secs: i64, note: Option<&str>) -> PairingCommand {
    PairingCommand::Code(CodeCommand::Mint {
        code_id: cid(),
        user_id: alice(),
        code_hash: [3; 32],
        scopes,
        note: note.map(str::to_string),
        by: Some(root()),
        ttl_secs,
        now: T0,
    })
}

fn minted() -> PairingEvent {
    PairingEvent::PairingCodeMinted {
        code_id: cid(),
        user_id: alice(),
        code_hash: [3; 32],
        scopes: vec![Scope::ChatRead, Scope::ChatWrite],
        note: Some("alice's phone".into()),
        by: Some(root()),
        created_at: T0,
        expires_at: secs(DEFAULT_CODE_TTL_SECS),
    }
}

fn redeem(now: Timestamp) -> PairingCommand {
    PairingCommand::Code(CodeCommand::Redeem {
        token_id: token_id(),
        device_name: Some("phone".into()),
        key_id: Some(key_id()),
        now,
    })
}

fn redeemed() -> PairingEvent {
    PairingEvent::PairingCodeRedeemed {
        token_id: token_id(),
        device_name: Some("phone".into()),
        key_id: Some(key_id()),
        at: secs(30),
    }
}

fn revoke(now: Timestamp) -> PairingCommand {
    PairingCommand::Code(CodeCommand::Revoke {
        by: Some(root()),
        now,
    })
}

fn code_error(e: CodeError) -> PairingError {
    PairingError::Code(e)
}

#[test]
fn mint_records_the_hash_scopes_note_and_expiry() {
    let state = given_nothing::<PairingDecider>()
        .when(mint_cmd(
            vec![],
            DEFAULT_CODE_TTL_SECS,
            Some("alice's phone"),
        ))
        .then(vec![minted()]);
    let PairingState::Code(c) = state else {
        panic!("not a code state: {state:?}");
    };
    assert!(c.is_live_at(secs(599)));
    assert!(!c.is_live_at(secs(600)), "the expiry instant is too late");
}

#[test]
fn mint_narrows_and_sorts_scopes() {
    let state = given_nothing::<PairingDecider>()
        .when(mint_cmd(vec![Scope::ChatRead, Scope::ChatRead], 60, None))
        .then(vec![PairingEvent::PairingCodeMinted {
            code_id: cid(),
            user_id: alice(),
            code_hash: [3; 32],
            scopes: vec![Scope::ChatRead],
            note: None,
            by: Some(root()),
            created_at: T0,
            expires_at: secs(60),
        }]);
    assert!(matches!(state, PairingState::Code(_)));
}

#[test]
fn mint_refuses_lifetimes_out_of_range_without_clamping() {
    for ttl in [0, -1, MAX_CODE_TTL_SECS + 1, i64::MAX] {
        given_nothing::<PairingDecider>()
            .when(mint_cmd(vec![], ttl, None))
            .then_error(code_error(CodeError::InvalidLifetime));
    }
    given_nothing::<PairingDecider>()
        .when(mint_cmd(vec![], MAX_CODE_TTL_SECS, None))
        .then(vec![PairingEvent::PairingCodeMinted {
            code_id: cid(),
            user_id: alice(),
            code_hash: [3; 32],
            scopes: vec![Scope::ChatRead, Scope::ChatWrite],
            note: None,
            by: Some(root()),
            created_at: T0,
            expires_at: secs(MAX_CODE_TTL_SECS),
        }]);
}

#[test]
fn mint_refuses_the_admin_scope() {
    given_nothing::<PairingDecider>()
        .when(mint_cmd(vec![Scope::ChatRead, Scope::Admin], 60, None))
        .then_error(code_error(CodeError::InvalidScopes));
}

#[test]
fn mint_refuses_bad_notes() {
    let long = "n".repeat(MAX_NOTE_CHARS + 1);
    for note in ["", "  ", "tab\there", long.as_str()] {
        given_nothing::<PairingDecider>()
            .when(mint_cmd(vec![], 60, Some(note)))
            .then_error(code_error(CodeError::InvalidNote));
    }
}

#[test]
fn a_second_mint_on_the_stream_is_refused() {
    given(vec![minted()])
        .when(mint_cmd(vec![], 60, None))
        .then_error(code_error(CodeError::AlreadyMinted));
}

#[test]
fn commands_on_an_empty_stream_find_nothing() {
    for cmd in [redeem(T0), revoke(T0)] {
        given_nothing::<PairingDecider>()
            .when(cmd)
            .then_error(code_error(CodeError::NotFound));
    }
    given_nothing::<PairingDecider>()
        .when(PairingCommand::Code(CodeCommand::Expire { now: T0 }))
        .then_error(code_error(CodeError::NotFound));
}

#[test]
fn redeem_once_then_every_later_use_is_the_same_refusal() {
    let state = given(vec![minted()])
        .when(redeem(secs(30)))
        .then(vec![redeemed()]);
    assert!(PairingDecider::is_terminal(&state));
    given(vec![minted(), redeemed()])
        .when(redeem(secs(31)))
        .then_error(code_error(CodeError::Invalid));
}

#[test]
fn an_expired_or_revoked_code_is_refused_like_a_used_one() {
    given(vec![minted()])
        .when(redeem(secs(DEFAULT_CODE_TTL_SECS)))
        .then_error(code_error(CodeError::Invalid));
    let revoked = PairingEvent::PairingCodeRevoked {
        by: Some(root()),
        at: secs(10),
    };
    given(vec![minted(), revoked])
        .when(redeem(secs(11)))
        .then_error(code_error(CodeError::Invalid));
    let expired = PairingEvent::PairingCodeExpired {
        at: secs(DEFAULT_CODE_TTL_SECS),
    };
    given(vec![minted(), expired])
        .when(redeem(secs(1)))
        .then_error(code_error(CodeError::Invalid));
}

#[test]
fn redeem_refuses_a_bad_device_name() {
    given(vec![minted()])
        .when(PairingCommand::Code(CodeCommand::Redeem {
            token_id: token_id(),
            device_name: Some("bell\u{7}".into()),
            key_id: None,
            now: secs(1),
        }))
        .then_error(code_error(CodeError::InvalidDeviceName));
}

#[test]
fn revoke_is_recorded_once_then_idempotent() {
    let revoked = PairingEvent::PairingCodeRevoked {
        by: Some(root()),
        at: secs(10),
    };
    let state = given(vec![minted()])
        .when(revoke(secs(10)))
        .then(vec![revoked.clone()]);
    assert!(PairingDecider::is_terminal(&state));
    given(vec![minted(), revoked])
        .when(revoke(secs(11)))
        .then_nothing();
}

#[test]
fn revoke_refuses_a_redeemed_or_lapsed_code() {
    given(vec![minted(), redeemed()])
        .when(revoke(secs(40)))
        .then_error(code_error(CodeError::NotPending));
    given(vec![minted()])
        .when(revoke(secs(DEFAULT_CODE_TTL_SECS)))
        .then_error(code_error(CodeError::NotPending));
}

#[test]
fn the_sweeper_expires_only_a_lapsed_pending_code() {
    let expire = |now| PairingCommand::Code(CodeCommand::Expire { now });
    given(vec![minted()])
        .when(expire(secs(DEFAULT_CODE_TTL_SECS - 1)))
        .then_nothing();
    let state = given(vec![minted()])
        .when(expire(secs(DEFAULT_CODE_TTL_SECS)))
        .then(vec![PairingEvent::PairingCodeExpired {
            at: secs(DEFAULT_CODE_TTL_SECS),
        }]);
    assert!(PairingDecider::is_terminal(&state));
    given(vec![minted(), redeemed()])
        .when(expire(secs(DEFAULT_CODE_TTL_SECS + 5)))
        .then_nothing();
}

#[test]
fn code_and_other_pairing_commands_do_not_mix() {
    given(vec![minted()])
        .when(PairingCommand::Device(DeviceCommand::Cancel {
            now: secs(1),
        }))
        .then_error(PairingError::Device(crate::device::DeviceError::NotFound));
    given(vec![minted()])
        .when(PairingCommand::Expire { now: secs(1) })
        .then_nothing();
}

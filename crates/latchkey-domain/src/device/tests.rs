//! Tests of `device`: every command and every refusal, as given/when/then on the pairing
//! stream, the poll rule, and device-token replacement on the user stream.

use super::*;
use crate::decider::fold;
use crate::decider::testing::{given, given_nothing};
use crate::events::{KeyAlgorithm, RevokeReason, TokenKind, UserEvent};
use crate::pairing::{PairingCommand, PairingDecider, PairingError, PairingState};
use crate::sshkey::tests::{ed25519_public, sign};
use crate::user::MintToken;
use crate::{Decider, UserCommand};
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn pid() -> PairingId {
    PairingId(Uuid::from_u128(42))
}
fn alice() -> UserId {
    UserId(Uuid::from_u128(1))
}
fn bob() -> UserId {
    UserId(Uuid::from_u128(2))
}
fn secs(s: i64) -> Timestamp {
    T0.plus_secs(s)
}
fn key_id() -> KeyId {
    KeyId(Uuid::from_u128(9))
}
fn token_id() -> TokenId {
    TokenId(Uuid::from_u128(77))
}

fn request_cmd(key: Option<KeyChallenge>) -> RequestDevice {
    RequestDevice {
        pairing_id: pid(),
        client_id: "Living Room TV".into(),
        scopes: vec![],
        device_name: Some("tv".into()),
        device_code_hash: [1; 32],
        user_code_hash: [2; 32],
        key,
        ip: Some("192.0.2.0".parse().unwrap()),
        user_agent: Some("tv-app/1".into()),
        now: T0,
    }
}

fn key_challenge() -> KeyChallenge {
    KeyChallenge {
        key: ed25519_public(3),
        server: "https://chat.example".into(),
        nonce: [5; 32],
        expires_at: secs(60),
    }
}

fn requested_with(key: Option<KeyChallenge>) -> PairingEvent {
    PairingEvent::DeviceAuthorizationRequested {
        pairing_id: pid(),
        client_id: "Living Room TV".into(),
        scopes: vec![Scope::ChatRead, Scope::ChatWrite],
        device_name: Some("tv".into()),
        device_code_hash: [1; 32],
        user_code_hash: [2; 32],
        key,
        interval_secs: 5,
        requested_at: T0,
        expires_at: secs(600),
        ip: Some("192.0.2.0".parse().unwrap()),
        user_agent: Some("tv-app/1".into()),
    }
}
fn requested() -> PairingEvent {
    requested_with(None)
}
fn requested_keyed() -> PairingEvent {
    requested_with(Some(key_challenge()))
}

fn cmd(c: DeviceCommand) -> PairingCommand {
    PairingCommand::Device(c)
}
fn err(e: DeviceError) -> PairingError {
    PairingError::Device(e)
}

fn approve_by(by: UserId, now: Timestamp) -> PairingCommand {
    cmd(DeviceCommand::Approve {
        by,
        scopes: None,
        name: None,
        token_ttl_secs: Some(DEFAULT_DEVICE_TOKEN_SECS),
        key_id: key_id(),
        now,
    })
}
fn approved(by: UserId, at: Timestamp) -> PairingEvent {
    PairingEvent::DeviceApproved {
        by,
        scopes: vec![Scope::ChatRead, Scope::ChatWrite],
        device_name: Some("tv".into()),
        token_ttl_secs: Some(DEFAULT_DEVICE_TOKEN_SECS),
        key_id: None,
        at,
    }
}
fn issue(now: Timestamp) -> PairingCommand {
    cmd(DeviceCommand::IssueToken {
        token_id: token_id(),
        now,
    })
}
fn expire(now: Timestamp) -> PairingCommand {
    cmd(DeviceCommand::Expire { now })
}
fn prove(signature: String, now: Timestamp) -> PairingCommand {
    cmd(DeviceCommand::ProveKey {
        challenge_id: pid(),
        signature,
        now,
    })
}
fn proof_signature(seed: u8) -> String {
    sign(
        seed,
        crate::challenge::NAMESPACE,
        key_challenge().message(pid()).as_bytes(),
    )
}

// ---- Request ----

#[test]
fn a_request_defaults_to_both_chat_scopes_and_lives_600_seconds() {
    let state = given_nothing::<PairingDecider>()
        .when(cmd(DeviceCommand::Request(Box::new(request_cmd(None)))))
        .then(vec![requested()]);
    let PairingState::Device(d) = state else {
        panic!("not a device state")
    };
    assert_eq!(d.status, DeviceStatus::Pending);
    assert!(d.is_pending_at(secs(599)));
    assert!(!d.is_pending_at(secs(600)));
    assert!(!PairingDecider::is_terminal(&PairingState::Device(d)));
}

#[test]
fn a_request_keeps_the_key_challenge() {
    given_nothing::<PairingDecider>()
        .when(cmd(DeviceCommand::Request(Box::new(request_cmd(Some(
            key_challenge(),
        ))))))
        .then(vec![requested_keyed()]);
}

#[test]
fn a_second_request_on_one_stream_is_refused() {
    given(vec![requested()])
        .when(cmd(DeviceCommand::Request(Box::new(request_cmd(None)))))
        .then_error(err(DeviceError::AlreadyRequested));
}

#[test]
fn a_device_request_on_a_challenge_stream_is_refused() {
    let challenge = PairingEvent::ChallengeIssued {
        challenge_id: pid(),
        server: "s".into(),
        key: ed25519_public(1),
        nonce: [0; 32],
        purpose: crate::ChallengePurpose::SignIn,
        issued_at: T0,
        expires_at: secs(60),
        ip: None,
    };
    given(vec![challenge])
        .when(cmd(DeviceCommand::Request(Box::new(request_cmd(None)))))
        .then_error(err(DeviceError::NotFound));
}

#[test]
fn client_ids_must_be_1_to_64_printable_characters() {
    for bad in ["", "   ", "tab\there", "nl\n", &"x".repeat(65)] {
        let mut req = request_cmd(None);
        req.client_id = bad.to_string();
        given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(req))))
            .then_error(err(DeviceError::InvalidClientId));
    }
    let mut req = request_cmd(None);
    req.client_id = "é".repeat(64);
    assert!(given_nothing::<PairingDecider>()
        .when(cmd(DeviceCommand::Request(Box::new(req))))
        .result()
        .is_ok());
}

#[test]
fn device_names_with_control_characters_or_too_long_are_refused() {
    for bad in ["", "a\u{7}b", "a\u{1b}[31m", &"d".repeat(65)] {
        let mut req = request_cmd(None);
        req.device_name = Some(bad.to_string());
        given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(req))))
            .then_error(err(DeviceError::InvalidDeviceName));
    }
}

/// Invisible format characters would let a requester disguise itself on the approval
/// screen: a right-to-left override, zero-width characters, line separators.
#[test]
fn names_with_bidi_overrides_or_invisible_characters_are_refused() {
    for bad in [
        "\u{202e}VT mooR gniviL",
        "Living\u{200b}Room",
        "tv\u{feff}",
        "\u{2066}tv\u{2069}",
        "line\u{2028}break",
        "para\u{2029}graph",
        "soft\u{ad}hyphen",
        "tag\u{e0041}",
    ] {
        let mut req = request_cmd(None);
        req.client_id = bad.to_string();
        given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(req))))
            .then_error(err(DeviceError::InvalidClientId));
        let mut req = request_cmd(None);
        req.device_name = Some(bad.to_string());
        given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(req))))
            .then_error(err(DeviceError::InvalidDeviceName));
    }
    for fine in ["Wohnzimmer-TV", "テレビ", "👍 tv", "Café (2)"] {
        assert!(valid_name(fine, MAX_DEVICE_NAME_CHARS), "{fine}");
    }
}

/// The key's comment becomes the comment of a key on the approver's account: DESIGN §6's
/// rule for comments (at most 256 bytes, no control characters) holds here too.
#[test]
fn a_key_comment_with_control_characters_or_over_256_bytes_is_refused() {
    for bad in ["evil\u{1b}[2J", "a\u{202e}b", &"c".repeat(257)] {
        let mut k = key_challenge();
        k.key.comment = bad.to_string();
        given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(request_cmd(Some(k))))))
            .then_error(err(DeviceError::InvalidKeyComment));
    }
    for fine in ["", "tv@living-room", &"c".repeat(256)] {
        let mut k = key_challenge();
        k.key.comment = fine.to_string();
        assert!(given_nothing::<PairingDecider>()
            .when(cmd(DeviceCommand::Request(Box::new(request_cmd(Some(k))))))
            .result()
            .is_ok());
    }
}

#[test]
fn admin_scope_cannot_be_requested() {
    let mut req = request_cmd(None);
    req.scopes = vec![Scope::ChatRead, Scope::Admin];
    given_nothing::<PairingDecider>()
        .when(cmd(DeviceCommand::Request(Box::new(req))))
        .then_error(err(DeviceError::InvalidScopes));
}

#[test]
fn a_key_challenge_expired_at_birth_is_refused() {
    let mut k = key_challenge();
    k.expires_at = T0;
    given_nothing::<PairingDecider>()
        .when(cmd(DeviceCommand::Request(Box::new(request_cmd(Some(k))))))
        .then_error(err(DeviceError::InvalidExpiry));
}

#[test]
fn commands_on_an_empty_stream_find_nothing() {
    given_nothing::<PairingDecider>()
        .when(approve_by(alice(), T0))
        .then_error(err(DeviceError::NotFound));
}

// ---- Approve / Deny ----

#[test]
fn an_approval_records_the_approver_and_grant() {
    let state = given(vec![requested()])
        .when(approve_by(alice(), secs(30)))
        .then(vec![approved(alice(), secs(30))]);
    let PairingState::Device(d) = state else {
        panic!("not a device state")
    };
    assert!(matches!(d.status, DeviceStatus::Approved(_)));
}

#[test]
fn an_approval_may_narrow_scopes_rename_and_pick_never() {
    given(vec![requested()])
        .when(cmd(DeviceCommand::Approve {
            by: alice(),
            scopes: Some(vec![Scope::ChatRead]),
            name: Some("Den TV".into()),
            token_ttl_secs: None,
            key_id: key_id(),
            now: secs(1),
        }))
        .then(vec![PairingEvent::DeviceApproved {
            by: alice(),
            scopes: vec![Scope::ChatRead],
            device_name: Some("Den TV".into()),
            token_ttl_secs: None,
            key_id: None,
            at: secs(1),
        }]);
}

#[test]
fn an_approval_may_not_widen_scopes() {
    let mut narrow = requested();
    if let PairingEvent::DeviceAuthorizationRequested { scopes, .. } = &mut narrow {
        *scopes = vec![Scope::ChatRead];
    }
    given(vec![narrow])
        .when(cmd(DeviceCommand::Approve {
            by: alice(),
            scopes: Some(vec![Scope::ChatRead, Scope::ChatWrite]),
            name: None,
            token_ttl_secs: None,
            key_id: key_id(),
            now: secs(1),
        }))
        .then_error(err(DeviceError::ScopesWidened));
}

#[test]
fn an_approval_with_no_or_admin_scopes_is_refused() {
    for scopes in [vec![], vec![Scope::Admin]] {
        given(vec![requested()])
            .when(cmd(DeviceCommand::Approve {
                by: alice(),
                scopes: Some(scopes),
                name: None,
                token_ttl_secs: None,
                key_id: key_id(),
                now: secs(1),
            }))
            .then_error(err(DeviceError::InvalidScopes));
    }
}

#[test]
fn token_lifetimes_are_1_second_to_1_year() {
    for ttl in [0, MAX_DEVICE_TOKEN_SECS + 1] {
        given(vec![requested()])
            .when(cmd(DeviceCommand::Approve {
                by: alice(),
                scopes: None,
                name: None,
                token_ttl_secs: Some(ttl),
                key_id: key_id(),
                now: secs(1),
            }))
            .then_error(err(DeviceError::InvalidLifetime));
    }
}

#[test]
fn an_approval_name_with_control_characters_is_refused() {
    given(vec![requested()])
        .when(cmd(DeviceCommand::Approve {
            by: alice(),
            scopes: None,
            name: Some("x\u{0}".into()),
            token_ttl_secs: None,
            key_id: key_id(),
            now: secs(1),
        }))
        .then_error(err(DeviceError::InvalidDeviceName));
}

#[test]
fn of_two_approvals_only_the_first_wins() {
    given(vec![requested(), approved(alice(), secs(1))])
        .when(approve_by(bob(), secs(1)))
        .then_error(err(DeviceError::AlreadyApproved));
}

#[test]
fn denied_cancelled_and_expired_requests_can_never_be_approved() {
    let denied = PairingEvent::DeviceDenied {
        by: bob(),
        at: secs(1),
    };
    let cancelled = PairingEvent::DeviceAuthorizationCancelled { at: secs(1) };
    let expired = PairingEvent::DeviceAuthorizationExpired { at: secs(600) };
    given(vec![requested(), denied])
        .when(approve_by(alice(), secs(2)))
        .then_error(err(DeviceError::Denied));
    given(vec![requested(), cancelled])
        .when(approve_by(alice(), secs(2)))
        .then_error(err(DeviceError::Cancelled));
    given(vec![requested(), expired])
        .when(approve_by(alice(), secs(601)))
        .then_error(err(DeviceError::Expired));
    // Past its expiry before the sweeper got to it: expired all the same.
    given(vec![requested()])
        .when(approve_by(alice(), secs(600)))
        .then_error(err(DeviceError::Expired));
}

#[test]
fn a_redeemed_request_cannot_be_approved_again() {
    let issued = PairingEvent::DeviceTokenIssued {
        token_id: token_id(),
        at: secs(5),
    };
    given(vec![requested(), approved(alice(), secs(1)), issued])
        .when(approve_by(alice(), secs(6)))
        .then_error(err(DeviceError::Redeemed));
}

#[test]
fn a_deny_closes_a_pending_request() {
    let state = given(vec![requested()])
        .when(cmd(DeviceCommand::Deny {
            by: bob(),
            now: secs(3),
        }))
        .then(vec![PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(3),
        }]);
    assert!(PairingDecider::is_terminal(&state));
}

#[test]
fn a_deny_after_approval_or_expiry_is_refused() {
    given(vec![requested(), approved(alice(), secs(1))])
        .when(cmd(DeviceCommand::Deny {
            by: bob(),
            now: secs(3),
        }))
        .then_error(err(DeviceError::AlreadyApproved));
    given(vec![requested()])
        .when(cmd(DeviceCommand::Deny {
            by: bob(),
            now: secs(700),
        }))
        .then_error(err(DeviceError::Expired));
}

// ---- Key proof ----

#[test]
fn an_unproven_key_cannot_be_approved() {
    given(vec![requested_keyed()])
        .when(approve_by(alice(), secs(5)))
        .then_error(err(DeviceError::KeyNotProven));
}

#[test]
fn a_proven_key_is_approved_with_its_key_id() {
    let proven = PairingEvent::DeviceKeyProven { at: secs(2) };
    let mut expected = approved(alice(), secs(5));
    if let PairingEvent::DeviceApproved { key_id: k, .. } = &mut expected {
        *k = Some(key_id());
    }
    given(vec![requested_keyed(), proven])
        .when(approve_by(alice(), secs(5)))
        .then(vec![expected]);
}

#[test]
fn a_signature_by_the_key_proves_it() {
    let state = given(vec![requested_keyed()])
        .when(prove(proof_signature(3), secs(2)))
        .then(vec![PairingEvent::DeviceKeyProven { at: secs(2) }]);
    let PairingState::Device(d) = state else {
        panic!("not a device state")
    };
    assert!(d.key_proven);
    // A second proof changes nothing.
    given(vec![
        requested_keyed(),
        PairingEvent::DeviceKeyProven { at: secs(2) },
    ])
    .when(prove(proof_signature(3), secs(3)))
    .then_nothing();
}

#[test]
fn a_signature_by_another_key_proves_nothing() {
    given(vec![requested_keyed()])
        .when(prove(proof_signature(4), secs(2)))
        .then_error(err(DeviceError::BadSignature));
    given(vec![requested_keyed()])
        .when(prove("garbage".into(), secs(2)))
        .then_error(err(DeviceError::BadSignature));
}

#[test]
fn a_proof_after_its_challenge_lapsed_is_refused() {
    given(vec![requested_keyed()])
        .when(prove(proof_signature(3), secs(60)))
        .then_error(err(DeviceError::ChallengeExpired));
}

#[test]
fn a_proof_names_this_request_and_needs_a_key() {
    given(vec![requested_keyed()])
        .when(cmd(DeviceCommand::ProveKey {
            challenge_id: PairingId(Uuid::from_u128(43)),
            signature: proof_signature(3),
            now: secs(2),
        }))
        .then_error(err(DeviceError::WrongChallenge));
    given(vec![requested()])
        .when(prove(proof_signature(3), secs(2)))
        .then_error(err(DeviceError::NoKey));
}

#[test]
fn a_proof_on_a_denied_request_is_refused() {
    given(vec![
        requested_keyed(),
        PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(1),
        },
    ])
    .when(prove(proof_signature(3), secs(2)))
    .then_error(err(DeviceError::Denied));
}

#[test]
fn the_proof_message_is_an_ordinary_challenge_for_the_pairing_id() {
    let message = key_challenge().message(pid());
    let parsed = crate::challenge::parse_message(&message).unwrap();
    assert_eq!(parsed.challenge_id, pid());
    assert_eq!(parsed.fingerprint, ed25519_public(3).fingerprint);
    assert_eq!(ed25519_public(3).algorithm, KeyAlgorithm::Ed25519);
}

// ---- Cancel ----

#[test]
fn a_device_may_cancel_pending_or_approved_requests_once() {
    let cancelled = PairingEvent::DeviceAuthorizationCancelled { at: secs(4) };
    given(vec![requested()])
        .when(cmd(DeviceCommand::Cancel { now: secs(4) }))
        .then(vec![cancelled.clone()]);
    given(vec![requested(), approved(alice(), secs(1))])
        .when(cmd(DeviceCommand::Cancel { now: secs(4) }))
        .then(vec![cancelled.clone()]);
    given(vec![requested(), cancelled])
        .when(cmd(DeviceCommand::Cancel { now: secs(5) }))
        .then_nothing();
}

#[test]
fn a_cancel_after_redemption_deny_or_expiry_is_refused() {
    let issued = PairingEvent::DeviceTokenIssued {
        token_id: token_id(),
        at: secs(5),
    };
    given(vec![requested(), approved(alice(), secs(1)), issued])
        .when(cmd(DeviceCommand::Cancel { now: secs(6) }))
        .then_error(err(DeviceError::Redeemed));
    given(vec![
        requested(),
        PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(1),
        },
    ])
    .when(cmd(DeviceCommand::Cancel { now: secs(6) }))
    .then_error(err(DeviceError::Denied));
    given(vec![requested()])
        .when(cmd(DeviceCommand::Cancel { now: secs(600) }))
        .then_error(err(DeviceError::Expired));
}

// ---- IssueToken ----

#[test]
fn an_approved_code_is_redeemed_once() {
    let issued = PairingEvent::DeviceTokenIssued {
        token_id: token_id(),
        at: secs(65),
    };
    let state = given(vec![requested(), approved(alice(), secs(1))])
        .when(issue(secs(65)))
        .then(vec![issued.clone()]);
    assert!(PairingDecider::is_terminal(&state));
    given(vec![requested(), approved(alice(), secs(1)), issued])
        .when(issue(secs(66)))
        .then_error(err(DeviceError::Redeemed));
}

#[test]
fn a_pending_denied_or_expired_code_is_not_redeemed() {
    given(vec![requested()])
        .when(issue(secs(5)))
        .then_error(err(DeviceError::NotApproved));
    given(vec![
        requested(),
        PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(1),
        },
    ])
    .when(issue(secs(5)))
    .then_error(err(DeviceError::Denied));
    given(vec![requested(), approved(alice(), secs(1))])
        .when(issue(secs(600)))
        .then_error(err(DeviceError::Expired));
}

// ---- Expire ----

#[test]
fn the_sweeper_expires_pending_and_unredeemed_requests_after_600_seconds() {
    given(vec![requested()])
        .when(expire(secs(599)))
        .then_nothing();
    let state = given(vec![requested()]).when(expire(secs(600))).then(vec![
        PairingEvent::DeviceAuthorizationExpired { at: secs(600) },
    ]);
    assert!(PairingDecider::is_terminal(&state));
    given(vec![requested(), approved(alice(), secs(1))])
        .when(expire(secs(601)))
        .then(vec![PairingEvent::DeviceAuthorizationExpired {
            at: secs(601),
        }]);
}

#[test]
fn the_sweeper_leaves_closed_requests_alone() {
    let issued = PairingEvent::DeviceTokenIssued {
        token_id: token_id(),
        at: secs(5),
    };
    given(vec![requested(), approved(alice(), secs(1)), issued])
        .when(expire(secs(700)))
        .then_nothing();
    given(vec![
        requested(),
        PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(1),
        },
    ])
    .when(expire(secs(700)))
    .then_nothing();
}

// ---- The poll rule ----

fn state_of(events: &[PairingEvent]) -> DeviceState {
    match fold::<PairingDecider>(events) {
        PairingState::Device(d) => *d,
        other => panic!("not a device state: {other:?}"),
    }
}

#[test]
fn a_first_poll_is_never_slow_down() {
    let d = state_of(&[requested()]);
    let (v, clock) = poll(&d, "Living Room TV", None, secs(0));
    assert_eq!(v, PollVerdict::Pending);
    assert_eq!(
        clock,
        Some(PollClock {
            last_poll: secs(0),
            interval_secs: 5
        })
    );
}

#[test]
fn polling_faster_than_the_interval_adds_5_seconds_for_good() {
    let d = state_of(&[requested()]);
    let (_, c) = poll(&d, "Living Room TV", None, secs(0));
    let (v, c) = poll(&d, "Living Room TV", c, secs(4));
    assert_eq!(v, PollVerdict::SlowDown);
    assert_eq!(c.unwrap().interval_secs, 10);
    // 5 s later is now too fast too: the interval is 10 s from here on.
    let (v, c) = poll(&d, "Living Room TV", c, secs(9));
    assert_eq!(v, PollVerdict::SlowDown);
    assert_eq!(c.unwrap().interval_secs, 15);
    let (v, c) = poll(&d, "Living Room TV", c, secs(24));
    assert_eq!(v, PollVerdict::Pending);
    assert_eq!(c.unwrap().interval_secs, 15);
}

#[test]
fn only_pending_requests_get_slow_down() {
    let fast = Some(PollClock {
        last_poll: secs(10),
        interval_secs: 5,
    });
    let approved_state = state_of(&[requested(), approved(alice(), secs(1))]);
    assert_eq!(
        poll(&approved_state, "Living Room TV", fast, secs(11)).0,
        PollVerdict::Redeem
    );
    let denied = state_of(&[
        requested(),
        PairingEvent::DeviceDenied {
            by: bob(),
            at: secs(1),
        },
    ]);
    assert_eq!(
        poll(&denied, "Living Room TV", fast, secs(11)).0,
        PollVerdict::AccessDenied
    );
    let cancelled = state_of(&[
        requested(),
        PairingEvent::DeviceAuthorizationCancelled { at: secs(1) },
    ]);
    assert_eq!(
        poll(&cancelled, "Living Room TV", fast, secs(11)).0,
        PollVerdict::AccessDenied
    );
    let issued = state_of(&[
        requested(),
        approved(alice(), secs(1)),
        PairingEvent::DeviceTokenIssued {
            token_id: token_id(),
            at: secs(5),
        },
    ]);
    assert_eq!(
        poll(&issued, "Living Room TV", fast, secs(11)).0,
        PollVerdict::Redeemed
    );
    let pending = state_of(&[requested()]);
    assert_eq!(
        poll(&pending, "Living Room TV", fast, secs(600)).0,
        PollVerdict::Expired
    );
}

#[test]
fn a_device_that_missed_polls_still_redeems_before_expiry() {
    let d = state_of(&[requested(), approved(alice(), secs(1))]);
    let stale = Some(PollClock {
        last_poll: secs(0),
        interval_secs: 5,
    });
    assert_eq!(
        poll(&d, "Living Room TV", stale, secs(90)).0,
        PollVerdict::Redeem
    );
    assert_eq!(
        poll(&d, "Living Room TV", stale, secs(600)).0,
        PollVerdict::Expired
    );
}

#[test]
fn another_client_id_is_invalid_client() {
    let d = state_of(&[requested()]);
    assert_eq!(
        poll(&d, "Other App", None, secs(0)).0,
        PollVerdict::WrongClient
    );
}

// ---- Device tokens on the user stream ----

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: alice(),
        handle: "alice".into(),
        key_id: KeyId(Uuid::from_u128(100)),
        key: ed25519_public(1),
        admin: false,
        at: T0,
    }
}

fn device_mint(id: u128, client: &str, device: Option<&str>) -> MintToken {
    MintToken {
        token_id: TokenId(Uuid::from_u128(id)),
        hash: [id as u8; 32],
        kind: TokenKind::Device,
        scopes: vec![Scope::ChatRead],
        name: Some(client.into()),
        device_name: device.map(str::to_string),
        user_agent: None,
        ip: None,
        key_fingerprint: None,
        expires_at: None,
        now: secs(10),
    }
}

fn minted(m: &MintToken) -> UserEvent {
    UserEvent::TokenMinted {
        token_id: m.token_id,
        hash: m.hash,
        kind: m.kind,
        scopes: m.scopes.clone(),
        name: m.name.clone(),
        device_name: m.device_name.clone(),
        user_agent: None,
        ip: None,
        key_fingerprint: None,
        created_at: m.now,
        expires_at: m.expires_at,
    }
}

#[test]
fn re_pairing_the_same_client_and_device_revokes_the_earlier_token() {
    let first = device_mint(500, "Living Room TV", Some("tv"));
    let second = device_mint(501, "Living Room TV", Some("tv"));
    given(vec![registered(), minted(&first)])
        .when(UserCommand::MintToken(second.clone()))
        .then(vec![
            UserEvent::TokenRevoked {
                token_id: first.token_id,
                reason: RevokeReason::Replaced,
                at: secs(10),
            },
            minted(&second),
        ]);
}

#[test]
fn other_devices_clients_and_unnamed_devices_are_not_replaced() {
    let tv = device_mint(500, "Living Room TV", Some("tv"));
    let other_device = device_mint(501, "Living Room TV", Some("kitchen"));
    let other_client = device_mint(502, "Other App", Some("tv"));
    given(vec![registered(), minted(&tv)])
        .when(UserCommand::MintToken(other_device.clone()))
        .then(vec![minted(&other_device)]);
    given(vec![registered(), minted(&tv)])
        .when(UserCommand::MintToken(other_client.clone()))
        .then(vec![minted(&other_client)]);
    let unnamed_a = device_mint(503, "Living Room TV", None);
    let unnamed_b = device_mint(504, "Living Room TV", None);
    given(vec![registered(), minted(&unnamed_a)])
        .when(UserCommand::MintToken(unnamed_b.clone()))
        .then(vec![minted(&unnamed_b)]);
}

#[test]
fn user_decider_is_unchanged_for_other_kinds() {
    let mut pat = device_mint(600, "Living Room TV", Some("tv"));
    pat.kind = TokenKind::Personal;
    let tv = device_mint(500, "Living Room TV", Some("tv"));
    let out = crate::user::UserDecider::decide(
        &fold::<crate::user::UserDecider>(&[registered(), minted(&tv)]),
        &UserCommand::MintToken(pat),
    )
    .unwrap();
    assert_eq!(out.len(), 1, "a PAT never replaces a device token");
}

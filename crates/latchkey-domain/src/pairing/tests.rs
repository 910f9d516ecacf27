//! Tests of `pairing`.

use super::*;
use crate::challenge::parse_message;
use crate::challenge::NAMESPACE;
use crate::decider::fold;
use crate::decider::testing::{given, given_nothing};
use crate::sshkey::tests::{ed25519_public, sign, sk_public, sk_sign};
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn pid() -> PairingId {
    PairingId(Uuid::from_u128(7))
}
fn alice() -> UserId {
    UserId(Uuid::from_u128(1))
}
fn secs(s: i64) -> Timestamp {
    T0.plus_secs(s)
}

fn issued_with(key: SshPublicKey, purpose: ChallengePurpose) -> PairingEvent {
    PairingEvent::ChallengeIssued {
        challenge_id: pid(),
        server: "https://chat.example".into(),
        key,
        nonce: [9; 32],
        purpose,
        issued_at: T0,
        expires_at: secs(60),
        ip: Some("192.0.2.0".parse().unwrap()),
    }
}
fn issued() -> PairingEvent {
    issued_with(ed25519_public(1), ChallengePurpose::SignIn)
}
fn message_of(event: &PairingEvent) -> String {
    fold::<PairingDecider>(std::slice::from_ref(event))
        .message()
        .unwrap()
}
fn verify(signature: String, now: Timestamp) -> PairingCommand {
    verify_for(ChallengePurpose::SignIn, signature, now)
}
fn verify_for(purpose: ChallengePurpose, signature: String, now: Timestamp) -> PairingCommand {
    PairingCommand::VerifySignature {
        signature,
        purpose,
        user_id: Some(alice()),
        now,
    }
}
fn rejected(reason: RejectReason, at: Timestamp) -> PairingEvent {
    PairingEvent::SignatureRejected { reason, at }
}
fn verified(at: Timestamp) -> PairingEvent {
    PairingEvent::SignatureVerified {
        user_id: alice(),
        at,
    }
}

// ---- IssueChallenge ----

fn issue_cmd() -> PairingCommand {
    PairingCommand::IssueChallenge {
        challenge_id: pid(),
        server: "https://chat.example".into(),
        key: ed25519_public(1),
        nonce: [9; 32],
        purpose: ChallengePurpose::SignIn,
        now: T0,
        expires_at: secs(60),
        ip: Some("192.0.2.0".parse().unwrap()),
    }
}

#[test]
fn issue_challenge_issues_it() {
    let state = given_nothing::<PairingDecider>()
        .when(issue_cmd())
        .then(vec![issued()]);
    assert!(!PairingDecider::is_terminal(&state));
    let message = state.message().unwrap();
    let parsed = parse_message(&message).unwrap();
    assert_eq!(parsed.challenge_id, pid());
    assert_eq!(parsed.fingerprint, ed25519_public(1).fingerprint);
    assert_eq!(parsed.expires, secs(60).as_secs());
    assert_eq!(parsed.check_server("https://chat.example"), Ok(()));
}

#[test]
fn issue_challenge_twice_is_already_issued() {
    given(vec![issued()])
        .when(issue_cmd())
        .then_error(PairingError::AlreadyIssued);
    given(vec![
        issued(),
        rejected(RejectReason::InvalidSignature, secs(1)),
    ])
    .when(issue_cmd())
    .then_error(PairingError::AlreadyIssued);
}

#[test]
fn issue_challenge_with_bad_server_is_invalid_server() {
    let mut cmd = issue_cmd();
    if let PairingCommand::IssueChallenge { server, .. } = &mut cmd {
        *server = "evil\nserver=good".into();
    }
    given_nothing::<PairingDecider>()
        .when(cmd)
        .then_error(PairingError::InvalidServer);
}

#[test]
fn issue_challenge_expiring_now_is_invalid_expiry() {
    let mut cmd = issue_cmd();
    if let PairingCommand::IssueChallenge { expires_at, .. } = &mut cmd {
        *expires_at = T0;
    }
    given_nothing::<PairingDecider>()
        .when(cmd)
        .then_error(PairingError::InvalidExpiry);
}

// ---- VerifySignature ----

#[test]
fn verify_valid_signature_signs_in() {
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    let state = given(vec![issued()])
        .when(verify(sig, secs(30)))
        .then(vec![verified(secs(30))]);
    assert!(PairingDecider::is_terminal(&state));
    assert!(matches!(state, PairingState::Verified { user_id, .. } if user_id == alice()));
}

#[test]
fn verify_valid_signature_by_an_unknown_key_is_rejected_key_unknown() {
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    let cmd = PairingCommand::VerifySignature {
        signature: sig,
        purpose: ChallengePurpose::SignIn,
        user_id: None,
        now: secs(30),
    };
    let state = given(vec![issued()])
        .when(cmd)
        .then(vec![rejected(RejectReason::KeyUnknown, secs(30))]);
    assert!(PairingDecider::is_terminal(&state));
}

#[test]
fn verify_bad_signature_by_an_unknown_key_is_rejected_invalid() {
    let cmd = PairingCommand::VerifySignature {
        signature: "not a signature".into(),
        purpose: ChallengePurpose::SignIn,
        user_id: None,
        now: secs(30),
    };
    given(vec![issued()])
        .when(cmd)
        .then(vec![rejected(RejectReason::InvalidSignature, secs(30))]);
}

#[test]
fn verify_after_expiry_is_rejected_expired() {
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    let state = given(vec![issued()])
        .when(verify(sig, secs(60)))
        .then(vec![rejected(RejectReason::Expired, secs(60))]);
    assert!(PairingDecider::is_terminal(&state));
}

#[test]
fn verify_signature_in_wrong_namespace_is_rejected_invalid() {
    let sig = sign(1, "git", message_of(&issued()).as_bytes());
    given(vec![issued()])
        .when(verify(sig, secs(1)))
        .then(vec![rejected(RejectReason::InvalidSignature, secs(1))]);
}

#[test]
fn verify_signature_over_other_bytes_is_rejected_invalid() {
    let tampered = message_of(&issued()).replace("chat.example", "chat.evil");
    let sig = sign(1, NAMESPACE, tampered.as_bytes());
    given(vec![issued()])
        .when(verify(sig, secs(1)))
        .then(vec![rejected(RejectReason::InvalidSignature, secs(1))]);
}

#[test]
fn verify_signature_by_other_key_is_rejected_invalid() {
    let sig = sign(2, NAMESPACE, message_of(&issued()).as_bytes());
    given(vec![issued()])
        .when(verify(sig, secs(1)))
        .then(vec![rejected(RejectReason::InvalidSignature, secs(1))]);
}

#[test]
fn verify_unparsable_signature_is_rejected_invalid() {
    given(vec![issued()])
        .when(verify("not a signature".into(), secs(1)))
        .then(vec![rejected(RejectReason::InvalidSignature, secs(1))]);
}

#[test]
fn verify_sk_signature_with_user_presence_signs_in() {
    let ev = issued_with(sk_public(3), ChallengePurpose::SignIn);
    let sig = sk_sign(3, 0x01, message_of(&ev).as_bytes());
    given(vec![ev])
        .when(verify(sig, secs(1)))
        .then(vec![verified(secs(1))]);
}

#[test]
fn verify_sk_signature_without_user_presence_is_rejected() {
    let ev = issued_with(sk_public(3), ChallengePurpose::SignIn);
    let sig = sk_sign(3, 0x00, message_of(&ev).as_bytes());
    given(vec![ev])
        .when(verify(sig, secs(1)))
        .then(vec![rejected(RejectReason::UserPresenceMissing, secs(1))]);
}

#[test]
fn verify_add_key_challenge_for_its_user() {
    let ev = issued_with(ed25519_public(1), ChallengePurpose::AddKey(alice()));
    let sig = sign(1, NAMESPACE, message_of(&ev).as_bytes());
    given(vec![ev])
        .when(verify_for(ChallengePurpose::AddKey(alice()), sig, secs(1)))
        .then(vec![verified(secs(1))]);
}

#[test]
fn a_challenge_redeemed_for_another_purpose_is_refused_and_stays_unused() {
    let add_key = issued_with(ed25519_public(1), ChallengePurpose::AddKey(alice()));
    let sig = sign(1, NAMESPACE, message_of(&add_key).as_bytes());
    // An add-key challenge presented to sign in.
    given(vec![add_key])
        .when(verify(sig, secs(1)))
        .then_error(PairingError::PurposeMismatch);
    // A sign-in challenge presented to add a key.
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    given(vec![issued()])
        .when(verify_for(ChallengePurpose::AddKey(alice()), sig, secs(1)))
        .then_error(PairingError::PurposeMismatch);
}

#[test]
fn the_verdict_of_a_verification_names_the_user_or_the_reason() {
    assert_eq!(verdict(&[verified(secs(1))]), Some(Ok(alice())));
    assert_eq!(
        verdict(&[rejected(RejectReason::Expired, secs(1))]),
        Some(Err(RejectReason::Expired))
    );
    assert_eq!(verdict(&[]), None);
}

#[test]
fn verify_add_key_challenge_for_another_user_is_purpose_mismatch() {
    let bob = UserId(Uuid::from_u128(2));
    let ev = issued_with(ed25519_public(1), ChallengePurpose::AddKey(bob));
    let sig = sign(1, NAMESPACE, message_of(&ev).as_bytes());
    given(vec![ev])
        .when(verify_for(ChallengePurpose::AddKey(alice()), sig, secs(1)))
        .then_error(PairingError::PurposeMismatch);
}

#[test]
fn verify_unknown_challenge_is_not_found() {
    given_nothing::<PairingDecider>()
        .when(verify("x".into(), secs(1)))
        .then_error(PairingError::NotFound);
}

#[test]
fn verify_twice_is_consumed() {
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    given(vec![issued(), verified(secs(1))])
        .when(verify(sig, secs(2)))
        .then_error(PairingError::Consumed);
}

#[test]
fn verify_after_rejection_is_consumed() {
    // A failed attempt burns the challenge: no second try with a better signature.
    let sig = sign(1, NAMESPACE, message_of(&issued()).as_bytes());
    given(vec![
        issued(),
        rejected(RejectReason::InvalidSignature, secs(1)),
    ])
    .when(verify(sig, secs(2)))
    .then_error(PairingError::Consumed);
}

#[test]
fn verify_after_sweep_is_consumed() {
    given(vec![
        issued(),
        PairingEvent::ChallengeExpired { at: secs(61) },
    ])
    .when(verify("x".into(), secs(62)))
    .then_error(PairingError::Consumed);
}

// ---- Expire ----

#[test]
fn expire_lapsed_challenge() {
    let state = given(vec![issued()])
        .when(PairingCommand::Expire { now: secs(60) })
        .then(vec![PairingEvent::ChallengeExpired { at: secs(60) }]);
    assert!(PairingDecider::is_terminal(&state));
    // The message can still be rebuilt for inspection.
    assert!(state.message().is_some());
    assert!(state.issued().is_none());
}

#[test]
fn expire_before_expiry_is_idempotent() {
    given(vec![issued()])
        .when(PairingCommand::Expire { now: secs(59) })
        .then_nothing();
}

#[test]
fn expire_consumed_challenge_is_idempotent() {
    given(vec![issued(), verified(secs(1))])
        .when(PairingCommand::Expire { now: secs(90) })
        .then_nothing();
    given(vec![
        issued(),
        PairingEvent::ChallengeExpired { at: secs(61) },
    ])
    .when(PairingCommand::Expire { now: secs(90) })
    .then_nothing();
}

#[test]
fn expire_unknown_challenge_is_idempotent() {
    given_nothing::<PairingDecider>()
        .when(PairingCommand::Expire { now: secs(90) })
        .then_nothing();
}

#[test]
fn message_is_available_from_issued_state() {
    let state = fold::<PairingDecider>(&[issued()]);
    let c = state.issued().unwrap();
    assert_eq!(state.message(), Some(c.message()));
    assert!(c
        .message()
        .starts_with("latchkey-auth-v1\nserver=https://chat.example\n"));
}

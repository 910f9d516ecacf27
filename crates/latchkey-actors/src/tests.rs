//! Actor tests on a real store: rehydration after passivation, the journal's guard against
//! two live actors for one id, read-your-writes, and the sweeper.

use crate::clock::{Clock, ManualClock};
use crate::entity::ExecError;
use crate::registry::{EntitySettings, Registry};
use crate::{Core, CoreConfig, CoreError, SignIn};
use actix::prelude::*;
use latchkey_domain::sshkey::parse_public_key;
use latchkey_domain::{
    Actor as Who, ChallengePurpose, Event, KeyId, PairingEvent, Timestamp, UserCommand,
    UserDecider, UserError, UserId,
};
use latchkey_store::{EventStore, SledStore, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A fixed instant for commands built by hand.
pub(crate) const T0: Timestamp = Timestamp(1_700_000_000_000);

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

pub(crate) fn store() -> (tempfile::TempDir, Arc<SledStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), StoreOptions::default()).unwrap());
    (dir, store)
}

pub(crate) fn register(user: UserId) -> UserCommand {
    UserCommand::Register {
        user_id: user,
        handle: "alice".into(),
        key_id: KeyId(Uuid::new_v4()),
        key: parse_public_key(KEY).unwrap(),
        admin: false,
        now: T0,
    }
}

fn registry(store: &Arc<SledStore>, passivate_after: Duration) -> Registry<UserDecider> {
    let arbiters = [Arbiter::current()];
    Registry::new(
        store.clone(),
        &arbiters,
        EntitySettings {
            mailbox: 16,
            passivate_after,
            snapshot_every: 500,
        },
    )
}

#[actix_rt::test]
async fn a_passivated_entity_rehydrates_from_its_stream() {
    let (_dir, store) = store();
    let users = registry(&store, Duration::from_millis(50));
    let user = UserId(Uuid::new_v4());
    users
        .execute(user.stream(), register(user), Who::System)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while users.live() > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle entity never passivated"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await; // yield to the arbiter
    }
    // A fresh entity must know the user exists: registering again is refused.
    let again = users
        .execute(user.stream(), register(user), Who::System)
        .await;
    assert!(matches!(
        again,
        Err(ExecError::Domain(UserError::AlreadyExists))
    ));
    let out = users
        .execute(user.stream(), UserCommand::Disable { now: T0 }, Who::System)
        .await
        .unwrap();
    assert_eq!(out.last_seq, 2, "appended after the rehydrated version");
}

#[actix_rt::test]
async fn two_live_actors_for_one_id_cannot_both_append() {
    let (_dir, store) = store();
    let a = registry(&store, Duration::from_secs(60));
    let b = registry(&store, Duration::from_secs(60));
    let user = UserId(Uuid::new_v4());
    // Spawn both entities while the stream is empty.
    let _ = a.inspect(user.stream()).await.unwrap();
    let _ = b.inspect(user.stream()).await.unwrap();
    a.execute(user.stream(), register(user), Who::System)
        .await
        .unwrap();
    // b's append conflicts; b reloads and decides the command again on the fresh state
    // (DESIGN §11: another node may have written first), so it is refused, never applied
    // twice.
    let before = store.head();
    let stale = b.execute(user.stream(), register(user), Who::System).await;
    assert!(
        matches!(stale, Err(ExecError::Domain(UserError::AlreadyExists))),
        "{stale:?}"
    );
    assert_eq!(store.head(), before, "the stale actor appended nothing");
    // After the conflict, b reloaded: it now sees the user.
    let again = b.execute(user.stream(), register(user), Who::System).await;
    assert!(matches!(
        again,
        Err(ExecError::Domain(UserError::AlreadyExists))
    ));
    assert_eq!(store.head(), 1);
}

fn encode() -> crate::hub::Encode {
    Box::new(|rec, _, _| rec.seq().to_string().into())
}

fn core_config() -> CoreConfig {
    let mut c = CoreConfig::new("https://chat.example".into());
    c.arbiters = 1;
    c
}

/// A core config on a manual clock at `T0`, with the ticking sweeper out of the way (the
/// test sweeps by hand).
fn on_manual_clock() -> (CoreConfig, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut config = core_config();
    config.sweep_every = Duration::from_secs(3600);
    config.clock = clock.clone();
    (config, clock)
}

fn expired(store: &SledStore, issued: &latchkey_domain::pairing::IssuedChallenge) -> bool {
    store
        .read_stream(&issued.challenge_id.stream(), 1)
        .unwrap()
        .any(|r| {
            matches!(
                r.unwrap().event,
                Event::Pairing(PairingEvent::ChallengeExpired { .. })
            )
        })
}

#[actix_rt::test]
async fn the_sweeper_expires_lapsed_challenges() {
    let (_dir, store) = store();
    let (mut config, clock) = on_manual_clock();
    config.challenge_ttl = Duration::from_secs(60);
    let core = Core::start(store.clone(), config, encode()).unwrap();
    let issued = core
        .issue_challenge(KEY, ChallengePurpose::SignIn, None)
        .await
        .unwrap();
    assert_eq!(issued.issued_at, T0, "the core reads its injected clock");

    // Just before the expiry instant nothing is due.
    clock.advance(Duration::from_millis(59_999));
    crate::sweeper::sweep(&core).await.unwrap();
    assert!(!expired(&store, &issued), "swept before its expiry");

    clock.advance(Duration::from_millis(1));
    assert_eq!(clock.now(), issued.expires_at);
    crate::sweeper::sweep(&core).await.unwrap();
    assert!(
        expired(&store, &issued),
        "the sweep did not expire the challenge"
    );

    // An expired challenge cannot be redeemed.
    let r = core
        .sign_in(SignIn {
            challenge_id: &issued.challenge_id.to_string(),
            signature: "irrelevant",
            device_name: None,
            handle: None,
            user_agent: None,
            ip: None,
        })
        .await;
    assert!(matches!(r, Err(CoreError::ChallengeInvalid)), "{r:?}");
    core.shutdown();
}

#[actix_rt::test]
async fn a_finished_pairing_stops_its_actor_at_once() {
    let (_dir, store) = store();
    let (config, clock) = on_manual_clock();
    let core = Core::start(store.clone(), config, encode()).unwrap();
    let issued = core
        .issue_challenge(KEY, ChallengePurpose::SignIn, None)
        .await
        .unwrap();
    assert_eq!(core.live_entities().1, 1, "a pending challenge stays live");
    clock.advance(Duration::from_secs(3600));
    crate::sweeper::sweep(&core).await.unwrap();
    assert!(expired(&store, &issued));
    // Terminal: the actor stops without waiting for its 60 s passivation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while core.live_entities().1 > 0 {
        assert!(
            Instant::now() < deadline,
            "the finished pairing stayed live"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await; // yield to the arbiter
    }
    core.shutdown();
}

#[actix_rt::test]
async fn a_made_up_challenge_spawns_nothing() {
    let (_dir, store) = store();
    let core = Core::start(store.clone(), core_config(), encode()).unwrap();
    let r = core
        .sign_in(SignIn {
            challenge_id: &Uuid::new_v4().to_string(),
            signature: "x",
            device_name: None,
            handle: None,
            user_agent: None,
            ip: None,
        })
        .await;
    assert!(matches!(r, Err(CoreError::ChallengeInvalid)));
    assert_eq!(core.live_entities(), (0, 0, 0));
    assert_eq!(store.head(), 0);
    core.shutdown();
}

#[test]
fn ip_retention_truncates_to_24_and_48() {
    use crate::IpRetention;
    let v4 = Some("203.0.113.77".parse().unwrap());
    let v6 = Some("2001:db8:1234:5678::1".parse().unwrap());
    assert_eq!(
        IpRetention::Truncated.apply(v4),
        Some("203.0.113.0".parse().unwrap())
    );
    assert_eq!(
        IpRetention::Truncated.apply(v6),
        Some("2001:db8:1234::".parse().unwrap())
    );
    assert_eq!(IpRetention::None.apply(v4), None);
    assert_eq!(IpRetention::Full.apply(v4), v4);
}

/// A fresh Ed25519 key: its OpenSSH public line, and an SSHSIG signer for the sign-in
/// namespace.
fn signing_key(seed: u64) -> (String, impl Fn(&str) -> String) {
    use rand::SeedableRng;
    use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let private = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
    let public = private.public_key().to_openssh().unwrap();
    let sign = move |message: &str| {
        private
            .sign(
                latchkey_domain::challenge::NAMESPACE,
                HashAlg::Sha512,
                message.as_bytes(),
            )
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap()
    };
    (public, sign)
}

fn sign_in_with<'a>(challenge_id: &'a str, signature: &'a str) -> SignIn<'a> {
    SignIn {
        challenge_id,
        signature,
        device_name: None,
        handle: None,
        user_agent: None,
        ip: None,
    }
}

/// The newest seq the log's trees hold, durable or not.
fn written_head(store: &SledStore) -> u64 {
    store
        .read_log(1)
        .unwrap()
        .map(|e| e.unwrap().seq())
        .max()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_sign_in_answers_only_once_every_event_it_wrote_is_durable_and_projected() {
    // The challenge and the verify are appended with the early ack (answered once written,
    // before their fsync): the answer must still come after all three are durable.
    let (_dir, store) = store();
    let core = Core::start(store.clone(), core_config(), encode()).unwrap();
    let (public, sign) = signing_key(1);
    for round in 0..3 {
        let issued = core
            .issue_challenge(&public, ChallengePurpose::SignIn, None)
            .await
            .unwrap();
        let id = issued.challenge_id.to_string();
        let signature = sign(&issued.message());
        let signed = core.sign_in(sign_in_with(&id, &signature)).await.unwrap();
        assert_eq!(signed.registered, round == 0);
        let written = written_head(&store);
        assert!(
            store.head() >= written,
            "answered before the fsync: durable {} of {written}",
            store.head()
        );
        assert!(
            core.applied_seq() >= written,
            "answered before its projection"
        );
        // Read-your-writes: the token works at once.
        let auth = core.authenticate(signed.token.expose_secret()).unwrap();
        assert_eq!(auth.user_id, signed.user_id);
        // A challenge is used at most once.
        let again = core.sign_in(sign_in_with(&id, &signature)).await;
        assert!(
            matches!(again, Err(CoreError::ChallengeInvalid)),
            "{again:?}"
        );
    }
    core.shutdown();
}

#[actix_rt::test]
async fn a_refused_signature_is_durable_before_the_refusal() {
    let (_dir, store) = store();
    let core = Core::start(store.clone(), core_config(), encode()).unwrap();
    let (public, _) = signing_key(2);
    let (_, other) = signing_key(3);
    let issued = core
        .issue_challenge(&public, ChallengePurpose::SignIn, None)
        .await
        .unwrap();
    let id = issued.challenge_id.to_string();
    let r = core
        .sign_in(sign_in_with(&id, &other(&issued.message())))
        .await;
    assert!(matches!(r, Err(CoreError::SignatureInvalid(_))), "{r:?}");
    let written = written_head(&store);
    assert_eq!(written, 2, "issued, then rejected");
    assert!(
        store.head() >= written,
        "refused before the rejection was durable"
    );
    // Consumed by the refusal: the right signature no longer redeems it.
    let (_, sign) = signing_key(2);
    let again = core
        .sign_in(sign_in_with(&id, &sign(&issued.message())))
        .await;
    assert!(
        matches!(again, Err(CoreError::ChallengeInvalid)),
        "{again:?}"
    );
    core.shutdown();
}

//! Tests of the sled store through its public API: appends, reads, conflicts, idempotency,
//! group commit, the hash chain and projections.

use crate::projection::{AfterApply, Projection, Projector, ReadModel, ReadModelWriter};
use crate::verify::verify;
use crate::*;
use latchkey_domain::{Actor, Event, RoomEvent, RoomId, StreamId, Timestamp, UserEvent, UserId};
use std::sync::Arc;
use uuid::Uuid;

fn open(dir: &std::path::Path) -> SledStore {
    SledStore::open(dir, StoreOptions::default()).unwrap()
}

fn disabled(n: i64) -> Event {
    Event::User(UserEvent::UserDisabled { at: Timestamp(n) })
}

fn req(stream: &StreamId, expected: ExpectedVersion, events: Vec<Event>) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events,
        command_id: Uuid::new_v4(),
        actor: Actor::System,
    }
}

fn user_stream() -> StreamId {
    UserId(Uuid::new_v4()).stream()
}

#[test]
fn appends_get_contiguous_seqs_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = user_stream();
    let b = user_stream();
    let r1 = store
        .append_blocking(req(
            &a,
            ExpectedVersion::Exact(0),
            vec![disabled(1), disabled(2)],
        ))
        .unwrap();
    let r2 = store
        .append_blocking(req(&b, ExpectedVersion::Exact(0), vec![disabled(3)]))
        .unwrap();
    let r3 = store
        .append_blocking(req(&a, ExpectedVersion::Exact(2), vec![disabled(4)]))
        .unwrap();
    assert_eq!(
        (r1.first_seq, r1.last_seq, r1.first_version, r1.last_version),
        (1, 2, 1, 2)
    );
    assert_eq!((r2.first_seq, r2.last_seq, r2.last_version), (3, 3, 1));
    assert_eq!((r3.first_seq, r3.last_version), (4, 3));
    assert_eq!(store.head(), 4);

    let seqs: Vec<u64> = store
        .read_all(1)
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let a_events: Vec<(u64, u64)> = store
        .read_stream(&a, 1)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.envelope.version, r.seq())
        })
        .collect();
    assert_eq!(a_events, vec![(1, 1), (2, 2), (3, 4)]);
    let from_two: Vec<u64> = store
        .read_stream(&a, 2)
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(from_two, vec![2, 4]);
    assert_eq!(store.stream_head(&a).unwrap(), (3, 4));
    assert_eq!(store.stream_head(&user_stream()).unwrap(), (0, 0));
}

#[test]
fn a_stale_expected_version_is_a_typed_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = user_stream();
    store
        .append_blocking(req(&a, ExpectedVersion::Exact(0), vec![disabled(1)]))
        .unwrap();
    let err = store
        .append_blocking(req(&a, ExpectedVersion::Exact(0), vec![disabled(2)]))
        .unwrap_err();
    match err {
        AppendError::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (0, 1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.head(), 1, "a refused append writes nothing");
}

#[test]
fn conflicting_appends_in_one_group_see_each_other() {
    // Both ask for version 0 of the same stream; exactly one may win, even in one batch.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let a = user_stream();
    let futures: Vec<_> = (0..8)
        .map(|i| store.append(req(&a, ExpectedVersion::Exact(0), vec![disabled(i)])))
        .collect();
    let rt = tokio_free_block_on(futures);
    let wins = rt.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1);
    assert_eq!(store.stream_head(&a).unwrap().0, 1);
}

/// Waits on append futures without a runtime: their receivers resolve on the journal thread.
fn tokio_free_block_on(futures: Vec<AppendFuture>) -> Vec<Result<Appended, AppendError>> {
    futures.into_iter().map(block_on).collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn a_repeated_command_id_returns_the_first_result() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = user_stream();
    let first = req(&a, ExpectedVersion::Exact(0), vec![disabled(1)]);
    let r1 = store.append_blocking(first.clone()).unwrap();
    let r2 = store.append_blocking(first.clone()).unwrap();
    assert!(!r1.replayed);
    assert!(r2.replayed);
    assert_eq!(
        (r1.first_seq, r1.last_version),
        (r2.first_seq, r2.last_version)
    );
    assert_eq!(store.head(), 1, "the retry wrote nothing");

    let mut elsewhere = first;
    elsewhere.stream = user_stream();
    assert!(matches!(
        store.append_blocking(elsewhere),
        Err(AppendError::CommandReused { .. })
    ));
}

#[test]
fn the_log_survives_reopening_and_keeps_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let a = user_stream();
    let server_id;
    {
        let store = open(dir.path());
        server_id = store.server_id().unwrap();
        for i in 0..5 {
            store
                .append_blocking(req(&a, ExpectedVersion::Exact(i), vec![disabled(i as i64)]))
                .unwrap();
        }
    }
    let store = open(dir.path());
    assert_eq!(store.head(), 5);
    assert_eq!(store.server_id().unwrap(), server_id);
    let r = store
        .append_blocking(req(&a, ExpectedVersion::Exact(5), vec![disabled(9)]))
        .unwrap();
    assert_eq!(r.first_seq, 6);
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.events, report.streams, report.head), (6, 1, 6));
}

#[test]
fn concurrent_appenders_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let writers = 32;
    let per_writer = 20;
    std::thread::scope(|s| {
        for _ in 0..writers {
            let store = store.clone();
            s.spawn(move || {
                let stream = user_stream();
                for v in 0..per_writer {
                    store
                        .append_blocking(req(&stream, ExpectedVersion::Exact(v), vec![disabled(0)]))
                        .unwrap();
                }
            });
        }
    });
    let appends = store
        .stats()
        .appends
        .load(std::sync::atomic::Ordering::Relaxed);
    let flushes = store
        .stats()
        .flushes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(appends, writers * per_writer);
    // With 32 writers each waiting for its ack, groups form whenever a flush is under way.
    assert!(
        flushes * 2 <= appends,
        "expected shared flushes: {flushes} flushes for {appends} appends"
    );
    assert!(verify(&store, &mut |_| {}).unwrap().ok());
}

#[test]
fn a_flipped_byte_is_found_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = user_stream();
    for i in 0..10 {
        store
            .append_blocking(req(&a, ExpectedVersion::Exact(i), vec![disabled(i as i64)]))
            .unwrap();
    }
    for target in [1u64, 6, 10] {
        let key = codec::u64_key(target);
        let original = store.log_tree().get(key).unwrap().unwrap();
        let mut bytes = original.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // inside the payload (the event's timestamp)
        store.log_tree().insert(key, bytes).unwrap();
        let report = verify(&store, &mut |_| {}).unwrap();
        assert!(!report.ok());
        assert_eq!(
            report.problems[0].seq,
            Some(target),
            "{:?}",
            report.problems
        );
        assert!(report.problems[0]
            .message
            .contains(&format!("seq {target}")));
        store.log_tree().insert(key, original).unwrap();
        assert!(verify(&store, &mut |_| {}).unwrap().ok());
    }
}

#[test]
fn a_missing_data_dir_is_an_empty_store_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(SledStore::open_existing(&missing, StoreOptions::default())
        .unwrap()
        .is_none());
    assert!(!missing.exists(), "a reader must not create the data dir");
}

#[test]
fn a_second_open_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    match SledStore::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a second store"),
    }
}

/// Counts events per room and remembers the last message seq: reads its own pending writes.
struct RoomCounter;

impl Projection for RoomCounter {
    fn name(&self) -> &str {
        "room_counter"
    }

    fn apply(&mut self, event: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        if let Event::Room(_) = &event.event {
            let key = event.envelope.stream.as_str().as_bytes().to_vec();
            let n = rm.get(&key)?.and_then(|b| codec::key_u64(&b)).unwrap_or(0);
            rm.insert(key, codec::u64_key(n + 1).to_vec())?;
        }
        Ok(())
    }
}

fn room_event(n: i64) -> Event {
    Event::Room(RoomEvent::MessagePosted {
        message_id: latchkey_domain::MessageId(Uuid::new_v4()),
        sender: UserId(Uuid::nil()),
        body: format!("hello {n}"),
        target_user_ids: vec![],
        reply_to: None,
        at: Timestamp(n),
    })
}

/// A store with one room stream of `n` events (seqs 1..=n).
fn store_with_room(n: u64) -> (tempfile::TempDir, Arc<SledStore>, StreamId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let room = RoomId(Uuid::new_v4()).stream();
    for v in 0..n {
        let events = vec![room_event(v as i64 + 1)];
        store
            .append_blocking(req(&room, ExpectedVersion::Exact(v), events))
            .unwrap();
    }
    (dir, store, room)
}

#[test]
fn projections_resume_from_an_atomic_checkpoint() {
    let (_dir, store, room) = store_with_room(3);
    store
        .append_blocking(req(&user_stream(), ExpectedVersion::Any, vec![disabled(0)]))
        .unwrap();
    let mut p = Projector::new(store.clone(), vec![Box::new(RoomCounter)]).unwrap();
    assert_eq!(p.catch_up().unwrap(), 4);
    let model = store.read_model("room_counter").unwrap();
    let count = |m: &ReadModel| codec::key_u64(&m.get(room.as_str().as_bytes()).unwrap().unwrap());
    assert_eq!(count(&model), Some(3));
    assert_eq!(model.checkpoint().unwrap(), 4);

    // A new projector resumes from the checkpoint: nothing is applied twice.
    store
        .append_blocking(req(&room, ExpectedVersion::Exact(3), vec![room_event(9)]))
        .unwrap();
    let mut p2 = Projector::new(store.clone(), vec![Box::new(RoomCounter)]).unwrap();
    assert_eq!(p2.applied_seq(), 4);
    assert_eq!(p2.catch_up().unwrap(), 5);
    assert_eq!(count(&model), Some(4));

    // Read models are reported by verify, and a checkpoint past the head is a problem.
    assert!(verify(&store, &mut |_| {}).unwrap().ok());
    store
        .db()
        .open_tree("rm/room_counter")
        .unwrap()
        .insert(projection::CHECKPOINT_KEY, &codec::u64_key(99))
        .unwrap();
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report
        .problems
        .iter()
        .any(|p| p.message.contains("room_counter")));
}

/// `RoomCounter` in a tree of another name, failing at one seq when asked to.
struct NamedCounter(&'static str, Option<u64>);

impl Projection for NamedCounter {
    fn name(&self) -> &str {
        self.0
    }

    fn apply(&mut self, event: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        if Some(event.seq()) == self.1 {
            return Err(StoreError::Encode("injected failure".into()));
        }
        RoomCounter.apply(event, rm)
    }
}

/// A store holding 3,000 room events in three rooms: about three projector chunks.
fn three_rooms_of_posts(dir: &std::path::Path) -> Arc<SledStore> {
    let store = Arc::new(open(dir));
    for _ in 0..3 {
        let room = RoomId(Uuid::new_v4()).stream();
        for v in 0..10u64 {
            let events = (0..100).map(room_event).collect();
            store
                .append_blocking(req(&room, ExpectedVersion::Exact(v * 100), events))
                .unwrap();
        }
    }
    store
}

#[test]
fn a_read_ahead_catch_up_writes_what_hooked_steps_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_rooms_of_posts(dir.path());
    let head = store.head();
    assert_eq!(head, 3_000);
    // A tombstone inside a chunk: skipped by both, and the checkpoints still reach the head.
    assert_eq!(
        store.tombstone_blocking(&[1_500], "test", 1_500).unwrap(),
        1
    );

    // No hook: the reader thread decodes ahead. A hook: one chunk per step, as when live.
    let mut bulk =
        Projector::new(store.clone(), vec![Box::new(NamedCounter("bulk", None))]).unwrap();
    assert_eq!(bulk.catch_up().unwrap(), head);
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hooked = seen.clone();
    let stepped = Projector::new(store.clone(), vec![Box::new(NamedCounter("stepped", None))]);
    let mut stepped = stepped.unwrap().after_apply(Box::new(move |chunk| {
        hooked.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }));
    assert_eq!(stepped.catch_up().unwrap(), head);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), head - 1);

    let rows = |name: &str| {
        store
            .read_model(name)
            .unwrap()
            .iter()
            .collect::<StoreResult<Vec<_>>>()
            .unwrap()
    };
    assert_eq!(rows("bulk"), rows("stepped"));
    let counted: u64 = rows("bulk")
        .iter()
        .filter(|(k, _)| k.first() != Some(&0))
        .map(|(_, v)| codec::key_u64(v).unwrap())
        .sum();
    assert_eq!(
        counted,
        head - 1,
        "every live event once, the tombstone never"
    );
    assert_eq!(
        store.read_model("bulk").unwrap().checkpoint().unwrap(),
        head
    );
}

#[test]
fn a_failing_projection_stops_a_read_ahead_catch_up_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = three_rooms_of_posts(dir.path());
    // It fails in the first chunk, while the reader is blocked on a full channel.
    let failing = NamedCounter("failing", Some(10));
    let mut p = Projector::new(store.clone(), vec![Box::new(failing)]).unwrap();
    let err = p.catch_up().unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(p.applied_seq(), 0);
    assert_eq!(
        store.read_model("failing").unwrap().checkpoint().unwrap(),
        0
    );
}

/// `RoomCounter` with a new row layout.
struct RoomCounterV2;

impl Projection for RoomCounterV2 {
    fn name(&self) -> &str {
        "room_counter"
    }

    fn apply(&mut self, event: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        RoomCounter.apply(event, rm)
    }

    fn layout(&self) -> u32 {
        2
    }
}

#[test]
fn a_read_model_of_another_layout_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let room = RoomId(Uuid::new_v4()).stream();
    for i in 0..3 {
        store
            .append_blocking(req(
                &room,
                ExpectedVersion::Exact(i),
                vec![room_event(i as i64)],
            ))
            .unwrap();
    }
    let model = store.read_model("room_counter").unwrap();
    let count = || codec::key_u64(&model.get(room.as_str().as_bytes()).unwrap().unwrap());
    let mut p = Projector::new(store.clone(), vec![Box::new(RoomCounter)]).unwrap();
    assert_eq!(p.catch_up().unwrap(), 3);

    // The same layout resumes from its checkpoint.
    let same = Projector::new(store.clone(), vec![Box::new(RoomCounter)]).unwrap();
    assert_eq!(same.applied_seq(), 3);

    // A new layout starts again from the first event: every event applied once, no old row.
    let mut v2 = Projector::new(store.clone(), vec![Box::new(RoomCounterV2)]).unwrap();
    assert_eq!(v2.applied_seq(), 0);
    assert_eq!(v2.catch_up().unwrap(), 3);
    assert_eq!(count(), Some(3));
    let again = Projector::new(store.clone(), vec![Box::new(RoomCounterV2)]).unwrap();
    assert_eq!(again.applied_seq(), 3);

    // A tree from before layouts were recorded is another layout too.
    store
        .db()
        .open_tree("rm/room_counter")
        .unwrap()
        .remove(projection::LAYOUT_KEY)
        .unwrap();
    let mut old = Projector::new(store.clone(), vec![Box::new(RoomCounterV2)]).unwrap();
    assert_eq!(old.applied_seq(), 0);
    assert_eq!(old.catch_up().unwrap(), 3);
    assert_eq!(count(), Some(3));
}

#[test]
fn the_projector_thread_follows_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let handle = Projector::new(store.clone(), vec![Box::new(RoomCounter)])
        .unwrap()
        .spawn()
        .unwrap();
    let room = RoomId(Uuid::new_v4()).stream();
    let r = store
        .append_blocking(req(&room, ExpectedVersion::Exact(0), vec![room_event(1)]))
        .unwrap();
    let mut applied = handle.applied();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while *applied.borrow_and_update() < r.last_seq {
        assert!(
            std::time::Instant::now() < deadline,
            "projector did not catch up"
        );
        store.wait_for_head_above(u64::MAX - 1, std::time::Duration::from_millis(10));
    }
    handle.stop();
}

#[test]
fn the_projector_never_applies_or_hands_on_what_is_past_the_durable_head() {
    let (_dir, store, _room) = store_with_room(2);
    // Seq 2 is in the trees, but (as between a group's write and its fsync) not durable.
    store.publish_head(1);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooked = seen.clone();
    let hook: AfterApply = Box::new(move |chunk: &[Recorded]| {
        hooked
            .lock()
            .unwrap()
            .extend(chunk.iter().map(Recorded::seq));
    });
    let mut hooked_projector = Projector::new(store.clone(), vec![Box::new(RoomCounter)])
        .unwrap()
        .after_apply(hook);
    assert_eq!(hooked_projector.catch_up().unwrap(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![1]);
    // The read-ahead catch-up (no hook: start, rebuild) stops at the head too.
    let mut unhooked = Projector::new(store.clone(), vec![Box::new(RoomCounter)]).unwrap();
    assert_eq!(unhooked.catch_up().unwrap(), 1);
    store.publish_head(2);
    assert_eq!(hooked_projector.catch_up().unwrap(), 2);
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
}

#[test]
fn the_hook_sees_a_chunk_only_once_the_read_models_hold_it() {
    // DESIGN §1: read models, then the fanout hub. A subscriber that gets an event and
    // then reads history must find it there.
    let (_dir, store, room) = store_with_room(3);
    let model = store.read_model("room_counter").unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooked = seen.clone();
    let key = room.as_str().as_bytes().to_vec();
    let hook: AfterApply = Box::new(move |chunk: &[Recorded]| {
        let count = model.get(&key).unwrap().and_then(|b| codec::key_u64(&b));
        let last = chunk.last().map(Recorded::seq);
        hooked
            .lock()
            .unwrap()
            .push((last, model.checkpoint().unwrap(), count));
    });
    let mut projector = Projector::new(store.clone(), vec![Box::new(RoomCounter)])
        .unwrap()
        .after_apply(hook);
    assert_eq!(projector.catch_up().unwrap(), 3);
    assert_eq!(*seen.lock().unwrap(), vec![(Some(3), 3, Some(3))]);
}

// ---- Detached message bodies ----

fn detached(id: u128, text: &str) -> Event {
    let body = latchkey_domain::MessageBody {
        text: text.into(),
        secret: [id as u8; 32],
    };
    Event::Room(RoomEvent::MessagePostedV2 {
        message_id: latchkey_domain::MessageId(Uuid::from_u128(id)),
        sender: UserId(Uuid::nil()),
        body_hash: body.hash(),
        target_user_ids: vec![],
        reply_to: None,
        at: Timestamp(1),
        body: Some(body),
    })
}

fn erased(id: u128) -> Event {
    Event::Room(RoomEvent::MessageDeleted {
        message_id: latchkey_domain::MessageId(Uuid::from_u128(id)),
        sender: UserId(Uuid::nil()),
        target_user_ids: vec![],
        by: None,
        reason: latchkey_domain::DeleteReason::Admin,
        at: Timestamp(2),
    })
}

fn body_text(rec: &Recorded) -> Option<String> {
    match &rec.event {
        Event::Room(RoomEvent::MessagePostedV2 { body, .. }) => {
            body.as_ref().map(|b| b.text.clone())
        }
        _ => None,
    }
}

#[test]
fn a_detached_body_is_joined_on_read_and_gone_after_its_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let room = RoomId(Uuid::new_v4()).stream();
    store
        .append_blocking(req(
            &room,
            ExpectedVersion::Exact(0),
            vec![detached(1, "keep me"), detached(2, "forget me")],
        ))
        .unwrap();
    let texts: Vec<_> = store
        .read_all(1)
        .unwrap()
        .map(|r| body_text(&r.unwrap()))
        .collect();
    assert_eq!(
        texts,
        vec![Some("keep me".into()), Some("forget me".into())]
    );
    // The envelope holds the hash only: the payload never contains the text.
    let raw: Vec<RawEntry> = store.read_raw(1).unwrap().map(Result::unwrap).collect();
    assert!(!raw[1].envelope.windows(9).any(|w| w == b"forget me"));
    assert_eq!(raw[1].body.as_ref().unwrap().text, "forget me");

    store
        .append_blocking(req(&room, ExpectedVersion::Exact(2), vec![erased(2)]))
        .unwrap();
    let texts: Vec<_> = store
        .read_stream(&room, 1)
        .unwrap()
        .map(|r| body_text(&r.unwrap()))
        .collect();
    assert_eq!(texts, vec![Some("keep me".into()), None, None]);
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[test]
fn a_post_whose_body_does_not_match_its_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut bad = detached(1, "one");
    if let Event::Room(RoomEvent::MessagePostedV2 { body, .. }) = &mut bad {
        body.as_mut().unwrap().text = "two".into();
    }
    let room = RoomId(Uuid::new_v4()).stream();
    assert!(store
        .append_blocking(req(&room, ExpectedVersion::Any, vec![bad]))
        .is_err());
    assert_eq!(store.head(), 0);
}

#[test]
fn verify_finds_a_body_that_no_longer_matches_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let room = RoomId(Uuid::new_v4()).stream();
    store
        .append_blocking(req(&room, ExpectedVersion::Any, vec![detached(1, "true")]))
        .unwrap();
    let forged = latchkey_domain::MessageBody {
        text: "false".into(),
        secret: [1; 32],
    };
    let id = latchkey_domain::MessageId(Uuid::from_u128(1));
    store
        .trees()
        .bodies
        .insert(
            crate::bodies::key(&id),
            crate::bodies::encode(&forged, 1).unwrap(),
        )
        .unwrap();
    let report = verify(&store, &mut |_| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].seq, Some(1));
}

#[test]
fn a_copy_carries_live_bodies_and_not_erased_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let room = RoomId(Uuid::new_v4()).stream();
    store
        .append_blocking(req(
            &room,
            ExpectedVersion::Any,
            vec![detached(1, "live"), detached(2, "erased"), erased(2)],
        ))
        .unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(copy_dir.path());
    assert_eq!(
        copy_prefix(&store, &copy, u64::MAX, &mut |_| {}).unwrap(),
        3
    );
    let texts: Vec<_> = copy
        .read_all(1)
        .unwrap()
        .map(|r| body_text(&r.unwrap()))
        .collect();
    assert_eq!(texts, vec![Some("live".into()), None, None]);
    assert!(verify(&copy, &mut |_| {}).unwrap().ok());
    assert_eq!(copy.chain_head().unwrap(), store.chain_head().unwrap());
}

#[test]
fn an_erased_secret_is_gone_from_every_file_while_a_live_one_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let room = RoomId(Uuid::new_v4()).stream();
    // detached(n, ..) uses the secret [n; 32].
    store
        .append_blocking(req(
            &room,
            ExpectedVersion::Any,
            vec![detached(0xA1, "live"), detached(0xB2, "erased")],
        ))
        .unwrap();
    store
        .append_blocking(req(&room, ExpectedVersion::Any, vec![erased(0xB2)]))
        .unwrap();
    store.close().unwrap();
    let mut raw = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                raw.extend(std::fs::read(e.path()).unwrap());
            }
        }
    }
    let has = |secret: [u8; 32]| raw.windows(32).any(|w| w == secret);
    assert!(has([0xA1; 32]), "control: a live secret is found");
    assert!(!has([0xB2; 32]), "the erased secret is still on disk");
}

/// Two streams interleaved: a = seqs 1, 3, 5 (v1..v3), b = seqs 2, 4, 6 (v1..v3).
fn interleaved(store: &SledStore) -> (StreamId, StreamId) {
    let (a, b) = (user_stream(), user_stream());
    for i in 0..3u64 {
        for s in [&a, &b] {
            store
                .append_blocking(req(s, ExpectedVersion::Exact(i), vec![disabled(i as i64)]))
                .unwrap();
        }
    }
    (a, b)
}

#[test]
fn tombstones_keep_seqs_versions_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = interleaved(&store);
    let dropped = store.log_tree().get(codec::u64_key(3)).unwrap().unwrap();
    let chain_before = store.chain_head().unwrap();

    // seq 3 (a v2) and seq 6 (b v3, the log's last entry); 3 again is skipped.
    assert_eq!(store.tombstone(&[3, 6, 3], "test", 7).unwrap(), 2);
    assert_eq!(store.tombstone(&[3], "test", 0).unwrap(), 0);
    assert!(store.tombstone(&[7], "test", 0).is_err(), "past the head");
    let mark = store.compaction_mark().unwrap();
    assert_eq!((mark.exact_from, mark.dropped.get("test")), (7, Some(&2)));

    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.events, report.tombstones), (6, 2));
    assert_eq!(store.chain_head().unwrap(), chain_before);

    let live: Vec<u64> = store
        .read_all(1)
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(live, vec![1, 2, 4, 5]);
    let a_versions: Vec<u64> = store
        .read_stream(&a, 1)
        .unwrap()
        .map(|r| r.unwrap().envelope.version)
        .collect();
    assert_eq!(a_versions, vec![1, 3]);
    // The head still counts dropped versions, so the next append takes version 4.
    assert_eq!(store.stream_head(&b).unwrap(), (3, 6));
    store
        .append_blocking(req(&b, ExpectedVersion::Exact(3), vec![disabled(9)]))
        .unwrap();

    let entries: Vec<Entry> = store.read_log(1).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(entries.len(), 7);
    match &entries[2] {
        Entry::Tombstone(t) => {
            assert_eq!((t.seq, t.version, &t.stream), (3, 2, &a));
            assert_eq!(t.hash, envelope::hash(&dropped));
            assert_eq!(t.event_type, "user.disabled");
        }
        other => panic!("seq 3 is not a tombstone: {other:?}"),
    }
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.head, 7);
}

#[test]
fn verify_finds_a_tombstone_that_lies_about_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    interleaved(&store);
    store.tombstone(&[4], "test", 0).unwrap();
    let key = codec::u64_key(4);
    let bytes = store.log_tree().get(key).unwrap().unwrap();
    let mut t: Tombstone = codec::decode(&bytes, "test").unwrap();
    t.hash[0] ^= 1;
    store
        .log_tree()
        .insert(key, codec::encode(&t).unwrap())
        .unwrap();
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(!report.ok());
    assert_eq!(report.problems[0].seq, Some(4), "{:?}", report.problems);
}

#[test]
fn a_compacted_log_exports_and_imports_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, _) = interleaved(&store);
    store.tombstone(&[1, 2, 5], "test", 0).unwrap();
    let raw: Vec<RawEntry> = store.read_raw(1).unwrap().map(Result::unwrap).collect();
    assert_eq!(raw.len(), 6);

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(copy_dir.path());
    let mut it = raw.clone().into_iter().map(Ok);
    assert_eq!(copy.import_envelopes(&mut it, &mut |_| {}).unwrap(), 6);
    let report = verify(&copy, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.tombstones, 3);
    assert_eq!(
        copy.compaction_mark().unwrap().dropped.get("test"),
        Some(&3)
    );
    assert_eq!(copy.chain_head().unwrap(), store.chain_head().unwrap());
    assert_eq!(
        copy.stream_head(&a).unwrap(),
        store.stream_head(&a).unwrap()
    );
    let copied: Vec<RawEntry> = copy.read_raw(1).unwrap().map(Result::unwrap).collect();
    assert_eq!(copied, raw);

    // A tombstone whose hash was altered breaks the import.
    let mut bad = raw;
    let mut t: Tombstone = codec::decode(&bad[1].envelope, "test").unwrap();
    t.hash[5] ^= 1;
    bad[1].envelope = codec::encode(&t).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other = open(other.path());
    let mut it = bad.into_iter().map(Ok);
    assert!(other.import_envelopes(&mut it, &mut |_| {}).is_err());
}

#[test]
fn expired_command_ids_are_forgotten_and_recent_ones_kept() {
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
    const HOUR: i64 = 3600 * 1000;
    let t0: i64 = 1_790_000_000_000;
    let now = Arc::new(AtomicI64::new(t0));
    let clock: clock::WallClock = {
        let now = now.clone();
        Arc::new(move || now.load(SeqCst))
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        clock,
        ..StoreOptions::default()
    };
    let store = SledStore::open(dir.path(), opts).unwrap();
    let v7 = |ms: i64| {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        );
        Uuid::new_v7(ts)
    };
    let with_id = |id: Uuid| AppendRequest {
        command_id: id,
        ..req(&user_stream(), ExpectedVersion::Any, vec![disabled(1)])
    };
    let old = with_id(v7(t0));
    assert!(!store.append_blocking(old.clone()).unwrap().replayed);

    // A day and an hour later: the first append's group is followed by a prune.
    now.store(t0 + 25 * HOUR, SeqCst);
    let recent = with_id(v7(t0 + 25 * HOUR));
    assert!(!store.append_blocking(recent.clone()).unwrap().replayed);
    // An id of another version that sorts first, recorded now: only its record's age
    // may prune it. Two minutes on, the next append is followed by a second prune.
    let early_but_recent = with_id(Uuid::from_u128(1));
    assert!(
        !store
            .append_blocking(early_but_recent.clone())
            .unwrap()
            .replayed
    );
    now.store(t0 + 25 * HOUR + 120_000, SeqCst);
    assert!(
        !store
            .append_blocking(with_id(v7(now.load(SeqCst))))
            .unwrap()
            .replayed
    );

    assert!(
        store.append_blocking(recent).unwrap().replayed,
        "a recent id is still deduplicated"
    );
    assert!(
        store.append_blocking(early_but_recent).unwrap().replayed,
        "a recent record is kept whatever its key"
    );
    assert!(
        !store.append_blocking(old).unwrap().replayed,
        "past the retention the id is forgotten: the retry appends anew"
    );
}

#[test]
fn a_written_ack_answers_with_its_seqs_and_a_later_durable_append_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = user_stream();
    let b = user_stream();
    {
        let store = open(dir.path());
        let written = block_on(store.append_written(req(
            &a,
            ExpectedVersion::Exact(0),
            vec![disabled(1), disabled(2)],
        )))
        .unwrap();
        assert_eq!((written.first_seq, written.last_seq), (1, 2));
        assert!(!written.replayed);
        // Visible to reads at once, durable or not.
        assert_eq!(store.stream_head(&a).unwrap(), (2, 2));
        assert_eq!(store.read_stream(&a, 1).unwrap().count(), 2);
        // Still checked: a stale expected version is a typed conflict.
        let stale =
            block_on(store.append_written(req(&a, ExpectedVersion::Exact(0), vec![disabled(3)])));
        assert!(
            matches!(stale, Err(AppendError::Conflict { .. })),
            "{stale:?}"
        );
        // A durable append queued after it is answered only once both are durable.
        let durable = store
            .append_blocking(req(&b, ExpectedVersion::Exact(0), vec![disabled(4)]))
            .unwrap();
        assert_eq!(durable.last_seq, 3);
        assert!(store.head() >= durable.last_seq);
    }
    let store = open(dir.path());
    assert_eq!(store.head(), 3);
    assert_eq!(store.stream_head(&a).unwrap(), (2, 2));
    let report = verify(&store, &mut |_| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

//! The read models the projector maintains, and the queries the API serves from them.
//!
//! - `rm/users`: `u`+user id -> `UserRow`; `h`+handle -> user id; `k`+fingerprint -> user id.
//! - `rm/tokens`: `t`+SHA-256(token) -> `TokenRow`; `i`+token id -> hash; `u`+user+token -> ().
//!   Revoked and expired tokens leave the model: only live tokens are in it. Besides,
//!   `o`+token id -> owner's user id, for every token ever minted (admin lookups).
//! - `rm/expiry`: `c`+expires_at+challenge -> () and `t`+expires_at+user+token -> (), the
//!   sweeper's due list; `C`+challenge / `T`+token -> the due key, to remove it.
//!
//! Rows are encoded by the store's codec. Each projection only assigns what events say.

use crate::tokenindex::{LiveToken, TokenIndex};
use latchkey_domain::user::TokenRecord;
use latchkey_domain::{
    Event, KeyAlgorithm, KeyId, PairingEvent, PairingId, Timestamp, TokenId, UserEvent, UserId,
};
use latchkey_store::codec;
use latchkey_store::projection::{Projection, ReadModel, ReadModelWriter};
use latchkey_store::{EventStore, Recorded, StoreResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user as the API reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// The user's id.
    pub id: UserId,
    /// The unique handle.
    pub handle: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// The user's keys.
    pub keys: Vec<KeyRow>,
}

/// A registered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    /// Its id.
    pub key_id: KeyId,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// The key line's comment.
    pub comment: String,
    /// When it was added.
    pub added_at: Timestamp,
}

/// A live token as auth reads it: the domain's one token record with its ids (never the
/// secret: the key is its SHA-256). Reads of the record's fields go through `Deref`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// Public id.
    pub token_id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// The record, as the user aggregate keeps it.
    pub token: TokenRecord,
}

impl std::ops::Deref for TokenRow {
    type Target = TokenRecord;

    fn deref(&self) -> &TokenRecord {
        &self.token
    }
}

fn user_key(id: &UserId) -> Vec<u8> {
    [b"u".as_slice(), id.0.as_bytes()].concat()
}

fn prefixed(p: &[u8], rest: &[u8]) -> Vec<u8> {
    [p, rest].concat()
}

/// A row key: a one-byte tag, then the parts. The one layout of every projection's rows.
pub(crate) fn row_key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![tag];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn user_of(rec: &Recorded) -> Option<UserId> {
    rec.envelope.stream.user()
}

fn get<T: serde::de::DeserializeOwned>(
    rm: &ReadModelWriter<'_>,
    key: &[u8],
) -> StoreResult<Option<T>> {
    match rm.get(key)? {
        Some(b) => Ok(Some(codec::decode(&b, "read model row")?)),
        None => Ok(None),
    }
}

/// Projection of users, handles and key fingerprints (`rm/users`).
pub struct UsersProjection;

impl Projection for UsersProjection {
    fn name(&self) -> &str {
        "users"
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let Event::User(e) = &rec.event else {
            return Ok(());
        };
        let Some(uid) = user_of(rec) else {
            return Ok(());
        };
        let key = user_key(&uid);
        if let UserEvent::UserRegistered {
            user_id,
            handle,
            key_id,
            key: k,
            admin,
            at,
        } = e
        {
            let row = UserRow {
                id: *user_id,
                handle: handle.clone(),
                admin: *admin,
                disabled: false,
                keys: vec![KeyRow {
                    key_id: *key_id,
                    algorithm: k.algorithm,
                    fingerprint: k.fingerprint.clone(),
                    comment: k.comment.clone(),
                    added_at: *at,
                }],
            };
            rm.insert(key, codec::encode(&row)?)?;
            rm.insert(
                prefixed(b"h", handle.as_bytes()),
                user_id.0.as_bytes().to_vec(),
            )?;
            rm.insert(
                prefixed(b"k", k.fingerprint.as_bytes()),
                user_id.0.as_bytes().to_vec(),
            )?;
            return Ok(());
        }
        let Some(mut row) = get::<UserRow>(rm, &key)? else {
            return Ok(());
        };
        match e {
            UserEvent::KeyAdded { key_id, key: k, at } => {
                row.keys.push(KeyRow {
                    key_id: *key_id,
                    algorithm: k.algorithm,
                    fingerprint: k.fingerprint.clone(),
                    comment: k.comment.clone(),
                    added_at: *at,
                });
                rm.insert(
                    prefixed(b"k", k.fingerprint.as_bytes()),
                    uid.0.as_bytes().to_vec(),
                )?;
            }
            UserEvent::KeyRemoved {
                key_id,
                fingerprint,
            } => {
                row.keys.retain(|k| k.key_id != *key_id);
                // Only this user's claim on the fingerprint goes.
                let index = prefixed(b"k", fingerprint.as_bytes());
                if rm.get(&index)?.as_deref() == Some(uid.0.as_bytes().as_slice()) {
                    rm.remove(index)?;
                }
            }
            UserEvent::UserDisabled { .. } => row.disabled = true,
            UserEvent::UserEnabled { .. } => row.disabled = false,
            _ => return Ok(()),
        }
        rm.insert(key, codec::encode(&row)?)
    }
}

/// Projection of live tokens by hash (`rm/tokens`), and of the in-memory index auth reads
/// (changed here, before the chunk commits: see `tokenindex`).
pub struct TokensProjection {
    index: TokenIndex,
}

impl TokensProjection {
    /// The projection, keeping `index` in step with its rows.
    pub fn new(index: TokenIndex) -> Self {
        Self { index }
    }

    fn remove(
        &self,
        rm: &mut ReadModelWriter<'_>,
        user: UserId,
        token_id: &TokenId,
    ) -> StoreResult<()> {
        let id_key = prefixed(b"i", token_id.0.as_bytes());
        if let Some(hash) = rm.get(&id_key)? {
            if let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) {
                self.index.remove(&h);
            }
            rm.remove(prefixed(b"t", &hash))?;
        }
        rm.remove(id_key)?;
        rm.remove([b"u".as_slice(), user.0.as_bytes(), token_id.0.as_bytes()].concat())
    }
}

impl Projection for TokensProjection {
    fn name(&self) -> &str {
        "tokens"
    }

    /// 2: rows hold the domain's `TokenRecord`, and a token-id -> owner index.
    fn layout(&self) -> u32 {
        2
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let (Event::User(e), Some(user_id)) = (&rec.event, user_of(rec)) else {
            return Ok(());
        };
        match e {
            UserEvent::TokenMinted { .. } => {
                let Some((token_id, token)) = TokenRecord::minted(e) else {
                    return Ok(());
                };
                let hash = token.hash;
                let row = TokenRow {
                    token_id,
                    user_id,
                    token,
                };
                self.index.insert(&row);
                rm.insert(prefixed(b"t", &hash), codec::encode(&row)?)?;
                rm.insert(prefixed(b"i", token_id.0.as_bytes()), hash.to_vec())?;
                rm.insert(
                    prefixed(b"o", token_id.0.as_bytes()),
                    user_id.0.as_bytes().to_vec(),
                )?;
                rm.insert(
                    [b"u".as_slice(), user_id.0.as_bytes(), token_id.0.as_bytes()].concat(),
                    Vec::new(),
                )?;
            }
            UserEvent::TokenUsed { token_id, at } => {
                if let Some(hash) = rm.get(&prefixed(b"i", token_id.0.as_bytes()))? {
                    let key = prefixed(b"t", &hash);
                    if let Some(mut row) = get::<TokenRow>(rm, &key)? {
                        self.index.used(&row.token.hash, *at);
                        row.token.last_used_at = Some(*at);
                        rm.insert(key, codec::encode(&row)?)?;
                    }
                }
            }
            UserEvent::TokenRevoked { token_id, .. } | UserEvent::TokenExpired { token_id } => {
                self.remove(rm, user_id, token_id)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Projection of what will lapse, by due time (`rm/expiry`), for the sweeper.
pub struct ExpiryProjection;

/// A row key ordered by time: `tag`, `at` as big-endian unix ms, then the ids. The one
/// layout of every projection's expiry index.
pub(crate) fn due_key(tag: u8, at: Timestamp, ids: &[&Uuid]) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&(at.0.max(0) as u64).to_be_bytes());
    for id in ids {
        k.extend_from_slice(id.as_bytes());
    }
    k
}

impl Projection for ExpiryProjection {
    fn name(&self) -> &str {
        "expiry"
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        // Room events (most of the log) never lapse: skip them before parsing the stream id.
        if let Event::Room(_) = rec.event {
            return Ok(());
        }
        let Some(stream_id) = rec.envelope.stream.uuid() else {
            return Ok(());
        };
        match &rec.event {
            Event::Pairing(PairingEvent::ChallengeIssued { expires_at, .. }) => {
                let k = due_key(b'c', *expires_at, &[&stream_id]);
                rm.insert(prefixed(b"C", stream_id.as_bytes()), k.clone())?;
                rm.insert(k, Vec::new())?;
            }
            Event::Pairing(_) => {
                let back = prefixed(b"C", stream_id.as_bytes());
                if let Some(k) = rm.get(&back)? {
                    rm.remove(k)?;
                    rm.remove(back)?;
                }
            }
            Event::User(UserEvent::TokenMinted {
                token_id,
                expires_at: Some(at),
                ..
            }) => {
                let k = due_key(b't', *at, &[&stream_id, &token_id.0]);
                rm.insert(prefixed(b"T", token_id.0.as_bytes()), k.clone())?;
                rm.insert(k, Vec::new())?;
            }
            Event::User(UserEvent::TokenRevoked { token_id, .. })
            | Event::User(UserEvent::TokenExpired { token_id }) => {
                let back = prefixed(b"T", token_id.0.as_bytes());
                if let Some(k) = rm.get(&back)? {
                    rm.remove(k)?;
                    rm.remove(back)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Read access to every read model.
#[derive(Clone)]
pub struct ReadModels {
    users: ReadModel,
    tokens: ReadModel,
    live_tokens: TokenIndex,
    expiry: ReadModel,
    rooms: crate::roommodel::Rooms,
    devices: crate::devicemodel::Devices,
    pairing_codes: crate::codemodel::PairingCodes,
}

/// The projections behind [`ReadModels`], for the projector.
pub fn projections() -> Vec<Box<dyn Projection>> {
    projections_with(TokenIndex::default())
}

/// The projections, with the tokens projection keeping `index` (the server's, shared with
/// [`ReadModels::open_with`]) in step.
pub fn projections_with(index: TokenIndex) -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(UsersProjection),
        Box::new(TokensProjection::new(index)),
        Box::new(ExpiryProjection),
        Box::new(crate::roommodel::RoomsProjection),
        Box::new(crate::devicemodel::DevicesProjection),
        Box::new(crate::codemodel::PairingCodesProjection),
    ]
}

fn decode_row<T: serde::de::DeserializeOwned>(v: Option<Vec<u8>>) -> StoreResult<Option<T>> {
    v.map(|b| codec::decode(&b, "read model row")).transpose()
}

fn uuid_of(v: Option<Vec<u8>>) -> Option<Uuid> {
    v.and_then(|b| Uuid::from_slice(&b).ok())
}

impl ReadModels {
    /// Opens a store's read models.
    pub fn open(store: &dyn EventStore) -> StoreResult<Self> {
        Self::open_with(store, TokenIndex::default())
    }

    /// Opens a store's read models, loading `index` from the token rows. Call it while no
    /// projector runs (at start, after catching up); the projector keeps it in step after.
    pub fn open_with(store: &dyn EventStore, index: TokenIndex) -> StoreResult<Self> {
        let tokens = store.read_model("tokens")?;
        index.load(&tokens)?;
        Ok(Self {
            users: store.read_model("users")?,
            tokens,
            live_tokens: index,
            expiry: store.read_model("expiry")?,
            rooms: crate::roommodel::Rooms::open(store)?,
            devices: crate::devicemodel::Devices::open(store)?,
            pairing_codes: crate::codemodel::PairingCodes::open(store)?,
        })
    }

    /// The device-code model.
    pub fn devices(&self) -> &crate::devicemodel::Devices {
        &self.devices
    }

    /// The pairing-code model.
    pub fn pairing_codes(&self) -> &crate::codemodel::PairingCodes {
        &self.pairing_codes
    }

    /// The rooms model.
    pub fn rooms(&self) -> &crate::roommodel::Rooms {
        &self.rooms
    }

    /// A live token by the SHA-256 of its raw value, from the in-memory index (no I/O).
    pub fn live_token(&self, hash: &[u8; 32]) -> Option<LiveToken> {
        self.live_tokens.get(hash)
    }

    /// A live token by the SHA-256 of its raw value.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRow>> {
        decode_row(self.tokens.get(&prefixed(b"t", hash))?)
    }

    /// A live token by its id.
    pub fn token_by_id(&self, id: TokenId) -> StoreResult<Option<TokenRow>> {
        match self.tokens.get(&prefixed(b"i", id.0.as_bytes()))? {
            Some(hash) => decode_row(self.tokens.get(&prefixed(b"t", &hash))?),
            None => Ok(None),
        }
    }

    /// The owner of any token ever minted, live or not.
    pub fn token_owner(&self, id: TokenId) -> StoreResult<Option<UserId>> {
        Ok(uuid_of(self.tokens.get(&prefixed(b"o", id.0.as_bytes()))?).map(UserId))
    }

    /// A user's live tokens.
    pub fn tokens_of(&self, user: UserId) -> StoreResult<Vec<TokenRow>> {
        let prefix = prefixed(b"u", user.0.as_bytes());
        let mut out = Vec::new();
        for kv in self.tokens.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let Some(id) = k.get(17..33).and_then(|b| Uuid::from_slice(b).ok()) else {
                continue;
            };
            if let Some(row) = self.token_by_id(TokenId(id))? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// A user by id.
    pub fn user(&self, id: UserId) -> StoreResult<Option<UserRow>> {
        decode_row(self.users.get(&user_key(&id))?)
    }

    /// The owner of a key fingerprint.
    pub fn user_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<UserId>> {
        Ok(uuid_of(self.users.get(&prefixed(b"k", fingerprint.as_bytes()))?).map(UserId))
    }

    /// The owner of a handle.
    pub fn user_by_handle(&self, handle: &str) -> StoreResult<Option<UserId>> {
        Ok(uuid_of(self.users.get(&prefixed(b"h", handle.as_bytes()))?).map(UserId))
    }

    /// Challenges due at `now`, oldest first, at most `limit`.
    pub fn due_challenges(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<PairingId>> {
        let end = due_key(b'c', Timestamp(now.0.saturating_add(1)), &[]);
        let mut out = Vec::new();
        for kv in self.expiry.range(b"c", &end).take(limit) {
            let (k, _) = kv?;
            if let Some(id) = k.get(9..25).and_then(|b| Uuid::from_slice(b).ok()) {
                out.push(PairingId(id));
            }
        }
        Ok(out)
    }

    /// Users with tokens due at `now`, at most `limit` entries scanned.
    pub fn due_token_owners(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<UserId>> {
        let end = due_key(b't', Timestamp(now.0.saturating_add(1)), &[]);
        let mut out = Vec::new();
        for kv in self.expiry.range(b"t", &end).take(limit) {
            let (k, _) = kv?;
            if let Some(id) = k.get(9..25).and_then(|b| Uuid::from_slice(b).ok()) {
                if !out.contains(&UserId(id)) {
                    out.push(UserId(id));
                }
            }
        }
        Ok(out)
    }
}

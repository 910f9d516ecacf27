//! The live-token index in memory: SHA-256(token) -> what a bearer check needs. It mirrors
//! the `t` rows of `rm/tokens` (live tokens only), so `Core::authenticate` answers without
//! a sled read or a row decode.
//!
//! **Read-your-writes.** The tokens projection changes this index while it applies an
//! event, which is before the projector commits the chunk and publishes `applied_seq`. So
//! a handler that waited for its seq sees its mint, and a revocation is gone from the
//! index before its answer, exactly as with the sled rows. A chunk that fails and is
//! applied again changes the index to the same result (every change is idempotent).
//!
//! Must not: hold the secret (the key is its SHA-256), or be written by anything but the
//! tokens projection and [`TokenIndex::load`].

use crate::readmodel::TokenRow;
use latchkey_domain::{Scope, Timestamp, TokenId, TokenKind, UserId};
use latchkey_store::projection::ReadModel;
use latchkey_store::{codec, StoreResult};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

/// What auth reads of a live token (the rest of its record stays in `rm/tokens`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveToken {
    /// Public id.
    pub token_id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// Session, device or personal.
    pub kind: TokenKind,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it lapses (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// Last recorded use.
    pub last_used_at: Option<Timestamp>,
}

impl From<&TokenRow> for LiveToken {
    fn from(row: &TokenRow) -> Self {
        Self {
            token_id: row.token_id,
            user_id: row.user_id,
            kind: row.token.kind,
            scopes: row.token.scopes.clone(),
            expires_at: row.token.expires_at,
            last_used_at: row.token.last_used_at,
        }
    }
}

/// Hashes a key that is already a SHA-256 by taking its first eight bytes. The keys in
/// the map are digests of tokens made from 32 CSPRNG bytes, so nobody can choose them to
/// collide, and a lookup skips SipHash over 32 bytes on every authenticated request.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` writes its length, then its bytes: the first eight bytes of each
        // write are mixed in, which for the digest is eight random bytes.
        let mut word = [0u8; 8];
        for (w, b) in word.iter_mut().zip(bytes) {
            *w = *b;
        }
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }
}

type Map = HashMap<[u8; 32], LiveToken, BuildHasherDefault<DigestHasher>>;

/// The shared index; clones share one map.
#[derive(Clone, Default)]
pub struct TokenIndex(Arc<RwLock<Map>>);

impl TokenIndex {
    /// A live token by the SHA-256 of its raw value.
    pub fn get(&self, hash: &[u8; 32]) -> Option<LiveToken> {
        self.0.read().ok()?.get(hash).cloned()
    }

    /// Replaces the whole index with the `t` rows of `rm/tokens`.
    pub fn load(&self, tokens: &ReadModel) -> StoreResult<()> {
        let mut map = Map::default();
        for kv in tokens.scan_prefix(b"t") {
            let (k, v) = kv?;
            let Some(hash) = k.get(1..).and_then(|h| <[u8; 32]>::try_from(h).ok()) else {
                continue;
            };
            let row: TokenRow = codec::decode(&v, "read model row")?;
            map.insert(hash, LiveToken::from(&row));
        }
        if let Ok(mut m) = self.0.write() {
            *m = map;
        }
        Ok(())
    }

    /// A minted token is live.
    pub(crate) fn insert(&self, row: &TokenRow) {
        if let Ok(mut m) = self.0.write() {
            m.insert(row.token.hash, LiveToken::from(row));
        }
    }

    /// A token was used at `at`.
    pub(crate) fn used(&self, hash: &[u8; 32], at: Timestamp) {
        if let Ok(mut m) = self.0.write() {
            if let Some(t) = m.get_mut(hash) {
                t.last_used_at = Some(at);
            }
        }
    }

    /// A token was revoked or expired.
    pub(crate) fn remove(&self, hash: &[u8; 32]) {
        if let Ok(mut m) = self.0.write() {
            m.remove(hash);
        }
    }

    /// How many live tokens it holds.
    pub fn len(&self) -> usize {
        self.0.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    //! The index against the rows it mirrors: every change the tokens projection makes to
    //! `rm/tokens` shows in the index by the time the chunk is applied, and an index loaded
    //! from the rows afterwards is the same.
    use super::*;
    use crate::entity::execute_blocking;
    use crate::readmodel::{projections_with, ReadModels};
    use crate::tests::{register, store, T0};
    use latchkey_domain::user::MintToken;
    use latchkey_domain::{Actor, RevokeReason, UserCommand, UserDecider};
    use latchkey_store::projection::Projector;
    use latchkey_store::{EventStore, SledStore};
    use uuid::Uuid;

    fn run(store: &SledStore, user: UserId, cmd: UserCommand) {
        execute_blocking::<UserDecider>(store, user.stream(), &cmd, Actor::System).unwrap();
    }

    fn mint(n: u8) -> (TokenId, [u8; 32], UserCommand) {
        let token_id = TokenId(Uuid::new_v4());
        let cmd = MintToken {
            token_id,
            hash: [n; 32],
            kind: TokenKind::Personal,
            scopes: vec![Scope::ChatRead],
            name: Some(format!("t{n}")),
            device_name: None,
            user_agent: None,
            ip: None,
            key_fingerprint: None,
            expires_at: Some(T0.plus_secs(3600)),
            now: T0,
        };
        (token_id, [n; 32], cmd.into())
    }

    /// The whole index, sorted, for comparing two of them.
    fn contents(index: &TokenIndex) -> Vec<([u8; 32], LiveToken)> {
        let map = index.0.read().unwrap();
        let mut all: Vec<_> = map.iter().map(|(k, v)| (*k, v.clone())).collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    #[test]
    fn the_index_follows_mint_use_and_revoke_and_reloads_the_same() {
        let (_dir, store) = store();
        let index = TokenIndex::default();
        let mut projector = Projector::new(store.clone(), projections_with(index.clone())).unwrap();
        let user = UserId(Uuid::new_v4());
        run(&store, user, register(user));
        let (kept, kept_hash, cmd) = mint(1);
        run(&store, user, cmd);
        let (gone, gone_hash, cmd) = mint(2);
        run(&store, user, cmd);
        projector.catch_up().unwrap();
        assert_eq!(index.len(), 2);
        let live = index.get(&kept_hash).unwrap();
        assert_eq!((live.token_id, live.user_id), (kept, user));
        assert_eq!(live.last_used_at, None);

        let used_at = T0.plus_secs(10);
        let use_cmd = UserCommand::RecordTokenUse {
            token_id: kept,
            now: used_at,
        };
        run(&store, user, use_cmd);
        let revoke = UserCommand::RevokeToken {
            token_id: gone,
            reason: RevokeReason::Logout,
            now: used_at,
        };
        run(&store, user, revoke);
        projector.catch_up().unwrap();
        assert_eq!(index.get(&kept_hash).unwrap().last_used_at, Some(used_at));
        assert_eq!(
            index.get(&gone_hash),
            None,
            "a revoked token left the index"
        );
        assert_eq!(index.len(), 1);

        // A server starting on these rows loads the same index.
        let fresh = TokenIndex::default();
        let models = ReadModels::open_with(store.as_ref(), fresh.clone()).unwrap();
        assert_eq!(contents(&fresh), contents(&index));
        assert_eq!(models.live_token(&kept_hash), index.get(&kept_hash));
        assert_eq!(
            models
                .token_by_hash(&kept_hash)
                .unwrap()
                .map(|r| LiveToken::from(&r)),
            index.get(&kept_hash),
            "the index holds what the row holds"
        );
        assert!(store.head() > 0);
    }
}

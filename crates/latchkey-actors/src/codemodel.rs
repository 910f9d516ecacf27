//! The pairing-code read model (`rm/pairing_codes`): pending codes by code hash, their
//! rows for the admins' list, and the sweeper's due list.
//!
//! - `h`+SHA-256(code) -> code id, while the code is pending.
//! - `p`+code id -> `PendingCode`, while the code is pending.
//! - `e`+expires_at+code id -> (), while the code is pending.
//!
//! Only the hash is a key: the model never holds a code.

use latchkey_domain::{Event, PairingEvent, PairingId, Timestamp};
use latchkey_store::codec;
use latchkey_store::projection::{Projection, ReadModel, ReadModelWriter};
use latchkey_store::{EventStore, Recorded, StoreResult};
use uuid::Uuid;

/// A pending code as the model stores it: the domain's record of the mint.
pub use latchkey_domain::paircode::MintedCode as PendingCode;

/// Projection of pairing codes (`rm/pairing_codes`).
pub struct PairingCodesProjection;

fn key(tag: u8, rest: &[u8]) -> Vec<u8> {
    crate::readmodel::row_key(tag, &[rest])
}

fn due_key(at: Timestamp, id: &Uuid) -> Vec<u8> {
    crate::readmodel::due_key(b'e', at, &[id])
}

impl Projection for PairingCodesProjection {
    fn name(&self) -> &str {
        "pairing_codes"
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let Event::Pairing(e) = &rec.event else {
            return Ok(());
        };
        let Some(id) = rec.envelope.stream.uuid() else {
            return Ok(());
        };
        let row_key = key(b'p', id.as_bytes());
        match e {
            PairingEvent::PairingCodeMinted { .. } => {
                let Some(row) = PendingCode::minted_by(e) else {
                    return Ok(());
                };
                rm.insert(key(b'h', &row.code_hash), id.as_bytes().to_vec())?;
                rm.insert(due_key(row.expires_at, &id), Vec::new())?;
                rm.insert(row_key, codec::encode(&row)?)?;
            }
            PairingEvent::PairingCodeRedeemed { .. }
            | PairingEvent::PairingCodeRevoked { .. }
            | PairingEvent::PairingCodeExpired { .. } => {
                if let Some(b) = rm.get(&row_key)? {
                    let row: PendingCode = codec::decode(&b, "pairing code row")?;
                    rm.remove(key(b'h', &row.code_hash))?;
                    rm.remove(due_key(row.expires_at, &id))?;
                    rm.remove(row_key)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Read access to `rm/pairing_codes`.
#[derive(Clone)]
pub struct PairingCodes {
    tree: ReadModel,
}

impl PairingCodes {
    /// Opens the model of a store.
    pub fn open(store: &dyn EventStore) -> StoreResult<Self> {
        Ok(Self {
            tree: store.read_model("pairing_codes")?,
        })
    }

    /// The pending code whose raw value hashes to `hash`.
    pub fn pending_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<PairingId>> {
        Ok(self
            .tree
            .get(&key(b'h', hash))?
            .and_then(|b| Uuid::from_slice(&b).ok())
            .map(PairingId))
    }

    /// Every pending code, oldest first (codes past their expiry that the sweeper has not
    /// reached yet included: the caller filters by `now`).
    pub fn pending(&self) -> StoreResult<Vec<PendingCode>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"p") {
            let (_, v) = kv?;
            out.push(codec::decode::<PendingCode>(&v, "pairing code row")?);
        }
        out.sort_by_key(|c| (c.created_at, c.code_id.0));
        Ok(out)
    }

    /// Pending codes due at `now`, oldest first, at most `limit`.
    pub fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<PairingId>> {
        let end = due_key(Timestamp(now.0.saturating_add(1)), &Uuid::nil());
        let mut out = Vec::new();
        for kv in self.tree.range(b"e", &end).take(limit) {
            let (k, _) = kv?;
            if let Some(id) = k.get(9..25).and_then(|b| Uuid::from_slice(b).ok()) {
                out.push(PairingId(id));
            }
        }
        Ok(out)
    }
}

//! The device-code read model (`rm/devices`): pending device authorizations by user-code
//! hash, every device authorization by device-code hash, and the sweeper's due list.
//!
//! - `u`+SHA-256(user code) -> pairing id, while the request is pending; `U`+pairing id ->
//!   the `u` key, to remove it.
//! - `d`+SHA-256(device code) -> pairing id, kept for good, so a late poll of a denied,
//!   expired or redeemed code still gets its own answer.
//! - `e`+expires_at+pairing id -> (), while the request is open (pending or approved);
//!   `E`+pairing id -> the `e` key, to remove it.
//!
//! Only hashes are keys: the model never holds a device code or a user code.

use latchkey_domain::{Event, PairingEvent, PairingId, Timestamp};
use latchkey_store::projection::{Projection, ReadModel, ReadModelWriter};
use latchkey_store::{EventStore, Recorded, StoreResult};
use uuid::Uuid;

/// Projection of device authorizations (`rm/devices`).
pub struct DevicesProjection;

fn key(tag: u8, rest: &[u8]) -> Vec<u8> {
    crate::readmodel::row_key(tag, &[rest])
}

fn due_key(at: Timestamp, id: &Uuid) -> Vec<u8> {
    crate::readmodel::due_key(b'e', at, &[id])
}

/// Removes the entry `back` points to, and `back` itself.
fn remove_via(rm: &mut ReadModelWriter<'_>, back: Vec<u8>) -> StoreResult<()> {
    if let Some(k) = rm.get(&back)? {
        rm.remove(k)?;
        rm.remove(back)?;
    }
    Ok(())
}

impl Projection for DevicesProjection {
    fn name(&self) -> &str {
        "devices"
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let Event::Pairing(e) = &rec.event else {
            return Ok(());
        };
        let Some(id) = rec.envelope.stream.uuid() else {
            return Ok(());
        };
        let id_bytes = id.as_bytes().to_vec();
        match e {
            PairingEvent::DeviceAuthorizationRequested {
                device_code_hash,
                user_code_hash,
                expires_at,
                ..
            } => {
                let u = key(b'u', user_code_hash);
                rm.insert(key(b'U', &id_bytes), u.clone())?;
                rm.insert(u, id_bytes.clone())?;
                rm.insert(key(b'd', device_code_hash), id_bytes.clone())?;
                let due = due_key(*expires_at, &id);
                rm.insert(key(b'E', &id_bytes), due.clone())?;
                rm.insert(due, Vec::new())?;
            }
            // Approved: no longer findable by user code, still due for expiry.
            PairingEvent::DeviceApproved { .. } => remove_via(rm, key(b'U', &id_bytes))?,
            PairingEvent::DeviceDenied { .. }
            | PairingEvent::DeviceAuthorizationCancelled { .. }
            | PairingEvent::DeviceTokenIssued { .. }
            | PairingEvent::DeviceAuthorizationExpired { .. } => {
                remove_via(rm, key(b'U', &id_bytes))?;
                remove_via(rm, key(b'E', &id_bytes))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Read access to `rm/devices`.
#[derive(Clone)]
pub struct Devices {
    tree: ReadModel,
}

fn pairing_of(v: Option<Vec<u8>>) -> Option<PairingId> {
    v.and_then(|b| Uuid::from_slice(&b).ok()).map(PairingId)
}

impl Devices {
    /// Opens the model in a store.
    pub fn open(store: &dyn EventStore) -> StoreResult<Self> {
        Ok(Self {
            tree: store.read_model("devices")?,
        })
    }

    /// The pending request whose user code hashes to `hash`.
    pub fn pending_by_user_code(&self, hash: &[u8; 32]) -> StoreResult<Option<PairingId>> {
        Ok(pairing_of(self.tree.get(&key(b'u', hash))?))
    }

    /// The request whose device code hashes to `hash`, in any state.
    pub fn by_device_code(&self, hash: &[u8; 32]) -> StoreResult<Option<PairingId>> {
        Ok(pairing_of(self.tree.get(&key(b'd', hash))?))
    }

    /// Open requests due at `now`, oldest first, at most `limit`.
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

//! Every event latchkey stores: the append-only vocabulary of the log.
//!
//! These types are encoded by `latchkey-store`'s codec (bincode, serde). The enum variant
//! index is the encoding, so variants are append-only and never reordered; serde attributes
//! that bincode cannot round-trip (`flatten`, `skip_serializing_if`, `untagged`, `tag`) are
//! banned here. They never go on the wire: `latchkey-proto` converts them by hand.

use crate::ids::{KeyId, MessageId, PairingId, RoomId, Timestamp, TokenId, UserId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The schema version of the payloads below, written into every envelope.
pub const SCHEMA: u16 = 1;

/// One stored event, of any aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An event of a `user/<uuid>` stream.
    User(UserEvent),
    /// An event of a `pairing/<uuid>` stream.
    Pairing(PairingEvent),
    /// An event of a `room/<uuid>` stream.
    Room(RoomEvent),
}

/// The key algorithms latchkey accepts: an explicit allowlist (DESIGN §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// `ssh-ed25519`
    Ed25519,
    /// `sk-ssh-ed25519@openssh.com` (FIDO; needs the user-presence flag)
    SkEd25519,
    /// `ecdsa-sha2-nistp256`
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The OpenSSH algorithm name.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ssh-ed25519",
            KeyAlgorithm::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            KeyAlgorithm::EcdsaP256 => "ecdsa-sha2-nistp256",
        }
    }
}

/// A public key as latchkey stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPublicKey {
    /// The algorithm, from the allowlist.
    pub algorithm: KeyAlgorithm,
    /// The OpenSSH public key line without its comment: `<algorithm> <base64>`.
    pub openssh: String,
    /// `SHA256:<base64, unpadded>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The comment of the key line, possibly empty.
    pub comment: String,
}

/// What kind of credential a token is; also decides its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenKind {
    /// `lks_`: minted by an SSH challenge; the only interactive credential.
    Session,
    /// `lkd_`: minted by device flow or a pairing code.
    Device,
    /// `lkp_`: a personal access token.
    Personal,
}

/// A permission carried by a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// History and WebSocket.
    ChatRead,
    /// Post, create, join, leave.
    ChatWrite,
    /// Admin routes; only on sessions of admin users.
    Admin,
}

/// Why a token stopped being valid before its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevokeReason {
    /// The holder logged out with it.
    Logout,
    /// The user revoked it from their token list.
    Revoked,
    /// Part of a revoke-all.
    RevokeAll,
    /// The key that minted this session was removed.
    KeyRemoved,
    /// The user was disabled.
    UserDisabled,
    /// An admin revoked it.
    Admin,
    /// The same user paired the same device (client and device name) again.
    Replaced,
}

/// Why a pairing's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The challenge had expired when the signature arrived.
    Expired,
    /// The signature is not a valid SSHSIG over the message with this key and namespace.
    InvalidSignature,
    /// A FIDO signature without the user-presence flag.
    UserPresenceMissing,
    /// A valid signature by a key that belongs to no user, while registration is closed.
    KeyUnknown,
}

/// What a challenge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengePurpose {
    /// Sign in (or register, when registration is open) and mint a session.
    SignIn,
    /// Prove possession of a new key that this user wants to add.
    AddKey(UserId),
}

/// Events of the `user/<uuid>` stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A user was created with its first key.
    UserRegistered {
        /// The new user's id.
        user_id: UserId,
        /// Unique handle, 1–32 chars of `[a-z0-9_-]`.
        handle: String,
        /// Id of the first key.
        key_id: KeyId,
        /// The first key.
        key: SshPublicKey,
        /// Whether the user is an admin.
        admin: bool,
        /// When.
        at: Timestamp,
    },
    /// A key was added (after a proof signed by it).
    KeyAdded {
        /// Id of the key.
        key_id: KeyId,
        /// The key.
        key: SshPublicKey,
        /// When.
        at: Timestamp,
    },
    /// A key was removed.
    KeyRemoved {
        /// Id of the key.
        key_id: KeyId,
        /// Its fingerprint, for audit.
        fingerprint: String,
    },
    /// A token was minted. Only its SHA-256 is stored, never the secret.
    TokenMinted {
        /// Public id.
        token_id: TokenId,
        /// SHA-256 of the raw token.
        hash: [u8; 32],
        /// Session, device or personal.
        kind: TokenKind,
        /// Scopes carried.
        scopes: Vec<Scope>,
        /// Name given by the user (PATs).
        name: Option<String>,
        /// Device name given at sign-in or pairing.
        device_name: Option<String>,
        /// User-Agent at mint time.
        user_agent: Option<String>,
        /// Client IP, after the retention policy was applied.
        ip: Option<IpAddr>,
        /// Fingerprint of the key that minted a session.
        key_fingerprint: Option<String>,
        /// When.
        created_at: Timestamp,
        /// None: never expires.
        expires_at: Option<Timestamp>,
    },
    /// A token was used (recorded at most every 5 minutes per token).
    TokenUsed {
        /// Which token.
        token_id: TokenId,
        /// When.
        at: Timestamp,
    },
    /// A token was revoked.
    TokenRevoked {
        /// Which token.
        token_id: TokenId,
        /// Why.
        reason: RevokeReason,
        /// When.
        at: Timestamp,
    },
    /// A token passed its expiry (emitted by the sweeper).
    TokenExpired {
        /// Which token.
        token_id: TokenId,
    },
    /// The user was disabled; their tokens are revoked by separate events.
    UserDisabled {
        /// When.
        at: Timestamp,
    },
    /// The user was enabled again. Revoked tokens stay revoked.
    UserEnabled {
        /// When.
        at: Timestamp,
    },
}

/// Events of the `pairing/<uuid>` stream (the SSH challenge part).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairingEvent {
    /// A challenge was issued for a key.
    ChallengeIssued {
        /// The challenge (and pairing) id.
        challenge_id: PairingId,
        /// Server line of the message (`server=`).
        server: String,
        /// The key that must sign.
        key: SshPublicKey,
        /// 32 random bytes; public, part of the signed message.
        nonce: [u8; 32],
        /// What the challenge is for.
        purpose: ChallengePurpose,
        /// When it was issued.
        issued_at: Timestamp,
        /// When it stops being accepted.
        expires_at: Timestamp,
        /// Client IP after the retention policy.
        ip: Option<IpAddr>,
    },
    /// A valid signature consumed the challenge.
    SignatureVerified {
        /// The user the signature signs in as (new when this registers them).
        user_id: UserId,
        /// When.
        at: Timestamp,
    },
    /// A signature was refused; the challenge is consumed all the same.
    SignatureRejected {
        /// Why.
        reason: RejectReason,
        /// When.
        at: Timestamp,
    },
    /// The challenge lapsed unused (emitted by the sweeper).
    ChallengeExpired {
        /// When.
        at: Timestamp,
    },
    /// A device asked for authorization (RFC 8628 device authorization request). Only
    /// hashes of the device code and the user code are stored.
    DeviceAuthorizationRequested {
        /// The pairing (stream) id.
        pairing_id: PairingId,
        /// The app's name as the device gave it.
        client_id: String,
        /// Requested scopes, sorted.
        scopes: Vec<Scope>,
        /// The device's name.
        device_name: Option<String>,
        /// SHA-256 of the device code.
        device_code_hash: [u8; 32],
        /// SHA-256 of the canonical user code (`XXXX-XXXX`).
        user_code_hash: [u8; 32],
        /// The key to enroll and its proof challenge, if the device sent one.
        key: Option<KeyChallenge>,
        /// The first polling interval, seconds.
        interval_secs: u32,
        /// When.
        requested_at: Timestamp,
        /// When the device code lapses.
        expires_at: Timestamp,
        /// Requester's IP after the retention policy.
        ip: Option<IpAddr>,
        /// Requester's User-Agent.
        user_agent: Option<String>,
    },
    /// The device proved it holds the key it asked to enroll.
    DeviceKeyProven {
        /// When.
        at: Timestamp,
    },
    /// A signed-in user approved the request.
    DeviceApproved {
        /// The approver; the device token is theirs.
        by: UserId,
        /// Granted scopes (a subset of the requested ones).
        scopes: Vec<Scope>,
        /// The device name the token carries.
        device_name: Option<String>,
        /// Token lifetime in seconds from its minting; none: never expires.
        token_ttl_secs: Option<u64>,
        /// The id the enrolled key gets on the approver's account (links the `KeyAdded`).
        key_id: Option<KeyId>,
        /// When.
        at: Timestamp,
    },
    /// A signed-in user denied the request.
    DeviceDenied {
        /// Who.
        by: UserId,
        /// When.
        at: Timestamp,
    },
    /// The device cancelled the request.
    DeviceAuthorizationCancelled {
        /// When.
        at: Timestamp,
    },
    /// The device redeemed its code; the token is minted on the approver's stream.
    DeviceTokenIssued {
        /// The minted token's id.
        token_id: TokenId,
        /// When.
        at: Timestamp,
    },
    /// The request lapsed before it was redeemed (emitted by the sweeper).
    DeviceAuthorizationExpired {
        /// When.
        at: Timestamp,
    },
    /// An admin minted a one-time pairing code for a user (DESIGN §12). Only the code's
    /// SHA-256 is stored.
    PairingCodeMinted {
        /// The code's id (the stream's id).
        code_id: PairingId,
        /// The user the device token will belong to.
        user_id: UserId,
        /// SHA-256 of the raw `lkc_` code.
        code_hash: [u8; 32],
        /// The scopes the device token will carry, sorted.
        scopes: Vec<Scope>,
        /// The admin's note.
        note: Option<String>,
        /// The minting admin; `None` for the offline tool.
        by: Option<UserId>,
        /// When.
        created_at: Timestamp,
        /// When it stops being accepted.
        expires_at: Timestamp,
    },
    /// A device redeemed the code; the token (and a proven key) are on the user's stream.
    PairingCodeRedeemed {
        /// The minted device token's id.
        token_id: TokenId,
        /// The name the device gave.
        device_name: Option<String>,
        /// The id of the key the device enrolled (links the `KeyAdded`), if any.
        key_id: Option<KeyId>,
        /// When.
        at: Timestamp,
    },
    /// An admin revoked the code before it was used.
    PairingCodeRevoked {
        /// The admin; `None` for the offline tool.
        by: Option<UserId>,
        /// When.
        at: Timestamp,
    },
    /// The code lapsed unused (emitted by the sweeper).
    PairingCodeExpired {
        /// When.
        at: Timestamp,
    },
}

/// The key a device asks to enroll, with the challenge that proves it holds it: an
/// ordinary `latchkey-auth-v1` message whose `challenge=` line is the pairing id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChallenge {
    /// The key.
    pub key: SshPublicKey,
    /// The `server=` line.
    pub server: String,
    /// 32 random bytes from the caller.
    pub nonce: [u8; 32],
    /// When the proof stops being accepted.
    pub expires_at: Timestamp,
}

/// Who may join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoomVisibility {
    /// Anyone may join and discover it.
    Public,
    /// Only the owner adds members.
    Private,
}

/// Why someone stopped being a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaveReason {
    /// They left.
    Left,
    /// The owner removed them.
    Removed,
}

/// Events of the `room/<uuid>` stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomEvent {
    /// A room was created; its owner is a member from this event on.
    RoomCreated {
        /// The room.
        room_id: RoomId,
        /// Display name.
        name: String,
        /// Public or private.
        visibility: RoomVisibility,
        /// The creator.
        owner: UserId,
        /// When.
        at: Timestamp,
    },
    /// Someone became a member.
    MemberJoined {
        /// The new member.
        user_id: UserId,
        /// Who added them (themselves for a join).
        by: UserId,
        /// When.
        at: Timestamp,
    },
    /// Someone stopped being a member; they still see this event.
    MemberLeft {
        /// The former member.
        user_id: UserId,
        /// Who removed them (themselves for a leave).
        by: UserId,
        /// Left or removed.
        reason: LeaveReason,
        /// When.
        at: Timestamp,
    },
    /// A message was posted.
    MessagePosted {
        /// The message.
        message_id: MessageId,
        /// Who posted it.
        sender: UserId,
        /// 1..4000 bytes of UTF-8.
        body: String,
        /// Empty: every member sees it. Otherwise only these and the sender.
        target_user_ids: Vec<UserId>,
        /// The message this answers.
        reply_to: Option<MessageId>,
        /// When.
        at: Timestamp,
    },
    /// A message was posted with its body detached (issue 16): the hash-chained envelope
    /// holds only `body_hash`; the body itself lives beside the log (the store's `bodies`
    /// tree) so that it can be erased while the chain stays verifiable. Type name
    /// `message.posted`, like the legacy variant it replaces for new posts.
    MessagePostedV2 {
        /// The message.
        message_id: MessageId,
        /// Who posted it.
        sender: UserId,
        /// [`MessageBody::hash`] of the body: commits the log to it without holding it.
        body_hash: [u8; 32],
        /// Empty: every member sees it. Otherwise only these and the sender.
        target_user_ids: Vec<UserId>,
        /// The message this answers.
        reply_to: Option<MessageId>,
        /// When.
        at: Timestamp,
        /// The body, when it is known and not erased. Never encoded into the payload
        /// (`serde(skip)`): the store writes it beside the envelope on append and joins it
        /// back on read; `None` once it is erased.
        #[serde(skip)]
        body: Option<MessageBody>,
    },
    /// A message was deleted by its sender or erased by an admin; its body is removed
    /// from storage in the same write. Carries the message's audience so the visibility
    /// rule routes it to the members who could see the message.
    MessageDeleted {
        /// The message.
        message_id: MessageId,
        /// Who had posted it.
        sender: UserId,
        /// The message's targets; empty for everyone.
        target_user_ids: Vec<UserId>,
        /// Who deleted it; `None` for the offline admin tool.
        by: Option<UserId>,
        /// The sender deleted it, or an admin erased it.
        reason: DeleteReason,
        /// When.
        at: Timestamp,
    },
}

/// Why a message was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeleteReason {
    /// Its sender deleted it.
    Sender,
    /// An admin erased the sender's messages.
    Admin,
}

/// A detached message body: the text and the per-message secret that salts its hash and
/// keys its encryption at rest. Never part of a hash-chained envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageBody {
    /// 1..4000 bytes of UTF-8.
    pub text: String,
    /// 32 random bytes made by the caller (the actors' entropy), one per message.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret keys the body's encryption at rest: never in a log line.
        f.debug_struct("MessageBody")
            .field("text", &self.text)
            .finish_non_exhaustive()
    }
}

impl MessageBody {
    /// SHA-256 over a domain tag, the secret and the text. The secret salts it, so the
    /// hash left in the log cannot confirm a guessed body once the secret is erased with
    /// the body.
    pub fn hash(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"latchkey-message-body-v1\0");
        h.update(self.secret);
        h.update(self.text.as_bytes());
        h.finalize().into()
    }
}

impl Event {
    /// Every event type name, in declaration order. `proto-docs/events.md` documents each.
    pub const ALL_TYPES: &'static [&'static str] = &[
        "user.registered",
        "key.added",
        "key.removed",
        "token.minted",
        "token.used",
        "token.revoked",
        "token.expired",
        "user.disabled",
        "user.enabled",
        "challenge.issued",
        "signature.verified",
        "signature.rejected",
        "challenge.expired",
        "device.requested",
        "device.key_proven",
        "device.approved",
        "device.denied",
        "device.cancelled",
        "device.token_issued",
        "device.expired",
        "pairing_code.minted",
        "pairing_code.redeemed",
        "pairing_code.revoked",
        "pairing_code.expired",
        "room.created",
        "member.joined",
        "member.left",
        "message.posted",
        "message.deleted",
    ];

    /// The stable type name written into the envelope and shown by tools and the WebSocket.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::User(e) => match e {
                UserEvent::UserRegistered { .. } => "user.registered",
                UserEvent::KeyAdded { .. } => "key.added",
                UserEvent::KeyRemoved { .. } => "key.removed",
                UserEvent::TokenMinted { .. } => "token.minted",
                UserEvent::TokenUsed { .. } => "token.used",
                UserEvent::TokenRevoked { .. } => "token.revoked",
                UserEvent::TokenExpired { .. } => "token.expired",
                UserEvent::UserDisabled { .. } => "user.disabled",
                UserEvent::UserEnabled { .. } => "user.enabled",
            },
            Event::Pairing(e) => match e {
                PairingEvent::ChallengeIssued { .. } => "challenge.issued",
                PairingEvent::SignatureVerified { .. } => "signature.verified",
                PairingEvent::SignatureRejected { .. } => "signature.rejected",
                PairingEvent::ChallengeExpired { .. } => "challenge.expired",
                PairingEvent::DeviceAuthorizationRequested { .. } => "device.requested",
                PairingEvent::DeviceKeyProven { .. } => "device.key_proven",
                PairingEvent::DeviceApproved { .. } => "device.approved",
                PairingEvent::DeviceDenied { .. } => "device.denied",
                PairingEvent::DeviceAuthorizationCancelled { .. } => "device.cancelled",
                PairingEvent::DeviceTokenIssued { .. } => "device.token_issued",
                PairingEvent::DeviceAuthorizationExpired { .. } => "device.expired",
                PairingEvent::PairingCodeMinted { .. } => "pairing_code.minted",
                PairingEvent::PairingCodeRedeemed { .. } => "pairing_code.redeemed",
                PairingEvent::PairingCodeRevoked { .. } => "pairing_code.revoked",
                PairingEvent::PairingCodeExpired { .. } => "pairing_code.expired",
            },
            Event::Room(e) => match e {
                RoomEvent::RoomCreated { .. } => "room.created",
                RoomEvent::MemberJoined { .. } => "member.joined",
                RoomEvent::MemberLeft { .. } => "member.left",
                RoomEvent::MessagePosted { .. } | RoomEvent::MessagePostedV2 { .. } => {
                    "message.posted"
                }
                RoomEvent::MessageDeleted { .. } => "message.deleted",
            },
        }
    }
}

impl From<UserEvent> for Event {
    fn from(e: UserEvent) -> Self {
        Event::User(e)
    }
}
impl From<PairingEvent> for Event {
    fn from(e: PairingEvent) -> Self {
        Event::Pairing(e)
    }
}
impl From<RoomEvent> for Event {
    fn from(e: RoomEvent) -> Self {
        Event::Room(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_types_are_unique_and_cover_every_variant() {
        let mut seen = std::collections::HashSet::new();
        for t in Event::ALL_TYPES {
            assert!(seen.insert(*t), "duplicate event type {t}");
        }
        let sample = Event::User(UserEvent::UserDisabled { at: Timestamp(0) });
        assert!(Event::ALL_TYPES.contains(&sample.event_type()));
    }
}

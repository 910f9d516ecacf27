//! Blocking HTTP calls the scenarios make as a user would: sign in with an in-process
//! Ed25519 key (SSHSIG, the bytes `ssh-keygen -Y sign` makes), create rooms, add members,
//! post. It speaks only `latchkey-proto` wire types and measures nothing itself.

use latchkey_proto::{
    AddMemberRequest, ChallengeRequest, ChallengeResponse, CreateRoomRequest, PostMessageRequest,
    RoomInfo, TokenRequest, TokenResponse,
};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use std::time::Duration;

/// The SSHSIG namespace sign-in uses.
pub const NAMESPACE: &str = "latchkey-auth";

/// A key pair a benchmark user signs in with.
#[derive(Clone)]
pub struct Identity {
    key: PrivateKey,
    public: String,
}

/// What a sign-in gives back.
#[derive(Clone, Debug)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// The signed-in user's id.
    pub user_id: String,
}

impl Identity {
    /// A fresh random Ed25519 key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
        let public = key.public_key().to_openssh()?;
        Ok(Self { key, public })
    }

    /// The OpenSSH public key line.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// Signs `message` in the sign-in namespace; the armored SSHSIG.
    pub fn sign(&self, message: &str) -> anyhow::Result<String> {
        Ok(self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, message.as_bytes())?
            .to_pem(LineEnding::LF)?)
    }
}

/// An HTTP agent with keep-alive and a generous timeout (the machine is shared with load).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .max_idle_connections_per_host(64)
        .build()
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Challenge, sign, token: one sign-in (the first one registers the user).
pub fn sign_in(agent: &ureq::Agent, url: &str, id: &Identity) -> anyhow::Result<Session> {
    let ch: ChallengeResponse = agent
        .post(&format!("{url}/api/native/challenge"))
        .send_json(ChallengeRequest {
            public_key: id.public().to_string(),
        })?
        .into_json()?;
    let signature = id.sign(&ch.message)?;
    let tr: TokenResponse = agent
        .post(&format!("{url}/api/native/token"))
        .send_json(TokenRequest {
            challenge_id: ch.challenge_id,
            signature,
            device_name: Some("latchkey-bench".into()),
            handle: None,
        })?
        .into_json()?;
    Ok(Session {
        token: tr.token,
        user_id: tr.user.id,
    })
}

/// Creates a private room owned by the token's user; its id.
pub fn create_room(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<String> {
    let room: RoomInfo = agent
        .post(&format!("{url}/api/native/rooms"))
        .set("Authorization", &bearer(token))
        .send_json(CreateRoomRequest {
            name: name.into(),
            visibility: latchkey_proto::RoomVisibility::Private,
        })?
        .into_json()?;
    Ok(room.id)
}

/// The room's owner adds a user.
pub fn add_member(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    room: &str,
    user_id: &str,
) -> anyhow::Result<()> {
    agent
        .post(&format!("{url}/api/native/rooms/{room}/members"))
        .set("Authorization", &bearer(token))
        .send_json(AddMemberRequest {
            user_id: user_id.into(),
        })?;
    Ok(())
}

/// `GET /api/native/ping` with the token: its HTTP status (200, or 401 once revoked).
pub fn ping_status(agent: &ureq::Agent, url: &str, token: &str) -> anyhow::Result<u16> {
    match agent
        .get(&format!("{url}/api/native/ping"))
        .set("Authorization", &bearer(token))
        .call()
    {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/native/token`: logs the token out.
pub fn logout(agent: &ureq::Agent, url: &str, token: &str) -> anyhow::Result<()> {
    agent
        .delete(&format!("{url}/api/native/token"))
        .set("Authorization", &bearer(token))
        .call()?;
    Ok(())
}

/// Posts a message and returns the acknowledgement: the message id and its seq.
pub fn post_message_acked(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    room: &str,
    body: &str,
) -> anyhow::Result<latchkey_proto::PostMessageResponse> {
    Ok(agent
        .post(&format!("{url}/api/native/rooms/{room}/messages"))
        .set("Authorization", &bearer(token))
        .send_json(PostMessageRequest {
            body: body.into(),
            target_user_ids: None,
            reply_to: None,
        })?
        .into_json()?)
}

/// Creates a room of the given visibility; its id.
pub fn create_room_with(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    name: &str,
    visibility: latchkey_proto::RoomVisibility,
) -> anyhow::Result<String> {
    let room: RoomInfo = agent
        .post(&format!("{url}/api/native/rooms"))
        .set("Authorization", &bearer(token))
        .send_json(CreateRoomRequest {
            name: name.into(),
            visibility,
        })?
        .into_json()?;
    Ok(room.id)
}

/// Joins a public room.
pub fn join_room(agent: &ureq::Agent, url: &str, token: &str, room: &str) -> anyhow::Result<()> {
    agent
        .post(&format!("{url}/api/native/rooms/{room}/join"))
        .set("Authorization", &bearer(token))
        .call()?;
    Ok(())
}

/// The newest message of the room at or below `seq` that the token may see, if any.
pub fn message_at_or_below(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    room: &str,
    seq: u64,
) -> anyhow::Result<Option<latchkey_proto::Message>> {
    let history: latchkey_proto::History = agent
        .get(&format!(
            "{url}/api/native/rooms/{room}/messages?before={}&limit=1",
            seq + 1
        ))
        .set("Authorization", &bearer(token))
        .call()?
        .into_json()?;
    Ok(history.messages.into_iter().next())
}

//! `latchkey login`, `logout` and `whoami`: sign in with a key file or through ssh-agent,
//! store the session token (0600) with the pinned server id, and use it.

use super::{or_dash, scopes_text, wire, Common};
use anyhow::Context;
use clap::Args;
use latchkey_client::signer::read_public_key;
use latchkey_client::store::{StoredLogin, StoredSession};
use latchkey_client::{login, Api, Error, LoginOptions, Signer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Which key signs: shared by `login`, `keys add` and `device login`.
#[derive(Args, Debug, Clone)]
pub struct KeyChoice {
    /// The private key file (default ~/.ssh/id_ed25519). With --agent: the key (or its
    /// .pub file) the agent should sign with.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Sign through ssh-agent (SSH_AUTH_SOCK): the private key never enters latchkey.
    #[arg(long)]
    pub agent: bool,
}

impl KeyChoice {
    /// The signer these flags name.
    pub fn signer(&self) -> anyhow::Result<Signer> {
        if self.agent {
            let want = match &self.key {
                Some(path) => Some(read_public_key(path)?),
                None => None,
            };
            return Ok(Signer::from_agent_env(want.as_ref())?);
        }
        let path = match &self.key {
            Some(p) => p.clone(),
            None => default_key()?,
        };
        Ok(Signer::from_key_file(&path)?)
    }
}

fn default_key() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --key FILE or --agent")?;
    let ssh = Path::new(&home).join(".ssh");
    ["id_ed25519", "id_ecdsa"]
        .iter()
        .map(|n| ssh.join(n))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "no key in {} (id_ed25519, id_ecdsa): pass --key FILE or --agent",
                ssh.display()
            )
        })
}

/// Flags of `latchkey login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    key: KeyChoice,
    /// Insist on this server id in challenges (default: the one pinned at first contact).
    #[arg(long)]
    server_id: Option<String>,
    /// The handle to register with, if this sign-in creates your account.
    #[arg(long)]
    handle: Option<String>,
    /// A name for this device in the token list (default: the host name).
    #[arg(long)]
    device_name: Option<String>,
    /// Also print the token (it is stored either way).
    #[arg(long)]
    show_token: bool,
}

/// `latchkey login`.
pub fn login_cmd(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = args.common.server_url()?;
    let api = Api::new(&url)?;
    let store = args.common.store()?;
    let pinned = store.load(&url)?.map(|l| l.server_id);
    let signer = args.key.signer()?;
    let options = LoginOptions {
        server_id: args.server_id.clone().or(pinned.clone()),
        handle: args.handle.clone(),
        device_name: args.device_name.clone().or_else(host_name),
    };
    let signed = login(&api, &signer, &options)?;
    let t = &signed.token;
    let path = store.save(&StoredLogin {
        server_url: url.clone(),
        server_id: signed.server_id.clone(),
        session: Some(StoredSession {
            token: t.token.clone(),
            token_id: t.token_id.clone(),
            kind: t.kind,
            expires_at: t.expires_at.clone(),
            user: t.user.clone(),
            key_fingerprint: Some(signed.fingerprint.clone()),
        }),
    })?;
    let mut out = json!({
        "server": url,
        "server_id": signed.server_id,
        "user": t.user,
        "registered": t.registered,
        "token_id": t.token_id,
        "kind": t.kind,
        "expires_at": t.expires_at,
        "key": signed.fingerprint,
        "token_file": path,
    });
    if args.show_token {
        out["token"] = json!(t.token);
    }
    args.common.emit(&out, || {
        let how = if args.key.agent {
            "ssh-agent"
        } else {
            "key file"
        };
        let verb = if t.registered {
            "registered and signed in"
        } else {
            "signed in"
        };
        println!("{verb} to {url} as {} ({})", t.user.handle, t.user.id);
        println!("key     {} ({how})", signed.fingerprint);
        if pinned.is_none() {
            println!(
                "server  {} (pinned: challenges naming another server are refused)",
                signed.server_id
            );
        }
        println!(
            "session {} expires {}",
            t.token_id,
            or_dash(t.expires_at.as_deref())
        );
        println!("stored  {}", path.display());
        if args.show_token {
            println!("token   {}", t.token);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `latchkey logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[command(flatten)]
    common: Common,
}

/// `latchkey logout`: revokes the stored token and forgets it (the pin stays).
pub fn logout_cmd(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let (api, session) = args.common.authed()?;
    let url = api.base_url().to_string();
    let revoked = match api.logout() {
        Ok(()) => true,
        // Already revoked or expired: forgetting it is all that is left to do.
        Err(Error::Http { status: 401, .. }) => false,
        Err(e) => return Err(e.into()),
    };
    args.common.store()?.forget_session(&url)?;
    let out = json!({"server": url, "token_id": session.token_id, "revoked": revoked});
    args.common.emit(&out, || {
        if revoked {
            println!("logged out of {url} (token {} revoked)", session.token_id);
        } else {
            println!("logged out of {url} (the server had already dropped the token)");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `latchkey whoami`.
#[derive(Args, Debug)]
pub struct WhoamiArgs {
    #[command(flatten)]
    common: Common,
}

/// `latchkey whoami`.
pub fn whoami_cmd(args: WhoamiArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let me = api.me()?;
    args.common.emit(&me, || {
        let admin = if me.user.admin { " (admin)" } else { "" };
        println!("{}{admin} on {}", me.user.handle, api.base_url());
        println!("user    {}", me.user.id);
        println!("token   {} ({})", me.token_id, wire(&me.kind));
        println!("scopes  {}", scopes_text(&me.scopes));
        println!("expires {}", or_dash(me.expires_at.as_deref()));
    })?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's name, for `device_name`.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 64)
}

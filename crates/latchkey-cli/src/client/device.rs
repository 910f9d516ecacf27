//! `latchkey device login` (be the device: show the user code, a QR code and the
//! comparison code, then poll with a spinner) and `latchkey device approve|deny CODE`
//! (show the exact request and ask first unless `--yes`; anything but an explicit yes,
//! EOF included, changes nothing and exits non-zero).

use super::session::{host_name, KeyChoice};
use super::{or_dash, parse_scopes, scopes_text, Common};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use latchkey_client::device::canonical_user_code;
use latchkey_client::login::expected_server;
use latchkey_client::store::{StoredLogin, StoredSession};
use latchkey_client::{comparison_code, DeviceFlow, PollOutcome, Signer};
use latchkey_proto::device::{DeviceApproveRequest, DeviceCodeRequest, DeviceRequestInfo};
use latchkey_proto::UserRef;
use serde_json::json;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `latchkey device`.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: DeviceCommand,
}

/// `latchkey device ...`.
#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Sign this device in by approval from an account elsewhere (RFC 8628).
    Login {
        /// The app name the approver sees.
        #[arg(long, default_value = "latchkey-cli")]
        client_id: String,
        /// This device's name (default: the host name).
        #[arg(long)]
        device_name: Option<String>,
        /// `chat:read` and/or `chat:write` (repeat; default both).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Also enroll a key (--key FILE or --agent) on the approver's account.
        #[command(flatten)]
        key: KeyChoice,
    },
    /// Approve a device's request (shows it and asks first).
    Approve {
        /// The user code the device shows (XXXX-XXXX; case and dashes do not matter).
        code: String,
        #[command(flatten)]
        confirm: Confirm,
        /// Grant only these scopes (repeat; default: what the device asked for).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The device token's name (default: the device's own).
        #[arg(long)]
        name: Option<String>,
        /// Token lifetime in seconds (default 90 days, at most a year).
        #[arg(long, conflicts_with = "never_expires")]
        expires_in: Option<u64>,
        /// A token that never expires.
        #[arg(long)]
        never_expires: bool,
    },
    /// Deny a device's request for good (shows it and asks first).
    Deny {
        /// The user code the device shows.
        code: String,
        #[command(flatten)]
        confirm: Confirm,
    },
}

/// `--yes`.
#[derive(Args, Debug)]
pub struct Confirm {
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// `latchkey device`.
pub fn device_cmd(args: DeviceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DeviceCommand::Login {
            client_id,
            device_name,
            scopes,
            key,
        } => login(&args.common, &client_id, device_name, &scopes, &key),
        DeviceCommand::Approve {
            code,
            confirm,
            scopes,
            name,
            expires_in,
            never_expires,
        } => {
            let (flow, info) = show_request(&args.common, &code)?;
            ask(
                &confirm,
                &format!("Approve: give {} access to your account?", info.client_id),
            )?;
            let done = flow.approve(&DeviceApproveRequest {
                user_code: info.user_code.clone(),
                scopes: parse_scopes(&scopes)?,
                name,
                expires_in: if never_expires {
                    Some(None)
                } else {
                    expires_in.map(Some)
                },
            })?;
            args.common.emit(&done, || {
                println!(
                    "approved {} for {} ({})",
                    info.user_code,
                    done.client_id,
                    scopes_text(&done.scopes)
                );
                if let Some(fp) = &done.key_added {
                    println!("key added to your account: {fp}");
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        DeviceCommand::Deny { code, confirm } => {
            let (flow, info) = show_request(&args.common, &code)?;
            ask(&confirm, "Deny this request for good?")?;
            let done = flow.deny(&info.user_code)?;
            args.common
                .emit(&done, || println!("denied {}", info.user_code))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Fetches the request and shows exactly who asks (on stderr with --json).
fn show_request(common: &Common, code: &str) -> anyhow::Result<(DeviceFlow, DeviceRequestInfo)> {
    let (api, _) = common.authed()?;
    let flow = DeviceFlow::new(api);
    let info = flow.request_info(code)?;
    let mut text = format!(
        "device request {}\n  app          {}\n  device       {}\n  scopes       {}\n  requested    {}\n  expires      {}\n  from         {}\n  user agent   {}\n",
        info.user_code,
        info.client_id,
        or_dash(info.device_name.as_deref()),
        scopes_text(&info.scopes),
        info.requested_at,
        info.expires_at,
        or_dash(info.ip.as_deref()),
        or_dash(info.user_agent.as_deref()),
    );
    if let Some(k) = &info.key {
        let proven = if k.proven { "proven" } else { "NOT proven" };
        text.push_str(&format!(
            "  key          {} {} ({proven})\n  comparison   {}  <- the device must show this same number\n",
            k.key_type, k.fingerprint, k.comparison_code
        ));
    }
    if common.json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok((flow, info))
}

/// Asks on stderr unless `--yes`; only an explicit `yes` goes on.
fn ask(confirm: &Confirm, question: &str) -> anyhow::Result<()> {
    if confirm.yes {
        return Ok(());
    }
    eprint!("{question} Type yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
    let answer = line.trim().to_ascii_lowercase();
    if read == 0 || answer != "yes" {
        if read == 0 {
            eprintln!();
        }
        bail!("not confirmed: nothing was changed");
    }
    Ok(())
}

/// `latchkey device login`.
fn login(
    common: &Common,
    client_id: &str,
    device_name: Option<String>,
    scopes: &[String],
    key: &KeyChoice,
) -> anyhow::Result<ExitCode> {
    let api = common.api()?;
    let url = api.base_url().to_string();
    let store = common.store()?;
    let pinned = store.load(&url)?.map(|l| l.server_id);
    let server_id = expected_server(&api, pinned.as_deref())?;
    let signer: Option<Signer> = if key.agent || key.key.is_some() {
        Some(key.signer()?)
    } else {
        None
    };
    let flow = DeviceFlow::new(api.clone());
    let code = flow.request(&DeviceCodeRequest {
        client_id: Some(client_id.to_string()),
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        device_name: device_name.or_else(host_name),
        public_key: signer.as_ref().map(|s| s.public_key_line()).transpose()?,
    })?;
    let ours = signer
        .as_ref()
        .map(|s| comparison_code(&code.user_code, &s.fingerprint()));
    if let (Some(ours), Some(theirs)) = (&ours, &code.comparison_code) {
        if ours != theirs {
            let _ = flow.cancel(&code.device_code);
            bail!("the server's comparison code differs from this device's: the key may have been swapped; cancelled");
        }
    }
    show_codes(common, &code, ours.as_deref())?;
    if let Some(s) = &signer {
        flow.prove(&code, s, &server_id)
            .context("proving the key")?;
    }
    let token = poll_with_spinner(&flow, &code, client_id)?;
    let authed = api.with_token(&token.access_token);
    let me = authed.me()?;
    let path = store.save(&StoredLogin {
        server_url: url.clone(),
        server_id,
        session: Some(StoredSession {
            token: token.access_token.clone(),
            token_id: me.token_id.clone(),
            kind: me.kind,
            expires_at: me.expires_at.clone(),
            user: UserRef {
                id: me.user.id.clone(),
                handle: me.user.handle.clone(),
            },
            key_fingerprint: signer.as_ref().map(Signer::fingerprint),
        }),
    })?;
    let out = json!({
        "server": url, "user": me.user, "token_id": me.token_id, "kind": me.kind,
        "scopes": me.scopes, "expires_at": me.expires_at, "token_file": path,
    });
    common.emit(&out, || {
        println!(
            "approved: signed in to {url} as {} ({})",
            me.user.handle,
            scopes_text(&me.scopes)
        );
        println!(
            "device token {} expires {}",
            me.token_id,
            or_dash(me.expires_at.as_deref())
        );
        println!("stored  {}", path.display());
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The user code, QR code and comparison code (one JSON line with --json).
fn show_codes(
    common: &Common,
    code: &latchkey_proto::device::DeviceCodeResponse,
    ours: Option<&str>,
) -> anyhow::Result<()> {
    let shown = json!({
        "user_code": code.user_code,
        "verification_uri": code.verification_uri,
        "verification_uri_complete": code.verification_uri_complete,
        "expires_in": code.expires_in,
        "interval": code.interval,
        "comparison_code": ours,
    });
    common.emit(&shown, || {
        println!(
            "To sign this device in, open {}",
            code.verification_uri_complete
        );
        println!(
            "or run `latchkey device approve {}` where you are signed in.",
            canonical_user_code(&code.user_code)
        );
        if let Ok(art) = crate::qr::qr_blocks(&code.verification_uri_complete) {
            println!("{art}");
        }
        println!("user code        {}", code.user_code);
        if let Some(c) = ours {
            println!("comparison code  {c}  (the approval screen must show this same number)");
        }
    })?;
    let _ = std::io::stdout().flush();
    Ok(())
}

fn poll_with_spinner(
    flow: &DeviceFlow,
    code: &latchkey_proto::device::DeviceCodeResponse,
    client_id: &str,
) -> anyhow::Result<latchkey_proto::device::DeviceTokenResponse> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!(
        "waiting for approval, polling every {} s",
        code.interval
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = flow.poll(code, client_id, |outcome| {
        if let PollOutcome::SlowDown { interval } = outcome {
            spinner.set_message(format!(
                "waiting for approval, polling every {} s (the server asked to slow down)",
                interval.as_secs()
            ));
        }
    });
    spinner.finish_and_clear();
    Ok(result?)
}

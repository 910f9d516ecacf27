//! `latchkey admin pair create|list|revoke`: admin pairing codes (DESIGN §12), online
//! (`--server URL --token-file F`, through `/api/admin/pairing-codes`) or offline on a
//! stopped server's data dir. `create` prints the code once and its QR code in Unicode
//! block characters, whether or not stdout is a terminal (with `--json` the QR goes to
//! stderr, so stdout stays pure JSON).

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use latchkey_actors::clock;
use latchkey_admin::json::{domain_scope, scope, wire_scopes};
use latchkey_admin::pairing_codes::{self as offline, OfflineMint};
use latchkey_domain::Scope;
use latchkey_proto::{CreatePairingCodeResponse, ErrorBody, PairingCodeList};
use latchkey_store::{EventStore, SledStore, StoreOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// `pair` actions.
#[derive(Subcommand, Debug)]
pub enum PairWhat {
    /// Mint a one-time pairing code for a user and print it with its QR code.
    Create {
        /// The user, by handle or id.
        #[arg(long)]
        user: String,
        /// Scopes of the device token: `chat:read`, `chat:write` (comma or space separated;
        /// default both).
        #[arg(long)]
        scopes: Option<String>,
        /// How long the code lives: seconds, or with a unit (`90s`, `10m`, `24h`); default
        /// 10 minutes, at most 24 hours.
        #[arg(long)]
        expires: Option<String>,
        /// A note for the list.
        #[arg(long)]
        note: Option<String>,
        /// Offline: the server's public URL for the QR payload's `server=` (default: the
        /// server id).
        #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// List pending codes (never their secrets).
    List,
    /// Revoke a pending code by id.
    Revoke {
        /// The code's id.
        id: String,
    },
}

/// Where the command runs.
pub struct Target<'a> {
    /// Offline: the data dir.
    pub data_dir: &'a Path,
    /// Online: the server and the admin session token.
    pub online: Option<(&'a str, &'a str)>,
}

/// `--expires`: seconds, or a number with `s`, `m` or `h`.
pub fn parse_expires(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("--expires {s}: give seconds, or a number with s, m or h"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => bail!("--expires {s}: the unit must be s, m or h"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("--expires {s} is out of range"))
}

fn parse_scopes(s: Option<&str>) -> anyhow::Result<Vec<Scope>> {
    s.unwrap_or("")
        .split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| match p {
            "chat:read" => Ok(Scope::ChatRead),
            "chat:write" => Ok(Scope::ChatWrite),
            other => bail!("unknown scope {other}: use chat:read and/or chat:write"),
        })
        .collect()
}

/// Runs a `pair` command.
pub fn run(target: Target<'_>, as_json: bool, what: PairWhat) -> anyhow::Result<ExitCode> {
    match what {
        PairWhat::Create {
            user,
            scopes,
            expires,
            note,
            public_url,
        } => {
            let scopes = parse_scopes(scopes.as_deref())?;
            let expires_in = expires.as_deref().map(parse_expires).transpose()?;
            let doc = match target.online {
                Some((server, token)) => {
                    let mut body = serde_json::json!({"user": user, "note": note});
                    if !scopes.is_empty() {
                        body["scopes"] = serde_json::json!(wire_scopes(&scopes));
                    }
                    if let Some(e) = expires_in {
                        body["expires_in"] = serde_json::json!(e);
                    }
                    call(
                        server,
                        token,
                        "POST",
                        "/api/admin/pairing-codes",
                        Some(body),
                    )?
                }
                None => {
                    let store = open(target.data_dir)?;
                    let server = match public_url {
                        Some(u) => u.trim_end_matches('/').to_string(),
                        None => store.server_id()?.to_string(),
                    };
                    let req = OfflineMint {
                        user: &user,
                        scopes,
                        expires_in,
                        note,
                        server: &server,
                    };
                    offline::mint(&store, req, clock::now())?
                }
            };
            print_created(&doc, as_json)?;
        }
        PairWhat::List => {
            let doc: PairingCodeList = match target.online {
                Some((server, token)) => {
                    call(server, token, "GET", "/api/admin/pairing-codes", None)?
                }
                None => offline::list(&open(target.data_dir)?, clock::now())?,
            };
            print_list(&doc, as_json)?;
        }
        PairWhat::Revoke { id } => {
            match target.online {
                Some((server, token)) => {
                    let path = format!("/api/admin/pairing-codes/{}", seg(&id));
                    call::<serde_json::Value>(server, token, "DELETE", &path, None)?;
                }
                None => offline::revoke(&open(target.data_dir)?, &id, clock::now())?,
            }
            if as_json {
                println!("{}", serde_json::json!({"id": id, "revoked": true}));
            } else {
                println!("revoked pairing code {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Wire scopes as their names, space-separated.
fn scope_list(scopes: &[latchkey_proto::Scope]) -> String {
    scopes
        .iter()
        .map(|s| scope(domain_scope(*s)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn open(dir: &Path) -> anyhow::Result<Arc<dyn EventStore>> {
    SledStore::open_existing(dir, StoreOptions::default())?
        .map(|s| Arc::new(s) as Arc<dyn EventStore>)
        .with_context(|| format!("{} holds no log", dir.display()))
}

fn seg(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// One JSON call to the admin API; `DELETE` answers 204 with no body (JSON null).
fn call<T: serde::de::DeserializeOwned>(
    server: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<T> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let req = ureq::request(method, &url).set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) if r.status() == 204 => {
            serde_json::from_value(serde_json::Value::Null).context("reading the answer")
        }
        Ok(r) => r.into_json().context("reading the answer"),
        Err(ureq::Error::Status(code, r)) => {
            let e: ErrorBody = r.into_json().unwrap_or(ErrorBody {
                error: "error".into(),
                message: format!("HTTP {code}"),
            });
            bail!("{} ({code} {})", e.message, e.error)
        }
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn print_created(doc: &CreatePairingCodeResponse, as_json: bool) -> anyhow::Result<()> {
    let blocks = crate::qr::qr_blocks(&doc.qr)?;
    if as_json {
        println!("{}", serde_json::to_string(doc)?);
        eprintln!("{blocks}");
        return Ok(());
    }
    println!(
        "pairing code for {} ({}), shown once",
        doc.user.handle, doc.user.id
    );
    println!("code     {}", doc.code);
    println!("qr       {}", doc.qr);
    println!("scopes   {}", scope_list(&doc.scopes));
    println!("expires  {} (in {} s)", doc.expires_at, doc.expires_in);
    println!("id       {}", doc.id);
    println!();
    println!("{blocks}");
    Ok(())
}

fn print_list(doc: &PairingCodeList, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string(doc)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<36}  {:<24}  {:<21}  note",
        "id", "user", "expires", "scopes"
    );
    for c in &doc.codes {
        println!(
            "{:<36}  {:<36}  {:<24}  {:<21}  {}",
            c.id,
            c.user_id,
            c.expires_at,
            scope_list(&c.scopes),
            crate::output::printable(c.note.as_deref().unwrap_or(""))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_takes_seconds_or_a_unit() {
        assert_eq!(parse_expires("600").unwrap(), 600);
        assert_eq!(parse_expires("90s").unwrap(), 90);
        assert_eq!(parse_expires("10m").unwrap(), 600);
        assert_eq!(parse_expires("24h").unwrap(), 86400);
        assert!(parse_expires("10d").is_err());
        assert!(parse_expires("soon").is_err());
    }

    #[test]
    fn scopes_parse_with_commas_or_spaces() {
        assert_eq!(
            parse_scopes(Some("chat:read,chat:write")).unwrap(),
            vec![Scope::ChatRead, Scope::ChatWrite]
        );
        assert_eq!(
            parse_scopes(Some("chat:read")).unwrap(),
            vec![Scope::ChatRead]
        );
        assert!(parse_scopes(Some("admin")).is_err());
        assert!(parse_scopes(None).unwrap().is_empty());
    }
}

//! [`TokenStore`]: one JSON file per server, mode 0600, under `$XDG_CONFIG_HOME/latchkey/`
//! (else `~/.config/latchkey/`), holding the server id pinned at first contact and the
//! session token. Files are written to a temporary file and renamed, so a reader never
//! sees half a file.
//!
//! Must not: print or log a token; widen a file's mode.

use crate::Error;
use latchkey_proto::{TokenKind, UserRef};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file naming the server used last, for commands run without `--server`.
const CURRENT: &str = "current-server";

/// Where tokens live.
#[derive(Clone, Debug)]
pub struct TokenStore {
    dir: PathBuf,
}

/// What is stored for one server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogin {
    /// The URL the client talks to.
    pub server_url: String,
    /// The `server=` value pinned at first contact; a challenge naming anything else is
    /// refused.
    pub server_id: String,
    /// The signed-in session, absent after `logout` (the pin stays).
    #[serde(default)]
    pub session: Option<StoredSession>,
}

/// A stored credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// The bearer token. Never printed unless asked.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// `session` or `device`.
    pub kind: TokenKind,
    /// RFC 3339, or null.
    pub expires_at: Option<String>,
    /// Who it belongs to.
    pub user: UserRef,
    /// The key that signed in, if one did (`SHA256:...`).
    #[serde(default)]
    pub key_fingerprint: Option<String>,
}

impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLogin")
            .field("server_url", &self.server_url)
            .field("server_id", &self.server_id)
            .field("session", &self.session)
            .finish()
    }
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("token", &"<redacted>")
            .field("token_id", &self.token_id)
            .field("kind", &self.kind)
            .field("user", &self.user.handle)
            .finish()
    }
}

impl TokenStore {
    /// A store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> TokenStore {
        TokenStore { dir: dir.into() }
    }

    /// `$XDG_CONFIG_HOME/latchkey`, else `$HOME/.config/latchkey`.
    pub fn default_location() -> Result<TokenStore, Error> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })
            .ok_or_else(|| Error::Store {
                path: PathBuf::from("~/.config"),
                reason: "neither XDG_CONFIG_HOME nor HOME is set".into(),
            })?;
        Ok(TokenStore::new(base.join("latchkey")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `server_url`.
    pub fn path_for(&self, server_url: &str) -> PathBuf {
        let name: String = server_url
            .trim_end_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("server-{name}.json"))
    }

    /// What is stored for `server_url`, if anything.
    pub fn load(&self, server_url: &str) -> Result<Option<StoredLogin>, Error> {
        let path = self.path_for(server_url);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_err(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Store {
                path,
                reason: format!("not a latchkey token file: {e}"),
            })
    }

    /// The stored session for `server_url`, or [`Error::NotSignedIn`].
    pub fn session(&self, server_url: &str) -> Result<StoredSession, Error> {
        self.load(server_url)?
            .and_then(|l| l.session)
            .ok_or_else(|| Error::NotSignedIn(server_url.to_string()))
    }

    /// Writes `login` with mode 0600 (the directory 0700), atomically; returns the path.
    pub fn save(&self, login: &StoredLogin) -> Result<PathBuf, Error> {
        let path = self.path_for(&login.server_url);
        let text = serde_json::to_string_pretty(login).map_err(|e| Error::Store {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.write_private(&path, text.as_bytes())?;
        self.write_private(&self.dir.join(CURRENT), login.server_url.as_bytes())?;
        Ok(path)
    }

    /// Forgets the session for `server_url` but keeps the pinned server id. Returns the
    /// session that was stored.
    pub fn forget_session(&self, server_url: &str) -> Result<Option<StoredSession>, Error> {
        let Some(mut login) = self.load(server_url)? else {
            return Ok(None);
        };
        let old = login.session.take();
        self.save(&login)?;
        Ok(old)
    }

    /// The server of the last `save`, for commands run without `--server`.
    pub fn current_server(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(CURRENT))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| store_err(&self.dir, e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| store_err(&tmp, e))?;
        // The mode above is filtered by the umask; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_all())
            .map_err(|e| store_err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| store_err(path, e))
    }
}

fn store_err(path: &Path, e: std::io::Error) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(url: &str) -> StoredLogin {
        StoredLogin {
            server_url: url.into(),
            server_id: "srv".into(),
            session: Some(StoredSession {
                token: "lks_secret".into(),
                token_id: "t1".into(),
                kind: TokenKind::Session,
                expires_at: None,
                user: UserRef {
                    id: "u1".into(),
                    handle: "alice".into(),
                },
                key_fingerprint: None,
            }),
        }
    }

    #[test]
    fn saves_one_private_file_per_server_and_keeps_the_pin_on_logout() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::new(tmp.path().join("latchkey"));
        let a = store.save(&login("http://127.0.0.1:1")).unwrap();
        let b = store.save(&login("http://127.0.0.1:2/")).unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(
            store.load("http://127.0.0.1:1").unwrap(),
            Some(login("http://127.0.0.1:1"))
        );
        assert_eq!(
            store.current_server().as_deref(),
            Some("http://127.0.0.1:2/")
        );

        let old = store.forget_session("http://127.0.0.1:1").unwrap().unwrap();
        assert_eq!(old.token, "lks_secret");
        let after = store.load("http://127.0.0.1:1").unwrap().unwrap();
        assert_eq!(after.server_id, "srv");
        assert!(after.session.is_none());
        assert!(matches!(
            store.session("http://127.0.0.1:1"),
            Err(Error::NotSignedIn(_))
        ));
        assert!(!format!("{:?}", login("x")).contains("lks_secret"));
    }
}

//! The RFC 8628 device flow (DESIGN §12) from both sides. As the device: ask for a code,
//! show the user code and the [`comparison_code`], prove the key, then poll, honouring
//! `interval` and `slow_down` (+5 s for this and every later poll), until a token,
//! `access_denied` or `expired_token`. As the approver (a session token): read the exact
//! request, then approve or deny it.
//!
//! Must not: put the device code or the user code in an error message.

use crate::api::{decode, Method};
use crate::pace::{RealSleeper, Sleeper};
use crate::{Api, Error, Signer};
use latchkey_proto::device::{
    DeviceApproveRequest, DeviceApproveResponse, DeviceCodeRequest, DeviceCodeResponse,
    DeviceDenyRequest, DeviceRequestInfo, DeviceStatusResponse, DeviceTokenResponse, OAuthError,
    DEVICE_CODE_GRANT,
};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What `slow_down` adds to the interval, for good.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The comparison code of DESIGN §12: SHA-256 of
/// `latchkey-compare-v1\n<USER-CODE>\n<SHA256:fingerprint>`, first 4 bytes big-endian,
/// modulo 1,000,000, six digits. The device computes it from its own key; the approver's
/// screen shows the server's; they match unless a relay swapped the key.
pub fn comparison_code(user_code: &str, fingerprint: &str) -> String {
    let input = format!(
        "latchkey-compare-v1\n{}\n{fingerprint}",
        canonical_user_code(user_code)
    );
    let d = Sha256::digest(input.as_bytes());
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    format!("{:06}", n % 1_000_000)
}

/// A user code as typed (any case, dashes and spaces anywhere) in its `XXXX-XXXX` form.
pub fn canonical_user_code(typed: &str) -> String {
    let chars: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() == 8 {
        format!("{}-{}", &chars[..4], &chars[4..])
    } else {
        chars
    }
}

/// One poll's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// Nobody approved yet.
    Pending,
    /// Polling too fast: the interval is now `interval`.
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// Approved: the device token.
    Token(DeviceTokenResponse),
    /// Rate-limited or busy (429, 503): wait `retry_after` more, then poll again.
    Busy {
        /// The server's `Retry-After`.
        retry_after: Duration,
    },
}

/// The device flow against one server.
pub struct DeviceFlow {
    api: Api,
    sleeper: Box<dyn Sleeper + Send>,
}

impl std::fmt::Debug for DeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceFlow({:?})", self.api)
    }
}

impl DeviceFlow {
    /// The flow on `api` (with a session token for the approver's calls).
    pub fn new(api: Api) -> DeviceFlow {
        DeviceFlow {
            api,
            sleeper: Box::new(RealSleeper),
        }
    }

    /// The same, waiting with `sleeper` between polls (tests pass a fake one).
    pub fn with_sleeper(mut self, sleeper: Box<dyn Sleeper + Send>) -> DeviceFlow {
        self.sleeper = sleeper;
        self
    }

    /// `POST /api/auth/device/code`: a device code and the user code to show.
    pub fn request(&self, request: &DeviceCodeRequest) -> Result<DeviceCodeResponse, Error> {
        let mut form = Vec::new();
        for (k, v) in [
            ("client_id", &request.client_id),
            ("scope", &request.scope),
            ("device_name", &request.device_name),
            ("public_key", &request.public_key),
        ] {
            if let Some(v) = v {
                form.push((k, v.as_str()));
            }
        }
        self.oauth_post("/api/auth/device/code", &form)
    }

    /// `POST /api/auth/device/prove`: signs the key challenge of `code` with `signer`
    /// (after the relay defence against `server_id`) to prove the device holds the key.
    pub fn prove(
        &self,
        code: &DeviceCodeResponse,
        signer: &Signer,
        server_id: &str,
    ) -> Result<DeviceStatusResponse, Error> {
        let Some(kc) = &code.key_challenge else {
            return Err(Error::Protocol("the server sent no key challenge".into()));
        };
        let challenge = latchkey_proto::ChallengeResponse {
            challenge_id: kc.challenge_id.clone(),
            nonce: String::new(),
            message: kc.message.clone(),
            namespace: crate::NAMESPACE.to_string(),
            expires_at: String::new(),
            expires_in: 0,
        };
        let signature = signer.sign_challenge(&challenge, server_id)?;
        self.oauth_post(
            "/api/auth/device/prove",
            &[
                ("device_code", code.device_code.as_str()),
                ("challenge_id", kc.challenge_id.as_str()),
                ("signature", signature.as_str()),
            ],
        )
    }

    /// `POST /api/auth/device/token` once.
    pub fn poll_once(
        &self,
        device_code: &str,
        client_id: &str,
        interval: Duration,
    ) -> Result<PollOutcome, Error> {
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code),
            ("client_id", client_id),
        ];
        match self.oauth_post::<DeviceTokenResponse>("/api/auth/device/token", &form) {
            Ok(token) => Ok(PollOutcome::Token(token)),
            Err(Error::Device { code, .. }) if code == "authorization_pending" => {
                Ok(PollOutcome::Pending)
            }
            Err(Error::Device { code, .. }) if code == "slow_down" => Ok(PollOutcome::SlowDown {
                interval: interval + SLOW_DOWN_STEP,
            }),
            Err(Error::Device {
                code, retry_after, ..
            }) if code == "rate_limited" || code == "temporarily_unavailable" => {
                Ok(PollOutcome::Busy {
                    retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Polls until the request is approved (the token), denied (`access_denied`) or
    /// lapsed (`expired_token`), waiting `interval` before each poll and growing it by 5 s
    /// on every `slow_down`. `on_poll` sees each outcome (for a spinner).
    pub fn poll(
        &self,
        code: &DeviceCodeResponse,
        client_id: &str,
        mut on_poll: impl FnMut(&PollOutcome),
    ) -> Result<DeviceTokenResponse, Error> {
        let mut interval = Duration::from_secs(u64::from(code.interval.max(1)));
        let lifetime = Duration::from_secs(code.expires_in.max(0) as u64);
        let mut waited = Duration::ZERO;
        loop {
            if waited >= lifetime {
                return Err(Error::Device {
                    code: "expired_token".into(),
                    description: "the device code lapsed before anyone approved it".into(),
                    retry_after: None,
                });
            }
            self.sleeper.sleep(interval);
            waited += interval;
            let outcome = self.poll_once(&code.device_code, client_id, interval)?;
            on_poll(&outcome);
            match outcome {
                PollOutcome::Token(t) => return Ok(t),
                PollOutcome::SlowDown { interval: next } => interval = next,
                PollOutcome::Busy { retry_after } => {
                    self.sleeper.sleep(retry_after);
                    waited += retry_after;
                }
                PollOutcome::Pending => {}
            }
        }
    }

    /// `POST /api/auth/device/cancel`: gives the request up for good.
    pub fn cancel(&self, device_code: &str) -> Result<DeviceStatusResponse, Error> {
        self.oauth_post("/api/auth/device/cancel", &[("device_code", device_code)])
    }

    /// `GET /api/native/device/{user_code}` (approver, session token): exactly who asks.
    pub fn request_info(&self, user_code: &str) -> Result<DeviceRequestInfo, Error> {
        let code = canonical_user_code(user_code);
        if code.len() != 9 {
            return Err(Error::Protocol(
                "a user code is 8 letters, shown as XXXX-XXXX".into(),
            ));
        }
        let req = self
            .api
            .request(Method::Get, &format!("/api/native/device/{code}"));
        decode(self.api.run(req.call())?)
    }

    /// `POST /api/native/device/approve` (approver, session token).
    pub fn approve(&self, request: &DeviceApproveRequest) -> Result<DeviceApproveResponse, Error> {
        let mut value = serde_json::to_value(request)
            .map_err(|e| Error::Protocol(format!("encoding the request: {e}")))?;
        if request.expires_in.is_none() {
            // Absent means the default lifetime; null would mean "never expires".
            if let Some(o) = value.as_object_mut() {
                o.remove("expires_in");
            }
        }
        self.native_post("/api/native/device/approve", &value)
    }

    /// `POST /api/native/device/deny` (approver, session token).
    pub fn deny(&self, user_code: &str) -> Result<DeviceStatusResponse, Error> {
        let body = DeviceDenyRequest {
            user_code: canonical_user_code(user_code),
        };
        self.native_post("/api/native/device/deny", &body)
    }

    fn native_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Error> {
        let value = serde_json::to_value(body)
            .map_err(|e| Error::Protocol(format!("encoding the request: {e}")))?;
        let req = self.api.request(Method::Post, path);
        decode(self.api.run(req.send_json(value))?)
    }

    /// A form POST to an OAuth endpoint; errors carry the OAuth `{error, error_description}`.
    fn oauth_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, Error> {
        let req = self.api.request(Method::Post, path);
        match req.send_form(form) {
            Ok(resp) => decode(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let retry_after = resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = resp.into_string().unwrap_or_default();
                let err = serde_json::from_str::<OAuthError>(&text).unwrap_or(OAuthError {
                    error: format!("http_{status}"),
                    error_description: "the server's answer was not an OAuth error".into(),
                });
                Err(Error::Device {
                    code: err.error,
                    description: err.error_description,
                    retry_after,
                })
            }
            Err(ureq::Error::Transport(t)) => Err(Error::Unreachable {
                url: self.api.base_url().to_string(),
                reason: t.kind().to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;

//! # latchkey-fuzz
//!
//! Fuzz targets over the code that parses untrusted input, each a small function that
//! hands arbitrary bytes to the real parser and ignores the verdict: a target fails only
//! by panicking (or, under afl, by crashing or hanging). Must not: reimplement a parser.
//!
//! - `sshsig`: an armored SSHSIG, parsed and verified against fixed keys and a fixed
//!   challenge (`latchkey_domain::sshkey`), and the same text as a public key line.
//! - `token`: the bearer token format (`latchkey_domain::token::parse`).
//! - `challenge`: the challenge message, by the server's parser
//!   (`latchkey_domain::challenge::parse_message`) and the client's
//!   (`latchkey_client::challenge::Challenge::parse`).
//! - `codec`: stored bytes decoded as an envelope with its event
//!   (`latchkey_store::Recorded::decode`) and as a bare event (`codec::decode`).
//! - `ws_frame`: a WebSocket text frame as the server parses it (`ClientFrame`).
//! - `device_form`: an RFC 8628 body, form-encoded or JSON
//!   (`latchkey_server::routes::device::parse_body`); the first byte picks the
//!   Content-Type.
//!
//! `src/main.rs` is the afl driver (`cargo afl build --features afl`, run by
//! `scripts/fuzz.sh`). The seed corpora are in `corpus/<target>/`; the unit test below
//! replays every corpus file through every target, so `cargo test` keeps them passing
//! without afl.

use latchkey_domain::sshkey::{parse_public_key, verify_signature};
use latchkey_domain::SshPublicKey;
use latchkey_proto::ws::ClientFrame;
use latchkey_proto::{
    DeviceCancelRequest, DeviceCodeRequest, DeviceProveRequest, DeviceTokenRequest,
};
use latchkey_server::routes::device::parse_body;
use std::sync::OnceLock;

/// One fuzz target: a name (the corpus directory and the driver's argument) and the
/// function that feeds it one input.
pub struct Target {
    /// `corpus/<name>/` holds its seeds.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sshsig",
        run: sshsig,
    },
    Target {
        name: "token",
        run: token,
    },
    Target {
        name: "challenge",
        run: challenge,
    },
    Target {
        name: "codec",
        run: codec,
    },
    Target {
        name: "ws_frame",
        run: ws_frame,
    },
    Target {
        name: "device_form",
        run: device_form,
    },
];

/// The target with this name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The public keys the `sshsig` target verifies against (the corpus has real
/// `ssh-keygen -Y sign` signatures by them over [`SIGNED_MESSAGE`]).
const KEYS: [&str; 2] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDUUFCn1Bl19mMOdHmNGOUT2XOPtbExxH0WAJPjM2Gy9 fuzz@latchkey",
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEJY5sOn0f3+1kidpSB01zG9tau0r0L/jmFS2T210gmxX6Em1/kRyahAPimTixQam9ojIRHuaOYy23u7Nmrzda8= fuzz@latchkey",
];

/// The message the corpus's signatures sign: a challenge as the server writes it.
pub const SIGNED_MESSAGE: &str = "latchkey-auth-v1\nserver=http://127.0.0.1:8080\nchallenge=0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6\nnonce=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\nkey=SHA256:fuzz\nexpires=1900000000\n";

fn keys() -> &'static [SshPublicKey] {
    static KEYS_PARSED: OnceLock<Vec<SshPublicKey>> = OnceLock::new();
    KEYS_PARSED.get_or_init(|| {
        KEYS.iter()
            .filter_map(|k| parse_public_key(k).ok())
            .collect()
    })
}

/// `sshsig`: the input as an armored signature, verified against each fixed key.
pub fn sshsig(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for key in keys() {
        let _ = verify_signature(key, SIGNED_MESSAGE.as_bytes(), text);
    }
    let _ = parse_public_key(text);
}

/// `token`: the input as a bearer token; an accepted one must keep its exact text.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = latchkey_domain::token::parse(text) {
        assert_eq!(parsed.raw().expose_secret(), text, "a parsed token changed");
    }
}

/// `challenge`: the input as a challenge message, by the server's and the client's parser.
pub fn challenge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = latchkey_domain::challenge::parse_message(text);
    let _ = latchkey_client::challenge::Challenge::parse(text);
}

/// `codec`: the input as the bytes of a log entry, and as a bare event payload.
pub fn codec(data: &[u8]) {
    let _ = latchkey_store::Recorded::decode(1, data);
    let _ = latchkey_store::codec::decode::<latchkey_domain::Event>(data, "fuzz input");
}

/// `ws_frame`: the input as a client's WebSocket text frame.
pub fn ws_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = serde_json::from_str::<ClientFrame>(text);
}

/// The Content-Type values the `device_form` target picks from with its first byte.
const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    None,
    Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
    Some("text/plain"),
];

/// `device_form`: the input (after its first byte) as the body of each device-flow route.
pub fn device_form(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*first) % CONTENT_TYPES.len()];
    let _ = parse_body::<DeviceCodeRequest>(content_type, body);
    let _ = parse_body::<DeviceTokenRequest>(content_type, body);
    let _ = parse_body::<DeviceCancelRequest>(content_type, body);
    let _ = parse_body::<DeviceProveRequest>(content_type, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn corpus_files(name: &str) -> Vec<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }

    /// Every corpus file through every target (each target's own seeds and the others'),
    /// so a crash that afl found and that was added to a corpus stays fixed.
    #[test]
    fn every_corpus_file_runs_through_every_target() {
        let mut replayed = 0;
        for seeds in TARGETS {
            let files = corpus_files(seeds.name);
            assert!(files.len() >= 2, "corpus/{} has too few seeds", seeds.name);
            for file in files {
                let data = std::fs::read(&file).unwrap();
                for t in TARGETS {
                    (t.run)(&data);
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= TARGETS.len() * TARGETS.len() * 2);
    }

    #[test]
    fn the_fixed_keys_parse() {
        assert_eq!(keys().len(), KEYS.len());
    }

    /// The seeds reach the parsers' success paths, not only their first refusal.
    #[test]
    fn the_seeds_include_accepted_inputs() {
        let accepted = |name: &str, ok: &dyn Fn(&[u8]) -> bool| {
            corpus_files(name)
                .iter()
                .any(|f| ok(&std::fs::read(f).unwrap()))
        };
        assert!(accepted("sshsig", &|d| {
            let text = std::str::from_utf8(d).unwrap_or("");
            keys()
                .iter()
                .any(|k| verify_signature(k, SIGNED_MESSAGE.as_bytes(), text).is_ok())
        }));
        assert!(accepted("token", &|d| {
            latchkey_domain::token::parse(std::str::from_utf8(d).unwrap_or("")).is_ok()
        }));
        assert!(accepted("challenge", &|d| {
            latchkey_domain::challenge::parse_message(std::str::from_utf8(d).unwrap_or("")).is_ok()
        }));
        assert!(accepted("codec", &|d| latchkey_store::Recorded::decode(
            1, d
        )
        .is_ok()));
        assert!(accepted("ws_frame", &|d| serde_json::from_slice::<
            ClientFrame,
        >(d)
        .is_ok()));
        assert!(accepted("device_form", &|d| {
            d.split_first().is_some_and(|(f, body)| {
                let ct = CONTENT_TYPES[usize::from(*f) % CONTENT_TYPES.len()];
                parse_body::<DeviceTokenRequest>(ct, body).is_ok()
            })
        }));
    }
}

//! The OpenAPI document: the one a running server serves is the one checked in at
//! `proto-docs/openapi.json`, and every operation in it answers only with the status codes
//! (and content types) it declares, whatever credential it is called with (DESIGN §7).

use crate::server::{Key, Resp, Server};
use crate::support::repo_root;
use latchkey_domain::token::{generate, TokenPrefix};
use serde_json::Value;
use std::collections::BTreeSet;

const DOC_PATH: &str = "/api/openapi.json";
const REGENERATE: &str = "cargo run -p latchkey-cli -- openapi > proto-docs/openapi.json";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// JSON pointers where `a` and `b` differ (at most `limit`).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => differences(p, q, &here, out, limit),
                    (Some(_), None) => out.push(format!("{here}: only served")),
                    (None, Some(_)) => out.push(format!("{here}: only checked in")),
                    (None, None) => {}
                }
                if out.len() >= limit {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}/{i}"), out, limit);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: served {a}, checked in {b}")),
    }
}

#[test]
fn the_served_document_is_the_checked_in_one() {
    let server = Server::start(&[]);
    let resp = server.get(DOC_PATH, None).expect(200);
    assert!(
        resp.content_type.starts_with("application/json"),
        "{DOC_PATH} content type {:?}",
        resp.content_type
    );
    let served: Value = resp.json();
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "not an OpenAPI 3.1 document: {}",
        served["openapi"]
    );

    let file = repo_root().join("proto-docs/openapi.json");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}; generate it with `{REGENERATE}`", file.display()));
    let checked_in: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON ({e}); regenerate it with `{REGENERATE}`",
            file.display()
        )
    });
    if served != checked_in {
        let mut diffs = Vec::new();
        differences(&served, &checked_in, "", &mut diffs, 20);
        panic!(
            "proto-docs/openapi.json differs from what the server serves at {DOC_PATH}; \
             regenerate it with `{REGENERATE}`.\nFirst differences:\n  {}",
            diffs.join("\n  ")
        );
    }
}

/// One operation of the document.
struct Op {
    method: String,
    path: String,
    /// Scheme names of its security requirements; empty for an open operation.
    schemes: BTreeSet<String>,
    responses: serde_json::Map<String, Value>,
}

impl Op {
    fn secured(&self) -> bool {
        !self.schemes.is_empty()
    }

    /// Only session tokens (plain or admin) are accepted.
    fn session_only(&self) -> bool {
        self.secured() && self.schemes.iter().all(|s| s == "session" || s == "admin")
    }

    /// Whether calling it with a session may revoke that session.
    fn may_revoke(&self) -> bool {
        self.method == "DELETE" || self.path.contains("revoke")
    }

    /// The declared response for `status`: exact, then `4XX`-style, then `default`.
    fn declared(&self, status: u16) -> Option<&Value> {
        self.responses
            .get(&status.to_string())
            .or_else(|| self.responses.get(&format!("{}XX", status / 100)))
            .or_else(|| self.responses.get("default"))
    }

    fn declared_codes(&self) -> Vec<&str> {
        self.responses.keys().map(String::as_str).collect()
    }

    /// The path with every `{param}` replaced by a random UUID.
    fn concrete_path(&self) -> String {
        let mut out = String::new();
        let mut rest = self.path.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .unwrap_or_else(|| panic!("unclosed parameter in {}", self.path));
            out.push_str(&rest[..open]);
            out.push_str(&uuid::Uuid::new_v4().to_string());
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let top_security = doc.get("security");
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut ops = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let security = op.get("security").or(top_security);
            let requirements: Vec<&serde_json::Map<String, Value>> = security
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| r.as_object().expect("a security requirement"))
                        .collect()
                })
                .unwrap_or_default();
            // An empty requirement (`{}`) makes the credential optional: an open operation.
            let schemes = if requirements.iter().any(|r| r.is_empty()) {
                BTreeSet::new()
            } else {
                requirements
                    .iter()
                    .flat_map(|r| r.keys().cloned())
                    .collect()
            };
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} declares no responses"))
                .clone();
            ops.push(Op {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                schemes,
                responses,
            });
        }
    }
    ops
}

/// A credential to call an operation with, described without its secret.
struct Cred<'a> {
    case: &'static str,
    what: &'static str,
    token: Option<&'a str>,
}

#[test]
fn every_operation_answers_only_what_it_declares() {
    let server = Server::start_unlimited(&[]);
    let doc: Value = server.get(DOC_PATH, None).expect(200).json();
    let ops = operations(&doc);
    assert!(!ops.is_empty(), "the document has no operations");
    assert!(
        ops.iter().any(Op::session_only),
        "no session-only operation in the document"
    );

    let key = Key::generate(server.scratch(), "ed25519", "owner@host");
    let session = server.sign_in(&key, Some("owner")).token;
    let pat = server
        .post_json(
            "/api/native/tokens",
            &serde_json::json!({ "name": "conformance" }),
            Some(&session),
        )
        .expect(201)
        .json::<latchkey_proto::CreateTokenResponse>()
        .token;
    let unknown = generate(TokenPrefix::Session, rand::random());
    let unknown = unknown.expose_secret();

    let mut failures = Vec::new();
    let mut calls = 0;
    for (n, op) in ops.iter().enumerate() {
        let path = op.concrete_path();
        let body: Option<&[u8]> = (op.method == "POST").then_some(b"{}");
        // Revoking operations get a session of their own, of another user, so that the
        // shared session and the PAT (of the first user) outlive them.
        let fresh;
        let right = if op.secured() && op.may_revoke() {
            let k = Key::generate(server.scratch(), "ed25519", "fresh@host");
            fresh = server.sign_in(&k, Some(&format!("fresh{n}"))).token;
            fresh.as_str()
        } else {
            session.as_str()
        };
        let creds: Vec<Cred> = if !op.secured() {
            vec![Cred {
                case: "open",
                what: "no credential",
                token: None,
            }]
        } else {
            vec![
                Cred {
                    case: "a",
                    what: "no credential",
                    token: None,
                },
                if op.session_only() {
                    Cred {
                        case: "b",
                        what: "a valid PAT",
                        token: Some(&pat),
                    }
                } else {
                    Cred {
                        case: "b",
                        what: "an unknown well-formed lks_ token",
                        token: Some(unknown),
                    }
                },
                Cred {
                    case: "c",
                    what: "a valid session",
                    token: Some(right),
                },
            ]
        };
        for cred in creds {
            calls += 1;
            let resp = server.send(&op.method, &path, cred.token, body);
            let sent = format!(
                "{} {path} with {} and {} (case {})",
                op.method,
                cred.what,
                if body.is_some() { "body {}" } else { "no body" },
                cred.case
            );
            check(op, &sent, &resp, &mut failures);
            let wanted = match cred.case {
                "a" => Some(401),
                "b" if op.session_only() => Some(403),
                "b" => Some(401),
                _ => None,
            };
            if let Some(want) = wanted {
                if resp.status != want {
                    failures.push(format!(
                        "{sent}: expected {want}, got {} {}",
                        resp.status, resp.body
                    ));
                }
            }
        }
    }

    let live = |t: &str| server.get("/api/native/me", Some(t)).status;
    assert!(
        failures.is_empty(),
        "{} of {calls} calls broke the document (shared session /me: {}, PAT /me: {}):\n  {}",
        failures.len(),
        live(&session),
        live(&pat),
        failures.join("\n  ")
    );
}

/// The answer's status is declared, and so is its content type (or its emptiness).
fn check(op: &Op, sent: &str, resp: &Resp, failures: &mut Vec<String>) {
    let Some(declared) = op.declared(resp.status) else {
        failures.push(format!(
            "{sent}: got {} {}, which is not among the declared {:?}",
            resp.status,
            resp.body,
            op.declared_codes()
        ));
        return;
    };
    let media = resp
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match declared.get("content").and_then(Value::as_object) {
        Some(content) if !content.is_empty() => {
            if !content.keys().any(|k| k.eq_ignore_ascii_case(&media)) {
                failures.push(format!(
                    "{sent}: {} with content type {:?}, declared {:?}; body {}",
                    resp.status,
                    resp.content_type,
                    content.keys().collect::<Vec<_>>(),
                    resp.body
                ));
            } else if media == "application/json"
                && serde_json::from_str::<Value>(&resp.body).is_err()
            {
                failures.push(format!(
                    "{sent}: {} declared as JSON, body is not JSON: {}",
                    resp.status, resp.body
                ));
            }
        }
        _ => {
            if !resp.body.is_empty() {
                failures.push(format!(
                    "{sent}: {} is declared without content, got {:?} {}",
                    resp.status, resp.content_type, resp.body
                ));
            }
        }
    }
}

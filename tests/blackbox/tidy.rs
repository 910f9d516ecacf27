//! Tidy checks: the README's Architecture Invariants, checked over the source text
//! (rust-analyzer's `tidy.rs` is the model). Each test names the invariant it guards and
//! lists every offending file and line, so a failure says where to look.

use crate::support::repo_root;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace-relative path with `/` separators.
fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Whether a file holds only test code (a `tests.rs` module or a `tests/` directory).
fn is_test_file(rel: &str) -> bool {
    rel.starts_with("tests/") || rel.ends_with("/tests.rs") || rel.contains("/tests/")
}

/// The lines of a source file that are not in its `#[cfg(test)]` module and not comments.
/// A `#[cfg(test)]` item runs to the end of the file in this codebase's layout (the test
/// module is always last), so everything after the attribute is skipped.
fn production_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// Every production line of every crate source file that contains one of `needles`, except
/// in the files `allowed` (workspace-relative prefixes).
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let root = repo_root();
    let mut found = Vec::new();
    for file in rust_files(&root.join("crates")) {
        let r = rel(&file);
        if is_test_file(&r) || allowed.iter().any(|a| r.starts_with(a)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in production_lines(&text) {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{r}:{n}: {}", line.trim()));
            }
        }
    }
    found
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{what}; found {}:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The `[dependencies]` (not dev-dependencies) of a crate's Cargo.toml, by name.
fn dependencies(crate_dir: &str) -> Vec<String> {
    let path = repo_root().join(crate_dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = t.split_once(['=', '.']) {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    deps.push(name.to_string());
                }
            }
        }
    }
    deps
}

#[test]
fn nothing_outside_the_store_names_sled() {
    // The bench's raw-sled peer measures sled itself, so it is the one exception.
    assert_none(
        "only latchkey-store may name sled (the store is behind its EventStore trait)",
        offenders(
            &["sled::", "use sled"],
            &["crates/latchkey-store/", "crates/latchkey-bench/"],
        ),
    );
    for krate in [
        "crates/latchkey-domain",
        "crates/latchkey-proto",
        "crates/latchkey-actors",
        "crates/latchkey-admin",
        "crates/latchkey-server",
        "crates/latchkey-cli",
    ] {
        assert!(
            !dependencies(krate).iter().any(|d| d == "sled"),
            "{krate} depends on sled directly"
        );
    }
}

#[test]
fn the_wall_clock_is_read_only_by_the_clock() {
    assert_none(
        "the wall clock is read only in latchkey-store's clock.rs; everything else takes an \
         injected clock",
        offenders(
            &["SystemTime::now", "OffsetDateTime::now", "Utc::now"],
            &[
                "crates/latchkey-store/src/clock.rs",
                "crates/latchkey-bench/",
                // The client runs beside no server: its one clock read checks a
                // challenge's expiry (the relay defence).
                "crates/latchkey-client/src/challenge.rs",
            ],
        ),
    );
}

#[test]
fn status_codes_are_picked_only_in_error_rs() {
    // Success statuses (200, 201, 204) are what a handler returns; every error status and
    // every raw `StatusCode` is chosen in server/src/error.rs.
    let error_builders = [
        "StatusCode::",
        "HttpResponse::BadRequest",
        "HttpResponse::Unauthorized",
        "HttpResponse::Forbidden",
        "HttpResponse::NotFound",
        "HttpResponse::Conflict",
        "HttpResponse::PayloadTooLarge",
        "HttpResponse::TooManyRequests",
        "HttpResponse::ServiceUnavailable",
        "HttpResponse::InternalServerError",
        "HttpResponseBuilder::new(",
    ];
    let found: Vec<String> = offenders(&error_builders, &["crates/latchkey-server/src/error.rs"])
        .into_iter()
        .filter(|l| l.starts_with("crates/latchkey-server/"))
        .collect();
    assert_none("only server/src/error.rs picks error statuses", found);
}

#[test]
fn the_domain_does_no_io_and_knows_no_framework() {
    let deps = dependencies("crates/latchkey-domain");
    for banned in [
        "actix",
        "actix-web",
        "actix-rt",
        "sled",
        "tokio",
        "reqwest",
        "latchkey-store",
        "latchkey-actors",
        "latchkey-proto",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "latchkey-domain depends on {banned}"
        );
    }
    let found: Vec<String> = offenders(
        &[
            "std::fs",
            "std::net::TcpStream",
            "OsRng",
            "thread_rng",
            "tracing::",
        ],
        &[],
    )
    .into_iter()
    .filter(|l| l.starts_with("crates/latchkey-domain/"))
    .collect();
    assert_none(
        "the domain does no I/O, makes no random values and logs nothing",
        found,
    );
}

#[test]
fn dependencies_point_one_way() {
    // domain <- store <- actors <- admin <- server <- cli; proto (the wire types) is used by
    // admin (its documents), server, client and cli.
    let allowed: &[(&str, &[&str])] = &[
        ("crates/latchkey-domain", &[]),
        ("crates/latchkey-proto", &[]),
        ("crates/latchkey-client", &["latchkey-proto"]),
        ("crates/latchkey-store", &["latchkey-domain"]),
        (
            "crates/latchkey-actors",
            &["latchkey-domain", "latchkey-store"],
        ),
        (
            "crates/latchkey-admin",
            &[
                "latchkey-domain",
                "latchkey-store",
                "latchkey-actors",
                "latchkey-proto",
            ],
        ),
    ];
    for (krate, ok) in allowed {
        if !repo_root().join(krate).exists() {
            continue;
        }
        let ours: Vec<String> = dependencies(krate)
            .into_iter()
            .filter(|d| d.starts_with("latchkey-"))
            .filter(|d| !ok.contains(&d.as_str()))
            .collect();
        assert!(
            ours.is_empty(),
            "{krate} depends on {ours:?}, against the layering"
        );
    }
    let server = dependencies("crates/latchkey-server");
    assert!(
        !server
            .iter()
            .any(|d| d == "latchkey-cli" || d == "latchkey-client"),
        "the server depends on a crate above it"
    );
}

#[test]
fn only_the_codec_calls_bincode() {
    assert_none(
        "only latchkey-store's codec.rs calls bincode",
        offenders(&["bincode::"], &["crates/latchkey-store/src/codec.rs"]),
    );
}

#[test]
fn the_visibility_rule_is_one_function() {
    // Methods named `may_see` (taking `self`) only delegate to the one free function.
    let found: Vec<String> = offenders(&["fn may_see"], &[])
        .into_iter()
        .filter(|l| !l.contains("self"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the visibility rule must be exactly one function, found: {found:#?}"
    );
    assert!(found[0].starts_with("crates/latchkey-domain/src/visibility.rs"));
}

#[test]
fn every_module_says_what_it_owns() {
    let mut missing = Vec::new();
    for file in rust_files(&repo_root().join("crates")) {
        let r = rel(&file);
        if is_test_file(&r) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            missing.push(r);
        }
    }
    assert_none("every module starts with a //! line", missing);
}

/// Marker that explains a long function; it must say why on the same line.
const LONG_FN_MARKER: &str = "tidy: long function";

#[test]
fn functions_are_short_or_say_why() {
    let mut long = Vec::new();
    for file in rust_files(&repo_root().join("crates")) {
        let r = rel(&file);
        if is_test_file(&r) || r.starts_with("crates/latchkey-bench/") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        long.extend(long_functions(&text, 80).into_iter().map(|(line, len)| {
            format!("{r}:{line}: {len} lines without a `// {LONG_FN_MARKER}: why` comment")
        }));
    }
    assert_none(
        "no function is longer than 80 lines without saying why",
        long,
    );
}

/// `(first line, length)` of every function in the production part of `text` longer than
/// `max` lines whose preceding comment lines do not carry the long-function marker.
fn long_functions(text: &str, max: usize) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or(lines.len());
    let mut out = Vec::new();
    let mut i = 0;
    while i < end {
        let t = lines[i].trim_start();
        let is_fn = t.starts_with("fn ")
            || t.starts_with("pub fn ")
            || t.starts_with("pub(crate) fn ")
            || t.starts_with("async fn ")
            || t.starts_with("pub async fn ")
            || t.starts_with("pub(crate) async fn ");
        if !is_fn || t.ends_with(';') {
            i += 1;
            continue;
        }
        let indent = lines[i].len() - t.len();
        let close = " ".repeat(indent) + "}";
        let Some(len) = lines[i..end].iter().position(|l| *l == close) else {
            i += 1;
            continue;
        };
        let explained = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim_start();
                l.starts_with("//") || l.starts_with("#[")
            })
            .any(|l| l.contains(LONG_FN_MARKER));
        if len + 1 > max && !explained {
            out.push((i + 1, len + 1));
        }
        i += 1;
    }
    out
}

#[test]
fn the_long_function_check_counts_lines() {
    let short = "fn a() {\n    x();\n}\n";
    assert!(long_functions(short, 80).is_empty());
    let body = "    x();\n".repeat(90);
    let long = format!("fn a() {{\n{body}}}\n");
    assert_eq!(long_functions(&long, 80), vec![(1, 92)]);
    let explained = format!("// {LONG_FN_MARKER}: one match over every variant\n{long}");
    assert!(long_functions(&explained, 80).is_empty());
    let in_tests = format!("#[cfg(test)]\nmod tests {{\n{long}}}\n");
    assert!(long_functions(&in_tests, 80).is_empty());
}

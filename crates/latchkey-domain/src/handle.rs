//! Handle syntax: validating a chosen handle, the reserved handles, and deriving one from
//! a key's comment.
//!
//! Must not: decide uniqueness. Whether a handle is taken is the read model's business;
//! the caller checks it before registering.

use thiserror::Error;

/// The longest handle, in characters (all ASCII, so also bytes).
pub const MAX_HANDLE_LEN: usize = 32;

/// Why a handle was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HandleError {
    /// The handle is empty.
    #[error("handle is empty")]
    Empty,
    /// The handle is longer than 32 characters.
    #[error("handle is longer than {MAX_HANDLE_LEN} characters")]
    TooLong,
    /// The handle holds a character outside `[a-z0-9_-]`.
    #[error("handle may only contain a-z, 0-9, '_' and '-' (found {0:?})")]
    InvalidChar(char),
}

/// Handles nobody may take for themselves (DESIGN §6): asking for one at sign-in answers
/// `handle_taken`, and a derived handle is never one. An admin may still give one to a
/// user (`latchkey admin user add`), since the operator decides who is `root`.
pub const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "latchkey",
    "system",
    "support",
    "security",
    "sysadmin",
    "moderator",
    "official",
    "webmaster",
    "postmaster",
    "hostmaster",
    "abuse",
    "noreply",
    "no-reply",
];

/// Whether `handle` is one of [`RESERVED`].
pub fn is_reserved(handle: &str) -> bool {
    RESERVED.contains(&handle)
}

fn is_handle_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

/// Checks a handle: 1–32 characters of `[a-z0-9_-]`.
pub fn validate_handle(handle: &str) -> Result<(), HandleError> {
    if handle.is_empty() {
        return Err(HandleError::Empty);
    }
    if let Some(c) = handle.chars().find(|c| !is_handle_char(*c)) {
        return Err(HandleError::InvalidChar(c));
    }
    if handle.len() > MAX_HANDLE_LEN {
        return Err(HandleError::TooLong);
    }
    Ok(())
}

/// Derives a valid handle for a user who did not choose one.
///
/// Takes the local part of the key comment (`alice@laptop` gives `alice`), lowercased, with
/// every other character mapped to `-` (runs collapsed, ends trimmed), cut to 32. When
/// nothing is left, falls back to `user-` and the first 8 alphanumerics of the key
/// fingerprint, lowercased, so the same key always derives the same handle.
///
/// A reserved local part ([`RESERVED`]) takes the fallback too, so a comment such as
/// `Administrator@host` never becomes `administrator`.
///
/// The result always passes [`validate_handle`] and is never reserved; it may still be
/// taken (see [`with_suffix`]).
pub fn derive_handle(comment: &str, fingerprint: &str) -> String {
    let local = comment.trim().split('@').next().unwrap_or("");
    let mut out = String::with_capacity(MAX_HANDLE_LEN);
    for c in local.chars() {
        let c = c.to_ascii_lowercase();
        let c = if is_handle_char(c) { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        if out.len() == MAX_HANDLE_LEN {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end_matches('-');
    if !trimmed.is_empty() && !is_reserved(trimmed) {
        return trimmed.to_string();
    }
    fallback_handle(fingerprint)
}

fn fallback_handle(fingerprint: &str) -> String {
    let body = fingerprint.split_once(':').map_or(fingerprint, |(_, b)| b);
    let mut out = String::from("user-");
    out.extend(
        body.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .chain(std::iter::repeat('0'))
            .take(8),
    );
    out
}

/// `base` with `-<suffix>` appended, cutting `base` so the result stays within 32
/// characters: for retrying a derived handle that is taken (`alice`, `alice-2`, ...).
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let keep = MAX_HANDLE_LEN.saturating_sub(suffix.len() + 1);
    let cut: String = base.chars().take(keep).collect();
    format!("{}-{suffix}", cut.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    #[test]
    fn a_reserved_local_part_derives_the_fingerprint_handle() {
        for comment in ["Administrator@host", "root@box", "admin", "SUPPORT@x"] {
            let h = derive_handle(comment, FP);
            assert!(!is_reserved(&h), "{comment} gave {h}");
            assert!(h.starts_with("user-"), "{comment} gave {h}");
        }
        assert_eq!(derive_handle("rooted@box", FP), "rooted");
    }

    #[test]
    fn valid_handles_pass() {
        for h in ["a", "alice", "bob_smith-2", "0", &"x".repeat(32)] {
            assert_eq!(validate_handle(h), Ok(()), "{h}");
        }
    }

    #[test]
    fn invalid_handles_are_refused() {
        assert_eq!(validate_handle(""), Err(HandleError::Empty));
        assert_eq!(validate_handle(&"x".repeat(33)), Err(HandleError::TooLong));
        assert_eq!(validate_handle("Alice"), Err(HandleError::InvalidChar('A')));
        assert_eq!(validate_handle("a b"), Err(HandleError::InvalidChar(' ')));
        assert_eq!(validate_handle("a.b"), Err(HandleError::InvalidChar('.')));
        assert_eq!(validate_handle("é"), Err(HandleError::InvalidChar('é')));
    }

    #[test]
    fn derive_takes_the_local_part_lowercased() {
        assert_eq!(derive_handle("Alice@laptop.example", FP), "alice");
        assert_eq!(derive_handle("  bob_b  ", FP), "bob_b");
    }

    #[test]
    fn derive_maps_invalid_chars_to_dashes_and_trims() {
        assert_eq!(derive_handle("John Smith", FP), "john-smith");
        assert_eq!(derive_handle("..a...b..@x", FP), "a-b");
        assert_eq!(derive_handle("Zoë", FP), "zo");
    }

    #[test]
    fn derive_truncates_to_32() {
        let h = derive_handle(&"a".repeat(50), FP);
        assert_eq!(h.len(), 32);
        // A cut that ends on a dash is trimmed.
        let h = derive_handle(&format!("{} b", "a".repeat(31)), FP);
        assert_eq!(h, "a".repeat(31));
    }

    #[test]
    fn derive_falls_back_to_the_fingerprint() {
        assert_eq!(derive_handle("", FP), "user-univztks");
        assert_eq!(derive_handle("@host", FP), "user-univztks");
        assert_eq!(derive_handle("...", FP), "user-univztks");
        assert_eq!(derive_handle("", "SHA256:+/a"), "user-a0000000");
    }

    #[test]
    fn derived_handles_are_always_valid() {
        for c in [
            "",
            "x",
            "Ünïcödé",
            "a@b@c",
            "-_-",
            &"Q!".repeat(40),
            "tab\there",
        ] {
            let h = derive_handle(c, FP);
            assert_eq!(validate_handle(&h), Ok(()), "{c:?} -> {h:?}");
        }
    }

    #[test]
    fn suffix_keeps_the_handle_short_enough() {
        assert_eq!(with_suffix("alice", "2"), "alice-2");
        let h = with_suffix(&"a".repeat(32), "17");
        assert_eq!(h.len(), 32);
        assert_eq!(validate_handle(&h), Ok(()));
    }
}

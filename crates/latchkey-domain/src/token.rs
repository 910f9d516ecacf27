//! The bearer token format: `<prefix><43 base62 chars of 32 random bytes><6 base62 chars of
//! CRC32>`, its checksum, its SHA-256 and the redacting wrapper that holds a raw token.
//!
//! Must not: make the random bytes (the caller passes 32 bytes from the OS CSPRNG), look a
//! token up, or print a secret: [`RawToken`]'s `Debug` redacts, and it has no `Display`.

use crate::events::TokenKind;
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;
use zeroize::Zeroize;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Every prefix is 4 ASCII characters.
pub const PREFIX_LEN: usize = 4;
/// Base62 characters of the 32 random bytes (62^43 > 2^256).
pub const BODY_LEN: usize = 43;
/// Base62 characters of the CRC32 (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole token string.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

/// The kind of credential a token string is, told by its first four characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenPrefix {
    /// `lks_`: a session, minted by an SSH challenge.
    Session,
    /// `lkd_`: a device token.
    Device,
    /// `lkp_`: a personal access token.
    Personal,
    /// `lkw_`: a single-use WebSocket ticket (never stored as a token).
    WsTicket,
    /// `lkc_`: a one-time admin pairing code (redeemed for a device token; never a bearer).
    PairingCode,
}

impl TokenPrefix {
    /// Every prefix, for parsing.
    pub const ALL: [TokenPrefix; 5] = [
        TokenPrefix::Session,
        TokenPrefix::Device,
        TokenPrefix::Personal,
        TokenPrefix::WsTicket,
        TokenPrefix::PairingCode,
    ];

    /// The four characters a token of this kind starts with.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenPrefix::Session => "lks_",
            TokenPrefix::Device => "lkd_",
            TokenPrefix::Personal => "lkp_",
            TokenPrefix::WsTicket => "lkw_",
            TokenPrefix::PairingCode => "lkc_",
        }
    }

    /// The stored token kind; `None` for a WS ticket or a pairing code, which are not
    /// stored tokens.
    pub fn kind(&self) -> Option<TokenKind> {
        match self {
            TokenPrefix::Session => Some(TokenKind::Session),
            TokenPrefix::Device => Some(TokenKind::Device),
            TokenPrefix::Personal => Some(TokenKind::Personal),
            TokenPrefix::WsTicket | TokenPrefix::PairingCode => None,
        }
    }

    fn from_str_prefix(s: &str) -> Option<TokenPrefix> {
        TokenPrefix::ALL
            .into_iter()
            .find(|p| s.starts_with(p.as_str()))
    }
}

impl From<TokenKind> for TokenPrefix {
    fn from(kind: TokenKind) -> Self {
        match kind {
            TokenKind::Session => TokenPrefix::Session,
            TokenKind::Device => TokenPrefix::Device,
            TokenKind::Personal => TokenPrefix::Personal,
        }
    }
}

/// Why a string is not a well-formed token. Told apart without any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TokenFormatError {
    /// It does not start with a known prefix.
    #[error("unknown token prefix")]
    UnknownPrefix,
    /// It is not exactly [`TOKEN_LEN`] bytes long.
    #[error("wrong token length")]
    WrongLength,
    /// Its body or checksum is not base62, or the body encodes more than 32 bytes.
    #[error("token is not base62")]
    NotBase62,
    /// Its checksum does not match: a typo or a look-alike.
    #[error("token checksum mismatch")]
    BadChecksum,
}

/// A raw token: the secret itself. Shown once to its holder, never stored or logged.
///
/// `Debug` prints only the prefix; the memory is wiped on drop. Read the value with
/// [`RawToken::expose_secret`], which makes each use easy to find in review.
#[derive(Clone, PartialEq, Eq)]
pub struct RawToken(String);

impl RawToken {
    /// The secret token string, to hand to its holder once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token string: the only form that is stored.
    pub fn hash(&self) -> [u8; 32] {
        hash_token(&self.0)
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.0.get(..PREFIX_LEN).unwrap_or("");
        write!(f, "RawToken({prefix}<redacted>)")
    }
}

impl Drop for RawToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A token string that passed [`parse`]: well-formed, with a good checksum. It may still be
/// unknown, revoked or expired; that takes a lookup by [`ParsedToken::hash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedToken {
    prefix: TokenPrefix,
    raw: RawToken,
}

impl ParsedToken {
    /// Which kind of credential the string claims to be.
    pub fn prefix(&self) -> TokenPrefix {
        self.prefix
    }

    /// SHA-256 of the token string, the lookup key.
    pub fn hash(&self) -> [u8; 32] {
        self.raw.hash()
    }

    /// The token itself.
    pub fn raw(&self) -> &RawToken {
        &self.raw
    }
}

/// Makes a token from 32 random bytes the caller drew from the OS CSPRNG.
pub fn generate(prefix: TokenPrefix, random: [u8; 32]) -> RawToken {
    let mut s = String::with_capacity(TOKEN_LEN);
    s.push_str(prefix.as_str());
    push_base62(&mut s, &random, BODY_LEN);
    let crc = crc32fast::hash(s.as_bytes());
    push_base62(&mut s, &crc.to_be_bytes(), CHECKSUM_LEN);
    RawToken(s)
}

/// Checks a string's shape and checksum, without any lookup.
pub fn parse(s: &str) -> Result<ParsedToken, TokenFormatError> {
    let prefix = validate(s)?;
    Ok(ParsedToken {
        prefix,
        raw: RawToken(s.to_string()),
    })
}

/// The same check as [`parse`], without copying the secret: the prefix and the SHA-256
/// (the lookup key) of a well-formed token. What every authenticated request runs.
pub fn check(s: &str) -> Result<(TokenPrefix, [u8; 32]), TokenFormatError> {
    let prefix = validate(s)?;
    Ok((prefix, hash_token(s)))
}

/// Shape, digits, range and checksum of a token string: its prefix.
fn validate(s: &str) -> Result<TokenPrefix, TokenFormatError> {
    let prefix = TokenPrefix::from_str_prefix(s).ok_or(TokenFormatError::UnknownPrefix)?;
    if s.len() != TOKEN_LEN {
        return Err(TokenFormatError::WrongLength);
    }
    // Every byte after the ASCII prefix must be a base62 digit, so a multi-byte character
    // anywhere fails here (no slicing at a non-boundary).
    let (signed, checksum) = s.as_bytes().split_at(PREFIX_LEN + BODY_LEN);
    let body = signed
        .get(PREFIX_LEN..)
        .ok_or(TokenFormatError::NotBase62)?;
    if !body.iter().all(|&c| digit(c).is_some()) || body > max_body().as_slice() {
        return Err(TokenFormatError::NotBase62);
    }
    let mut crc: u64 = 0;
    for &c in checksum {
        crc = crc * 62 + u64::from(digit(c).ok_or(TokenFormatError::NotBase62)?);
    }
    let crc = u32::try_from(crc).map_err(|_| TokenFormatError::NotBase62)?;
    if crc != crc32fast::hash(signed) {
        return Err(TokenFormatError::BadChecksum);
    }
    Ok(prefix)
}

/// The body of 32 bytes of 0xff: the greatest body that fits in 32 bytes. Fixed-width
/// base62 in this alphabet (ascending ASCII) orders like the numbers it encodes, so a
/// body is in range when it compares at most this, byte by byte.
fn max_body() -> &'static [u8; BODY_LEN] {
    static MAX: std::sync::OnceLock<[u8; BODY_LEN]> = std::sync::OnceLock::new();
    MAX.get_or_init(|| {
        let mut s = String::with_capacity(BODY_LEN);
        push_base62(&mut s, &[0xff; 32], BODY_LEN);
        let mut out = [b'z'; BODY_LEN];
        out.copy_from_slice(s.as_bytes());
        out
    })
}

/// The value of a base62 digit.
fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// SHA-256 of a token string.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Appends `bytes` (big-endian) as exactly `width` base62 digits, left-padded with `0`.
fn push_base62(out: &mut String, bytes: &[u8], width: usize) {
    let mut n = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        // Long division of n by 62, in place; the remainder is the next digit.
        let mut rem: u32 = 0;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 62) as u8;
            rem = cur % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    out.extend(digits.into_iter().map(char::from));
}

/// Reads base62 digits into `N` big-endian bytes; `None` on a bad digit or overflow (the
/// reference the tests hold `validate`'s range check to).
#[cfg(test)]
fn decode_base62<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut n = [0u8; N];
    for c in s.bytes() {
        // n = n * 62 + digit
        let mut carry = u32::from(digit(c)?);
        for b in n.iter_mut().rev() {
            let cur = u32::from(*b) * 62 + carry;
            *b = (cur & 0xff) as u8;
            carry = cur >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(prefix: TokenPrefix) -> RawToken {
        let mut random = [0u8; 32];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        generate(prefix, random)
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        for prefix in TokenPrefix::ALL {
            let t = sample(prefix);
            let s = t.expose_secret();
            assert_eq!(s.len(), TOKEN_LEN);
            assert!(s.starts_with(prefix.as_str()));
            assert!(s[PREFIX_LEN..].bytes().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn round_trip() {
        for prefix in TokenPrefix::ALL {
            let t = sample(prefix);
            let parsed = parse(t.expose_secret()).unwrap();
            assert_eq!(parsed.prefix(), prefix);
            assert_eq!(parsed.raw(), &t);
            assert_eq!(parsed.hash(), t.hash());
        }
    }

    #[test]
    fn base62_is_fixed_width_and_exact() {
        let zero = generate(TokenPrefix::Session, [0; 32]);
        assert!(zero.expose_secret()[4..47].bytes().all(|c| c == b'0'));
        let max = generate(TokenPrefix::Session, [0xff; 32]);
        assert_eq!(
            decode_base62::<32>(&max.expose_secret()[4..47]),
            Some([0xff; 32])
        );
        let mut s = String::new();
        push_base62(&mut s, &[0, 0, 0, 61], 6);
        assert_eq!(s, "00000z");
        // 62^43 - 1 does not fit in 32 bytes.
        assert_eq!(decode_base62::<32>(&"z".repeat(43)), None);
    }

    #[test]
    fn check_agrees_with_the_big_number_decode_at_the_edge() {
        let max = generate(TokenPrefix::Session, [0xff; 32]);
        let max = max.expose_secret();
        assert_eq!(check(max).unwrap(), (TokenPrefix::Session, hash_token(max)));
        // One more than the greatest body: the last digit of the max body is not 'z'
        // (62^43 - 1 overflows), so bump it and re-sign the checksum.
        let mut body = max.as_bytes()[PREFIX_LEN..PREFIX_LEN + BODY_LEN].to_vec();
        let last = body.len() - 1;
        let next = ALPHABET[usize::from(digit(body[last]).unwrap()) + 1];
        body[last] = next;
        let body = String::from_utf8(body).unwrap();
        assert_eq!(decode_base62::<32>(&body), None, "really one past the max");
        let mut over = format!("lks_{body}");
        let crc = crc32fast::hash(over.as_bytes());
        push_base62(&mut over, &crc.to_be_bytes(), CHECKSUM_LEN);
        assert_eq!(check(&over), Err(TokenFormatError::NotBase62));
        assert_eq!(parse(&over), Err(TokenFormatError::NotBase62));
        // A checksum above u32::MAX is not base62 of 4 bytes.
        let huge = format!("{}zzzzzz", &max[..PREFIX_LEN + BODY_LEN]);
        assert_eq!(check(&huge), Err(TokenFormatError::NotBase62));
    }

    #[test]
    fn check_and_parse_agree() {
        let t = sample(TokenPrefix::Device);
        let s = t.expose_secret();
        let (prefix, hash) = check(s).unwrap();
        let parsed = parse(s).unwrap();
        assert_eq!((prefix, hash), (parsed.prefix(), parsed.hash()));
        for bad in ["", "lks_", "ghp_x", &s[..TOKEN_LEN - 1]] {
            assert_eq!(check(bad).err(), parse(bad).err(), "{bad:?}");
        }
    }

    #[test]
    fn single_character_change_fails_checksum() {
        let t = sample(TokenPrefix::Personal);
        let s = t.expose_secret();
        for i in PREFIX_LEN..TOKEN_LEN {
            let mut bytes = s.as_bytes().to_vec();
            // '0' <-> '1' keeps every digit in range, so only the checksum can notice.
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(
                parse(&changed).unwrap_err(),
                TokenFormatError::BadChecksum,
                "position {i}"
            );
        }
    }

    #[test]
    fn wrong_prefix_is_refused() {
        let t = sample(TokenPrefix::Session);
        let other = format!("lkx_{}", &t.expose_secret()[4..]);
        assert_eq!(parse(&other), Err(TokenFormatError::UnknownPrefix));
        assert_eq!(parse("ghp_abc"), Err(TokenFormatError::UnknownPrefix));
        // Another prefix with the same body fails its checksum: the prefix is signed.
        let swapped = format!("lkp_{}", &t.expose_secret()[4..]);
        assert_eq!(parse(&swapped), Err(TokenFormatError::BadChecksum));
    }

    #[test]
    fn wrong_length_is_refused() {
        let t = sample(TokenPrefix::Device);
        let s = t.expose_secret();
        assert_eq!(
            parse(&s[..TOKEN_LEN - 1]),
            Err(TokenFormatError::WrongLength)
        );
        assert_eq!(parse(&format!("{s}0")), Err(TokenFormatError::WrongLength));
        assert_eq!(parse("lks_"), Err(TokenFormatError::WrongLength));
    }

    #[test]
    fn non_base62_is_refused_without_panicking() {
        let t = sample(TokenPrefix::Session);
        let mut s = t.expose_secret().to_string();
        s.replace_range(10..11, "-");
        assert_eq!(parse(&s), Err(TokenFormatError::NotBase62));
        // A multi-byte character at a would-be boundary.
        let weird = format!("lks_{}é{}", "a".repeat(42), "b".repeat(5));
        assert_eq!(weird.len(), TOKEN_LEN);
        assert_eq!(parse(&weird), Err(TokenFormatError::NotBase62));
    }

    #[test]
    fn debug_is_redacted() {
        let t = sample(TokenPrefix::Session);
        let secret = t.expose_secret().to_string();
        let printed = format!("{t:?}");
        assert_eq!(printed, "RawToken(lks_<redacted>)");
        let parsed = parse(&secret).unwrap();
        let printed = format!("{parsed:?}");
        assert!(!printed.contains(&secret[4..]), "{printed}");
        assert!(!printed.contains(&secret[4..20]), "{printed}");
    }

    #[test]
    fn hash_is_sha256_of_the_string() {
        let t = sample(TokenPrefix::Session);
        let expected: [u8; 32] = Sha256::digest(t.expose_secret().as_bytes()).into();
        assert_eq!(t.hash(), expected);
    }

    #[test]
    fn prefixes_map_to_kinds() {
        for kind in [TokenKind::Session, TokenKind::Device, TokenKind::Personal] {
            assert_eq!(TokenPrefix::from(kind).kind(), Some(kind));
        }
        assert_eq!(TokenPrefix::WsTicket.kind(), None);
    }
}

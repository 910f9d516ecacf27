//! The RFC 8628 user code and the key-enrollment comparison code (DESIGN §12): how a user
//! code is drawn from caller-supplied random bytes, normalised from what a person typed,
//! hashed for storage, and how both sides derive the 6-digit comparison code.
//!
//! Must not: make random values. The caller hands in bytes from its CSPRNG.

use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;

/// The 20 letters a user code is made of: no vowels (no words), no look-alikes.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Letters in a user code (shown as two groups of four).
pub const USER_CODE_LEN: usize = 8;

/// Random bytes [`UserCode::generate`] wants: enough that running out is astronomically
/// unlikely (each byte is kept with probability 240/256).
pub const USER_CODE_RANDOM_BYTES: usize = 32;

/// The domain separator of the comparison code.
pub const COMPARISON_LABEL: &str = "latchkey-compare-v1";

/// A well-formed user code, always in its canonical form `XXXX-XXXX`, upper case.
///
/// The code is not a credential on its own, but it is redacted from logs like one: its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

/// Why typed input is not a user code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum UserCodeError {
    /// Not 8 letters of the alphabet once dashes and spaces are dropped.
    #[error("a user code is 8 letters of BCDFGHJKLMNPQRSTVWXZ, shown as XXXX-XXXX")]
    Malformed,
}

impl UserCode {
    /// Draws a code from random bytes by rejection sampling: a byte `b < 240` gives
    /// letter `b % 20` (240 is the largest multiple of 20 that fits a byte, so every letter
    /// is equally likely); larger bytes are skipped. `None` when the bytes run out first,
    /// which the caller answers by drawing fresh bytes.
    pub fn generate(random: &[u8]) -> Option<UserCode> {
        let letters: Vec<u8> = random
            .iter()
            .filter(|b| **b < 240)
            .map(|b| ALPHABET[usize::from(*b % 20)])
            .take(USER_CODE_LEN)
            .collect();
        (letters.len() == USER_CODE_LEN).then(|| Self::from_letters(&letters))
    }

    /// Normalises what a person typed: case-insensitive, dashes and whitespace ignored.
    pub fn parse(input: &str) -> Result<UserCode, UserCodeError> {
        if input.len() > 64 {
            return Err(UserCodeError::Malformed);
        }
        let letters: Vec<u8> = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .map(|c| u8::try_from(c).unwrap_or(0))
            .collect();
        let valid = letters.len() == USER_CODE_LEN && letters.iter().all(|l| ALPHABET.contains(l));
        if valid {
            Ok(Self::from_letters(&letters))
        } else {
            Err(UserCodeError::Malformed)
        }
    }

    fn from_letters(letters: &[u8]) -> UserCode {
        let s: String = letters.iter().map(|b| char::from(*b)).collect();
        UserCode(format!("{}-{}", &s[..4], &s[4..]))
    }

    /// The canonical form, `XXXX-XXXX`. Show it to the device's user only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the canonical form: what the log and the read model keep.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserCode([redacted])")
    }
}

/// The 6-digit code both the device and the approval screen show when a key is enrolled:
/// SHA-256 of `latchkey-compare-v1\n<user code>\n<fingerprint>`, its first 4 bytes as a
/// big-endian u32, modulo 1,000,000, zero-padded to 6 digits.
pub fn comparison_code(user_code: &UserCode, fingerprint: &str) -> String {
    let input = format!("{COMPARISON_LABEL}\n{}\n{fingerprint}", user_code.expose());
    let digest = Sha256::digest(input.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    format!("{:06}", n % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_canonical_and_uses_only_the_alphabet() {
        let code = UserCode::generate(&[0, 1, 2, 3, 19, 20, 239, 40]).unwrap();
        assert_eq!(code.expose(), "BCDF-ZBZB");
        assert!(code
            .expose()
            .chars()
            .all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
    }

    #[test]
    fn bytes_of_240_and_above_are_skipped_not_folded() {
        let code = UserCode::generate(&[240, 255, 0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(code.expose(), "BCDF-GHJK");
        assert_eq!(UserCode::generate(&[250; 32]), None);
        assert_eq!(UserCode::generate(&[0; 7]), None);
    }

    #[test]
    fn sampling_is_unbiased_over_every_byte_value() {
        // Each byte value 0..=255 once, per position: every letter exactly 12 times.
        let mut counts = [0usize; 20];
        for b in 0u8..=255 {
            if let Some(code) = UserCode::generate(&[b; 8]) {
                let first = code.expose().as_bytes()[0];
                let i = ALPHABET.iter().position(|l| *l == first).unwrap();
                counts[i] += 1;
            }
        }
        assert!(counts.iter().all(|c| *c == 12), "{counts:?}");
    }

    #[test]
    fn input_is_case_insensitive_and_ignores_dashes_and_spaces() {
        let canonical = UserCode::parse("BCDF-GHJK").unwrap();
        for typed in [
            "bcdfghjk",
            "bcdf-ghjk",
            " BcDf GhJk ",
            "B-C-D-F-G-H-J-K",
            "bcdf\tghjk",
        ] {
            assert_eq!(UserCode::parse(typed).unwrap(), canonical, "{typed}");
        }
        assert_eq!(canonical.expose(), "BCDF-GHJK");
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDF-GHJÄ",
            &"B".repeat(100),
        ] {
            assert_eq!(UserCode::parse(bad), Err(UserCodeError::Malformed), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the random bytes, a generated code is canonical and survives being
        /// typed back in lower case with stray dashes and spaces.
        #[test]
        fn generated_codes_parse_back_however_typed(
            random in proptest::collection::vec(proptest::num::u8::ANY, 32),
            lower in proptest::bool::ANY,
            seps in proptest::collection::vec(0usize..3, 8),
        ) {
            if let Some(code) = UserCode::generate(&random) {
                let canonical = code.expose().to_string();
                proptest::prop_assert_eq!(canonical.len(), 9);
                let mut typed = String::new();
                for (c, sep) in canonical.chars().filter(|c| *c != '-').zip(&seps) {
                    typed.push(if lower { c.to_ascii_lowercase() } else { c });
                    typed.push_str(["", "-", " "][*sep]);
                }
                proptest::prop_assert_eq!(UserCode::parse(&typed), Ok(code));
            }
        }
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = UserCode::parse("BCDF-GHJK").unwrap();
        assert!(!format!("{code:?}").contains("BCDF"));
    }

    /// The worked example of `proto-docs/pairing.md`.
    #[test]
    fn comparison_code_worked_example() {
        let code = UserCode::parse("WDJB-MJHT").unwrap();
        let fingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        let input = format!("latchkey-compare-v1\nWDJB-MJHT\n{fingerprint}");
        let digest = Sha256::digest(input.as_bytes());
        let first4 = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let expected = format!("{:06}", first4 % 1_000_000);
        assert_eq!(comparison_code(&code, fingerprint), expected);
        assert_eq!(
            (hex4(&digest).as_str(), first4, expected.as_str()),
            WORKED_EXAMPLE,
            "update proto-docs/pairing.md together with this"
        );
    }

    fn hex4(d: &[u8]) -> String {
        d[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// First 4 digest bytes in hex, as a u32, and the code: copied into pairing.md.
    const WORKED_EXAMPLE: (&str, u32, &str) = ("2404026c", 604_242_540, "242540");

    #[test]
    fn a_swapped_key_changes_the_code() {
        let code = UserCode::parse("WDJB-MJHT").unwrap();
        let a = comparison_code(&code, "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s");
        let b = comparison_code(&code, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_ne!(a, b);
        assert_eq!(a.len(), 6);
    }
}

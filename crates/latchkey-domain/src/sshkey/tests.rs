//! Tests of `sshkey`.

use super::*;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};
use ssh_key::private::{Ed25519Keypair, PrivateKey};
use ssh_key::public::{Ed25519PublicKey, SkEd25519};
use ssh_key::LineEnding;
use std::path::{Path, PathBuf};
use std::process::Command;

const MSG: &[u8] = b"latchkey-auth-v1\nserver=test\n";

// ---- real ssh-keygen ----

fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "test@example"])
        .args(args)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn sign_with_keygen(dir: &Path, key: &Path, namespace: &str, msg: &[u8]) -> String {
    let msg_path = dir.join("msg");
    std::fs::write(&msg_path, msg).unwrap();
    let _ = std::fs::remove_file(dir.join("msg.sig"));
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(&msg_path)
        .output()
        .expect("run ssh-keygen -Y sign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("msg.sig")).unwrap()
}

fn pubkey(path: &Path) -> SshPublicKey {
    let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    parse_public_key(&line).unwrap()
}

fn keygen_fingerprint(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // "256 SHA256:... comment (ED25519)"
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn keygen_ed25519_and_ecdsa_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("ed", &["-t", "ed25519"][..]),
        ("ec", &["-t", "ecdsa", "-b", "256"]),
    ] {
        let path = keygen(dir.path(), name, args);
        let key = pubkey(&path);
        let sig = sign_with_keygen(dir.path(), &path, NAMESPACE, MSG);
        assert_eq!(verify_signature(&key, MSG, &sig), Ok(()), "{name}");
        // Clients may send CRLF or strip the final newline.
        assert_eq!(verify_signature(&key, MSG, sig.trim()), Ok(()));
        assert_eq!(
            verify_signature(&key, MSG, &sig.replace('\n', "\r\n")),
            Ok(())
        );
    }
}

#[test]
fn keygen_keys_parse_with_the_expected_algorithm_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let ed = keygen(dir.path(), "ed", &["-t", "ed25519"]);
    let ec = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "256"]);
    let ed_key = pubkey(&ed);
    let ec_key = pubkey(&ec);
    assert_eq!(ed_key.algorithm, KeyAlgorithm::Ed25519);
    assert_eq!(ec_key.algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(ed_key.fingerprint, keygen_fingerprint(&ed));
    assert_eq!(ec_key.fingerprint, keygen_fingerprint(&ec));
    assert_eq!(ed_key.comment, "test@example");
    assert!(ed_key.openssh.starts_with("ssh-ed25519 AAAA"));
    assert!(!ed_key.openssh.contains("test@example"));
    // The stored form parses back to the same key.
    let again = parse_public_key(&ed_key.openssh).unwrap();
    assert_eq!(again.fingerprint, ed_key.fingerprint);
    assert_eq!(again.openssh, ed_key.openssh);
}

#[test]
fn keygen_signature_in_another_namespace_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = keygen(dir.path(), "ed", &["-t", "ed25519"]);
    let sig = sign_with_keygen(dir.path(), &path, "other", MSG);
    assert_eq!(
        verify_signature(&pubkey(&path), MSG, &sig),
        Err(SigError::WrongNamespace)
    );
}

#[test]
fn keygen_signature_over_a_tampered_message_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("ed", &["-t", "ed25519"][..]),
        ("ec", &["-t", "ecdsa", "-b", "256"]),
    ] {
        let path = keygen(dir.path(), name, args);
        let sig = sign_with_keygen(dir.path(), &path, NAMESPACE, MSG);
        let tampered = b"latchkey-auth-v1\nserver=evil\n";
        assert_eq!(
            verify_signature(&pubkey(&path), tampered, &sig),
            Err(SigError::Invalid),
            "{name}"
        );
    }
}

#[test]
fn keygen_signature_by_another_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a", &["-t", "ed25519"]);
    let b = keygen(dir.path(), "b", &["-t", "ed25519"]);
    let ec = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "256"]);
    let sig = sign_with_keygen(dir.path(), &b, NAMESPACE, MSG);
    assert_eq!(
        verify_signature(&pubkey(&a), MSG, &sig),
        Err(SigError::WrongKey)
    );
    assert_eq!(
        verify_signature(&pubkey(&ec), MSG, &sig),
        Err(SigError::WrongKey)
    );
}

#[test]
fn keygen_rsa_and_p384_keys_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    let p384 = keygen(dir.path(), "p384", &["-t", "ecdsa", "-b", "384"]);
    let line = |p: &Path| std::fs::read_to_string(p.with_extension("pub")).unwrap();
    assert_eq!(
        parse_public_key(&line(&rsa)),
        Err(KeyError::UnsupportedKeyType("ssh-rsa".into()))
    );
    assert_eq!(
        parse_public_key(&line(&p384)),
        Err(KeyError::UnsupportedKeyType("ecdsa-sha2-nistp384".into()))
    );
}

// ---- keys and signatures made by the crate ----

pub(crate) fn ed25519_private(seed: u8) -> PrivateKey {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let mut key = PrivateKey::from(Ed25519Keypair::from(&sk));
    key.set_comment("crate@example");
    key
}

pub(crate) fn ed25519_public(seed: u8) -> SshPublicKey {
    let line = ed25519_private(seed).public_key().to_openssh().unwrap();
    parse_public_key(&line).unwrap()
}

pub(crate) fn sign(seed: u8, namespace: &str, msg: &[u8]) -> String {
    ed25519_private(seed)
        .sign(namespace, HashAlg::Sha512, msg)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

#[test]
fn crate_made_signatures_verify_with_either_hash() {
    let key = ed25519_public(1);
    assert_eq!(
        verify_signature(&key, MSG, &sign(1, NAMESPACE, MSG)),
        Ok(())
    );
    let sha256 = ed25519_private(1)
        .sign(NAMESPACE, HashAlg::Sha256, MSG)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    assert_eq!(verify_signature(&key, MSG, &sha256), Ok(()));
}

#[test]
fn crate_made_p256_signatures_verify() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let private = PrivateKey::random(
        &mut rng,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    let key = parse_public_key(&private.public_key().to_openssh().unwrap()).unwrap();
    assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP256);
    let sig = private
        .sign(NAMESPACE, HashAlg::Sha512, MSG)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    assert_eq!(verify_signature(&key, MSG, &sig), Ok(()));
    assert_eq!(
        verify_signature(&key, b"other", &sig),
        Err(SigError::Invalid)
    );
}

#[test]
fn crate_made_signature_checks_namespace_key_and_bytes() {
    let key = ed25519_public(1);
    assert_eq!(
        verify_signature(&key, MSG, &sign(1, "git", MSG)),
        Err(SigError::WrongNamespace)
    );
    assert_eq!(
        verify_signature(&key, MSG, &sign(2, NAMESPACE, MSG)),
        Err(SigError::WrongKey)
    );
    assert_eq!(
        verify_signature(&key, b"other message", &sign(1, NAMESPACE, MSG)),
        Err(SigError::Invalid)
    );
}

#[test]
fn garbage_signatures_are_unparsable() {
    let key = ed25519_public(1);
    for armored in [
        "",
        "hello",
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
        &"A".repeat(MAX_ARMORED_SIGNATURE_LEN + 1),
    ] {
        assert_eq!(
            verify_signature(&key, MSG, armored),
            Err(SigError::Unparsable)
        );
    }
}

#[test]
fn flipped_signature_bit_is_invalid() {
    let key = ed25519_public(1);
    let sig = ed25519_private(1)
        .sign(NAMESPACE, HashAlg::Sha512, MSG)
        .unwrap();
    let mut bytes = sig.signature_bytes().to_vec();
    bytes[10] ^= 1;
    let forged = SshSig::new(
        sig.public_key().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        ssh_key::Signature::new(Algorithm::Ed25519, bytes).unwrap(),
    )
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap();
    assert_eq!(verify_signature(&key, MSG, &forged), Err(SigError::Invalid));
}

// ---- FIDO (sk-ssh-ed25519) keys, built by hand per PROTOCOL.u2f ----

const SK_APP: &str = "ssh:";

fn sk_key_data(seed: u8) -> KeyData {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let pk = Ed25519PublicKey(sk.verifying_key().to_bytes());
    KeyData::SkEd25519(SkEd25519::new(pk, SK_APP))
}

pub(crate) fn sk_public(seed: u8) -> SshPublicKey {
    let line = PublicKey::new(sk_key_data(seed), "fido")
        .to_openssh()
        .unwrap();
    parse_public_key(&line).unwrap()
}

/// An SSHSIG as a security key makes it: the authenticator signs
/// `sha256(application) || flags || counter (BE) || sha256(SSHSIG signed data)`.
pub(crate) fn sk_sign(seed: u8, flags: u8, msg: &[u8]) -> String {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let counter: u32 = 42;
    let signed_data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, msg).unwrap();
    let mut to_sign = Vec::new();
    to_sign.extend(Sha256::digest(SK_APP.as_bytes()));
    to_sign.push(flags);
    to_sign.extend(counter.to_be_bytes());
    to_sign.extend(Sha256::digest(&signed_data));
    let raw = sk.sign(&to_sign);
    let mut data = raw.to_bytes().to_vec();
    data.push(flags);
    data.extend(counter.to_be_bytes());
    let signature = ssh_key::Signature::new(Algorithm::SkEd25519, data).unwrap();
    SshSig::new(sk_key_data(seed), NAMESPACE, HashAlg::Sha512, signature)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

#[test]
fn sk_ed25519_key_parses() {
    let key = sk_public(3);
    assert_eq!(key.algorithm, KeyAlgorithm::SkEd25519);
    assert!(key.openssh.starts_with("sk-ssh-ed25519@openssh.com AAAA"));
    assert_eq!(key.comment, "fido");
}

#[test]
fn sk_signature_with_user_presence_verifies() {
    assert_eq!(
        verify_signature(&sk_public(3), MSG, &sk_sign(3, 0x01, MSG)),
        Ok(())
    );
    // Other flags (user verified 0x04) may ride along.
    assert_eq!(
        verify_signature(&sk_public(3), MSG, &sk_sign(3, 0x05, MSG)),
        Ok(())
    );
}

#[test]
fn sk_signature_without_user_presence_is_refused() {
    assert_eq!(
        verify_signature(&sk_public(3), MSG, &sk_sign(3, 0x00, MSG)),
        Err(SigError::UserPresenceMissing)
    );
    assert_eq!(
        verify_signature(&sk_public(3), MSG, &sk_sign(3, 0x04, MSG)),
        Err(SigError::UserPresenceMissing)
    );
}

#[test]
fn forged_sk_signature_without_presence_is_invalid_not_presence_missing() {
    assert_eq!(
        verify_signature(&sk_public(3), b"other", &sk_sign(3, 0x00, MSG)),
        Err(SigError::Invalid)
    );
}

// ---- the allowlist ----

#[test]
fn other_key_types_are_unsupported() {
    // A DSA line that the crate cannot even decode is still named, not "malformed".
    assert_eq!(
        parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP garbage"),
        Err(KeyError::UnsupportedKeyType("ssh-dss".into()))
    );
    // sk-ecdsa, built properly.
    use ssh_key::public::{EcdsaPublicKey, SkEcdsaSha2NistP256};
    let ec = PrivateKey::random(
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    let EcdsaPublicKey::NistP256(point) = *ec.public_key().key_data().ecdsa().unwrap() else {
        panic!("not p256")
    };
    let sk_ec = PublicKey::new(
        KeyData::SkEcdsaSha2NistP256(SkEcdsaSha2NistP256::new(point, "ssh:")),
        "",
    );
    assert_eq!(
        parse_public_key(&sk_ec.to_openssh().unwrap()),
        Err(KeyError::UnsupportedKeyType(
            "sk-ecdsa-sha2-nistp256@openssh.com".into()
        ))
    );
    assert_eq!(
        parse_public_key("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ="),
        Err(KeyError::UnsupportedKeyType(
            "ssh-ed25519-cert-v01@openssh.com".into()
        ))
    );
}

#[test]
fn garbage_keys_are_malformed() {
    for line in [
        "",
        "   ",
        "hello world",
        "ssh-ed25519",
        "ssh-ed25519 !!!!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
        "garbage user@host",
    ] {
        assert_eq!(parse_public_key(line), Err(KeyError::Malformed), "{line:?}");
    }
    let two_lines = format!(
        "{}\n{}",
        ed25519_public(1).openssh,
        ed25519_public(2).openssh
    );
    assert_eq!(parse_public_key(&two_lines), Err(KeyError::Malformed));
}

#[test]
fn options_and_comments_are_accepted() {
    let key = ed25519_public(1);
    let with_opts = format!(
        "no-pty,from=\"10.0.0.1\" {} me@laptop and more",
        key.openssh
    );
    let parsed = parse_public_key(&with_opts).unwrap();
    assert_eq!(parsed.fingerprint, key.fingerprint);
    assert_eq!(parsed.openssh, key.openssh);
}

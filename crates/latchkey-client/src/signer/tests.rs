//! Signatures are checked against the real OpenSSH tools: ed25519 SSHSIGs are
//! deterministic, so a key file and a real ssh-agent must produce `ssh-keygen -Y sign`'s
//! exact bytes; ecdsa and sk-ed25519 (through a fake agent, since sk keys need hardware)
//! must verify.

use super::*;
use crate::challenge::NAMESPACE;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};

fn keygen(dir: &Path, args: &[&str]) -> PathBuf {
    let path = dir.join(format!("id_{}", args.join("_")));
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "test@host", "-f"])
        .arg(&path)
        .args(args)
        .status()
        .unwrap();
    assert!(ok.success());
    path
}

fn ssh_keygen_sign(key: &Path, message: &[u8]) -> String {
    let file = key.with_extension("msg");
    std::fs::write(&file, message).unwrap();
    let _ = std::fs::remove_file(file.with_extension("msg.sig"));
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(file.with_extension("msg.sig")).unwrap()
}

fn check_novalidate(dir: &Path, signature: &str, message: &[u8]) {
    let sig = dir.join("check.sig");
    std::fs::write(&sig, signature).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", NAMESPACE, "-s"])
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const MESSAGE: &[u8] = b"latchkey-auth-v1\nserver=s\nchallenge=c\nnonce=n\nkey=k\nexpires=1\n";

#[test]
fn a_key_file_signs_the_same_bytes_as_ssh_keygen() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), &["-t", "ed25519"]);
    let signer = Signer::from_key_file(&key).unwrap();
    assert_eq!(
        signer.sign(NAMESPACE, MESSAGE).unwrap(),
        ssh_keygen_sign(&key, MESSAGE)
    );

    let ecdsa = keygen(tmp.path(), &["-t", "ecdsa", "-b", "256"]);
    let signer = Signer::from_key_file(&ecdsa).unwrap();
    check_novalidate(
        tmp.path(),
        &signer.sign(NAMESPACE, MESSAGE).unwrap(),
        MESSAGE,
    );
}

#[test]
fn refuses_encrypted_and_unaccepted_key_files() {
    let tmp = tempfile::tempdir().unwrap();
    let rsa = keygen(tmp.path(), &["-t", "rsa", "-b", "2048"]);
    let err = Signer::from_key_file(&rsa).unwrap_err().to_string();
    assert!(err.contains("does not accept"), "{err}");
    let enc = tmp.path().join("enc");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "pass phrase", "-f"])
        .arg(&enc)
        .status()
        .unwrap();
    assert!(ok.success());
    let err = Signer::from_key_file(&enc).unwrap_err().to_string();
    assert!(
        err.contains("encrypted") && err.contains("--agent"),
        "{err}"
    );
}

#[test]
fn a_real_agent_signs_the_same_bytes_as_ssh_keygen() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), &["-t", "ed25519"]);
    let sock = tmp.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::yield_now();
    }
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(added.success());
    let expected = ssh_keygen_sign(&key, MESSAGE);
    std::fs::remove_file(&key).unwrap(); // only the agent holds it now
    let want = read_public_key(&key).unwrap();
    let signer = Signer::from_agent(&sock, Some(&want)).unwrap();
    let got = signer.sign(NAMESPACE, MESSAGE);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(got.unwrap(), expected);
}

/// A one-key ssh-agent for sk-ed25519: answers identity lists and sign requests the way
/// a FIDO authenticator would (signature over sha256(app) || flags || counter || sha256(data)).
fn fake_sk_agent(sock: &Path, secret: ed25519_dalek::SigningKey, public: PublicKey) {
    use ed25519_dalek::Signer as _;
    use sha2::{Digest, Sha256};
    let listener = UnixListener::bind(sock).unwrap();
    let blob = public.to_bytes().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    break;
                }
                let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut msg).unwrap();
                let reply = match msg[0] {
                    11 => {
                        let mut r = vec![12];
                        r.extend(1u32.to_be_bytes());
                        put(&mut r, &blob);
                        put(&mut r, b"sk@test");
                        r
                    }
                    13 => {
                        let klen = u32::from_be_bytes(msg[1..5].try_into().unwrap()) as usize;
                        let d = &msg[5 + klen..];
                        let dlen = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
                        let data = &d[4..4 + dlen];
                        let (flags, counter) = (1u8, 7u32);
                        let mut signed = Sha256::digest(b"ssh:").to_vec();
                        signed.push(flags);
                        signed.extend(counter.to_be_bytes());
                        signed.extend(Sha256::digest(data));
                        let sig = secret.sign(&signed).to_bytes();
                        let mut sblob = Vec::new();
                        put(&mut sblob, b"sk-ssh-ed25519@openssh.com");
                        put(&mut sblob, &sig);
                        sblob.push(flags);
                        sblob.extend(counter.to_be_bytes());
                        let mut r = vec![14];
                        put(&mut r, &sblob);
                        r
                    }
                    _ => vec![5],
                };
                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                framed.extend(reply);
                s.write_all(&framed).unwrap();
            }
        }
    });
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend(bytes);
}

#[test]
fn an_agent_signs_with_an_sk_ed25519_key_and_it_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let sk = ssh_key::public::SkEd25519::new(
        ssh_key::public::Ed25519PublicKey(secret.verifying_key().to_bytes()),
        "ssh:",
    );
    let public = PublicKey::new(ssh_key::public::KeyData::SkEd25519(sk), "sk@test");
    let sock = tmp.path().join("sk.sock");
    fake_sk_agent(&sock, secret, public.clone());
    let signer = Signer::from_agent(&sock, None).unwrap();
    assert_eq!(signer.public_key().algorithm(), Algorithm::SkEd25519);
    let armored = signer.sign(NAMESPACE, MESSAGE).unwrap();
    let sig = SshSig::from_pem(&armored).unwrap();
    public.verify(NAMESPACE, MESSAGE, &sig).unwrap();
    check_novalidate(tmp.path(), &armored, MESSAGE);
}

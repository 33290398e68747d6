//! The configuration file's certificate checks (control/src/config/certs.rs): certificate and
//! key files that do not parse, or a key that is not the certificate's, are reported at the
//! `cert`, `key` or `cacerts` value with file:line:col and key path. The fixtures in
//! tests/certs/config were made with openssl (ECDSA P-256, as strongSwan's `pki` makes them).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use xipsec_control::config::{Config, Macros};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs/config")
}

fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn config(cert: &Path, key: &Path, ca: &Path) -> String {
    config_with_id(cert, key, ca, "C=CH, O=xipsec, CN=gw-a.example.net")
}

fn config_with_id(cert: &Path, key: &Path, ca: &Path, id: &str) -> String {
    format!(
        "[[connection]]\nname = \"a\"\nremote_addrs = [\"192.0.2.2\"]\n\
         [connection.local]\nauth = \"pubkey\"\ncert = \"{}\"\nkey = \"{}\"\nid = \"{id}\"\n\
         [connection.remote]\nauth = \"pubkey\"\ncacerts = [\"{}\"]\n",
        cert.display(),
        key.display(),
        ca.display()
    )
}

fn parse(text: &str, dir: &Path) -> Result<Config, String> {
    Config::parse(text, "t.toml", dir, &Macros::new()).map_err(|e| e.to_string())
}

#[test]
fn good_certificate_key_and_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let key = write(
        tmp.path(),
        "gw.key",
        &fs::read(fixtures().join("gw-a.key")).unwrap(),
        0o600,
    );
    let f = fixtures();
    parse(
        &config(&f.join("gw-a.pem"), &key, &f.join("ca.pem")),
        tmp.path(),
    )
    .unwrap();
}

#[test]
fn broken_files_are_reported_where_they_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixtures();
    let good_key = fs::read(f.join("gw-a.key")).unwrap();
    let key = write(tmp.path(), "gw.key", &good_key, 0o600);
    let junk = write(tmp.path(), "junk.pem", b"not a certificate\n", 0o644);

    // A certificate that does not parse: at `cert` (line 6, column 8).
    let e = parse(&config(&junk, &key, &f.join("ca.pem")), tmp.path()).unwrap_err();
    assert_eq!(
        e,
        format!(
            "t.toml:6:8: connection[0].local.cert: '{}': a certificate does not parse",
            junk.display()
        )
    );
    // A CA file that does not parse: at `cacerts`.
    let e = parse(&config(&f.join("gw-a.pem"), &key, &junk), tmp.path()).unwrap_err();
    assert_eq!(
        e,
        format!(
            "t.toml:11:11: connection[0].remote.cacerts: '{}': a certificate does not parse",
            junk.display()
        )
    );
    // PEM without a certificate.
    let key_only = write(tmp.path(), "key-only.pem", &good_key, 0o644);
    let e = parse(&config(&f.join("gw-a.pem"), &key, &key_only), tmp.path()).unwrap_err();
    assert!(e.ends_with("': no certificate found"), "{e}");
    // A truncated PEM certificate.
    let pem = fs::read_to_string(f.join("gw-a.pem")).unwrap();
    let cut = write(
        tmp.path(),
        "cut.pem",
        &pem.as_bytes()[..pem.len() / 2],
        0o644,
    );
    let e = parse(&config(&cut, &key, &f.join("ca.pem")), tmp.path()).unwrap_err();
    assert!(e.ends_with("a certificate does not parse"), "{e}");

    // Another key: at `key`, naming both files.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = write(
        tmp.path(),
        "other.key",
        other.serialize_pem().as_bytes(),
        0o600,
    );
    let e = parse(
        &config(&f.join("gw-a.pem"), &other, &f.join("ca.pem")),
        tmp.path(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        format!(
            "t.toml:7:7: connection[0].local.key: '{}' and '{}': the private key does not match the certificate",
            other.display(),
            f.join("gw-a.pem").display()
        )
    );
    // A key file that is no key; its content is never quoted.
    let bad = write(
        tmp.path(),
        "bad.key",
        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        0o600,
    );
    let e = parse(
        &config(&f.join("gw-a.pem"), &bad, &f.join("ca.pem")),
        tmp.path(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        format!(
            "t.toml:7:7: connection[0].local.key: '{}': not a PEM or DER private key",
            bad.display()
        )
    );
    assert!(!e.contains("c2VjcmV0"));
}

//! Signatures and key files against independent implementations: python3's `cryptography`
//! (OpenSSL underneath) verifies our signatures and makes signatures we must verify, for every
//! scheme we sign with; openssl converts a key to SEC1 / PKCS#1 / DER and we must load each
//! form to the same public key.

use std::path::Path;
use std::process::Command;

use xipsec_control::crypto::{SignatureScheme, SigningKey};

fn skip(what: &str) {
    if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
        panic!("{what} is required (XIPSEC_REQUIRE_ALL)");
    }
    eprintln!("*** SKIPPED: {what} is missing ***");
}

const SCRIPT: &str = r#"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, ed25519

key_file, scheme, message_hex, ours_hex = sys.argv[1:5]
key = serialization.load_pem_private_key(open(key_file, "rb").read(), password=None)
msg, ours = bytes.fromhex(message_hex), bytes.fromhex(ours_hex)
pub = key.public_key()
h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
if scheme.startswith("ecdsa"):
    alg = ec.ECDSA(h[scheme[-3:]])
    pub.verify(ours, msg, alg)
    theirs = key.sign(msg, alg)
elif scheme.startswith("pss"):
    hh = h[scheme[-3:]]
    pad = padding.PSS(mgf=padding.MGF1(hh), salt_length=hh.digest_size)
    pub.verify(ours, msg, pad, hh)
    theirs = key.sign(msg, pad, hh)
elif scheme.startswith("pkcs1"):
    hh = h[scheme[-3:]]
    pub.verify(ours, msg, padding.PKCS1v15(), hh)
    theirs = key.sign(msg, padding.PKCS1v15(), hh)
else:
    pub.verify(ours, msg)
    theirs = key.sign(msg)
print(theirs.hex())
"#;

const ED25519_V1: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAcxwVyA/oynnkK8eg/neyQxCZX+Nh13ctg0LT8RyS/R
-----END PRIVATE KEY-----
";

fn python_ok() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn signatures_cross_checked_with_python_cryptography() {
    if !python_ok() {
        return skip("python3 with the cryptography package");
    }
    use SignatureScheme as S;
    let tmp = tempfile::tempdir().unwrap();
    let message = b"RealMessage | NonceData | prf(SK_p, RestOfIDPayload)".repeat(7);
    let cases = [
        (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            S::EcdsaP256Sha256,
            "ecdsa256",
        ),
        (
            &rcgen::PKCS_ECDSA_P384_SHA384,
            S::EcdsaP384Sha384,
            "ecdsa384",
        ),
        (&rcgen::PKCS_RSA_SHA256, S::RsaPkcs1Sha256, "pkcs1-256"),
        (&rcgen::PKCS_RSA_SHA256, S::RsaPkcs1Sha512, "pkcs1-512"),
        (&rcgen::PKCS_RSA_SHA256, S::RsaPssSha256, "pss256"),
        (&rcgen::PKCS_RSA_SHA256, S::RsaPssSha384, "pss384"),
        (&rcgen::PKCS_ED25519, S::Ed25519, "ed25519"),
    ];
    for (alg, scheme, name) in cases {
        let pem = if scheme == S::Ed25519 {
            // rcgen writes Ed25519 keys as PKCS#8 v2, which `cryptography` refuses; this v1
            // key came from `cryptography` itself.
            ED25519_V1.to_string()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem()
        };
        let path = tmp.path().join(format!("{name}.pem"));
        std::fs::write(&path, &pem).unwrap();
        let key = SigningKey::from_pem_or_der(pem.as_bytes()).unwrap();
        let ours = key.sign(scheme, &message).unwrap();
        let out = Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(&path)
            .arg(name)
            .arg(hex::encode(&message))
            .arg(hex::encode(&ours))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: python refused our signature: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = hex::decode(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        let public = key.public_key();
        public
            .verify(scheme.algorithm_identifier(), &message, &theirs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // And not over other octets.
        assert!(public
            .verify(scheme.algorithm_identifier(), &message[1..], &theirs)
            .is_err());
    }
}

fn openssl(args: &[&str], input: &Path) -> Option<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .arg("-in")
        .arg(input)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[test]
fn key_file_forms_load_to_the_same_key() {
    if Command::new("openssl").arg("version").output().is_err() {
        return skip("openssl");
    }
    let tmp = tempfile::tempdir().unwrap();
    for (alg, traditional) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "EC PRIVATE KEY"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "EC PRIVATE KEY"),
        (&rcgen::PKCS_RSA_SHA256, "RSA PRIVATE KEY"),
    ] {
        let pem = rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem();
        let path = tmp.path().join("k.pem");
        std::fs::write(&path, &pem).unwrap();
        let want = SigningKey::from_pem_or_der(pem.as_bytes()).unwrap();
        let forms = [
            openssl(&["pkey", "-traditional"], &path).unwrap(),
            openssl(&["pkey", "-traditional", "-outform", "DER"], &path).unwrap(),
            openssl(&["pkey", "-outform", "DER"], &path).unwrap(),
        ];
        assert!(String::from_utf8_lossy(&forms[0]).contains(traditional));
        for f in forms {
            let got = SigningKey::from_pem_or_der(&f).unwrap();
            assert_eq!(got.public_key(), want.public_key(), "{traditional}");
        }
        // SEC1 with an "EC PARAMETERS" block first, as `openssl ecparam -genkey` writes it.
        if traditional == "EC PRIVATE KEY" {
            let params = openssl(&["pkey", "-traditional"], &path).unwrap();
            let mut with_params =
                b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
                    .to_vec();
            with_params.extend(params);
            let got = SigningKey::from_pem_or_der(&with_params).unwrap();
            assert_eq!(got.public_key(), want.public_key());
        }
    }
    // An encrypted key is refused with a reason.
    let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let path = tmp.path().join("k.pem");
    std::fs::write(&path, &pem).unwrap();
    let enc = openssl(&["pkey", "-aes256", "-passout", "pass:x"], &path).unwrap();
    assert_eq!(
        SigningKey::from_pem_or_der(&enc).unwrap_err(),
        xipsec_control::crypto::KeyError::Encrypted
    );
}

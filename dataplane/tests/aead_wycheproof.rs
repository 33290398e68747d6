//! The ESP AEADs against Wycheproof (vectors/wycheproof, copied with SOURCE and LICENSE).
//!
//! Every vector with a 96-bit nonce, a 128-bit tag and a key size an ESP suite has runs through
//! [`EspKey`] exactly as ESP uses it: the first 4 nonce bytes as the salt from the keying
//! material, the last 8 as the packet's IV.

use serde::Deserialize;
use xipsec_dataplane::esp::{CipherSuite, EspKey, ICV_LEN, IV_LEN, SALT_LEN};

#[derive(Deserialize)]
struct File {
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(rename = "ivSize")]
    iv_bits: usize,
    #[serde(rename = "keySize")]
    key_bits: usize,
    #[serde(rename = "tagSize")]
    tag_bits: usize,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u32,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
}

/// Runs one file; returns how many vectors applied to ESP.
fn run(file: &str, suite_for_key_bits: impl Fn(usize) -> Option<CipherSuite>) -> usize {
    let path = format!(
        "{}/tests/vectors/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ran = 0;
    for group in file.groups {
        let Some(suite) = suite_for_key_bits(group.key_bits) else {
            continue;
        };
        if group.iv_bits != 96 || group.tag_bits != 128 {
            continue;
        }
        for case in group.tests {
            check(suite, &case);
            ran += 1;
        }
    }
    ran
}

fn check(suite: CipherSuite, case: &Case) {
    let nonce = hex::decode(&case.iv).unwrap();
    let mut keymat = hex::decode(&case.key).unwrap();
    keymat.extend_from_slice(&nonce[..SALT_LEN]);
    let iv: [u8; IV_LEN] = nonce[SALT_LEN..].try_into().unwrap();
    let aad = hex::decode(&case.aad).unwrap();
    let msg = hex::decode(&case.msg).unwrap();
    let mut sealed = hex::decode(&case.ct).unwrap();
    sealed.extend_from_slice(&hex::decode(&case.tag).unwrap());
    let key = EspKey::new(suite, &keymat).unwrap();

    let mut opened = sealed.clone();
    let open_result = key.open(&iv, &aad, &mut opened);
    match case.result.as_str() {
        "valid" | "acceptable" => {
            assert!(open_result.is_ok(), "tcId {} must open", case.id);
            assert_eq!(&opened[..msg.len()], &msg[..], "tcId {} plaintext", case.id);
            let mut buffer = msg.clone();
            let mut icv = [0u8; ICV_LEN];
            key.seal(&iv, &aad, &mut buffer, &mut icv).unwrap();
            buffer.extend_from_slice(&icv);
            assert_eq!(buffer, sealed, "tcId {} seal", case.id);
        }
        _ => assert!(open_result.is_err(), "tcId {} must be rejected", case.id),
    }
}

#[test]
fn aes_gcm() {
    let ran = run("aes_gcm_test.json", |bits| match bits {
        128 => Some(CipherSuite::Aes128Gcm16),
        256 => Some(CipherSuite::Aes256Gcm16),
        _ => None,
    });
    // The file holds 100+ vectors with 96-bit nonces and full tags for these key sizes; far
    // fewer means the filter above went wrong.
    assert!(ran >= 100, "only {ran} AES-GCM vectors ran");
}

#[test]
fn chacha20_poly1305() {
    let ran = run("chacha20_poly1305_test.json", |bits| {
        (bits == 256).then_some(CipherSuite::ChaCha20Poly1305)
    });
    assert!(ran >= 100, "only {ran} ChaCha20-Poly1305 vectors ran");
}

#[test]
fn keying_material_of_the_wrong_length_is_refused() {
    for suite in CipherSuite::ALL {
        let error = EspKey::new(suite, &vec![0u8; suite.keymat_len() - 4]).unwrap_err();
        assert_eq!(error.expected, suite.keymat_len());
        assert!(EspKey::new(suite, &vec![0u8; suite.keymat_len() + 1]).is_err());
    }
}

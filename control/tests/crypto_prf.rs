//! PRFs and integrity algorithms against Wycheproof HMAC vectors and RFC 4868 §2.7 (plus
//! RFC 2202 for HMAC-SHA1-96). Vector provenance: tests/vectors/SOURCE.

mod crypto_common;

use crypto_common::*;
use xipsec_control::crypto::{CryptoError, Integ, Prf};

/// (file, prf, integ with the same hash, hash bits)
const WYCHEPROOF: &[(&str, Prf, Integ, usize)] = &[
    (
        "hmac_sha256_test.json",
        Prf::HmacSha2_256,
        Integ::HmacSha2_256_128,
        256,
    ),
    (
        "hmac_sha384_test.json",
        Prf::HmacSha2_384,
        Integ::HmacSha2_384_192,
        384,
    ),
    (
        "hmac_sha512_test.json",
        Prf::HmacSha2_512,
        Integ::HmacSha2_512_256,
        512,
    ),
];

#[test]
fn wycheproof_hmac() {
    for &(file, prf, integ, bits) in WYCHEPROOF {
        let v = load(&format!("wycheproof/{file}"));
        let (mut prf_cases, mut integ_cases) = (0, 0);
        for g in v["testGroups"].as_array().unwrap() {
            let tag_bytes = g["tagSize"].as_u64().unwrap() as usize / 8;
            let key_bits = g["keySize"].as_u64().unwrap() as usize;
            for t in g["tests"].as_array().unwrap() {
                let (key, msg, tag) = (
                    h(t["key"].as_str().unwrap()),
                    h(t["msg"].as_str().unwrap()),
                    h(t["tag"].as_str().unwrap()),
                );
                let valid = t["result"] == "valid";
                let id = t["tcId"].as_u64().unwrap();
                // The PRF takes keys of any length; compare the tag's prefix.
                let out = prf.prf(&key, &[&msg]);
                assert_eq!(
                    &out.expose()[..tag_bytes] == tag.as_slice(),
                    valid,
                    "{file} tcId {id}"
                );
                prf_cases += 1;
                // The IKE integrity algorithm: full-length key, tag truncated to half.
                if key_bits == bits && tag_bytes * 2 == bits / 8 {
                    let r = integ.verify(&key, &[&msg], &tag);
                    if valid {
                        assert_eq!(r, Ok(()), "{file} tcId {id}");
                        assert_eq!(integ.icv(&key, &[&msg]).unwrap(), tag);
                    } else {
                        assert_eq!(
                            r,
                            Err(CryptoError::IntegrityCheckFailed),
                            "{file} tcId {id}"
                        );
                    }
                    integ_cases += 1;
                }
            }
        }
        assert_eq!(prf_cases, 174, "{file}");
        assert_eq!(integ_cases, 81, "{file}");
    }
}

fn prf_for(hash: &str) -> (Prf, Integ) {
    match hash {
        "sha256" => (Prf::HmacSha2_256, Integ::HmacSha2_256_128),
        "sha384" => (Prf::HmacSha2_384, Integ::HmacSha2_384_192),
        "sha512" => (Prf::HmacSha2_512, Integ::HmacSha2_512_256),
        "sha1" => (Prf::HmacSha1, Integ::HmacSha1_96),
        _ => unreachable!(),
    }
}

#[test]
fn rfc4868_prf_vectors() {
    let v = load("rfc4868.json");
    let mut n = 0;
    for c in v["prf"].as_array().unwrap() {
        for hash in ["sha256", "sha384", "sha512"] {
            let (prf, _) = prf_for(hash);
            let out = prf.prf(
                &h(c["key"].as_str().unwrap()),
                &[&h(c["data"].as_str().unwrap())],
            );
            assert_eq!(
                out.expose(),
                h(c[hash].as_str().unwrap()),
                "{} {hash}",
                c["name"]
            );
            n += 1;
        }
    }
    assert_eq!(n, 18);
}

#[test]
fn rfc4868_authenticator_vectors() {
    let v = load("rfc4868.json");
    let mut n = 0;
    let cases = v["auth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c, c["hash"].as_str().unwrap()));
    let sha1 = v["sha1_96"].as_array().unwrap().iter().map(|c| (c, "sha1"));
    for (c, hash) in cases.chain(sha1) {
        let (prf, integ) = prf_for(hash);
        let (key, data) = (
            h(c["key"].as_str().unwrap()),
            h(c["data"].as_str().unwrap()),
        );
        let icv = h(c["icv"].as_str().unwrap());
        if let Some(full) = c["prf"].as_str() {
            assert_eq!(prf.prf(&key, &[&data]).expose(), h(full), "{}", c["name"]);
        }
        // The data split in two parts must not change anything.
        let (a, b) = data.split_at(data.len() / 2);
        assert_eq!(integ.icv(&key, &[a, b]).unwrap(), icv, "{}", c["name"]);
        assert_eq!(integ.verify(&key, &[&data], &icv), Ok(()));
        let mut bad = icv.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            integ.verify(&key, &[&data], &bad),
            Err(CryptoError::IntegrityCheckFailed)
        );
        assert!(integ.verify(&key, &[&data], &icv[..icv.len() - 1]).is_err());
        n += 1;
    }
    assert_eq!(n, 9);
}

#[test]
fn prf_plus_limit_is_a_typed_local_error() {
    for &prf in Prf::ALL {
        let max = 255 * prf.output_len();
        assert_eq!(prf.prf_plus(b"k", &[b"seed"], max).unwrap().len(), max);
        let e = prf.prf_plus(b"k", &[b"seed"], max + 1).unwrap_err();
        assert_eq!(
            e,
            CryptoError::PrfPlusTooLong {
                requested: max + 1,
                max
            }
        );
        assert!(!e.is_peer_fault());
    }
}

#[test]
fn secrets_do_not_show_in_debug() {
    let out = Prf::HmacSha2_256.prf(b"key", &[b"data"]);
    let shown = format!("{out:?}");
    assert_eq!(shown, "SecretBytes(32 octets)");
}

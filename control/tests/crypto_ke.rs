//! Key exchange: Wycheproof X25519 and ECDH P-256/P-384 (converted to IKE's encodings),
//! RFC 5903 §8 known answers for groups 19–21, MODP groups 14/15 against Python's pow(), and
//! public-value validation. Provenance: tests/vectors/SOURCE.

mod crypto_common;

use crypto_common::*;
use xipsec_control::crypto::{CryptoError, KeyExchange, SystemRng};
use xipsec_control::wire::KeMethod;

/// A key pair whose private value is `private` (big-endian, any length: normalized here).
fn with_private(method: KeMethod, private: &[u8], len: usize) -> Result<KeyExchange, CryptoError> {
    let trimmed: Vec<u8> = private.iter().copied().skip_while(|&b| b == 0).collect();
    assert!(trimmed.len() <= len);
    let mut bytes = vec![0u8; len - trimmed.len()];
    bytes.extend(trimmed);
    KeyExchange::generate(method, &mut FixedRng(bytes))
}

#[test]
fn wycheproof_x25519() {
    let v = load("wycheproof/x25519_test.json");
    let (mut valid, mut zero, mut other_acceptable) = (0, 0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            let id = t["tcId"].as_u64().unwrap();
            let private = h(t["private"].as_str().unwrap());
            let ke = KeyExchange::generate(KeMethod::Curve25519, &mut FixedRng(private)).unwrap();
            let shared = h(t["shared"].as_str().unwrap());
            let r = ke.agree(&h(t["public"].as_str().unwrap()));
            let flags: Vec<&str> = t["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            match t["result"].as_str().unwrap() {
                "valid" => {
                    assert_eq!(r.unwrap().expose(), shared.as_slice(), "tcId {id}");
                    valid += 1;
                }
                "acceptable" if shared.iter().all(|&b| b == 0) => {
                    // RFC 8031 §2.3: the all-zero secret must be refused; the peer is at fault.
                    assert!(flags.contains(&"ZeroSharedSecret"), "tcId {id}");
                    let e = r.unwrap_err();
                    assert_eq!(
                        e,
                        CryptoError::InvalidPublicValue {
                            method: KeMethod::Curve25519
                        }
                    );
                    assert!(e.is_peer_fault());
                    zero += 1;
                }
                "acceptable" => {
                    // Twist points, non-canonical encodings: accepted by RFC 7748, and then the
                    // result must be the right one.
                    if let Ok(s) = r {
                        assert_eq!(s.expose(), shared.as_slice(), "tcId {id}");
                    }
                    other_acceptable += 1;
                }
                other => panic!("tcId {id}: {other}"),
            }
        }
    }
    assert_eq!((valid, zero, other_acceptable), (264, 31, 223));
}

/// The SubjectPublicKeyInfo prefix of an uncompressed point on the named curve: the only
/// Wycheproof encoding that maps onto IKE's `x | y` (RFC 5903 §7).
fn spki_prefix(method: KeMethod) -> Vec<u8> {
    match method {
        KeMethod::Ecp256 => h("3059301306072a8648ce3d020106082a8648ce3d030107034200"),
        KeMethod::Ecp384 => h("3076301006072a8648ce3d020106052b81040022036200"),
        _ => unreachable!(),
    }
}

fn wycheproof_ecdh(
    file: &str,
    method: KeMethod,
    coord: usize,
    expect: (usize, usize, usize, usize),
) {
    let v = load(&format!("wycheproof/{file}"));
    let prefix = spki_prefix(method);
    let (mut valid, mut invalid, mut acceptable, mut skipped) = (0, 0, 0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            let id = t["tcId"].as_u64().unwrap();
            let public = h(t["public"].as_str().unwrap());
            // Keep only a named-curve SPKI holding 04 | x | y; anything else (compressed
            // points, explicit or wrong curve parameters, broken ASN.1) has no IKE form.
            let applies = public.len() == prefix.len() + 1 + 2 * coord
                && public.starts_with(&prefix)
                && public[prefix.len()] == 0x04;
            if !applies {
                skipped += 1;
                continue;
            }
            let xy = &public[prefix.len() + 1..];
            let ke = with_private(method, &h(t["private"].as_str().unwrap()), coord).unwrap();
            let r = ke.agree(xy);
            match t["result"].as_str().unwrap() {
                "valid" => {
                    let r = r.unwrap_or_else(|e| panic!("tcId {id} {:?}: {e}", t["comment"]));
                    assert_eq!(
                        r.expose(),
                        h(t["shared"].as_str().unwrap()).as_slice(),
                        "tcId {id}"
                    );
                    valid += 1;
                }
                "invalid" => {
                    let e = r.unwrap_err();
                    assert_eq!(e, CryptoError::InvalidPublicValue { method }, "tcId {id}");
                    assert!(e.is_peer_fault());
                    invalid += 1;
                }
                _ => {
                    if let Ok(s) = r {
                        assert_eq!(
                            s.expose(),
                            h(t["shared"].as_str().unwrap()).as_slice(),
                            "tcId {id}"
                        );
                    }
                    acceptable += 1;
                }
            }
        }
    }
    assert_eq!((valid, invalid, acceptable, skipped), expect, "{file}");
}

#[test]
fn wycheproof_ecdh_p256() {
    wycheproof_ecdh(
        "ecdh_secp256r1_test.json",
        KeMethod::Ecp256,
        32,
        (330, 18, 1, 263),
    );
}

#[test]
fn wycheproof_ecdh_p384() {
    wycheproof_ecdh(
        "ecdh_secp384r1_test.json",
        KeMethod::Ecp384,
        48,
        (771, 18, 1, 257),
    );
}

#[test]
fn rfc5903_known_answers() {
    for c in load("rfc5903.json").as_array().unwrap() {
        let (method, len) = match c["group"].as_u64().unwrap() {
            19 => (KeMethod::Ecp256, 32),
            20 => (KeMethod::Ecp384, 48),
            21 => (KeMethod::Ecp521, 66),
            g => panic!("{g}"),
        };
        let s = |k: &str| h(c[k].as_str().unwrap());
        let i = with_private(method, &s("i"), len).unwrap();
        let r = with_private(method, &s("r"), len).unwrap();
        assert_eq!(i.public_value(), [s("gix"), s("giy")].concat().as_slice());
        assert_eq!(r.public_value(), [s("grx"), s("gry")].concat().as_slice());
        assert_eq!(
            i.agree(r.public_value()).unwrap().expose(),
            s("girx").as_slice()
        );
        assert_eq!(
            r.agree(i.public_value()).unwrap().expose(),
            s("girx").as_slice()
        );
        assert_eq!(i.agree(r.public_value()).unwrap().len(), len);
    }
}

#[test]
fn ecp_validation_and_lengths() {
    for (method, len) in [
        (KeMethod::Ecp256, 64),
        (KeMethod::Ecp384, 96),
        (KeMethod::Ecp521, 132),
        (KeMethod::Curve25519, 32),
    ] {
        let a = KeyExchange::generate(method, &mut SystemRng).unwrap();
        let b = KeyExchange::generate(method, &mut SystemRng).unwrap();
        assert_eq!(KeyExchange::public_len(method), Some(len));
        for bad_len in [0, len - 1, len + 1, len + 2] {
            let mut v = b.public_value().to_vec();
            v.resize(bad_len, 0);
            let e = a.agree(&v).unwrap_err();
            assert_eq!(
                e,
                CryptoError::InvalidKeLength {
                    method,
                    expected: len,
                    actual: bad_len
                }
            );
            assert!(e.is_peer_fault());
        }
        // The SEC 1 form with its 04 prefix is not IKE's encoding: refused by length.
        if method != KeMethod::Curve25519 {
            let mut sec1 = vec![4];
            sec1.extend_from_slice(b.public_value());
            assert!(matches!(
                a.agree(&sec1),
                Err(CryptoError::InvalidKeLength { .. })
            ));
            // Flip a bit of y: no longer on the curve.
            let mut off = b.public_value().to_vec();
            *off.last_mut().unwrap() ^= 1;
            assert_eq!(
                a.agree(&off).unwrap_err(),
                CryptoError::InvalidPublicValue { method }
            );
            assert_eq!(
                a.agree(&vec![0; len]).unwrap_err(),
                CryptoError::InvalidPublicValue { method }
            );
        } else {
            // Low-order points yield zero (RFC 7748 §6.1): u = 0 and u = 1.
            let mut one = vec![0; 32];
            one[0] = 1;
            for low in [vec![0; 32], one] {
                assert_eq!(
                    a.agree(&low).unwrap_err(),
                    CryptoError::InvalidPublicValue { method }
                );
            }
        }
        // A rejected value leaves the key usable (a forged answer must not kill the exchange).
        assert_eq!(
            a.agree(b.public_value()).unwrap(),
            b.agree(a.public_value()).unwrap()
        );
        assert!(format!("{a:?}").contains("public_len"));
    }
}

fn modp_prime(group: u64) -> Vec<u8> {
    let file = if group == 14 {
        "modp2048.hex"
    } else {
        "modp3072.hex"
    };
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    h(std::fs::read_to_string(path).unwrap().trim())
}

fn be_add(v: &[u8], delta: i32) -> Vec<u8> {
    // Big-endian add of a small signed delta (no overflow past the length in our uses).
    let mut out = v.to_vec();
    let mut carry = delta;
    for b in out.iter_mut().rev() {
        let s = *b as i32 + carry;
        *b = s.rem_euclid(256) as u8;
        carry = s.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    out
}

#[test]
fn modp_against_python_pow() {
    let v = load("python_derived.json");
    for c in v["modp"].as_array().unwrap() {
        let method = if c["group"] == 14 {
            KeMethod::Modp2048
        } else {
            KeMethod::Modp3072
        };
        let s = |k: &str| h(c[k].as_str().unwrap());
        let a = KeyExchange::generate(method, &mut FixedRng(s("x"))).unwrap();
        let b = KeyExchange::generate(method, &mut FixedRng(s("y"))).unwrap();
        assert_eq!(a.public_value(), s("gx").as_slice());
        assert_eq!(b.public_value(), s("gy").as_slice());
        assert_eq!(a.agree(&s("gy")).unwrap().expose(), s("gxy").as_slice());
        assert_eq!(b.agree(&s("gx")).unwrap().expose(), s("gxy").as_slice());
    }
}

#[test]
fn modp_round_trip_and_validation() {
    for (group, method, len) in [(14, KeMethod::Modp2048, 256), (15, KeMethod::Modp3072, 384)] {
        let a = KeyExchange::generate(method, &mut SystemRng).unwrap();
        let b = KeyExchange::generate(method, &mut SystemRng).unwrap();
        assert_eq!(a.public_value().len(), len);
        let s = a.agree(b.public_value()).unwrap();
        assert_eq!(s.len(), len, "left-padded to the modulus length");
        assert_eq!(s, b.agree(a.public_value()).unwrap());

        let p = modp_prime(group);
        assert_eq!(p.len(), len);
        let mut zero = vec![0u8; len];
        let mut one = zero.clone();
        *one.last_mut().unwrap() = 1;
        let two = be_add(&one, 1);
        let refused = [
            zero.clone(),
            one,
            be_add(&p, -1),
            p.clone(),
            be_add(&p, 1),
            vec![0xff; len],
        ];
        for y in &refused {
            let e = a.agree(y).unwrap_err();
            assert_eq!(e, CryptoError::InvalidPublicValue { method });
            assert!(e.is_peer_fault());
        }
        // The edges just inside the range are accepted.
        assert!(a.agree(&two).is_ok());
        assert!(a.agree(&be_add(&p, -2)).is_ok());
        // Length must be exactly the modulus length (RFC 7296 §3.4), even with leading zeros.
        zero.push(2);
        assert_eq!(
            a.agree(&zero).unwrap_err(),
            CryptoError::InvalidKeLength {
                method,
                expected: len,
                actual: len + 1
            }
        );
        assert!(matches!(
            a.agree(&two[1..]),
            Err(CryptoError::InvalidKeLength { .. })
        ));
    }
}

#[test]
fn failing_rng_and_unsupported_groups_are_local_errors() {
    for &m in KeyExchange::METHODS {
        let e = KeyExchange::generate(m, &mut FixedRng(vec![])).unwrap_err();
        assert_eq!(e, CryptoError::Rng);
        assert!(!e.is_peer_fault());
        // An RNG that only produces zeros never yields a usable key (X25519 clamps any 32
        // octets into a valid scalar, so it has no invalid private keys).
        if m != KeMethod::Curve25519 {
            let e = KeyExchange::generate(m, &mut FixedRng(vec![0; 4096])).unwrap_err();
            assert!(!e.is_peer_fault(), "{m}: {e:?}");
        }
    }
    for m in [
        KeMethod::Modp1536,
        KeMethod::Modp4096,
        KeMethod::Ecp224,
        KeMethod::BrainpoolP256r1,
        KeMethod::MlKem768,
    ] {
        assert!(matches!(
            KeyExchange::generate(m, &mut SystemRng),
            Err(CryptoError::Unsupported(_))
        ));
    }
}

#[test]
fn shared_secret_debug_is_redacted() {
    let a = KeyExchange::generate(KeMethod::Curve25519, &mut SystemRng).unwrap();
    let b = KeyExchange::generate(KeMethod::Curve25519, &mut SystemRng).unwrap();
    let s = a.agree(b.public_value()).unwrap();
    assert_eq!(format!("{s:?}"), "SharedSecret(32 octets)");
    assert!(!format!("{a:?}").contains(&hex::encode(&a.public_value()[..8])));
}

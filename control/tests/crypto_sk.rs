//! The Encrypted payload (SK/SKF): RFC 7634 Appendix B byte for byte, Python-built messages for
//! AES-CBC+HMAC, AES-GCM and ChaCha20-Poly1305, round trips for every suite, every single-bit
//! flip and every truncation rejected, padding rules, IV uniqueness. Provenance:
//! tests/vectors/SOURCE.

mod crypto_common;

use crypto_common::*;
use xipsec_control::crypto::{
    skeyseed, CryptoError, Encr, IkeSaKeys, IkeSuite, Integ, Prf, Role, SecretBytes, SharedSecret,
    SkCipher, SystemRng,
};
use xipsec_control::wire::{locate_encrypted, PayloadType};

fn all_suites() -> Vec<IkeSuite> {
    let mut v = Vec::new();
    for &encr in Encr::ALL {
        let integs: Vec<Option<Integ>> = if encr.is_aead() {
            vec![None]
        } else {
            Integ::ALL.iter().map(|&i| Some(i)).collect()
        };
        for integ in integs {
            v.push(IkeSuite::new(encr, integ, Prf::HmacSha2_256).unwrap());
        }
    }
    assert_eq!(v.len(), 3 + 2 * 4);
    v
}

/// Fresh keys for `suite` (a real derivation, so both directions differ).
fn keys(suite: &IkeSuite) -> IkeSaKeys {
    let g = SharedSecret::new(vec![7; 32]);
    let seed = skeyseed(suite.prf(), b"nonce-i-nonce-i-", b"nonce-r-nonce-r-", &g);
    IkeSaKeys::derive(
        suite,
        &seed,
        b"nonce-i-nonce-i-",
        b"nonce-r-nonce-r-",
        &[1; 8],
        &[2; 8],
    )
    .unwrap()
}

/// An IKE header (next payload SK) plus the SK generic header; Length fields left zero.
fn skeleton(first_inner: u8) -> Vec<u8> {
    let mut m = vec![0x11; 8];
    m.extend_from_slice(&[0x22; 8]);
    m.extend_from_slice(&[46, 0x20, 37, 0x08, 0, 0, 0, 3, 0, 0, 0, 0]);
    m.extend_from_slice(&[first_inner, 0, 0, 0]);
    m
}

/// A Notify payload (INVALID_SYNTAX) padded out to `len` octets of notification data.
fn inner(len: usize) -> Vec<u8> {
    let total = 8 + len;
    let mut p = vec![0, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 7];
    p.extend((0..len).map(|i| i as u8));
    p
}

fn seal(tx: &mut SkCipher, plaintext: &[u8]) -> Vec<u8> {
    let mut m = skeleton(41);
    tx.seal_message(&mut m, 28, plaintext, &mut SystemRng)
        .unwrap();
    m
}

#[test]
fn rfc7634_appendix_b_byte_exact() {
    let v = load("rfc7634_appendix_b.json");
    let s = |k: &str| h(v[k].as_str().unwrap());
    let suite = IkeSuite::new(Encr::Chacha20Poly1305, None, Prf::HmacSha2_256).unwrap();
    let key = SecretBytes::new([s("key"), s("salt")].concat());
    let iv = u64::from_be_bytes(s("iv").try_into().unwrap());
    let mut tx = SkCipher::new(&suite, &key, &SecretBytes::new(vec![]))
        .unwrap()
        .with_iv_counter(iv);
    let expected = s("ike_message");
    let mut m = expected[..32].to_vec();
    m[24..28].fill(0); // Lengths are recomputed by seal_message.
    m[30..32].fill(0);
    tx.seal_message(&mut m, 28, &s("payload"), &mut FixedRng(vec![]))
        .unwrap();
    assert_eq!(hex::encode(&m), hex::encode(&expected));
    // The same through seal() with the AAD of the RFC.
    let mut tx = SkCipher::new(&suite, &key, &SecretBytes::new(vec![]))
        .unwrap()
        .with_iv_counter(iv);
    let body = tx
        .seal(&s("aad"), &s("payload"), &mut FixedRng(vec![]))
        .unwrap();
    assert_eq!(body, [s("iv"), s("ciphertext"), s("icv")].concat());
    let rx = SkCipher::new(&suite, &key, &SecretBytes::new(vec![])).unwrap();
    let opened = rx.open_message(&expected).unwrap();
    assert_eq!(opened.plaintext, s("payload"));
    assert_eq!(opened.first_inner, PayloadType::Notify);
    assert_eq!(opened.fragment, None);
}

#[test]
fn python_built_messages() {
    let v = load("python_derived.json");
    let mut n = 0;
    for c in v["sk"].as_array().unwrap() {
        let s = |k: &str| h(c[k].as_str().unwrap());
        let suite = match c["suite"].as_str().unwrap() {
            "cbc256-sha256" => IkeSuite::new(
                Encr::AesCbc256,
                Some(Integ::HmacSha2_256_128),
                Prf::HmacSha2_256,
            ),
            "gcm128" => IkeSuite::new(Encr::AesGcm16_128, None, Prf::HmacSha2_256),
            "chacha" => IkeSuite::new(Encr::Chacha20Poly1305, None, Prf::HmacSha2_256),
            x => panic!("{x}"),
        }
        .unwrap();
        let (ek, ak) = (
            SecretBytes::new(s("encr_key")),
            SecretBytes::new(s("integ_key")),
        );
        let iv = s("iv");
        let mut tx = SkCipher::new(&suite, &ek, &ak).unwrap();
        let mut rng = FixedRng(vec![]);
        if suite.encr().is_aead() {
            tx = tx.with_iv_counter(u64::from_be_bytes(iv.clone().try_into().unwrap()));
        } else {
            rng = FixedRng(iv.clone());
        }
        let expected = s("message");
        let mut m = expected[..32].to_vec();
        m[24..28].fill(0);
        m[30..32].fill(0);
        tx.seal_message(&mut m, 28, &s("plaintext"), &mut rng)
            .unwrap();
        assert_eq!(hex::encode(&m), hex::encode(&expected), "{}", c["name"]);
        let rx = SkCipher::new(&suite, &ek, &ak).unwrap();
        let opened = rx.open_message(&expected).unwrap();
        assert_eq!(opened.plaintext, s("plaintext"));
        assert_eq!(opened.first_inner, PayloadType::Delete);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn round_trips_every_suite_and_size() {
    for suite in all_suites() {
        let k = keys(&suite);
        let mut tx = k.sk_cipher(Role::Initiator).unwrap();
        let rx = k.sk_cipher(Role::Initiator).unwrap();
        let wrong_direction = k.sk_cipher(Role::Responder).unwrap();
        for len in 0..70 {
            let p = inner(len);
            let m = seal(&mut tx, &p);
            assert_eq!(m.len(), 32 + tx.sealed_len(p.len()));
            let loc = locate_encrypted(&m).unwrap().unwrap();
            assert_eq!(loc.aad_end, 32);
            assert_eq!(loc.encrypted.end, m.len());
            let opened = rx.open_message(&m).unwrap();
            assert_eq!(opened.plaintext, p, "{suite:?} {len}");
            assert_eq!(
                wrong_direction.open_message(&m).unwrap_err(),
                CryptoError::IntegrityCheckFailed
            );
            if !suite.encr().is_aead() {
                // Minimal padding to the AES block.
                let ct = m.len() - 32 - 16 - suite.integ().unwrap().icv_len();
                assert_eq!(ct % 16, 0);
                assert!(ct - (p.len() + 1) < 16);
            } else {
                assert_eq!(m.len(), 32 + 8 + p.len() + 1 + 16);
            }
        }
        // An empty inner chain (a liveness check) also round-trips.
        let mut m = skeleton(0);
        tx.seal_message(&mut m, 28, &[], &mut SystemRng).unwrap();
        let opened = rx.open_message(&m).unwrap();
        assert!(opened.plaintext.is_empty());
        assert_eq!(opened.first_inner, PayloadType::NoNextPayload);
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for suite in all_suites() {
        let k = keys(&suite);
        let mut tx = k.sk_cipher(Role::Responder).unwrap();
        let rx = k.sk_cipher(Role::Responder).unwrap();
        let m = seal(&mut tx, &inner(5));
        let mut flips = 0;
        for bit in 0..m.len() * 8 {
            let mut bad = m.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            // With the offsets fixed, every flipped bit (header, SK header, IV, ciphertext,
            // ICV) must fail the integrity check: the whole datagram is authenticated.
            let (aad, enc) = bad.split_at(32);
            assert_eq!(
                rx.open(aad, enc).unwrap_err(),
                CryptoError::IntegrityCheckFailed,
                "{suite:?} bit {bit}"
            );
            // Through the parser a flip in a length field fails earlier, as a decode error.
            let e = rx.open_message(&bad).unwrap_err();
            assert!(e.is_peer_fault(), "{e:?}");
            flips += 1;
        }
        assert_eq!(flips, m.len() * 8);
    }
}

#[test]
fn truncations_are_rejected() {
    for suite in all_suites() {
        let k = keys(&suite);
        let mut tx = k.sk_cipher(Role::Initiator).unwrap();
        let rx = k.sk_cipher(Role::Initiator).unwrap();
        let m = seal(&mut tx, &inner(20));
        let (aad, enc) = m.split_at(32);
        for cut in 0..enc.len() {
            let e = rx.open(aad, &enc[..cut]).unwrap_err();
            assert!(e.is_peer_fault(), "{suite:?} {cut}");
            assert!(matches!(
                e,
                CryptoError::EncryptedTooShort { .. }
                    | CryptoError::EncryptedNotAligned { .. }
                    | CryptoError::IntegrityCheckFailed
            ));
            // Dropping octets from the front is no better.
            assert!(rx.open(aad, &enc[enc.len() - cut..]).is_err());
        }
        for cut in 0..m.len() {
            assert!(rx.open_message(&m[..cut]).is_err());
        }
    }
}

/// Encrypts `body` (which already ends with its Pad Length octet) with aws-lc directly, the way
/// a peer with a padding bug would.
fn forge(suite: &IkeSuite, k: &IkeSaKeys, body: &[u8]) -> Vec<u8> {
    use aws_lc_rs::{aead, cipher, hmac};
    let mut m = skeleton(41);
    let encr = suite.encr();
    let icv_len = suite.integ().map_or(16, |i| i.icv_len());
    let total = 32 + encr.iv_len() + body.len() + icv_len;
    m[24..28].copy_from_slice(&(total as u32).to_be_bytes());
    m[30..32].copy_from_slice(&((total - 28) as u16).to_be_bytes());
    let key = k.sk_ei.expose();
    if encr.is_aead() {
        let alg = match encr {
            Encr::AesGcm16_128 => &aead::AES_128_GCM,
            Encr::AesGcm16_256 => &aead::AES_256_GCM,
            _ => &aead::CHACHA20_POLY1305,
        };
        let (raw, salt) = key.split_at(encr.key_len());
        let sealer = aead::LessSafeKey::new(aead::UnboundKey::new(alg, raw).unwrap());
        let iv = [9u8; 8];
        let nonce: [u8; 12] = [salt, &iv[..]].concat().try_into().unwrap();
        let mut ct = body.to_vec();
        let tag = sealer
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&m),
                &mut ct,
            )
            .unwrap();
        m.extend_from_slice(&iv);
        m.extend_from_slice(&ct);
        m.extend_from_slice(tag.as_ref());
    } else {
        assert_eq!(body.len() % 16, 0);
        let alg = if encr == Encr::AesCbc128 {
            &cipher::AES_128
        } else {
            &cipher::AES_256
        };
        let enc =
            cipher::EncryptingKey::cbc(cipher::UnboundCipherKey::new(alg, key).unwrap()).unwrap();
        let iv = [5u8; 16];
        let mut ct = body.to_vec();
        enc.less_safe_encrypt(&mut ct, cipher::EncryptionContext::Iv128(iv.into()))
            .unwrap();
        m.extend_from_slice(&iv);
        m.extend_from_slice(&ct);
        let integ = suite.integ().unwrap();
        let halg = match integ {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha2_256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha2_384_192 => hmac::HMAC_SHA384,
            _ => hmac::HMAC_SHA512,
        };
        let tag = hmac::sign(&hmac::Key::new(halg, k.sk_ai.expose()), &m);
        m.extend_from_slice(&tag.as_ref()[..integ.icv_len()]);
    }
    assert_eq!(m.len(), total);
    m
}

#[test]
fn padding_handling() {
    for suite in all_suites() {
        let k = keys(&suite);
        let rx = k.sk_cipher(Role::Initiator).unwrap();
        let p = inner(3); // 11 octets
                          // Longer-than-needed padding with arbitrary contents is accepted (RFC 7296 §3.14).
        let mut body = p.clone();
        body.extend_from_slice(&[0xa5; 20]);
        body.push(20);
        if !suite.encr().is_aead() {
            assert_eq!(body.len(), 32);
        }
        assert_eq!(
            rx.open_message(&forge(&suite, &k, &body))
                .unwrap()
                .plaintext,
            p,
            "{suite:?}"
        );
        // A Pad Length beyond the plaintext is refused after authentication.
        let mut body = p.clone();
        body.extend_from_slice(&[0; 4]);
        body.push(255);
        if !suite.encr().is_aead() {
            body.splice(0..0, [0u8; 16]);
        }
        let e = rx.open_message(&forge(&suite, &k, &body)).unwrap_err();
        assert!(
            matches!(e, CryptoError::InvalidPadding { pad_len: 255, .. }),
            "{e:?}"
        );
        assert!(e.is_peer_fault());
        // Pad Length consuming everything: an empty inner chain, accepted.
        let mut body = vec![0u8; if suite.encr().is_aead() { 6 } else { 15 }];
        let last = body.len() as u8;
        body.push(last);
        assert!(rx
            .open_message(&forge(&suite, &k, &body))
            .unwrap()
            .plaintext
            .is_empty());
        // CBC ciphertext that is not whole blocks (but correctly authenticated length) fails.
        if !suite.encr().is_aead() {
            let m = seal(&mut k.sk_cipher(Role::Initiator).unwrap(), &inner(30));
            let (aad, enc) = m.split_at(32);
            let mut short = enc.to_vec();
            short.remove(20);
            assert!(matches!(
                rx.open(aad, &short),
                Err(CryptoError::EncryptedNotAligned { .. })
            ));
        }
    }
}

#[test]
fn aead_ivs_never_repeat_and_run_out() {
    let suite = IkeSuite::new(Encr::AesGcm16_256, None, Prf::HmacSha2_384).unwrap();
    let k = keys(&suite);
    let mut tx = k.sk_cipher(Role::Initiator).unwrap();
    let mut seen = std::collections::HashSet::new();
    for i in 0..2000u64 {
        let m = seal(&mut tx, &inner(1));
        let iv: [u8; 8] = m[32..40].try_into().unwrap();
        assert_eq!(u64::from_be_bytes(iv), i);
        assert!(seen.insert(iv));
    }
    let mut tx = k
        .sk_cipher(Role::Initiator)
        .unwrap()
        .with_iv_counter(u64::MAX);
    let m = seal(&mut tx, &inner(1));
    assert_eq!(&m[32..40], &[0xff; 8]);
    let mut m2 = skeleton(41);
    let e = tx
        .seal_message(&mut m2, 28, &inner(1), &mut SystemRng)
        .unwrap_err();
    assert_eq!(e, CryptoError::IvExhausted);
    assert!(!e.is_peer_fault());
    // The AEADs never ask the RNG for anything.
    let mut tx = k.sk_cipher(Role::Initiator).unwrap();
    let mut m = skeleton(41);
    tx.seal_message(&mut m, 28, &inner(1), &mut FixedRng(vec![]))
        .unwrap();
}

#[test]
fn cbc_ivs_come_from_the_rng() {
    let suite = IkeSuite::new(
        Encr::AesCbc128,
        Some(Integ::HmacSha2_512_256),
        Prf::HmacSha2_512,
    )
    .unwrap();
    let k = keys(&suite);
    let mut tx = k.sk_cipher(Role::Initiator).unwrap();
    let mut m = skeleton(41);
    tx.seal_message(&mut m, 28, &inner(2), &mut FixedRng((0..16).collect()))
        .unwrap();
    assert_eq!(&m[32..48], &(0..16).collect::<Vec<u8>>()[..]);
    let mut m = skeleton(41);
    assert_eq!(
        tx.seal_message(&mut m, 28, &inner(2), &mut FixedRng(vec![1; 15])),
        Err(CryptoError::Rng)
    );
    let a = seal(&mut tx, &inner(2));
    let b = seal(&mut tx, &inner(2));
    assert_ne!(a[32..48], b[32..48]);
}

#[test]
fn skf_fragments_seal_and_open() {
    let suite = IkeSuite::new(Encr::AesGcm16_128, None, Prf::HmacSha2_256).unwrap();
    let k = keys(&suite);
    let mut tx = k.sk_cipher(Role::Responder).unwrap();
    let rx = k.sk_cipher(Role::Responder).unwrap();
    let mut m = skeleton(41);
    m[16] = 53; // SKF
    m.extend_from_slice(&[0, 2, 0, 3]); // fragment 2 of 3
    tx.seal_message(&mut m, 28, &inner(9), &mut SystemRng)
        .unwrap();
    let opened = rx.open_message(&m).unwrap();
    assert_eq!(opened.fragment, Some((2, 3)));
    assert_eq!(opened.plaintext, inner(9));
    // The fragment numbers are authenticated.
    let mut bad = m.clone();
    bad[33] = 1;
    assert_eq!(
        rx.open_message(&bad).unwrap_err(),
        CryptoError::IntegrityCheckFailed
    );
}

#[test]
fn layout_and_key_errors_are_local() {
    let suite = IkeSuite::new(
        Encr::AesCbc256,
        Some(Integ::HmacSha2_384_192),
        Prf::HmacSha2_384,
    )
    .unwrap();
    let k = keys(&suite);
    let mut tx = k.sk_cipher(Role::Initiator).unwrap();
    for (mut m, off) in [
        (skeleton(41), 20),
        (skeleton(41), 40),
        (skeleton(41)[..30].to_vec(), 28),
        ([skeleton(41), vec![0; 2]].concat(), 28),
    ] {
        let e = tx
            .seal_message(&mut m, off, b"x", &mut SystemRng)
            .unwrap_err();
        assert!(matches!(e, CryptoError::MessageLayout { .. }), "{e:?}");
        assert!(!e.is_peer_fault());
    }
    let mut m = skeleton(41);
    assert!(matches!(
        tx.seal_message(&mut m, 28, &vec![0; 70_000], &mut SystemRng),
        Err(CryptoError::MessageLayout { .. })
    ));
    let e = SkCipher::new(&suite, &SecretBytes::new(vec![0; 31]), &k.sk_ai).unwrap_err();
    assert_eq!(
        e,
        CryptoError::KeyLength {
            what: "encryption key",
            expected: 32,
            actual: 31
        }
    );
    let e = SkCipher::new(&suite, &k.sk_ei, &SecretBytes::new(vec![0; 32])).unwrap_err();
    assert!(matches!(
        e,
        CryptoError::KeyLength {
            what: "integrity key",
            ..
        }
    ));
    // A message without an SK payload.
    let mut plain = skeleton(0);
    plain[16] = 0;
    plain.truncate(28);
    plain[24..28].copy_from_slice(&28u32.to_be_bytes());
    assert_eq!(
        tx.open_message(&plain).unwrap_err(),
        CryptoError::NotEncrypted
    );
    assert!(format!("{tx:?}").contains("AesCbc256"));
}

//! The IKEv2 key schedule against NIST ACVP/CAVP SP 800-135 IKEv2 KDF vectors (as shipped in
//! OpenSSL's test suite, and CAVP's SHA-1 set), and against an independent Python derivation of
//! the full key split (tests/vectors/verify_vectors.py). Provenance: tests/vectors/SOURCE.

mod crypto_common;

use crypto_common::*;
use xipsec_control::crypto::{
    skeyseed, skeyseed_rekey, ChildKeyLengths, ChildSaKeys, Encr, IkeSaKeys, IkeSuite, Integ, Prf,
    Role, SecretBytes, SharedSecret,
};

fn spi(s: &str) -> [u8; 8] {
    h(s).try_into().unwrap()
}

/// Parses the OpenSSL evp test blocks: `Ctrl.<name> = <type>:<hex>` and `Output = <hex>`.
fn openssl_blocks() -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path("ikev2_kdf_openssl.txt")).unwrap();
    let mut blocks = Vec::new();
    for block in text.split("\n\n") {
        let mut kv = std::collections::HashMap::new();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(" = ") else {
                continue;
            };
            if let Some(name) = k.strip_prefix("Ctrl.") {
                let value = v.split_once(':').map_or(v, |(_, x)| x);
                kv.insert(
                    name.trim_start_matches("hex").to_string(),
                    value.to_string(),
                );
            } else if k == "Output" {
                kv.insert("Output".into(), v.to_string());
            }
        }
        if kv.contains_key("Output") {
            blocks.push(kv);
        }
    }
    blocks
}

#[test]
fn acvp_ikev2_kdf_vectors_from_openssl() {
    let blocks = openssl_blocks();
    assert_eq!(blocks.len(), 10);
    for b in &blocks {
        let prf = match b["digest"].as_str() {
            "SHA256" => Prf::HmacSha2_256,
            "SHA512" => Prf::HmacSha2_512,
            d => panic!("{d}"),
        };
        let (ni, nr, out) = (h(&b["ni"]), h(&b["nr"]), h(&b["Output"]));
        let got = match (b["mode"].as_str(), b.contains_key("seed")) {
            ("0", _) => skeyseed(prf, &ni, &nr, &SharedSecret::new(h(&b["secret"]))),
            ("2", _) => skeyseed_rekey(
                prf,
                &SecretBytes::new(h(&b["key"])),
                &SharedSecret::new(h(&b["secret"])),
                &ni,
                &nr,
            ),
            ("1", true) => {
                let seed = SecretBytes::new(h(&b["seed"]));
                let (spii, spir) = (spi(&b["spii"]), spi(&b["spir"]));
                // The IKE SA keys are a prefix of the DKM: check the split for a GCM suite.
                let suite = IkeSuite::new(Encr::AesGcm16_256, None, prf).unwrap();
                let keys = IkeSaKeys::derive(&suite, &seed, &ni, &nr, &spii, &spir).unwrap();
                let l = prf.key_len();
                assert_eq!(keys.sk_d.expose(), &out[..l]);
                assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
                assert_eq!(keys.sk_ei.expose(), &out[l..l + 36]);
                assert_eq!(keys.sk_er.expose(), &out[l + 36..l + 72]);
                assert_eq!(keys.sk_pi.expose(), &out[l + 72..2 * l + 72]);
                assert_eq!(keys.sk_pr.expose(), &out[2 * l + 72..3 * l + 72]);
                prf.prf_plus(seed.expose(), &[&ni, &nr, &spii, &spir], out.len())
                    .unwrap()
            }
            ("1", false) => {
                let sk_d = SecretBytes::new(h(&b["key"]));
                let g = b.get("secret").map(|s| SharedSecret::new(h(s)));
                // Child KEYMAT split into two halves of encryption keys reproduces the DKM.
                let lengths = ChildKeyLengths {
                    encr: out.len() / 2,
                    integ: 0,
                };
                let keys = ChildSaKeys::derive(prf, &sk_d, g.as_ref(), &ni, &nr, lengths).unwrap();
                assert_eq!(out.len() % 2, 0);
                SecretBytes::new([keys.encr_i.expose(), keys.encr_r.expose()].concat())
            }
            m => panic!("{m:?}"),
        };
        assert_eq!(got.expose(), out.as_slice(), "{:?}", b["mode"]);
    }
}

#[test]
fn cavp_ikev2_sha1() {
    let c = load("cavp_ikev2_sha1.json");
    let s = |k: &str| h(c[k].as_str().unwrap());
    let (ni, nr) = (s("ni"), s("nr"));
    let seed = skeyseed(Prf::HmacSha1, &ni, &nr, &SharedSecret::new(s("gir")));
    assert_eq!(seed.expose(), s("skeyseed"));
    let dkm = s("dkm");
    let (spii, spir) = (
        spi(c["spii"].as_str().unwrap()),
        spi(c["spir"].as_str().unwrap()),
    );
    let out = Prf::HmacSha1
        .prf_plus(seed.expose(), &[&ni, &nr, &spii, &spir], dkm.len())
        .unwrap();
    assert_eq!(out.expose(), dkm);
    // AES-CBC-128 + HMAC-SHA1-96 + PRF-HMAC-SHA1: 20 | 20 | 20 | 16 | 16 | 20 | 20 = 132 octets.
    let suite = IkeSuite::new(Encr::AesCbc128, Some(Integ::HmacSha1_96), Prf::HmacSha1).unwrap();
    let keys = IkeSaKeys::derive(&suite, &seed, &ni, &nr, &spii, &spir).unwrap();
    let all = [
        &keys.sk_d,
        &keys.sk_ai,
        &keys.sk_ar,
        &keys.sk_ei,
        &keys.sk_er,
        &keys.sk_pi,
        &keys.sk_pr,
    ]
    .iter()
    .flat_map(|k| k.expose().to_vec())
    .collect::<Vec<_>>();
    assert_eq!(all, dkm);
    let child = s("dkm_child");
    let lengths = ChildKeyLengths {
        encr: child.len() / 2,
        integ: 0,
    };
    let k = ChildSaKeys::derive(Prf::HmacSha1, &keys.sk_d, None, &ni, &nr, lengths).unwrap();
    assert_eq!([k.encr_i.expose(), k.encr_r.expose()].concat(), child);
    let g_new = SharedSecret::new(s("gir_new"));
    let k =
        ChildSaKeys::derive(Prf::HmacSha1, &keys.sk_d, Some(&g_new), &ni, &nr, lengths).unwrap();
    assert_eq!(
        [k.encr_i.expose(), k.encr_r.expose()].concat(),
        s("dkm_child_dh")
    );
    let rekey = skeyseed_rekey(Prf::HmacSha1, &keys.sk_d, &g_new, &ni, &nr);
    assert_eq!(rekey.expose(), s("skeyseed_rekey"));
}

fn suite_named(name: &str) -> (IkeSuite, ChildKeyLengths) {
    let (suite, child) = match name {
        "aes-gcm-256/prf-sha384" => (
            IkeSuite::new(Encr::AesGcm16_256, None, Prf::HmacSha2_384),
            ChildKeyLengths::for_esp(Encr::AesGcm16_128, None),
        ),
        "aes-cbc-128/sha2-256-128/prf-sha256" => (
            IkeSuite::new(
                Encr::AesCbc128,
                Some(Integ::HmacSha2_256_128),
                Prf::HmacSha2_256,
            ),
            ChildKeyLengths::for_esp(Encr::Chacha20Poly1305, None),
        ),
        "chacha20/prf-sha512" => (
            IkeSuite::new(Encr::Chacha20Poly1305, None, Prf::HmacSha2_512),
            ChildKeyLengths::for_esp(Encr::AesCbc128, Some(Integ::HmacSha2_384_192)),
        ),
        "aes-cbc-256/sha1-96/prf-sha1" => (
            IkeSuite::new(Encr::AesCbc256, Some(Integ::HmacSha1_96), Prf::HmacSha1),
            ChildKeyLengths::for_esp(Encr::AesCbc256, Some(Integ::HmacSha2_512_256)),
        ),
        n => panic!("{n}"),
    };
    (suite.unwrap(), child)
}

#[test]
fn python_derived_key_schedule() {
    let v = load("python_derived.json");
    let k = &v["keys"];
    let s = |key: &str| h(k[key].as_str().unwrap());
    let (ni, nr, g, g_new) = (
        s("ni"),
        s("nr"),
        SharedSecret::new(s("gir")),
        SharedSecret::new(s("gir_new")),
    );
    let (spii, spir) = (
        spi(k["spii"].as_str().unwrap()),
        spi(k["spir"].as_str().unwrap()),
    );
    let mut n = 0;
    for c in k["suites"].as_array().unwrap() {
        let (suite, child_len) = suite_named(c["suite"].as_str().unwrap());
        assert_eq!(child_len.encr as u64, c["child_encr_len"].as_u64().unwrap());
        assert_eq!(
            child_len.integ as u64,
            c["child_integ_len"].as_u64().unwrap()
        );
        let seed = skeyseed(suite.prf(), &ni, &nr, &g);
        assert_eq!(seed.expose(), h(c["skeyseed"].as_str().unwrap()));
        let keys = IkeSaKeys::derive(&suite, &seed, &ni, &nr, &spii, &spir).unwrap();
        let ike = &c["ike"];
        for (name, key) in [
            ("sk_d", &keys.sk_d),
            ("sk_ai", &keys.sk_ai),
            ("sk_ar", &keys.sk_ar),
            ("sk_ei", &keys.sk_ei),
            ("sk_er", &keys.sk_er),
            ("sk_pi", &keys.sk_pi),
            ("sk_pr", &keys.sk_pr),
        ] {
            assert_eq!(
                key.expose(),
                h(ike[name].as_str().unwrap()),
                "{} {name}",
                c["suite"]
            );
        }
        assert_eq!(keys.sk_p(Role::Initiator), &keys.sk_pi);
        assert_eq!(keys.sk_p(Role::Responder), &keys.sk_pr);
        for (pfs, exp) in [(None, &c["child"]), (Some(&g_new), &c["child_pfs"])] {
            let ck =
                ChildSaKeys::derive(suite.prf(), &keys.sk_d, pfs, &ni, &nr, child_len).unwrap();
            for (name, key) in [
                ("encr_i", &ck.encr_i),
                ("integ_i", &ck.integ_i),
                ("encr_r", &ck.encr_r),
                ("integ_r", &ck.integ_r),
            ] {
                assert_eq!(
                    key.expose(),
                    h(exp[name].as_str().unwrap()),
                    "{} {name}",
                    c["suite"]
                );
            }
            let shown = format!("{ck:?}");
            assert!(
                !shown.contains(&hex::encode(&ck.encr_i.expose()[..4])),
                "{shown}"
            );
        }
        let rekey = skeyseed_rekey(suite.prf(), &keys.sk_d, &g_new, &ni, &nr);
        assert_eq!(rekey.expose(), h(c["rekey_skeyseed"].as_str().unwrap()));
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains(&hex::encode(&keys.sk_d.expose()[..4])),
            "{shown}"
        );
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn oversized_child_keymat_is_refused() {
    // 255 blocks of SHA-256 = 8160 octets; ask for more.
    let lengths = ChildKeyLengths {
        encr: 4000,
        integ: 100,
    };
    let r = ChildSaKeys::derive(
        Prf::HmacSha2_256,
        &SecretBytes::new(vec![1; 32]),
        None,
        b"n",
        b"n",
        lengths,
    );
    assert!(matches!(
        r,
        Err(xipsec_control::crypto::CryptoError::PrfPlusTooLong { .. })
    ));
}

//! The configuration file through the library: a full example into typed values, every broken
//! fixture under tests/config/bad/ with its exact errors, secret-file permissions, macros.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xipsec_control::config::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn secret_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// The secret files the good example needs, made 0600 in a temp dir, as -D macros.
fn good_macros(dir: &Path) -> Macros {
    let psk = secret_file(dir, "site-b.psk", "correct horse battery staple\n", 0o600);
    let key = secret_file(
        dir,
        "gw-a.key",
        include_str!("certs/config/gw-a.key"),
        0o600,
    );
    let sa_key = secret_file(
        dir,
        "b-to-a.key",
        "hex:101112131415161718191a1b1c1d1e1f20212223\n",
        0o600,
    );
    [
        ("psk_file", psk),
        ("key_file", key),
        ("sa_key_file", sa_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.display().to_string()))
    .collect()
}

#[test]
fn full_example_parses_into_typed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixtures().join("good/full.toml");
    let c = Config::load(&path, &good_macros(tmp.path())).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(c.daemon.listen, [ip("192.0.2.1"), ip("2001:db8::1")]);
    assert_eq!(c.connections.len(), 2);

    let a = &c.connections[0];
    assert_eq!(a.name, "site-b");
    assert_eq!(a.local_addrs, [Addr::Ip(ip("192.0.2.1"))]);
    assert_eq!(a.remote_addrs, [Addr::Ip(ip("192.0.2.2"))]);
    assert_eq!(
        a.ike_proposals,
        [
            IkeProposal {
                encryption: vec![Encryption::AesGcm16_128],
                integrity: vec![],
                prf: vec![Prf::HmacSha256],
                dh: vec![DhGroup::Curve25519],
            },
            IkeProposal {
                encryption: vec![Encryption::AesCbc256],
                integrity: vec![Integrity::Sha256_128],
                prf: vec![Prf::HmacSha256],
                dh: vec![DhGroup::Modp2048],
            },
        ]
    );
    assert_eq!(a.dpd_interval, Duration::from_secs(30));
    assert_eq!(a.rekey_time, Duration::from_secs(14400));
    assert_eq!(a.key_renewal, KeyRenewal::Reauth);
    assert!(!a.mobike);
    assert!(a.encap);
    assert_eq!(a.unique_ids, UniqueIds::No);
    assert_eq!(a.local.auth, AuthMethod::Psk);
    assert_eq!(a.local.id, Some(Identity::Fqdn("gw-a.example.net".into())));
    assert_eq!(
        a.local.psk.as_ref().unwrap().expose(),
        b"correct horse battery staple"
    );
    assert_eq!(a.remote.auth, AuthMethod::Psk);
    assert_eq!(a.remote.id, Some(Identity::Fqdn("gw-b.example.net".into())));
    assert!(a.remote.psk.is_none());

    let net0 = &a.children[0];
    assert_eq!(net0.name, "net");
    assert_eq!(net0.local_ts, [net("10.1.0.0/24"), net("2001:db8:1::/48")]);
    assert_eq!(net0.remote_ts, [net("10.2.0.0/24"), net("2001:db8:2::/48")]);
    assert_eq!(
        net0.esp_proposals,
        [
            EspProposal {
                encryption: vec![EspCipher::Aes128Gcm16],
                dh: vec![],
                esn: vec![Esn::NoEsn]
            },
            EspProposal {
                encryption: vec![EspCipher::Aes256Gcm16],
                dh: vec![],
                esn: vec![Esn::Esn]
            },
        ]
    );
    assert_eq!(net0.mode, Mode::Tunnel);
    assert_eq!(net0.start_action, StartAction::Start);
    assert_eq!(net0.rekey_time, Duration::from_secs(3600));
    assert_eq!(net0.replay_window, 1024);

    let host = &a.children[1];
    assert_eq!(host.mode, Mode::Transport);
    assert_eq!(host.local_ts, [net("192.0.2.1/32")]);
    assert!(
        host.remote_ts.is_empty(),
        "transport default: the peer's IKE address"
    );
    assert_eq!(
        host.esp_proposals[0].encryption,
        [EspCipher::ChaCha20Poly1305]
    );
    assert_eq!(host.esp_proposals[0].dh, [DhGroup::Curve25519]);
    assert_eq!(host.start_action, StartAction::Trap);
    assert_eq!(host.replay_window, 0);

    let rw = &c.connections[1];
    assert_eq!(rw.remote_addrs, [Addr::Any]);
    assert_eq!(rw.unique_ids, UniqueIds::Replace);
    assert_eq!(rw.dpd_interval, Duration::ZERO, "default: off");
    assert!(rw.mobike, "default: on");
    assert_eq!(rw.ike_proposals.len(), 1, "default proposal");
    assert_eq!(rw.local.auth, AuthMethod::Pubkey);
    assert_eq!(
        rw.local.id,
        Some(Identity::Dn(vec![
            Rdn {
                attr: "C",
                value: "CH".into()
            },
            Rdn {
                attr: "O",
                value: "xipsec".into()
            },
            Rdn {
                attr: "CN",
                value: "gw-a.example.net".into()
            },
        ]))
    );
    assert_eq!(rw.local.cert, Some(fixtures().join("good/certs/gw-a.pem")));
    assert_eq!(rw.local.key, Some(tmp.path().join("gw-a.key")));
    assert_eq!(
        rw.remote.id,
        Some(Identity::UserFqdn("alice@example.net".into()))
    );
    assert_eq!(rw.remote.cacerts, [fixtures().join("good/certs/ca.pem")]);
    assert_eq!(rw.children[0].local_ts, [net("0.0.0.0/0")]);
    assert_eq!(rw.children[0].start_action, StartAction::None);
    assert_eq!(rw.children[0].esp_proposals.len(), 1, "default proposal");

    assert_eq!(
        c.dataplane,
        Dataplane {
            interfaces: vec!["eth0".into(), "eth1".into()],
            backend: Backend::Afxdp,
            workers: Some(2),
            sa_capacity: Some(1 << 20),
        }
    );

    let out = &c.manual_sas[0];
    assert_eq!(out.name, "a-to-b");
    assert_eq!(out.direction, Direction::Out);
    assert_eq!(out.spi, 0x7001);
    assert_eq!(out.cipher, EspCipher::Aes256Gcm16);
    assert_eq!(out.key.expose(), (0u8..36).collect::<Vec<_>>());
    assert_eq!(out.mode, Mode::Tunnel);
    assert_eq!(
        (out.local, out.remote),
        (ip("198.51.100.1"), ip("198.51.100.2"))
    );
    assert_eq!(out.local_ts, [net("10.1.0.0/24")]);
    assert_eq!(out.remote_ts, [net("10.2.0.0/24")]);
    assert_eq!(
        out.encap,
        Some(UdpEncap {
            sport: 4500,
            dport: 4500
        })
    );
    assert!(out.esn);
    assert_eq!(out.replay_window, 4096);

    let inb = &c.manual_sas[1];
    assert_eq!(inb.direction, Direction::In);
    assert_eq!(inb.cipher, EspCipher::Aes128Gcm16);
    assert_eq!(inb.key.expose(), (0x10u8..0x24).collect::<Vec<_>>());
    assert_eq!(inb.mode, Mode::Transport);
    assert_eq!(inb.local_ts, [net("198.51.100.1/32")], "transport default");
    assert_eq!(inb.remote_ts, [net("198.51.100.2/32")]);
    assert_eq!(inb.encap, None);
    assert!(!inb.esn);
    assert_eq!(inb.replay_window, 1024, "default");

    // Secrets never show in Debug.
    let debug = format!("{c:?}");
    assert!(!debug.contains("horse"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

/// Every `bad/NAME.toml` gives exactly the lines of `bad/NAME.expected`.
#[test]
fn broken_fixtures_give_the_expected_errors() {
    let dir = fixtures().join("bad");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = fs::read_to_string(path.with_extension("expected")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let errors = Config::parse(&text, name, &dir, &Macros::new())
            .expect_err(name)
            .to_string();
        assert_eq!(errors.trim_end(), expected.trim_end(), "{name}");
        n += 1;
    }
    assert!(n >= 10, "only {n} fixtures");
}

#[test]
fn the_example_from_the_issue() {
    let src = "[[connection]]\nname = \"site-b\"\nremote_addrs = [\"192.0.2.2\"]\n\
               [connection.local]\nauth = \"psk\"\npsk = \"s3cret\"\n[connection.remote]\nauth = \"psk\"\n\
               [[connection.child]]\nname = \"net\"\nremote_ts = [\"10.2.0.0/24\"]\n\n\n\
               local_ts = [\"10.1.0.0/33\"]\n";
    let e = Config::parse(src, "site-b.conf", Path::new("."), &Macros::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "site-b.conf:14:13: connection[0].child[0].local_ts: '10.1.0.0/33' is not a prefix"
    );
    assert_eq!(e.0[0].position, Some((14, 13)));
    assert_eq!(e.0[0].path, "connection[0].child[0].local_ts");
}

fn psk_config(psk_path: &Path) -> String {
    format!(
        "[[connection]]\nname = \"a\"\nremote_addrs = [\"192.0.2.2\"]\n\
         [connection.local]\nauth = \"psk\"\npsk = \"file:{}\"\n[connection.remote]\nauth = \"psk\"\n",
        psk_path.display()
    )
}

#[test]
fn world_readable_psk_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = secret_file(tmp.path(), "bad.psk", "topsecretvalue\n", 0o644);
    let e = Config::parse(&psk_config(&bad), "t.toml", tmp.path(), &Macros::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "t.toml:6:7: connection[0].local.psk: {}: secret file is world-readable (mode 0644); chmod o-r it",
            bad.display()
        )
    );
    assert!(!e.to_string().contains("topsecret"));

    let good = secret_file(tmp.path(), "good.psk", "topsecretvalue\n", 0o600);
    let c = Config::parse(&psk_config(&good), "t.toml", tmp.path(), &Macros::new()).unwrap();
    assert_eq!(
        c.connections[0].local.psk.as_ref().unwrap().expose(),
        b"topsecretvalue"
    );
    assert_eq!(
        format!("{:?}", c.connections[0].local.psk),
        "Some(<redacted>)"
    );

    let empty = secret_file(tmp.path(), "empty.psk", "\n", 0o600);
    let e = Config::parse(&psk_config(&empty), "t.toml", tmp.path(), &Macros::new()).unwrap_err();
    assert!(e.to_string().ends_with("secret file is empty"), "{e}");
}

#[test]
fn relative_secret_paths_are_relative_to_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    secret_file(tmp.path(), "rel.psk", "abcdefgh", 0o640);
    let conf = tmp.path().join("x.toml");
    fs::write(&conf, psk_config(Path::new("rel.psk"))).unwrap();
    let c = Config::load(&conf, &Macros::new()).unwrap();
    assert_eq!(
        c.connections[0].local.psk.as_ref().unwrap().expose(),
        b"abcdefgh"
    );
}

#[test]
fn errors_never_quote_secrets() {
    let src =
        "[[manual_sa]]\nname = \"m\"\ndirection = \"out\"\nspi = 4096\ncipher = \"aes128gcm16\"\n\
               key = \"hex:00112233445566778899aabbccddeeff\"\nmode = \"transport\"\n\
               local = \"198.51.100.1\"\nremote = \"198.51.100.2\"\n";
    let e = Config::parse(src, "m.toml", Path::new("."), &Macros::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "m.toml:6:7: manual_sa[0].key: aes128gcm16 needs 20 bytes of key and salt, got 16"
    );
}

#[test]
fn macros_are_substituted_and_positions_kept() {
    let src = "# ${not_expanded_in_comments}\n[daemon]\nlisten = [\"${addr}\"]\n\
               [[connection]]\nname = \"${name}-x\"\nremote_addrs = [\"${peer}\"]\n\
               [connection.local]\nauth = \"psk\"\npsk = \"${psk}\"\n[connection.remote]\nauth = \"psk\"\n";
    let macros: Macros = [
        ("addr", "192.0.2.1"),
        ("name", "site"),
        ("peer", "192.0.2.2"),
        ("psk", "from the command line"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = Config::parse(src, "m.toml", Path::new("."), &macros).unwrap();
    assert_eq!(c.daemon.listen, [ip("192.0.2.1")]);
    assert_eq!(c.connections[0].name, "site-x");
    assert_eq!(c.connections[0].remote_addrs, [Addr::Ip(ip("192.0.2.2"))]);
    assert_eq!(
        c.connections[0].local.psk.as_ref().unwrap().expose(),
        b"from the command line"
    );

    // A substituted value that is wrong points at its ${...} in the original file; later
    // positions on the line are not shifted by the substitution.
    let mut bad = macros.clone();
    bad.insert("peer".into(), "not-an-address".into());
    let src2 = src.replace(
        "remote_addrs = [\"${peer}\"]",
        "remote_addrs = [\"${peer}\", \"x\"]",
    );
    let e = Config::parse(&src2, "m.toml", Path::new("."), &bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "m.toml:6:17: connection[0].remote_addrs: 'not-an-address' is not an IP address or \"%any\"\n\
         m.toml:6:28: connection[0].remote_addrs: 'x' is not an IP address or \"%any\""
    );

    // Undefined: an error with its position.
    let e = Config::parse(src, "m.toml", Path::new("."), &Macros::new()).unwrap_err();
    assert_eq!(e.0.len(), 4);
    assert_eq!(
        e.0[0].to_string(),
        "m.toml:3:12: undefined macro '${addr}' (define it with -D addr=value)"
    );
}

#[test]
fn missing_file() {
    let e = Config::load(Path::new("/nonexistent/xipsec.toml"), &Macros::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/xipsec.toml: cannot read the configuration file: No such file or directory (os error 2)"
    );
}

#[test]
fn empty_file_is_a_valid_empty_config() {
    let c = Config::parse("", "e.toml", Path::new("."), &Macros::new()).unwrap();
    assert!(c.connections.is_empty() && c.manual_sas.is_empty());
    assert_eq!(c.dataplane.backend, Backend::Auto);
    assert_eq!(c.dataplane.workers, None);
}

/// The complete example in docs/config.md is valid apart from the files it names, which do not
/// exist here.
#[test]
fn the_docs_example_is_valid() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md"))
        .unwrap();
    let example = doc
        .split("## A complete example")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/config.md has a complete example");
    let macros: Macros = [("peer".to_string(), "192.0.2.2".to_string())].into();
    let dir = tempfile::tempdir().unwrap();
    let e = Config::parse(example, "config.md", dir.path(), &macros).unwrap_err();
    for d in &e.0 {
        assert!(
            d.message
                .ends_with("No such file or directory (os error 2)"),
            "{d}"
        );
    }
    assert_eq!(e.0.len(), 5, "{e}");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) {
        let macros: Macros = ["x", "psk_file", "key_file", "sa_key_file"]
            .iter()
            .map(|k| (k.to_string(), format!("/nonexistent/{k}")))
            .collect();
        let _ = Config::parse(text, "f.toml", Path::new("/nonexistent"), &macros);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn on_arbitrary_text(s in "\\PC*") {
            parse(&s);
        }

        #[test]
        fn on_toml_like_text(s in "(\\[\\[?(connection|manual_sa|daemon|dataplane)(\\.child|\\.local|\\.remote)?\\]\\]?\n|[a-z_]{1,12} = (\"[^\"\n]{0,20}\"|[0-9x]{1,12}|true|\\[\"[0-9a-f.:/%]{0,16}\"\\]|\\{ sport = [0-9]{1,6} \\})\n|\\$\\{x?\\}|#.*\n){0,40}") {
            parse(&s);
        }

        #[test]
        fn on_a_mutated_good_file(pos in 0usize..4000, byte in any::<u8>(), cut in any::<bool>()) {
            let mut text = fs::read(fixtures().join("good/full.toml")).unwrap();
            let pos = pos % text.len();
            if cut { text.truncate(pos) } else { text[pos] = byte }
            parse(&String::from_utf8_lossy(&text));
        }
    }
}

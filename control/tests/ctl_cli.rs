//! The xipsecctl binary against a mock daemon: every subcommand as text and as JSON (parsed
//! back and compared with what the mock served), exit statuses, and 12,000 SAs.

mod ctl_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use ctl_support::{Mock, MockDaemon};
use serde_json::Value;
use xipsec_control::ctl::protocol::{
    ConnInfo, CountersInfo, IkeSaInfo, IkeSaState, Request, Role, StatusInfo,
};

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xipsecctl"))
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(o));
    stdout(o)
}

#[test]
fn status_text_and_json() {
    let d = MockDaemon::start(Mock::new(3));
    let text = ok(&ctl(&d.path, &["status"]));
    assert!(
        text.starts_with("xipsecd 0.1.0, pid 4242, up 1d 2h 3m 4s\n"),
        "{text}"
    );
    assert!(
        text.contains("config:      /etc/xipsec/xipsec.toml\n"),
        "{text}"
    );
    assert!(text.contains("IKE SAs:     3\n"), "{text}");
    assert!(text.contains("Child SAs:   6\n"), "{text}");
    assert!(
        text.contains("data plane:  afxdp (xipsec-dataplane, pid 4343)\n"),
        "{text}"
    );

    for args in [
        &["status", "--json"][..],
        &["--json", "status"],
        &["status", "--pretty"],
    ] {
        let json = ok(&ctl(&d.path, args));
        assert_eq!(json.matches('\n').count() == 1, !args.contains(&"--pretty"));
        let got: StatusInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(got, d.mock().status);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["uptime_secs"], 93_784);
    }
    assert_eq!(d.mock().requests(), vec![Request::Status; 4]);
}

#[test]
fn list_conns_text_and_json() {
    let d = MockDaemon::start(Mock::new(0));
    let text = ok(&ctl(&d.path, &["list-conns"]));
    let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        heads,
        [
            "site-b: IKEv2, rekeying every 14400s, dpd every 30s, MOBIKE",
            "42: IKEv2, reauthentication every 7200s, UDP encapsulation forced",
        ]
    );
    for needle in [
        "  local:  192.0.2.1\n",
        "  remote psk authentication:\n    id: gw-b.example.net\n",
        "  proposals: aes128gcm16-prfsha256-x25519, aes256-sha256-prfsha256-modp2048\n",
        "  net: TUNNEL, rekeying every 3600s, start_action start\n",
        "    local:  10.1.0.0/24\n    remote: 10.2.0.0/24\n",
        "    esp proposals: aes128gcm16, aes256gcm16-esn\n",
        "  local public key authentication:\n    id: (the IKE address in use)\n",
        "  host: TRANSPORT, rekeying every 1800s, start_action none\n    local:  dynamic\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let json = ok(&ctl(&d.path, &["list-conns", "--json"]));
    let got: Vec<ConnInfo> = serde_json::from_str(&json).unwrap();
    assert_eq!(got, d.mock().conns);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["children"][0]["start_action"], "start");
    assert_eq!(v[1]["local_auth"], "pubkey");
    assert_eq!(v[1]["local_id"], Value::Null);
}

/// Checks the text of `list-sas` against the SAs, independently of the formatter: one header
/// line per IKE SA with its id, state and SPIs, our SPI starred, and each Child SA's SPIs and
/// counters on the lines under it.
fn check_sas_text(text: &str, sas: &[IkeSaInfo]) {
    let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), sas.len());
    let mut blocks = text.split('\n').peekable();
    for (head, sa) in heads.iter().zip(sas) {
        let state = format!("{:?}", sa.state).to_uppercase();
        let (si, sr) = match sa.role {
            Role::Initiator => ("*", ""),
            Role::Responder => ("", "*"),
        };
        assert_eq!(
            *head,
            format!(
                "{}: #{}, {state}, IKEv2, {:016x}_i{si} {:016x}_r{sr}",
                sa.connection, sa.id, sa.spi_i, sa.spi_r
            )
        );
        // The block: from this head to the next.
        while blocks.peek() != Some(head) {
            blocks.next();
        }
        blocks.next();
        let mut block = String::new();
        while let Some(l) = blocks.peek() {
            if !l.starts_with(' ') {
                break;
            }
            block.push_str(l);
            block.push('\n');
            blocks.next();
        }
        let remote_id = if sa.remote_id.is_empty() {
            "%any"
        } else {
            &sa.remote_id
        };
        assert!(
            block.contains(&format!(
                "  remote '{remote_id}' @ {}[{}]",
                sa.remote_addr.ip(),
                sa.remote_addr.port()
            )),
            "{block}"
        );
        assert_eq!(
            block.contains("(behind NAT)"),
            sa.nat_local || sa.nat_remote
        );
        for c in &sa.children {
            assert!(
                block.contains(&format!(
                    "    in  {:08x}, {:>6} bytes, {:>5} packets\n    out {:08x}, {:>6} bytes, {:>5} packets\n",
                    c.spi_in, c.bytes_in, c.packets_in, c.spi_out, c.bytes_out, c.packets_out
                )),
                "{block}"
            );
            assert!(block.contains(&format!("    local  {}\n", c.local_ts.join(" "))));
        }
        assert_eq!(block.matches("    in  ").count(), sa.children.len());
    }
}

#[test]
fn list_sas_text_and_json() {
    let d = MockDaemon::start(Mock::new(12));
    let text = ok(&ctl(&d.path, &["list-sas"]));
    check_sas_text(&text, &d.mock().sas);
    assert!(text.contains("  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519\n"));
    assert!(text.contains(", TUNNEL-in-UDP, ESP:AES_GCM_16-128\n"));
    assert!(text.contains(", TRANSPORT, ESP:CHACHA20_POLY1305/ESN\n"));

    for pretty in [false, true] {
        let args: &[&str] = if pretty {
            &["list-sas", "--json", "--pretty"]
        } else {
            &["list-sas", "--json"]
        };
        let json = ok(&ctl(&d.path, args));
        let got: Vec<IkeSaInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(got, d.mock().sas);
        // The JSON shape, read without the crate's types.
        let v: Value = serde_json::from_str(&json).unwrap();
        let sa = &d.mock().sas[2];
        assert_eq!(v[2]["id"], sa.id);
        assert_eq!(v[2]["state"], "rekeying");
        assert_eq!(v[2]["spi_i"], format!("{:016x}", sa.spi_i));
        assert_eq!(v[2]["remote_addr"], sa.remote_addr.to_string());
        assert_eq!(
            v[2]["children"][1]["spi_in"],
            format!("{:08x}", sa.children[1].spi_in)
        );
        assert_eq!(v[2]["children"][1]["bytes_out"], sa.children[1].bytes_out);
        assert_eq!(v[2]["children"][1]["rekey_in_secs"], Value::Null);
        assert_eq!(v[1]["established_secs"], Value::Null);
    }
}

#[test]
fn counters_text_and_json() {
    let d = MockDaemon::start(Mock::new(0));
    let text = ok(&ctl(&d.path, &["counters"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "dataplane.dropped.replay           3",
            "dataplane.packets_in      9876543210",
            "",
            "ike.datagrams_in              123456",
            "ike.datagrams_out             123400",
            "ike.dropped.bad_spi                7",
        ]
    );
    let json = ok(&ctl(&d.path, &["counters", "--json"]));
    let got: CountersInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(got, d.mock().counters);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["counters"]["dataplane.packets_in"], 9_876_543_210u64);
}

#[test]
fn initiate_terminate_reload() {
    let d = MockDaemon::start(Mock::new(3));
    assert_eq!(
        ok(&ctl(&d.path, &["initiate", "site-b"])),
        "initiating site-b\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["terminate", "42"])),
        "terminating every IKE SA of 42\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["terminate", "#3"])),
        "terminating IKE SA #3\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["terminate", "2"])),
        "terminating IKE SA #2\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["reload"])),
        "configuration reloaded: 2 connections\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["rekey", "site-b", "--child"])),
        "rekeying site-b (child: true)\n"
    );
    assert_eq!(
        ok(&ctl(&d.path, &["rekey", "#2"])),
        "rekeying #2 (child: false)\n"
    );
    let json = ok(&ctl(&d.path, &["--json", "initiate", "site-b"]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v, serde_json::json!({"message": "initiating site-b"}));

    // The daemon's errors: exit 1, the message on stderr, nothing on stdout.
    for (args, msg) in [
        (&["initiate", "nope"][..], "no connection named 'nope'"),
        (&["terminate", "#42"], "no IKE SA #42"),
        (&["terminate", "nope"], "no connection or IKE SA 'nope'"),
        (
            &["--json", "terminate", "nope"],
            "no connection or IKE SA 'nope'",
        ),
    ] {
        let o = ctl(&d.path, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(o.stdout.is_empty());
        assert_eq!(stderr(&o), format!("xipsecctl: xipsecd: {msg}\n"));
    }
    let name = |s: &str| s.to_string();
    assert_eq!(
        d.mock().requests(),
        vec![
            Request::Initiate {
                name: name("site-b")
            },
            Request::Terminate { target: name("42") },
            Request::Terminate { target: name("#3") },
            Request::Terminate { target: name("2") },
            Request::Reload,
            Request::Rekey {
                target: name("site-b"),
                child: true
            },
            Request::Rekey {
                target: name("#2"),
                child: false
            },
            Request::Initiate {
                name: name("site-b")
            },
            Request::Initiate { name: name("nope") },
            Request::Terminate {
                target: name("#42")
            },
            Request::Terminate {
                target: name("nope")
            },
            Request::Terminate {
                target: name("nope")
            },
        ]
    );
}

#[test]
fn cannot_connect_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xipsecd.sock");
    let o = ctl(&path, &["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        format!(
            "xipsecctl: cannot connect to {}: is xipsecd running? (the socket does not exist)\n",
            path.display()
        )
    );
    // The default socket is the documented one.
    let o = Command::new(env!("CARGO_BIN_EXE_xipsecctl"))
        .args(["--help"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("[default: /run/xipsec/xipsecd.sock]"));
}

#[test]
fn usage_errors_exit_2() {
    let d = MockDaemon::start(Mock::new(0));
    for args in [
        &[][..],
        &["frobnicate"],
        &["initiate"],
        &["terminate"],
        &["status", "extra"],
        &["status", "--timeout", "0"],
        &["status", "--timeout", "soon"],
    ] {
        let o = ctl(&d.path, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!o.stderr.is_empty());
    }
    assert!(d.mock().requests().is_empty(), "nothing was sent");
}

#[test]
fn list_sas_with_12000_sas() {
    let n = 12_000;
    let d = MockDaemon::start(Mock::new(n));

    let t = Instant::now();
    let o = ctl(&d.path, &["list-sas"]);
    let text_time = t.elapsed();
    let text = ok(&o);

    let t = Instant::now();
    let o = ctl(&d.path, &["list-sas", "--json"]);
    let json_time = t.elapsed();
    let json = ok(&o);

    eprintln!(
        "*** list-sas with {n} IKE SAs ({} Child SAs), whole xipsecctl run against the mock: \
         text {:.0} ms ({} KiB), --json {:.0} ms ({} KiB) ***",
        d.mock().sas.iter().map(|s| s.children.len()).sum::<usize>(),
        text_time.as_secs_f64() * 1e3,
        text.len() / 1024,
        json_time.as_secs_f64() * 1e3,
        json.len() / 1024,
    );

    check_sas_text(&text, &d.mock().sas);
    let got: Vec<IkeSaInfo> = serde_json::from_str(&json).unwrap();
    assert_eq!(got.len(), n);
    assert_eq!(got, d.mock().sas);
    assert_eq!(
        got.iter()
            .filter(|s| s.state == IkeSaState::Established)
            .count(),
        n / 4
    );
}

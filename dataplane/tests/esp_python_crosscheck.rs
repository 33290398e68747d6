//! Our ESP against an independent implementation: `python/esp_crosscheck.py`, written from the
//! RFCs with Python's `cryptography` and checked against published vectors by its own
//! self-test. Python decrypts what we encapsulate, we decapsulate what Python builds, and
//! where both build the same packet (IV = sequence number, same header conventions) the bytes
//! must be identical.
//!
//! Needs `python3` with `cryptography` (tools/setup installs it). Without it the tests say so
//! and pass, unless XIPSEC_REQUIRE_ALL=1 (set by tools/test) makes a missing tool a failure.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};
use xipsec_dataplane::esp::{
    CipherSuite, Decapsulator, Endpoints, Mode, SaParams, UdpEncap, Verdict,
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/esp_crosscheck.py"
);

fn python_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("XIPSEC_REQUIRE_ALL").is_none(),
            "python3 with `cryptography` is required (XIPSEC_REQUIRE_ALL is set)"
        );
        eprintln!("SKIPPED: python3 with the `cryptography` package is not installed");
    }
    ok
}

fn python(request: &Value) -> Value {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "esp_crosscheck.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The SA as the Python side describes it, seen from the sender.
fn sa_json(params: &SaParams) -> Value {
    let (src, dst): (IpAddr, IpAddr) = match params.endpoints {
        Endpoints::V4 { local, remote } => (local.into(), remote.into()),
        Endpoints::V6 { local, remote } => (local.into(), remote.into()),
    };
    json!({
        "cipher": params.suite.name(),
        "keymat": hex::encode(keymat(params.suite)),
        "spi": params.spi,
        "esn": params.esn,
        "mode": match params.mode { Mode::Tunnel => "tunnel", Mode::Transport => "transport" },
        "natt": params.udp_encap.map(|p| json!({"sport": p.local_port, "dport": p.remote_port})),
        "src": src.to_string(),
        "dst": dst.to_string(),
    })
}

fn matrix() -> Vec<SaParams> {
    let mut all = Vec::new();
    for suite in CipherSuite::ALL {
        for endpoints in [V4_ENDPOINTS, V6_ENDPOINTS] {
            for mode in [Mode::Tunnel, Mode::Transport] {
                for udp_encap in [
                    None,
                    Some(UdpEncap {
                        local_port: 4500,
                        remote_port: 1234,
                    }),
                ] {
                    for esn in [false, true] {
                        all.push(SaParams {
                            mode,
                            udp_encap,
                            esn,
                            ..SaParams::tunnel(0xC0DE_0001, suite, endpoints)
                        });
                    }
                }
            }
        }
    }
    all
}

fn plaintexts(params: &SaParams) -> Vec<Vec<u8>> {
    let sizes = [48, 49, 50, 51, 200, 1420];
    match params.mode {
        Mode::Tunnel => sizes
            .iter()
            .flat_map(|&n| [ipv4_udp(n, 0xb8, true), ipv6_udp(n, 0x2a, 0x54321)])
            .collect(),
        Mode::Transport => sizes
            .iter()
            .map(|&n| packet_for(params.endpoints, n))
            .collect(),
    }
}

/// First sequence number of the run: ESN runs straddle 2^32.
fn first_sequence(params: &SaParams) -> u64 {
    if params.esn {
        (1 << 32) - 5
    } else {
        1
    }
}

#[test]
fn python_self_test_passes() {
    if !python_available() {
        return;
    }
    let output = Command::new("python3")
        .args([SCRIPT, "--self-test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "self-test failed:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn python_decrypts_what_we_encapsulate() {
    if !python_available() {
        return;
    }
    for params in matrix() {
        let (mut out, _) = sa_pair(params);
        let start = first_sequence(&params);
        out.advance_sequence_to(start);
        let plaintexts = plaintexts(&params);
        let packets: Vec<Value> = plaintexts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let sequence = start + i as u64;
                json!({"wire": hex::encode(encap(&mut out, p)), "seq_hi": sequence >> 32})
            })
            .collect();
        let reply = python(&json!({"op": "decap", "sa": sa_json(&params), "packets": packets}));
        let results = reply["results"].as_array().unwrap();
        assert_eq!(results.len(), plaintexts.len());
        for (i, (result, plaintext)) in results.iter().zip(&plaintexts).enumerate() {
            assert_eq!(result["ok"], json!(true), "{params:?} #{i}: {result}");
            assert_eq!(
                result["inner"],
                json!(hex::encode(plaintext)),
                "{params:?} #{i}"
            );
            assert_eq!(result["seq"], json!(start + i as u64), "{params:?} #{i}");
            if params.mode == Mode::Tunnel {
                assert_eq!(result["outer"]["ttl_or_hop_limit"], json!(64));
            }
        }
    }
}

#[test]
fn we_decapsulate_what_python_builds_and_build_the_same_bytes() {
    if !python_available() {
        return;
    }
    for params in matrix() {
        let (mut out, mut inb) = sa_pair(params);
        let start = first_sequence(&params);
        out.advance_sequence_to(start);
        inb.resume_after(start - 1);
        let plaintexts = plaintexts(&params);
        let packets: Vec<Value> = plaintexts
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"seq": start + i as u64, "inner": hex::encode(p), "iv": null}))
            .collect();
        let reply = python(&json!({"op": "encap", "sa": sa_json(&params), "packets": packets}));
        let results = reply["results"].as_array().unwrap();
        assert_eq!(results.len(), plaintexts.len());
        // The receiver listens where the sender sends to.
        let mut decapsulator =
            Decapsulator::new(params.udp_encap.map_or(4500, |ports| ports.remote_port));
        for (i, (result, plaintext)) in results.iter().zip(&plaintexts).enumerate() {
            let wire = hex::decode(result["wire"].as_str().expect("wire")).unwrap();
            assert_eq!(
                encap(&mut out, plaintext),
                wire,
                "{params:?} #{i}: same bytes"
            );
            let (verdict, restored) = decap(&mut decapsulator, &mut inb, &wire);
            assert_eq!(verdict, Verdict::Forward, "{params:?} #{i}");
            assert_eq!(&restored, plaintext, "{params:?} #{i}");
        }
    }
}

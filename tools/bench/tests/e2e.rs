//! The harness end to end, as users run it: the `xipsec-bench` binary as root, in namespaces,
//! for about a second per device. Asserts that packets crossed, that the JSON is complete and
//! consistent, and that nothing is left behind, never how fast anything was.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xipsec_bench::report::{RunResult, LATENCY_FIELDS, REPORT_FIELDS, RUN_FIELDS};
use xipsec_testkit::{require, Need};

const LIMIT: Duration = Duration::from_secs(90);

/// Waits for `child` at most `limit`; kills it (and fails) when it takes longer.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for xipsec-bench") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xipsec-bench did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The namespaces a harness process with this pid created that still exist.
fn leftover_namespaces(pid: u32) -> Vec<String> {
    let prefix = format!("xpt{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn bench(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xipsec-bench"));
    command.arg("run").args(args).stdin(Stdio::null());
    command
}

/// Runs xipsec-bench with `args` to its end (bounded), and asserts that it succeeded and
/// removed its namespaces; `what` prefixes the failure messages.
fn run_to_success(what: &str, args: &[&str]) {
    let mut child = bench(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xipsec-bench");
    let pid = child.id();
    let status = wait_bounded(&mut child, LIMIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "{what}xipsec-bench failed ({status}):\n{stderr}"
    );
    assert!(
        leftover_namespaces(pid).is_empty(),
        "{what}{:?}",
        leftover_namespaces(pid)
    );
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the JSON file");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Every documented field is there, and the numbers agree with each other.
fn check_complete(report: &serde_json::Value, runs: usize) {
    for field in REPORT_FIELDS {
        assert!(
            report.get(field).is_some(),
            "report lacks {field}: {report}"
        );
    }
    assert_eq!(report["schema_version"], 1);
    let list = report["runs"].as_array().expect("runs");
    assert_eq!(list.len(), runs, "{report}");
    for run in list {
        for field in RUN_FIELDS {
            assert!(run.get(field).is_some(), "run lacks {field}: {run}");
        }
        let sent = run["sent"].as_u64().unwrap();
        let received = run["received"].as_u64().unwrap();
        assert!(received > 0, "nothing crossed: {run}");
        assert!(received <= sent, "{run}");
        assert_eq!(run["lost"].as_u64().unwrap(), sent - received, "{run}");
        let latency = &run["latency"];
        for field in LATENCY_FIELDS {
            assert!(
                latency[field].as_f64().is_some(),
                "latency lacks {field}: {run}"
            );
        }
        let p = |f: &str| latency[f].as_f64().unwrap();
        assert!(
            p("min_us") <= p("p50_us") && p("p50_us") <= p("p90_us"),
            "{run}"
        );
        assert!(
            p("p90_us") <= p("p99_us") && p("p99_us") <= p("p999_us"),
            "{run}"
        );
        assert!(p("p999_us") <= p("max_us"), "{run}");
    }
}

#[test]
fn kernel_forwarding_for_a_second_crosses_and_writes_complete_json_and_svg() {
    if !require("bench_e2e_none", &[Need::Root, Need::Ip]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let svg = dir.path().join("out.svg");
    let mut child = bench(&[
        "--io",
        "socket",
        "--dut",
        "none",
        "--sizes",
        "128",
        "--rate",
        "20kpps",
        "--duration",
        "1s",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("starting xipsec-bench");
    let pid = child.id();
    let status = wait_bounded(&mut child, LIMIT);
    let mut table = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut table).unwrap();
    assert!(
        status.success(),
        "xipsec-bench failed ({status}); stdout:\n{table}"
    );
    assert!(
        leftover_namespaces(pid).is_empty(),
        "{:?}",
        leftover_namespaces(pid)
    );

    let report = read_json(&json);
    check_complete(&report, 1);
    let run = &report["runs"][0];
    assert_eq!(run["dut"], "none");
    assert_eq!(run["size"], "128");
    assert_eq!(run["encapsulation"], "plain");
    assert_eq!(run["dut_cpu_s"], serde_json::Value::Null);
    assert_eq!(report["generator"], "udp-socket");
    // The token bucket's promise, independent of the machine's speed: at most 20 000 per
    // second of sending plus one burst (64 packets).
    let sent = run["sent"].as_u64().unwrap();
    let seconds = run["duration_s"].as_f64().unwrap();
    assert!(seconds <= 1.0 + 1e-9, "{run}");
    assert!(sent as f64 <= 20_000.0 * seconds + 64.0, "{run}");
    // 128-byte inner packets: inner bytes are received × 128.
    let inner = run["rx_inner_gbps"].as_f64().unwrap() * 1e9 * seconds / 8.0;
    let received = run["received"].as_f64().unwrap();
    assert!((inner - received * 128.0).abs() < 1.0, "{run}");
    assert_eq!(report["errors"], serde_json::json!([]));

    assert!(
        table.lines().count() == 2 && table.contains("none "),
        "{table}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("none"),
        "{svg:.200}"
    );

    // The same runs as a PNG: its signature, and the plot's size in the IHDR chunk.
    if require("bench_plot_png", &[Need::RsvgConvert]) {
        let runs: Vec<RunResult> = serde_json::from_value(report["runs"].clone()).unwrap();
        let png = dir.path().join("out.png");
        xipsec_bench::plot::write(&png, &runs).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1200, 500));
    }
}

#[test]
fn ctrl_c_stops_the_run_and_removes_the_namespaces() {
    if !require("bench_e2e_sigint", &[Need::Root, Need::Ip]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let mut child = bench(&[
        "--dut",
        "none",
        "--sizes",
        "64,128",
        "--rate",
        "10kpps",
        "--duration",
        "60s",
        "--json",
        json.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting xipsec-bench");
    let pid = child.id();
    // Until its namespaces are there and the first run has been going a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftover_namespaces(pid).len() < 4 {
        assert!(Instant::now() < deadline, "no namespaces appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on the child we spawned, not yet reaped.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted benchmark is not a success"
    );
    assert!(
        leftover_namespaces(pid).is_empty(),
        "{:?}",
        leftover_namespaces(pid)
    );
    let report = read_json(&json);
    // The interrupted run is reported with what it got; the second size never started.
    check_complete(&report, 1);
    assert!(report["runs"][0]["duration_s"].as_f64().unwrap() < 30.0);
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "interrupted"),
        "{report}"
    );
}

/// Whether the XDP classifier loads here (root with CAP_BPF); when not, a loud skip, or a
/// failure under XIPSEC_REQUIRE_ALL.
fn xdp_available(test: &str) -> bool {
    match xipsec_ebpf::Classifier::load(xipsec_ebpf::ClassifierConfig::default()) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
                panic!(
                    "{test}: the XDP classifier does not load ({e}), and XIPSEC_REQUIRE_ALL is set"
                );
            }
            eprintln!("\n*** SKIPPED: {test}: the XDP classifier does not load: {e} ***");
            false
        }
    }
}

#[test]
fn af_xdp_generator_and_sink_through_af_xdp_forwarders_for_a_second() {
    if !require("bench_e2e_xdp_forwarder", &[Need::Root, Need::Ip])
        || !xdp_available("bench_e2e_xdp_forwarder")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    run_to_success(
        "",
        &[
            "--io",
            "xdp",
            "--dut",
            "forwarder",
            "--sizes",
            "64,imix",
            "--rate",
            "20kpps",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let report = read_json(&json);
    check_complete(&report, 2);
    assert_eq!(report["generator"], "af-xdp");
    assert_eq!(report["topology"], "e2e");
    for (run, size) in report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["64", "imix"])
    {
        assert_eq!(run["dut"], "forwarder");
        assert_eq!(run["size"], size);
        assert_eq!(run["encapsulation"], "plain");
        // The forwarders are processes of their own: their CPU counts, and so does the rate
        // per CPU-second derived from it.
        let cpu = run["dut_cpu_s"].as_f64().unwrap();
        assert!(cpu > 0.0, "{run}");
        let per_cpu = run["dut_packets_per_cpu_s"].as_f64().unwrap();
        let received = run["received"].as_f64().unwrap();
        assert!((per_cpu - (received / cpu).round()).abs() <= 1.0, "{run}");
        // The token bucket's promise, independent of the machine's speed.
        let sent = run["sent"].as_f64().unwrap();
        let seconds = run["duration_s"].as_f64().unwrap();
        assert!(sent <= 20_000.0 * seconds + 64.0, "{run}");
        assert_eq!(run["esp_dropped"], 0, "{run}");
        assert!(run["generator_cpu_s"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["sink_cpu_s"].as_f64().unwrap() > 0.0, "{run}");
    }
    assert_eq!(report["errors"], serde_json::json!([]));
}

#[test]
fn real_interfaces_with_an_external_device_in_between() {
    use xipsec_testkit::netns::{unique_prefix, Netns};
    if !require("bench_e2e_external", &[Need::Root, Need::Ip, Need::Ping])
        || !xdp_available("bench_e2e_external")
    {
        return;
    }
    // A lab: the harness's namespace with two interfaces, a router namespace between them.
    // The sink's address is configured nowhere: the router has a neighbour entry for it, and
    // the generator's host routes it via the router, whose MAC the harness must find itself.
    let prefix = unique_prefix();
    let lab = Netns::new(format!("{prefix}-lab"));
    let router = Netns::new(format!("{prefix}-dut"));
    lab.ip(&[
        "link",
        "add",
        "tx0",
        "type",
        "veth",
        "peer",
        "name",
        "a0",
        "netns",
        router.name(),
    ]);
    lab.ip(&[
        "link",
        "add",
        "rx0",
        "type",
        "veth",
        "peer",
        "name",
        "b0",
        "netns",
        router.name(),
    ]);
    lab.ip(&["addr", "add", "10.1.0.2/24", "dev", "tx0"]);
    router.ip(&["addr", "add", "10.1.0.1/24", "dev", "a0"]);
    router.ip(&["addr", "add", "10.2.0.1/24", "dev", "b0"]);
    for (ns, dev) in [
        (&lab, "tx0"),
        (&lab, "rx0"),
        (&router, "a0"),
        (&router, "b0"),
    ] {
        ns.ip(&["link", "set", dev, "up"]);
    }
    lab.ip(&[
        "route",
        "add",
        "10.2.0.0/24",
        "via",
        "10.1.0.1",
        "dev",
        "tx0",
    ]);
    router.sysctl("net/ipv4/ip_forward", "1");
    let rx_mac = xipsec_bench::mac::link_mac(Some(&lab), "rx0").unwrap();
    router.ip(&[
        "neigh",
        "replace",
        "10.2.0.2",
        "lladdr",
        &rx_mac.to_string(),
        "dev",
        "b0",
        "nud",
        "permanent",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let mut child = Command::new("ip")
        .args(["netns", "exec", lab.name()])
        .arg(env!("CARGO_BIN_EXE_xipsec-bench"))
        .args([
            "run",
            "--io",
            "xdp",
            "--tx-iface",
            "tx0",
            "--rx-iface",
            "rx0",
            "--sizes",
            "1400",
            "--rate",
            "5kpps",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xipsec-bench");
    let status = wait_bounded(&mut child, LIMIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "xipsec-bench failed ({status}):\n{stderr}"
    );
    let report = read_json(&json);
    check_complete(&report, 1);
    assert_eq!(report["topology"], "external");
    let run = &report["runs"][0];
    assert_eq!(run["dut"], "external");
    assert_eq!(run["dut_cpu_s"], serde_json::Value::Null);
    // The router forwarded them: its interface counted them going out.
    let out = Command::new("ip")
        .args(["-n", router.name(), "-s", "-j", "link", "show", "dev", "b0"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let forwarded = stats[0]["stats64"]["tx"]["packets"].as_u64().unwrap();
    assert!(
        forwarded >= run["received"].as_u64().unwrap(),
        "{forwarded} {run}"
    );
}

/// Where the xipsecd binary is: `XIPSECD_BIN`, or the one cargo built into this target
/// directory (`cargo test --workspace` builds it; this test runs from `target/<profile>/deps`).
fn xipsecd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("XIPSECD_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("xipsecd");
    (candidate.is_file() && candidate.with_file_name("xipsecctl").is_file()).then_some(candidate)
}

#[test]
fn xipsecd_with_ike_and_with_manual_sas_carries_packets_and_counts_the_daemons_cpu() {
    if !require("bench_e2e_xipsecd", &[Need::Root, Need::Ip, Need::Tun]) {
        return;
    }
    let Some(xipsecd) = xipsecd() else {
        let why = "no xipsecd: set XIPSECD_BIN (and XIPSECCTL_BIN, or put xipsecctl beside it), \
                   or build the workspace's binaries (cargo build -p xipsec-control)";
        if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
            panic!("bench_e2e_xipsecd: {why}, and XIPSEC_REQUIRE_ALL is set");
        }
        eprintln!("\n*** SKIPPED: bench_e2e_xipsecd: {why} ***");
        return;
    };
    let xipsecctl = std::env::var_os("XIPSECCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| xipsecd.with_file_name("xipsecctl"));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    run_to_success(
        "",
        &[
            "--dut",
            "xipsec-ike,xipsec-manual",
            "--sizes",
            "512",
            "--rate",
            "5kpps",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--xipsecd",
            xipsecd.to_str().unwrap(),
            "--xipsecctl",
            xipsecctl.to_str().unwrap(),
        ],
    );
    let report = read_json(&json);
    check_complete(&report, 2);
    for (run, dut) in report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["xipsec-ike", "xipsec-manual"])
    {
        assert_eq!(run["dut"], dut);
        assert!(run["encapsulation"].get("esp_tunnel").is_some(), "{run}");
        // The daemons did the encrypting: they used some CPU (at least one 10 ms tick).
        assert!(run["dut_cpu_s"].as_f64().unwrap() > 0.0, "{run}");
        // ESP costs bytes: more on the wire than inside.
        assert!(run["rx_wire_gbps"].as_f64().unwrap() > run["rx_inner_gbps"].as_f64().unwrap());
    }
}

#[test]
fn strongswan_for_a_second_carries_packets_in_udp_encapsulated_esp() {
    if !require("bench_e2e_strongswan", Need::STRONGSWAN) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    run_to_success(
        "",
        &[
            "--dut",
            "strongswan",
            "--sizes",
            "imix",
            "--rate",
            "5kpps",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let report = read_json(&json);
    check_complete(&report, 1);
    let run = &report["runs"][0];
    assert_eq!(run["dut"], "strongswan");
    assert_eq!(run["size"], "imix");
    assert_eq!(run["size_mean_bytes"], 344.0);
    assert_eq!(
        run["encapsulation"],
        serde_json::json!({"esp_tunnel": {"udp": true}})
    );
    assert!(run["dut_cpu_s"].as_f64().unwrap() > 0.0, "{run}");
}

#[test]
fn one_gateway_encrypting_for_a_sink_that_decrypts_and_decrypting_what_the_generator_sealed() {
    if !require("bench_e2e_one_gateway", &[Need::Root, Need::Ip, Need::Tun])
        || !xdp_available("bench_e2e_one_gateway")
    {
        return;
    }
    let Some(xipsecd) = xipsecd() else {
        let why = "no xipsecd: set XIPSECD_BIN, or build the workspace's binaries (cargo build -p xipsec-control)";
        if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
            panic!("bench_e2e_one_gateway: {why}, and XIPSEC_REQUIRE_ALL is set");
        }
        eprintln!("\n*** SKIPPED: bench_e2e_one_gateway: {why} ***");
        return;
    };
    let xipsecctl = std::env::var_os("XIPSECCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| xipsecd.with_file_name("xipsecctl"));
    for topology in ["encrypt", "decrypt"] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("out.json");
        run_to_success(
            &format!("{topology}: "),
            &[
                "--topology",
                topology,
                "--io",
                "xdp",
                "--dut",
                "xipsec-manual",
                // Two runs: the second proves that sealed probes continue the SA's sequence
                // numbers (a fresh start would be replays, every one dropped by the gateway).
                "--sizes",
                "64,imix",
                "--rate",
                "5kpps",
                "--duration",
                "1s",
                "--quiet",
                "--json",
                json.to_str().unwrap(),
                "--xipsecd",
                xipsecd.to_str().unwrap(),
                "--xipsecctl",
                xipsecctl.to_str().unwrap(),
            ],
        );
        let report = read_json(&json);
        check_complete(&report, 2);
        assert_eq!(report["topology"], topology);
        for run in report["runs"].as_array().unwrap() {
            assert_eq!(
                run["encapsulation"],
                serde_json::json!({"esp_tunnel": {"udp": false}}),
                "{run}"
            );
            // What arrived was decrypted with the other side's key (the sink's, or xipsecd's);
            // the sink drops nothing it could not open.
            assert_eq!(run["esp_dropped"], 0, "{topology}: {run}");
            assert!(run["dut_cpu_s"].as_f64().unwrap() > 0.0, "{run}");
        }
    }
}

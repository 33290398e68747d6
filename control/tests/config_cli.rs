//! `xipsecd -n -f FILE`: the built binary on the good example and on every broken fixture.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

fn xipsecd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xipsecd"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run xipsecd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn broken_fixtures_exit_1_with_the_expected_lines() {
    let dir = fixtures().join("bad");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = fs::read_to_string(path.with_extension("expected")).unwrap();
        let out = xipsecd(&dir, &["-n", "-f", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = text(&out.stderr);
        let got: Vec<&str> = stderr.lines().collect();
        let want: Vec<&str> = expected.lines().collect();
        assert_eq!(got, want, "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn good_example_is_ok_with_macros() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["-n".to_string(), "-f".into(), "good/full.toml".into()];
    for (name, content) in [
        ("psk_file", "a psk"),
        ("key_file", include_str!("certs/config/gw-a.key")),
        (
            "sa_key_file",
            "hex:101112131415161718191a1b1c1d1e1f20212223",
        ),
    ] {
        let p = tmp.path().join(name);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        args.push("-D".into());
        args.push(format!("{name}={}", p.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = xipsecd(&fixtures(), &args);
    assert_eq!(text(&out.stderr), "configuration OK\n");
    assert_eq!(out.status.code(), Some(0));

    // The same without the macros: each undefined one is named, exit 1.
    let out = xipsecd(&fixtures(), &["-n", "-f", "good/full.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "good/full.toml:21:15: undefined macro '${psk_file}' (define it with -D psk_file=value)",
            "good/full.toml:51:10: undefined macro '${key_file}' (define it with -D key_file=value)",
            "good/full.toml:87:13: undefined macro '${sa_key_file}' (define it with -D sa_key_file=value)",
        ]
    );
}

#[test]
fn world_readable_psk_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let psk = tmp.path().join("site.psk");
    fs::write(&psk, "sekrit-psk\n").unwrap();
    fs::set_permissions(&psk, fs::Permissions::from_mode(0o644)).unwrap();
    let conf = tmp.path().join("x.toml");
    fs::write(
        &conf,
        "[[connection]]\nname = \"a\"\nremote_addrs = [\"%any\"]\n[connection.local]\nauth = \"psk\"\n\
         psk = \"file:site.psk\"\n[connection.remote]\nauth = \"psk\"\n",
    )
    .unwrap();
    let out = xipsecd(tmp.path(), &["-n", "-f", "x.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "x.toml:6:7: connection[0].local.psk: site.psk: secret file is world-readable (mode 0644); chmod o-r it\n"
    );
    fs::set_permissions(&psk, fs::Permissions::from_mode(0o600)).unwrap();
    let out = xipsecd(tmp.path(), &["-n", "-f", "x.toml"]);
    assert_eq!(text(&out.stderr), "configuration OK\n");
    assert_eq!(out.status.code(), Some(0));
    // Without -n the daemon starts, and finds nothing to listen on: exit 1, the file named.
    let socket = tmp.path().join("ctl.sock");
    let out = xipsecd(
        tmp.path(),
        &["-f", "x.toml", "-d", "-s", socket.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("x.toml: no address to receive IKE on"),
        "{stderr}"
    );
    assert!(!tmp.path().join("ctl.sa-table").exists());
}

#[test]
fn flags() {
    let dir = fixtures();
    let help = xipsecd(&dir, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for flag in [
        "-d",
        "-f <FILE>",
        "-n",
        "-D <macro=value>",
        "-p <PORT>",
        "-S",
        "-s <SOCKET>",
        "-T",
        "-t",
        "-v",
        "-V",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("/etc/xipsec/xipsec.toml"));
    assert!(help.contains("Exit status: 0 configuration OK"));

    let v = xipsecd(&dir, &["-V"]);
    assert_eq!(v.status.code(), Some(0));
    assert!(text(&v.stdout).starts_with("xipsecd "));

    for bad in [
        &["-D", "novalue"][..],
        &["-T", "-t"],
        &["-p", "0"],
        &["-p", "70000"],
        &["-x"],
    ] {
        let out = xipsecd(&dir, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }

    let out = xipsecd(&dir, &["-n", "-f", "/nonexistent/xipsec.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "/nonexistent/xipsec.toml: cannot read the configuration file: No such file or directory (os error 2)\n"
    );
}

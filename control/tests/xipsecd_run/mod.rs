//! Runs the real `xipsecd` binary inside a test's network namespace: writes its configuration
//! into a directory of its own, keeps its log, waits for log lines, and stops it with SIGTERM
//! (SIGKILL if it does not go) when dropped.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use xipsec_testkit::netns::Netns;

/// One running `xipsecd`.
#[derive(Debug)]
pub struct Xipsecd {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
}

impl Xipsecd {
    /// Writes `config` to `<dir>/xipsec.toml` and starts `xipsecd -d -v` in `netns` with its
    /// control socket (and SA table) in `dir`; `extra` are more flags.
    pub fn start(netns: &Netns, dir: &Path, config: &str, extra: &[&str]) -> Xipsecd {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("xipsec.toml");
        std::fs::write(&conf, config).unwrap();
        let log = dir.join("xipsecd.log");
        let out = File::create(&log).unwrap();
        let socket = dir.join("xipsecd.sock");
        let child = Command::new("ip")
            .args(["netns", "exec", netns.name()])
            .arg(env!("CARGO_BIN_EXE_xipsecd"))
            .arg("-d")
            .arg("-v")
            .arg("-f")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting xipsecd");
        Xipsecd {
            child: Some(child),
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("xipsecd.sock")
    }

    /// Runs `xipsecctl -s <its socket> ARGS` (from the host: the socket is a file).
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_xipsecctl"))
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("running xipsecctl")
    }

    /// `xipsecctl --json ARGS`, parsed; panics with stderr when it fails.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "xipsecctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from xipsecctl")
    }

    /// Everything it logged so far (ANSI colours removed).
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        strip_ansi(&raw)
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `n` log lines contain `needle`; panics with the log on timeout.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(needle) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "xipsecd did not log {n} × '{needle}' within {timeout:?}; its log:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills it at once (a crash: no Deletes sent).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGHUP to reload, say).
    pub fn signal(&self, sig: i32) {
        if let Some(child) = &self.child {
            signal(child, sig);
        }
    }
}

impl Drop for Xipsecd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- xipsecd log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.stop();
    }
}

fn signal(child: &Child, sig: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

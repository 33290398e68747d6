//! Debian's strongSwan charon as a test peer: one instance per network namespace, configured
//! with one connection ([`CharonConfig`]), driven with `swanctl` over its own vici socket,
//! logging to its own file, and killed with everything it started when its guard drops.
//!
//! How it runs (see /work/shared/notes/strongswan-peer.md for why):
//! - `STRONGSWAN_CONF` points charon and swanctl at the instance's strongswan.conf,
//!   `SWANCTL_DIR` swanctl at its swanctl/ directory, and `--uri` at its vici socket.
//! - charon writes `/run/charon.pid` whatever it is told, so it starts as
//!   `ip netns exec NS sh -c 'mount --bind DIR/run /run && exec charon'`: the bind mount lives
//!   in the mount namespace `ip netns exec` makes, and the host's /run is untouched.
//! - The kernel here has no ESP, so charon does ESP itself (kernel-libipsec) over a TUN device
//!   `ipsec0`, routes in table 220, always in UDP on port 4500; it installs a Child SA only when
//!   the namespace has an address inside the local traffic selector (put one on `lo`).

mod config;
mod sas;

pub use config::{Auth, CharonConfig, StartAction, PLUGINS};
pub use sas::{parse_list_sas, ChildSa, IkeSa};

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::process::{has_exited, kill_group, run_ok, tool};

/// Where Debian installs charon.
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// The plugin that does ESP in user space; without it charon cannot install a Child SA here.
pub const KERNEL_LIBIPSEC_PLUGIN: &str = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so";

/// How long charon may take to open its vici socket and accept the configuration.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a swanctl command may take; `--initiate` and `--terminate` are told a second
/// less, so that they report their own timeout.
const SWANCTL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long charon gets to send its DELETEs and exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Lines of charon's log shown when a test panics with an instance alive.
const LOG_TAIL_ON_PANIC: usize = 80;

/// A running charon in a network namespace. Dropping it kills charon (SIGTERM, then SIGKILL
/// after two seconds) with its whole process group, and removes its directory — unless
/// `XIPSEC_KEEP_TEST_DIRS` is set. When the drop happens during a panic, the tail of charon's
/// log goes to stderr first.
///
/// Start it on the thread that will drop it (the test's own): the kernel also kills charon when
/// that thread ends (`PR_SET_PDEATHSIG`), so a test runner that dies never leaves one behind.
#[derive(Debug)]
pub struct Charon {
    dir: PathBuf,
    netns: String,
    process: Option<Child>,
    pid: u32,
}

impl Charon {
    /// Starts charon in `netns` with `conf`, in a fresh directory under `parent` (e.g.
    /// `std::env::temp_dir()`; not under /run, which charon's namespace hides): writes
    /// strongswan.conf, swanctl/swanctl.conf and the credentials, starts charon, waits (at most
    /// five seconds) for its vici socket and runs `swanctl --load-all`. On error, whatever was
    /// started is stopped again and the error holds charon's log.
    pub fn start(netns: &Netns, parent: &Path, conf: &CharonConfig) -> Result<Charon, String> {
        check_names(conf)?;
        let dir = fresh_dir(parent, netns.name())?;
        if dir.starts_with("/run") || dir.starts_with("/var/run") {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "{}: charon's directory must not be under /run, which its namespace replaces",
                dir.display()
            ));
        }
        // From here the guard owns the directory: every error path below removes it.
        let mut charon = Charon {
            dir,
            netns: netns.name().to_owned(),
            process: None,
            pid: 0,
        };
        charon.write_files(conf)?;
        charon.spawn()?;
        charon.wait_for_socket()?;
        charon
            .load_all()
            .map_err(|e| format!("{e}\ncharon's log:\n{}", charon.log()))?;
        Ok(charon)
    }

    /// The instance's directory: strongswan.conf, swanctl/, charon.log, charon.vici.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// charon's process id (as the host sees it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Whether charon is still running (false once it has exited, e.g. crashed).
    pub fn is_running(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|child| !has_exited(child))
    }

    /// Its log so far (the filelog; empty if there is none yet).
    pub fn log(&self) -> String {
        std::fs::read(self.dir.join("charon.log"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Runs `swanctl ARGS… --uri <this instance>` (at most ten seconds) and returns its stdout;
    /// a non-zero exit is an error holding what it printed. `args` starts with the command:
    /// `["--list-conns"]`, `["--stats"]`.
    pub fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        run_ok(
            Command::new(tool("swanctl"))
                .args(args)
                .args(["--uri", &uri])
                .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
                .env("SWANCTL_DIR", self.dir.join("swanctl")),
            SWANCTL_TIMEOUT,
        )
    }

    /// `swanctl --load-all --noprompt`: (re)loads swanctl.conf and the credentials.
    pub fn load_all(&self) -> Result<String, String> {
        self.swanctl(&["--load-all", "--noprompt"])
    }

    /// `swanctl --initiate --child CHILD`: brings the Child SA (and its IKE SA) up and returns
    /// when it is up — or an error when it failed or took more than nine seconds.
    pub fn initiate(&self, child: &str) -> Result<String, String> {
        self.swanctl(&["--initiate", "--child", child, "--timeout", &wait_secs()])
    }

    /// `swanctl --terminate --ike NAME`: deletes the IKE SAs of connection NAME (sending
    /// DELETE) and returns when they are gone.
    pub fn terminate_ike(&self, name: &str) -> Result<String, String> {
        self.swanctl(&["--terminate", "--ike", name, "--timeout", &wait_secs()])
    }

    /// `swanctl --terminate --child NAME`: deletes the Child SAs named NAME.
    pub fn terminate_child(&self, name: &str) -> Result<String, String> {
        self.swanctl(&["--terminate", "--child", name, "--timeout", &wait_secs()])
    }

    /// `swanctl --rekey --child NAME`: starts rekeying the Child SA and returns at once; wait
    /// for the new SPIs with [`wait_sas`](Charon::wait_sas).
    pub fn rekey_child(&self, name: &str) -> Result<String, String> {
        self.swanctl(&["--rekey", "--child", name])
    }

    /// `swanctl --rekey --ike NAME`: starts rekeying the IKE SA and returns at once; wait for
    /// the new IKE SPIs with [`wait_sas`](Charon::wait_sas).
    pub fn rekey_ike(&self, name: &str) -> Result<String, String> {
        self.swanctl(&["--rekey", "--ike", name])
    }

    /// `swanctl --list-sas`, as swanctl prints it for people.
    pub fn list_sas(&self) -> Result<String, String> {
        self.swanctl(&["--list-sas"])
    }

    /// The IKE SAs and their Child SAs, parsed from `swanctl --list-sas --pretty`.
    pub fn sas(&self) -> Result<Vec<IkeSa>, String> {
        parse_list_sas(&self.swanctl(&["--list-sas", "--pretty"])?)
    }

    /// Polls [`sas`](Charon::sas) until `done` accepts them, for at most `timeout`; returns
    /// the accepted list. The error holds the last list and the tail of charon's log.
    pub fn wait_sas(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[IkeSa]) -> bool,
    ) -> Result<Vec<IkeSa>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let sas = self.sas()?;
            if done(&sas) {
                return Ok(sas);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "charon in {}: not there within {timeout:?}; its SAs:\n{}\ncharon's log:\n{}",
                    self.netns,
                    self.list_sas().unwrap_or_else(|e| e),
                    tail(&self.log(), LOG_TAIL_ON_PANIC)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `timeout`) until an IKE SA of connection `ike` is ESTABLISHED with a
    /// Child SA `child` INSTALLED, and returns that IKE SA.
    pub fn wait_established(
        &self,
        ike: &str,
        child: &str,
        timeout: Duration,
    ) -> Result<IkeSa, String> {
        let sas = self.wait_sas(timeout, |sas| {
            sas.iter()
                .any(|sa| sa.name == ike && sa.installed_child(child).is_some())
        })?;
        sas.into_iter()
            .find(|sa| sa.name == ike && sa.installed_child(child).is_some())
            .ok_or_else(|| "the SA went away between two looks".to_owned())
    }

    fn write_files(&self, conf: &CharonConfig) -> Result<(), String> {
        // Every directory swanctl --load-all looks in, so that it has nothing to complain of.
        let swanctl = [
            "x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private",
            "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12",
        ];
        let subdirs = ["run", "swanctl"]
            .into_iter()
            .map(PathBuf::from)
            .chain(swanctl.iter().map(|sub| Path::new("swanctl").join(sub)));
        for sub in subdirs {
            let path = self.dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
        }
        let write = |name: &str, text: String| {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
        };
        write("strongswan.conf", config::strongswan_conf(conf, &self.dir))?;
        write("swanctl/swanctl.conf", config::swanctl_conf(conf))?;
        for (source, sub, name) in config::credential_files(&conf.auth) {
            let target = self.dir.join("swanctl").join(sub).join(name);
            std::fs::copy(source, &target).map_err(|e| {
                format!("copying {} to {}: {e}", source.display(), target.display())
            })?;
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let output = self.dir.join("charon.out");
        let stdout =
            File::create(&output).map_err(|e| format!("creating {}: {e}", output.display()))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| format!("duplicating {}: {e}", output.display()))?;
        let mut command = Command::new(tool("ip"));
        command
            .args(["netns", "exec", &self.netns, "/bin/sh", "-c"])
            .arg(r#"mount --bind "$1" /run && exec "$2""#)
            .arg("charon")
            .arg(self.dir.join("run"))
            .arg(CHARON)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own group: the drop kills charon and anything it starts in one go.
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and makes one system
        // call, prctl(2), which is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                // The death signal survives the execs (ip, sh and charon are not set-uid).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting charon in {}: {e}", self.netns))?;
        self.pid = child.id();
        self.process = Some(child);
        Ok(())
    }

    fn wait_for_socket(&mut self) -> Result<(), String> {
        let socket = self.dir.join("charon.vici");
        let deadline = Instant::now() + START_TIMEOUT;
        while !socket.exists() {
            if !self.is_running() {
                return Err(format!(
                    "charon in {} exited at start; it printed:\n{}\nits log:\n{}",
                    self.netns,
                    std::fs::read_to_string(self.dir.join("charon.out")).unwrap_or_default(),
                    self.log()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "charon in {}: no vici socket within {START_TIMEOUT:?}; its log:\n{}",
                    self.netns,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn stop(&mut self) {
        let Some(mut child) = self.process.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) takes no pointers; -pid is the group charon leads (spawned with
            // process_group(0)) and cannot have been reused: the child is not reaped yet.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && !has_exited(&child) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Also when charon has exited (a zombie still holds its pid and group id): anything
        // left in its group goes now.
        kill_group(&mut child);
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let _ = writeln!(
                io::stderr(),
                "\n--- charon in {} ({}), last lines of its log ---\n{}\n--- end of charon's log ---",
                self.netns,
                self.dir.display(),
                tail(&self.log(), LOG_TAIL_ON_PANIC)
            );
        }
        if std::env::var_os("XIPSEC_KEEP_TEST_DIRS").is_some() {
            let _ = writeln!(io::stderr(), "kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `--timeout` for swanctl commands that wait: a second under our own limit.
fn wait_secs() -> String {
    (SWANCTL_TIMEOUT.as_secs() - 1).to_string()
}

/// `<parent>/charon-<netns>-<n>`, created now, so two instances never share a directory.
fn fresh_dir(parent: &Path, netns: &str) -> Result<PathBuf, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let dir = parent.join(format!(
            "charon-{netns}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {}: {e}", dir.display())),
        }
    }
}

/// Names go into swanctl.conf as section names and keys: keep them to what its parser takes.
fn check_names(conf: &CharonConfig) -> Result<(), String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    let keys = conf
        .conn_options
        .iter()
        .chain(&conf.child_options)
        .chain(&conf.charon_options)
        .map(|(key, _)| key.as_str());
    for name in [conf.name.as_str(), conf.child.as_str()]
        .into_iter()
        .chain(keys)
    {
        if !plain(name) {
            return Err(format!(
                "{name:?}: connection, child and option names must be letters, digits, '-', '_' or '.'"
            ));
        }
    }
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

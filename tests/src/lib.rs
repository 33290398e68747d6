//! The xipsec test kit: what integration tests in `control/` and `dataplane/` share.
//!
//! - [`netns`]: network namespaces with guards, veth links, a packet capture, frame
//!   classification.
//! - [`strongswan`]: Debian's strongSwan charon as a test peer, one per namespace, driven with
//!   `swanctl`.
//! - [`pki`]: a CA and end-entity certificates made with strongSwan's `pki` tool.
//! - [`process`]: running a command with a time limit.
//!
//! Every test that needs root or a system tool starts with [`require`] (or
//! [`netns::can_run`]): when something is missing it prints a loud `*** SKIPPED ***` line and
//! returns false, unless `XIPSEC_REQUIRE_ALL` is set, in which case it panics.

pub mod netns;
pub mod pki;
pub mod process;
pub mod strongswan;

use std::io::{self, Write};
use std::path::Path;

/// Something a system test needs from the machine it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: namespaces, veths, bind mounts.
    Root,
    /// iproute2's `ip`.
    Ip,
    /// `/dev/net/tun` (the portable backend, and charon's kernel-libipsec).
    Tun,
    /// strongSwan's IKE daemon, `/usr/lib/ipsec/charon`, with the kernel-libipsec plugin.
    Charon,
    /// `swanctl`, charon's control tool.
    Swanctl,
    /// strongSwan's `pki` tool.
    Pki,
    /// `ping` (iputils-ping).
    Ping,
    /// `iperf3`.
    Iperf3,
    /// `nft` (nftables).
    Nft,
    /// `tcpdump`.
    Tcpdump,
    /// `ethtool`.
    Ethtool,
    /// `rsvg-convert` (librsvg2-bin): xipsec-bench's PNG plots.
    RsvgConvert,
}

impl Need {
    /// What a test with charon peers in namespaces needs.
    pub const STRONGSWAN: &'static [Need] =
        &[Need::Root, Need::Ip, Need::Tun, Need::Charon, Need::Swanctl];

    /// Whether this machine has it.
    pub fn present(self) -> bool {
        match self {
            // SAFETY: geteuid takes no arguments and cannot fail.
            Need::Root => (unsafe { libc::geteuid() }) == 0,
            Need::Ip => process::find_tool("ip").is_some(),
            Need::Tun => Path::new("/dev/net/tun").exists(),
            Need::Charon => {
                Path::new(strongswan::CHARON).exists()
                    && Path::new(strongswan::KERNEL_LIBIPSEC_PLUGIN).exists()
            }
            Need::Swanctl => process::find_tool("swanctl").is_some(),
            Need::Pki => process::find_tool("pki").is_some(),
            Need::Ping => process::find_tool("ping").is_some(),
            Need::Iperf3 => process::find_tool("iperf3").is_some(),
            Need::Nft => process::find_tool("nft").is_some(),
            Need::Tcpdump => process::find_tool("tcpdump").is_some(),
            Need::Ethtool => process::find_tool("ethtool").is_some(),
            Need::RsvgConvert => process::find_tool("rsvg-convert").is_some(),
        }
    }

    /// What a skipped test prints for it.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Root => "needs root",
            Need::Ip => "needs iproute2 (`ip`)",
            Need::Tun => "needs /dev/net/tun",
            Need::Charon => {
                "needs strongSwan's charon with kernel-libipsec (tools/setup installs it)"
            }
            Need::Swanctl => "needs swanctl (strongswan-swanctl; tools/setup installs it)",
            Need::Pki => "needs strongSwan's pki (strongswan-pki; tools/setup installs it)",
            Need::Ping => "needs ping (iputils-ping; tools/setup installs it)",
            Need::Iperf3 => "needs iperf3 (tools/setup installs it)",
            Need::Nft => "needs nft (nftables; tools/setup installs it)",
            Need::Tcpdump => "needs tcpdump (tools/setup installs it)",
            Need::Ethtool => "needs ethtool (tools/setup installs it)",
            Need::RsvgConvert => "needs rsvg-convert (librsvg2-bin; tools/setup installs it)",
        }
    }
}

/// Whether `test` can run here: true when every one of `needs` is present. Otherwise it prints
/// `*** SKIPPED: <test>: <what is missing> ***` to stderr and returns false, so the test
/// returns early — unless `XIPSEC_REQUIRE_ALL` is set, then it panics (CI must not skip).
///
/// ```no_run
/// use xipsec_testkit::{require, Need};
/// if !require("psk_tunnel", &[Need::STRONGSWAN, &[Need::Ping]].concat()) {
///     return;
/// }
/// ```
pub fn require(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|need| !need.present())
        .map(|need| need.describe())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
        panic!("{test}: {missing}, and XIPSEC_REQUIRE_ALL is set");
    }
    // Straight to fd 2: the test harness captures eprintln! of passing tests.
    let _ = writeln!(io::stderr(), "\n*** SKIPPED: {test}: {missing} ***");
    false
}

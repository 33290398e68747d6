//! The configuration file: one TOML file, read into typed values and validated.
//!
//! The reference of every key is `docs/config.md`. [`Config::load`] reads a file,
//! substitutes `${macro}`s (`xipsecd -D macro=value`), parses the TOML keeping the span of every
//! key and value, and validates everything it can without touching the network. It collects
//! *every* error rather than stopping at the first; each [`Diagnostic`] names the file, line,
//! column and key path, e.g.
//!
//! ```text
//! site-b.conf:14:13: connection[0].child[0].local_ts: '10.1.0.0/33' is not a prefix
//! ```
//!
//! Secrets (PSKs, manual SA keys) are held in [`Secret`], zeroized on drop, printed as
//! `<redacted>`, and never quoted in an error.
//!
//! Certificates must parse, keys must load and match their certificate, and a local `id`
//! must be in our certificate (`certs.rs`, which also loads them for the daemon).

mod diag;
mod identity;
mod macros;
mod proposal;
mod secret;
mod walk;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diag::{Diagnostic, Errors};
pub use identity::{Identity, Rdn};
pub use ipnet::IpNet;
pub use proposal::{DhGroup, Encryption, Esn, EspCipher, EspProposal, IkeProposal, Integrity, Prf};
pub use secret::Secret;
pub use walk::certs::{ike_identity, load_local_auth, load_peer_auth};

/// `-D name=value` definitions for `${name}` in the file.
pub type Macros = BTreeMap<String, String>;

/// The default configuration file of `xipsecd`.
pub const DEFAULT_PATH: &str = "/etc/xipsec/xipsec.toml";

/// The whole file, validated.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: Daemon,
    /// `[[connection]]`, in file order.
    pub connections: Vec<Connection>,
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[[manual_sa]]`, in file order.
    pub manual_sas: Vec<ManualSa>,
}

impl Config {
    /// Reads, substitutes macros into, parses and validates the file at `path`. Relative paths
    /// inside the file (PSK, key and certificate files) are relative to the file's directory.
    pub fn load(path: &Path, macros: &Macros) -> Result<Config, Errors> {
        let name = path.display().to_string();
        // The file may hold inline secrets: zero our copy when done.
        let text = match std::fs::read_to_string(path) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) => {
                return Err(Errors(vec![Diagnostic {
                    file: name,
                    position: None,
                    path: String::new(),
                    message: format!("cannot read the configuration file: {e}"),
                }]))
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &name, dir, macros)
    }

    /// Parses and validates `text`; `file_name` is what errors call the file, `base_dir` what
    /// relative paths are relative to.
    pub fn parse(
        text: &str,
        file_name: &str,
        base_dir: &Path,
        macros: &Macros,
    ) -> Result<Config, Errors> {
        walk::parse(text, file_name, base_dir, macros)
    }
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// Addresses to receive IKE on (port 500 and the NAT-T port); empty = every address.
    pub listen: Vec<IpAddr>,
    /// The wait before the first retransmission of a request (strongSwan's
    /// `retransmit_timeout`); each later one waits 1.8 times longer.
    pub retransmit_timeout: Duration,
    /// Retransmissions before the peer is given up (and, once established, declared dead).
    pub retransmit_tries: u32,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            listen: Vec::new(),
            retransmit_timeout: Duration::from_secs(4),
            retransmit_tries: 5,
        }
    }
}

/// An entry of `local_addrs` / `remote_addrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// `%any`: any address (a responder accepting any peer, or any local address).
    Any,
    /// One address.
    Ip(IpAddr),
}

/// `key_renewal`: how an IKE SA is renewed when `rekey_time` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyRenewal {
    /// CREATE_CHILD_SA rekey of the IKE SA (RFC 7296 §2.18).
    #[default]
    Rekey,
    /// A new IKE SA with a full authentication, then the old one is deleted.
    Reauth,
}

/// `unique_ids`: what to do when a peer identity that already has an IKE SA authenticates again
/// (strongSwan's `unique` / TNSR's unique-id policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UniqueIds {
    /// Keep the old IKE SA and reject the new one.
    Keep,
    /// Never enforce uniqueness, and ignore INITIAL_CONTACT.
    Never,
    /// Do not enforce uniqueness, but honour INITIAL_CONTACT.
    No,
    /// Replace the old IKE SA with the new one.
    #[default]
    Replace,
}

/// One `[[connection]]`.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `name`, unique in the file.
    pub name: String,
    /// `local_addrs` (default `["%any"]`).
    pub local_addrs: Vec<Addr>,
    /// `remote_addrs`.
    pub remote_addrs: Vec<Addr>,
    /// `ike_proposals`, most preferred first.
    pub ike_proposals: Vec<IkeProposal>,
    /// `dpd_interval`; zero = off.
    pub dpd_interval: Duration,
    /// `rekey_time` of the IKE SA.
    pub rekey_time: Duration,
    /// `key_renewal`.
    pub key_renewal: KeyRenewal,
    /// `mobike` (RFC 4555).
    pub mobike: bool,
    /// `encap`: force UDP encapsulation even without a NAT.
    pub encap: bool,
    /// `unique_ids`.
    pub unique_ids: UniqueIds,
    /// `[connection.local]`.
    pub local: End,
    /// `[connection.remote]`.
    pub remote: End,
    /// `[[connection.child]]`.
    pub children: Vec<Child>,
}

/// `auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Pre-shared key (RFC 7296 §2.15).
    Psk,
    /// Certificates / public keys.
    Pubkey,
}

/// `[connection.local]` or `[connection.remote]`.
#[derive(Clone, Debug)]
pub struct End {
    /// `auth`.
    pub auth: AuthMethod,
    /// `id`; `None` on the local side = the address in use, on the remote side = any identity
    /// that authenticates.
    pub id: Option<Identity>,
    /// `psk`, read from its file if it was given as `file:`.
    pub psk: Option<Secret>,
    /// `cert` (local, pubkey): our certificate (PEM).
    pub cert: Option<PathBuf>,
    /// `key` (local, pubkey): our private key (PEM).
    pub key: Option<PathBuf>,
    /// `cacerts` (remote, pubkey): the CAs the peer's certificate must chain to.
    pub cacerts: Vec<PathBuf>,
}

/// `mode` of a Child SA or manual SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Tunnel mode.
    #[default]
    Tunnel,
    /// Transport mode.
    Transport,
}

/// `start_action` of a Child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAction {
    /// Initiate when the daemon starts.
    Start,
    /// Install a trap policy; initiate on the first matching packet.
    Trap,
    /// Wait for the peer, or for `xipsecctl initiate`.
    #[default]
    None,
}

/// One `[[connection.child]]`.
#[derive(Clone, Debug)]
pub struct Child {
    /// `name`, unique within its connection.
    pub name: String,
    /// `local_ts`; empty in transport mode = our IKE address.
    pub local_ts: Vec<IpNet>,
    /// `remote_ts`; empty in transport mode = the peer's IKE address.
    pub remote_ts: Vec<IpNet>,
    /// `esp_proposals`, most preferred first.
    pub esp_proposals: Vec<EspProposal>,
    /// `mode`.
    pub mode: Mode,
    /// `start_action`.
    pub start_action: StartAction,
    /// `rekey_time`.
    pub rekey_time: Duration,
    /// `replay_window` in packets; 0 = no replay protection.
    pub replay_window: u32,
    /// `per_cpu_sas`: per-resource Child SAs (RFC 9611) beside the first one; 0 = off.
    pub per_cpu_sas: u32,
    /// Volume lifetimes each SA of the Child SA counts in the data plane: `rekey_bytes` and
    /// `rekey_packets` start a rekey, `life_bytes` and `life_packets` stop the SA.
    pub volume: VolumeLifetimes,
}

/// Byte and packet lifetimes of a Child SA's SAs (RFC 4301 §4.4.2.1), as strongSwan names
/// them; 0 = none. The life values default to a tenth past the rekey values, as strongSwan's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeLifetimes {
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
}

/// `backend` of the data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// AF_XDP where the interfaces allow it, otherwise portable.
    #[default]
    Auto,
    /// AF_XDP sockets and the XDP classifier; fail if unavailable.
    Afxdp,
    /// TUN and UDP/raw sockets.
    Portable,
}

/// `[dataplane]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataplane {
    /// `interfaces`.
    pub interfaces: Vec<String>,
    /// `backend`.
    pub backend: Backend,
    /// `workers`; `None` = one per core.
    pub workers: Option<u32>,
    /// `sa_capacity`: slots in the SA table (two per Child SA); `None` = the default.
    pub sa_capacity: Option<u32>,
}

/// `direction` of a manual SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We encrypt with it.
    Out,
    /// We decrypt with it.
    In,
}

/// `encap = { sport, dport }` of a manual SA: ESP in UDP (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// One `[[manual_sa]]`: a static SA, no IKE.
#[derive(Clone, Debug)]
pub struct ManualSa {
    /// `name`, unique among manual SAs.
    pub name: String,
    /// `direction`.
    pub direction: Direction,
    /// `spi` (256..=2^32-1).
    pub spi: u32,
    /// `cipher`.
    pub cipher: EspCipher,
    /// `key`: key then salt, [`EspCipher::keymat_len`] bytes.
    pub key: Secret,
    /// `mode`.
    pub mode: Mode,
    /// `local`: our outer address.
    pub local: IpAddr,
    /// `remote`: the peer's outer address.
    pub remote: IpAddr,
    /// `local_ts` (transport mode default: `local` as a host prefix).
    pub local_ts: Vec<IpNet>,
    /// `remote_ts` (transport mode default: `remote` as a host prefix).
    pub remote_ts: Vec<IpNet>,
    /// `encap`; `None` = plain ESP.
    pub encap: Option<UdpEncap>,
    /// `esn`: 64-bit extended sequence numbers.
    pub esn: bool,
    /// `replay_window` (inbound); 0 = off.
    pub replay_window: u32,
}

//! What the daemon reports: its status, connections, SAs and counters. Field by field these are
//! the JSON documents of `xipsecctl --json` (`docs/xipsecctl.md`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::hex::{u32_hex, u64_hex};

/// The answer to `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The configuration file in use.
    pub config_file: String,
    /// Configured connections.
    pub connections: u64,
    /// IKE SAs, in any state.
    pub ike_sas: u64,
    /// Child SAs, in any state.
    pub child_sas: u64,
    /// The data-plane backend in use: `afxdp` or `portable`.
    pub backend: String,
    /// The `xipsec-dataplane` process forwarding for it (AF_XDP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_pid: Option<u32>,
}

/// How a side authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// Pre-shared key.
    Psk,
    /// Certificates / public keys.
    Pubkey,
}

/// Tunnel or transport mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Tunnel mode.
    Tunnel,
    /// Transport mode.
    Transport,
}

/// A child's `start_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAction {
    /// Initiated when the daemon starts.
    Start,
    /// Initiated on the first matching packet.
    Trap,
    /// Waits for the peer or `xipsecctl initiate`.
    None,
}

/// One configured connection (`[[connection]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `name`.
    pub name: String,
    /// `local_addrs`: addresses, or `%any`.
    pub local_addrs: Vec<String>,
    /// `remote_addrs`: addresses, or `%any`.
    pub remote_addrs: Vec<String>,
    /// `local.auth`.
    pub local_auth: Auth,
    /// `remote.auth`.
    pub remote_auth: Auth,
    /// `local.id`; `None`: the IKE address in use.
    pub local_id: Option<String>,
    /// `remote.id`; `None`: any identity that authenticates.
    pub remote_id: Option<String>,
    /// `ike_proposals` in the configuration's syntax, most preferred first.
    pub ike_proposals: Vec<String>,
    /// `rekey_time` of the IKE SA, seconds.
    pub rekey_time_secs: u64,
    /// `key_renewal = "reauth"`: renewed by a new IKE SA instead of a rekey.
    pub reauth: bool,
    /// `dpd_interval`, seconds; 0: off.
    pub dpd_interval_secs: u64,
    /// `mobike`.
    pub mobike: bool,
    /// `encap`: UDP encapsulation forced.
    pub encap: bool,
    /// `[[connection.child]]`.
    pub children: Vec<ConnChildInfo>,
}

/// One configured child (`[[connection.child]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnChildInfo {
    /// `name`.
    pub name: String,
    /// `mode`.
    pub mode: Mode,
    /// `local_ts` as prefixes; empty in transport mode: our IKE address.
    pub local_ts: Vec<String>,
    /// `remote_ts`; empty in transport mode: the peer's IKE address.
    pub remote_ts: Vec<String>,
    /// `esp_proposals` in the configuration's syntax.
    pub esp_proposals: Vec<String>,
    /// `start_action`.
    pub start_action: StartAction,
    /// `rekey_time`, seconds.
    pub rekey_time_secs: u64,
}

/// Where an IKE SA is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IkeSaState {
    /// IKE_SA_INIT / IKE_AUTH under way.
    Connecting,
    /// Authenticated.
    Established,
    /// A CREATE_CHILD_SA rekey of it (or a reauthentication) is under way.
    Rekeying,
    /// Being deleted (by either side, or replaced by its rekeyed successor).
    Deleting,
}

/// Our role in an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// We sent the IKE_SA_INIT request.
    Initiator,
    /// The peer did.
    Responder,
}

/// Where a Child SA is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildSaState {
    /// Both ESP SAs are in the data plane.
    Installed,
    /// A rekey of it is under way.
    Rekeying,
    /// Replaced by its successor, kept until the old pair is deleted (make-before-break).
    Rekeyed,
    /// Being deleted.
    Deleting,
}

/// One IKE SA, as `xipsecctl list-sas` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaInfo {
    /// Daemon-unique id ("IKE-SA-ID"), never reused while the daemon runs; `xipsecctl
    /// terminate '#id'` takes it.
    pub id: u64,
    /// The connection it belongs to.
    pub connection: String,
    /// Its state.
    pub state: IkeSaState,
    /// Our role.
    pub role: Role,
    /// Our IKE address and port.
    pub local_addr: SocketAddr,
    /// The peer's IKE address and port, as we see them (after any NAT).
    pub remote_addr: SocketAddr,
    /// Our identity, e.g. `gw-a.example.net`.
    pub local_id: String,
    /// The peer's identity; empty until it authenticated.
    pub remote_id: String,
    /// The IKE algorithms, strongSwan-style (`AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519`,
    /// see [`crate::ctl::describe::ike_algorithms`]); empty until negotiated.
    pub algorithms: String,
    /// The initiator's SPI (JSON: 16 hex digits).
    #[serde(with = "u64_hex")]
    pub spi_i: u64,
    /// The responder's SPI; 0 until the responder answered (JSON: 16 hex digits).
    #[serde(with = "u64_hex")]
    pub spi_r: u64,
    /// Seconds since it was established; `None` before.
    pub established_secs: Option<u64>,
    /// Seconds until it is rekeyed (or reauthenticated); `None`: not scheduled.
    pub rekey_in_secs: Option<u64>,
    /// NAT detection found that we are behind a NAT.
    pub nat_local: bool,
    /// NAT detection found that the peer is behind a NAT.
    pub nat_remote: bool,
    /// Its Child SAs.
    pub children: Vec<ChildSaInfo>,
}

/// One Child SA (a pair of ESP SAs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaInfo {
    /// The child's name in the connection.
    pub name: String,
    /// Its state.
    pub state: ChildSaState,
    /// Tunnel or transport.
    pub mode: Mode,
    /// The SPI of inbound ESP (we chose it) (JSON: 8 hex digits).
    #[serde(with = "u32_hex")]
    pub spi_in: u32,
    /// The SPI of outbound ESP (the peer chose it) (JSON: 8 hex digits).
    #[serde(with = "u32_hex")]
    pub spi_out: u32,
    /// Our traffic selectors (see [`crate::ctl::describe::traffic_selector`]).
    pub local_ts: Vec<String>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<String>,
    /// The ESP algorithm, strongSwan-style (`AES_GCM_16-128`, see
    /// [`crate::ctl::describe::esp_algorithm`]).
    pub algorithm: String,
    /// Extended sequence numbers.
    pub esn: bool,
    /// ESP is encapsulated in UDP (RFC 3948).
    pub udp_encap: bool,
    /// Bytes received (decrypted) on the inbound SA.
    pub bytes_in: u64,
    /// Bytes sent (encrypted) on the outbound SA.
    pub bytes_out: u64,
    /// Packets received on the inbound SA.
    pub packets_in: u64,
    /// Packets sent on the outbound SA.
    pub packets_out: u64,
    /// Seconds since it was installed.
    pub installed_secs: u64,
    /// Seconds until it is rekeyed; `None`: not scheduled.
    pub rekey_in_secs: Option<u64>,
    /// RFC 9611: the resource (data-plane worker) this per-resource Child SA serves; `None`
    /// for an ordinary or fallback Child SA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<u32>,
}

/// Every counter the daemon keeps.
///
/// Names are dotted paths, lower case: the first part says where (`ike`, `dataplane`), e.g.
/// `ike.datagrams_in`, `ike.dropped.bad_spi`, `dataplane.packets_out`,
/// `dataplane.dropped.replay`. A map, so sorted by name and groups stay together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersInfo {
    /// Name to value.
    pub counters: BTreeMap<String, u64>,
}

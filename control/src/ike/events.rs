//! What an IKE SA tells the daemon: established, Child SA installed (with everything the data
//! plane needs), authentication failed, failed. Keys are [`SecretBytes`]: wiped on drop, and
//! `Debug` shows their length only.

use super::{Error, EspSuite, Identity, Mode};
use crate::crypto::{IkeSuite, Role, SecretBytes};
use crate::wire::{KeMethod, TrafficSelector};

/// An event from [`super::IkeSa::poll_event`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// IKE_AUTH succeeded: both sides are authenticated.
    IkeSaEstablished(IkeSaEstablished),
    /// A Child SA was negotiated: install its two ESP SAs.
    ChildSaInstalled(Box<ChildSaInstalled>),
    /// The IKE SA is up but the Child SA requested with it was refused (no common ESP proposal,
    /// unacceptable traffic selectors) or its answer was invalid.
    ChildSaFailed {
        /// Why.
        error: Error,
    },
    /// Authentication failed; the IKE SA is closed and no Child SA was created.
    AuthenticationFailed(AuthenticationFailed),
    /// The IKE SA failed for another reason (see [`Error::fault`]) and is closed.
    Failed {
        /// Why.
        reason: Error,
    },
    /// A Child SA was rekeyed (CREATE_CHILD_SA with REKEY_SA, §1.3.3, §2.8): install `new`
    /// beside the old pair. The old pair stays until its [`Event::ChildSaDeleted`] (with
    /// [`DeleteReason::Rekeyed`]), which the initiator of the rekey asks for right after
    /// (make-before-break).
    ChildSaRekeyed(Box<ChildSaRekeyed>),
    /// A Child SA is gone: remove its two ESP SAs.
    ChildSaDeleted(ChildSaDeleted),
    /// The established IKE SA is gone (deleted by either side, or the peer is dead); every
    /// Child SA of it got its [`Event::ChildSaDeleted`] first. The SA takes no more input.
    IkeSaDeleted(IkeSaDeleted),
    /// The IKE SA was rekeyed (CREATE_CHILD_SA, §1.3.2, §2.18): take its successor with
    /// [`super::IkeSa::poll_rekeyed`] and dispatch the new SPIs to it. The Child SAs moved to
    /// the successor unchanged (no Child SA event); this SA is deleted next (its
    /// [`Event::IkeSaDeleted`] with [`DeleteReason::Rekeyed`]).
    IkeSaRekeyed(IkeSaRekeyed),
    /// Our IKE SA rekey was refused, or the peer's could not be accepted; the IKE SA stays.
    IkeSaRekeyFailed {
        /// Why.
        error: Error,
    },
}

/// An IKE SA was rekeyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaRekeyed {
    /// The old IKE SA initiator's SPI.
    pub old_spi_i: u64,
    /// The old IKE SA responder's SPI.
    pub old_spi_r: u64,
    /// The new IKE SA's initiator SPI (the initiator of the rekey chose it).
    pub new_spi_i: u64,
    /// The new IKE SA's responder SPI.
    pub new_spi_r: u64,
    /// The new IKE SA's ENCR / INTEG / PRF.
    pub suite: IkeSuite,
    /// The key exchange method of the rekey.
    pub ke: KeMethod,
}

/// A Child SA was rekeyed.
#[derive(Debug, PartialEq, Eq)]
pub struct ChildSaRekeyed {
    /// The old pair's inbound SPI.
    pub old_inbound_spi: u32,
    /// The old pair's outbound SPI.
    pub old_outbound_spi: u32,
    /// The new pair.
    pub new: ChildSaInstalled,
}

/// Why a Child SA or the IKE SA was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeleteReason {
    /// We asked for it ([`super::IkeSa::delete_child`], [`super::IkeSa::delete`]).
    Local,
    /// The peer sent a Delete.
    Peer,
    /// A Child SA replaced by its rekeyed successor, or an IKE SA by its successor.
    Rekeyed,
    /// A Child SA created by the losing one of two simultaneous rekeys of the same Child SA
    /// (the exchange with the lowest nonce, §2.8.1): a duplicate of the surviving successor.
    Redundant,
    /// A Child SA whose IKE SA is gone.
    IkeSaGone,
    /// The peer stopped answering: a request (a liveness check, say) got no response after
    /// this many transmissions (§2.4).
    DeadPeer {
        /// How many times the last request was sent.
        transmissions: u32,
    },
}

/// A Child SA was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildSaDeleted {
    /// Its inbound SPI.
    pub inbound_spi: u32,
    /// Its outbound SPI.
    pub outbound_spi: u32,
    /// Why.
    pub reason: DeleteReason,
}

/// The IKE SA was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSaDeleted {
    /// The IKE SA initiator's SPI.
    pub spi_i: u64,
    /// The IKE SA responder's SPI.
    pub spi_r: u64,
    /// Why.
    pub reason: DeleteReason,
}

/// An IKE SA is established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaEstablished {
    /// Our role in this IKE SA.
    pub role: Role,
    /// The IKE SA initiator's SPI.
    pub spi_i: u64,
    /// The IKE SA responder's SPI.
    pub spi_r: u64,
    /// The negotiated ENCR / INTEG / PRF.
    pub suite: IkeSuite,
    /// The negotiated key exchange method.
    pub ke: KeMethod,
    /// The peer's authenticated identity.
    pub peer_id: Identity,
    /// What NAT detection found (§2.23).
    pub nat: NatStatus,
    /// The peer sent INITIAL_CONTACT (§2.4): it holds no other IKE SA with us, so any we
    /// still hold with its identity are stale (the daemon deletes them).
    pub initial_contact: bool,
}

/// The outcome of NAT detection (RFC 7296 §2.23), computed from the configured addresses and
/// the peer's NAT_DETECTION_* notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatStatus {
    /// The peer sent NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP.
    pub peer_supports: bool,
    /// No NAT_DETECTION_DESTINATION_IP matched our address: we are behind a NAT.
    pub local_behind_nat: bool,
    /// No NAT_DETECTION_SOURCE_IP matched the peer's address: the peer is behind a NAT.
    pub remote_behind_nat: bool,
}

impl NatStatus {
    /// Whether a NAT sits anywhere between us (then UDP encapsulation is needed).
    pub fn detected(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat
    }
}

/// A Child SA pair to install: one inbound and one outbound ESP SA.
///
/// The keying material is `key | salt` per direction, as the data plane's `keymat` takes it
/// (RFC 4106 §8.1, RFC 7634 §2), derived in RFC 7296 §2.17's order.
#[derive(Debug, PartialEq, Eq)]
pub struct ChildSaInstalled {
    /// The SPI the peer puts on packets to us (we chose it).
    pub inbound_spi: u32,
    /// The SPI we put on packets to the peer (the peer chose it).
    pub outbound_spi: u32,
    /// The ESP AEAD.
    pub suite: EspSuite,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Keying material of the inbound SA (`key | salt`).
    pub inbound_keymat: SecretBytes,
    /// Keying material of the outbound SA.
    pub outbound_keymat: SecretBytes,
    /// Our side's traffic selectors, narrowed.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side.
    pub remote_ts: Vec<TrafficSelector>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// The outer addresses, and the UDP ports if ESP goes in UDP (RFC 3948).
    pub path: EspPath,
    /// Which child of the connection it is: 0 is [`super::IkeConfig::child`], then
    /// [`super::IkeConfig::more_children`] (a rekey keeps its predecessor's).
    pub config: usize,
    /// The resource (CPU) this Child SA serves (RFC 9611): `Some(index)` for a per-resource
    /// Child SA of child `config` — as initiator the index the daemon asked for
    /// ([`super::IkeSa::create_child_for_resource`]), as responder the lowest one free in this
    /// IKE SA for that child — and `None` for the fallback and every ordinary Child SA. A
    /// rekey keeps its predecessor's.
    pub resource: Option<u32>,
}

/// Where a Child SA's ESP packets travel: the IKE SA's addresses when it was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspPath {
    /// Our address: the source of outbound ESP.
    pub local: std::net::IpAddr,
    /// The peer's address (after any NAT): the destination of outbound ESP.
    pub remote: std::net::IpAddr,
    /// `Some` when ESP is encapsulated in UDP because a NAT was detected or forced.
    pub udp_encap: Option<NattPorts>,
}

/// The UDP ports of encapsulated ESP (RFC 3948): those of the IKE SA on the NAT-T port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NattPorts {
    /// Ours (the source port of outbound ESP).
    pub local: u16,
    /// The peer's, as seen from here (a NAT may have changed it).
    pub remote: u16,
}

/// Which side found a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// We did (the peer's AUTH or identity is wrong).
    Local,
    /// The peer did and told us (AUTHENTICATION_FAILED).
    Peer,
}

/// Authentication failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticationFailed {
    /// Who found it.
    pub detected_by: Side,
    /// The identity the peer claimed, if we got that far.
    pub peer_id: Option<Identity>,
    /// The error.
    pub error: Error,
}

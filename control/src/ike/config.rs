//! What one IKE SA is configured with: addresses, identities, how each side authenticates (a
//! pre-shared key, certificates, raw public keys), the IKE and ESP proposals, the first Child
//! SA's traffic selectors and mode, and the timers.
//!
//! The daemon builds one [`IkeConfig`] per connection from the TOML file and shares it (behind
//! an `Arc`) between every IKE SA of that connection. [`IkeConfig::validate`] is called by
//! [`super::IkeSa::initiate`] and [`super::IkeSa::respond`]; it only checks what would make the
//! protocol misbehave, not policy.

use core::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::{ConfigError, EspSuite, Identity, LocalAuth, PeerAuth};
use crate::crypto::{Encr, Integ, KeyExchange, Prf, SecretBytes};
use crate::wire::{EsnId, KeMethod, Nonce, TrafficSelector, MAX_PROPOSALS, MAX_TRAFFIC_SELECTORS};

/// The configuration of one IKE SA (and of the Child SA created with it).
#[derive(Clone, Debug)]
pub struct IkeConfig {
    /// Our address and port, as the peer sees them if there is no NAT: the input of
    /// NAT_DETECTION_SOURCE_IP (§2.23) and the source of every [`super::Transmit`].
    pub local_addr: SocketAddr,
    /// The peer's address and port: the destination of every [`super::Transmit`] and the input
    /// of NAT_DETECTION_DESTINATION_IP. A responder's daemon fills it in from the datagram.
    pub remote_addr: SocketAddr,
    /// Our identity, sent in IDi or IDr.
    pub local_id: Identity,
    /// The identity the peer must present; `None` accepts any (authentication still needs the
    /// PSK). An initiator that knows it also sends it as IDr (§3.5).
    pub remote_id: Option<Identity>,
    /// The pre-shared key (§2.15): used by whichever side authenticates with
    /// [`LocalAuth::Psk`] / [`PeerAuth::Psk`] (the default for both).
    pub psk: Psk,
    /// Send INITIAL_CONTACT in IKE_AUTH (§2.4): the daemon sets it when it holds no other
    /// IKE SA with this peer.
    pub initial_contact: bool,
    /// The key the peer authenticates with, when it is not [`IkeConfig::psk`] (asymmetric
    /// PSKs, as strongSwan allows: each side proves a secret of its own).
    pub peer_psk: Option<Psk>,
    /// How we authenticate: the PSK (default) or a signature ([`LocalAuth::Signature`]).
    pub local_auth: LocalAuth,
    /// How the peer must authenticate: the PSK (default), a certificate chaining to trust
    /// anchors, or one of a set of raw public keys. Independent of [`IkeConfig::local_auth`]
    /// (one side may use a certificate, the other a PSK, as strongSwan allows).
    pub peer_auth: PeerAuth,
    /// The wall clock certificates are checked against (validity periods). Injected like the
    /// RNG so that the core reads no clock: the daemon leaves the default,
    /// [`SystemTime::now`]; tests pass a fixed time.
    pub wall_clock: fn() -> SystemTime,
    /// IKE proposals, most preferred first. The initiator's first KE payload uses the first
    /// group of the first proposal.
    pub ike_proposals: Vec<IkeProposal>,
    /// Whose preference order a responder follows when several proposals or transforms would
    /// do.
    pub selection: SelectionOrder,
    /// The Child SA negotiated inside IKE_AUTH (child 0 of the connection).
    pub child: ChildConfig,
    /// The connection's other Child SAs (1, 2, …), created with CREATE_CHILD_SA
    /// ([`super::IkeSa::create_child_from`]); a responder matches the peer's requests against
    /// all of them, in order.
    pub more_children: Vec<ChildConfig>,
    /// Retransmission of our requests (§2.1).
    pub retransmit: RetransmitConfig,
    /// How long a responder keeps a half-open SA (IKE_SA_INIT answered, no IKE_AUTH yet), and
    /// how long a failed SA keeps its last response for retransmitted requests.
    pub half_open_timeout: Duration,
    /// Length of our nonces in octets (§2.10: 16 to 256, at least half the PRF's key size).
    pub nonce_len: usize,
    /// How many INVALID_KE_PAYLOAD answers an initiator follows before giving up.
    pub max_invalid_ke_retries: u8,
    /// How many COOKIE answers (§2.6) an initiator follows before giving up.
    pub max_cookie_retries: u8,
    /// Liveness checks (§2.4): when nothing authentic came from the peer for this long, an
    /// established SA sends an empty INFORMATIONAL request; if its retransmissions give up the
    /// peer is declared dead and the SA deleted. `None` (the default) sends none.
    pub dpd_interval: Option<Duration>,
    /// NAT traversal (RFC 7296 §2.23, RFC 3948).
    pub nat_traversal: NatTraversal,
    /// The NAT-T port both sides move to when a NAT is detected (4500; `xipsecd -p`).
    pub natt_port: u16,
    /// IKE fragmentation (RFC 7383): announce IKEV2_FRAGMENTATION_SUPPORTED and, when the
    /// peer does too, send messages after IKE_SA_INIT (IKE_AUTH, INFORMATIONAL,
    /// CREATE_CHILD_SA) larger than [`IkeConfig::fragment_size`] as fragments. On by
    /// default, as in strongSwan.
    pub fragmentation: bool,
    /// The largest IP datagram an IKE fragment may make, IP and UDP headers included
    /// (strongSwan's `fragment_size`; 1280 by default, safe on any IPv6 path).
    pub fragment_size: usize,
}

/// What an IKE SA does about NATs (§2.23).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NatTraversal {
    /// Send NAT_DETECTION_* and, if either side is behind a NAT, move IKE to the NAT-T port
    /// and encapsulate ESP in UDP (the default).
    #[default]
    Detect,
    /// Pretend to be behind a NAT (a NAT_DETECTION_SOURCE_IP that matches nothing, as
    /// strongSwan's `encap = yes` does), so that ESP is always in UDP (`xipsecd -t`).
    Force,
    /// Send no NAT_DETECTION_* at all and never encapsulate (`xipsecd -T`).
    Off,
}

/// One IKE proposal: every combination of the listed transforms is acceptable. AEAD and
/// non-AEAD ciphers cannot share a proposal (§3.3): use two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms, most preferred first.
    pub encr: Vec<Encr>,
    /// Integrity algorithms: empty for AEAD ciphers, required otherwise.
    pub integ: Vec<Integ>,
    /// PRFs.
    pub prf: Vec<Prf>,
    /// Key exchange methods (Diffie-Hellman groups).
    pub ke: Vec<KeMethod>,
}

/// One ESP proposal for a Child SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// AEAD ciphers, most preferred first.
    pub suites: Vec<EspSuite>,
    /// Extended sequence numbers: [`EsnId::NoEsn`], [`EsnId::Esn`], or both in order of
    /// preference.
    pub esn: Vec<EsnId>,
}

/// Tunnel or transport mode (RFC 4301 §3.2; USE_TRANSPORT_MODE, RFC 7296 §1.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The whole inner packet is protected (the default).
    #[default]
    Tunnel,
    /// Only the payload; needs both sides to agree (USE_TRANSPORT_MODE).
    Transport,
}

/// The first Child SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildConfig {
    /// ESP proposals, most preferred first.
    pub proposals: Vec<EspProposal>,
    /// Our side's traffic: TSi when we initiate, the policy TSr is narrowed to when we respond.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side: TSr when we initiate, the policy TSi is narrowed to when we respond.
    pub remote_ts: Vec<TrafficSelector>,
    /// Transport mode only if both sides ask for it; otherwise tunnel.
    pub mode: Mode,
    /// Perfect forward secrecy for Child SAs created or rekeyed with CREATE_CHILD_SA (§1.3,
    /// §2.17): the key exchange method of the KE payload we send, and the one we require as
    /// responder. `None`: no KE payload sent; a peer's is accepted if the method is supported.
    pub pfs: Option<KeMethod>,
    /// Per-resource Child SAs (RFC 9611): how many Child SAs with this child's selectors,
    /// one per resource (a CPU), we ask for as initiator and accept as responder beside the
    /// first one (the "fallback", used where a resource has none of its own). Non-zero:
    /// SA_RESOURCE_INFO goes with the fallback's request (support) and answers a peer's;
    /// beyond the count a responder answers TS_MAX_QUEUE. 0 (the default): nothing is sent
    /// and a peer's SA_RESOURCE_INFO is an unknown status notification (ignored), its Child
    /// SAs ordinary duplicates (RFC 7296 allows them). At most
    /// [`ChildConfig::MAX_PER_RESOURCE_SAS`].
    pub per_resource_sas: u32,
}

/// Which preference a responder follows (§2.7 lets it pick any acceptable proposal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SelectionOrder {
    /// Our configured order (strongSwan's default).
    #[default]
    Ours,
    /// The initiator's order.
    Peers,
}

/// Retransmission of requests (§2.1): the first retransmission after `initial_timeout`, each
/// later one `factor` times later (capped at `max_timeout`), and after `max_retransmits`
/// retransmissions and one more timeout without an answer the SA fails with
/// [`super::Error::Timeout`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetransmitConfig {
    /// Time from the first transmission to the first retransmission.
    pub initial_timeout: Duration,
    /// Backoff factor (at least 1).
    pub factor: f64,
    /// Longest wait between two transmissions.
    pub max_timeout: Duration,
    /// Retransmissions before giving up.
    pub max_retransmits: u32,
}

impl Default for RetransmitConfig {
    /// strongSwan's defaults, rounded: 4 s, ×1.8, 5 retransmissions (about 165 s in all).
    fn default() -> Self {
        RetransmitConfig {
            initial_timeout: Duration::from_secs(4),
            factor: 1.8,
            max_timeout: Duration::from_secs(60),
            max_retransmits: 5,
        }
    }
}

/// A pre-shared key: wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(SecretBytes);

impl Psk {
    /// Takes the key's octets.
    pub fn new(bytes: Vec<u8>) -> Psk {
        Psk(SecretBytes::new(bytes))
    }

    /// The key itself.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl IkeProposal {
    /// AES-GCM-16-256 / AES-GCM-16-128 / ChaCha20-Poly1305 with PRF HMAC-SHA2-256/384/512 and
    /// the given groups.
    pub fn aead(ke: Vec<KeMethod>) -> IkeProposal {
        IkeProposal {
            encr: vec![
                Encr::AesGcm16_256,
                Encr::AesGcm16_128,
                Encr::Chacha20Poly1305,
            ],
            integ: Vec::new(),
            prf: vec![Prf::HmacSha2_256, Prf::HmacSha2_384, Prf::HmacSha2_512],
            ke,
        }
    }
}

impl EspProposal {
    /// Every ESP AEAD we speak, without ESN first.
    pub fn all() -> EspProposal {
        EspProposal {
            suites: EspSuite::ALL.to_vec(),
            esn: vec![EsnId::NoEsn, EsnId::Esn],
        }
    }
}

impl ChildConfig {
    /// The most per-resource Child SAs one child may have ([`ChildConfig::per_resource_sas`]):
    /// more CPUs than any machine this runs on, and a bound on what one peer can make us keep.
    pub const MAX_PER_RESOURCE_SAS: u32 = 1024;

    /// Every IPv4 address on both sides, every ESP suite, tunnel mode.
    pub fn ipv4_any() -> ChildConfig {
        ChildConfig {
            proposals: vec![EspProposal::all()],
            local_ts: vec![TrafficSelector::ipv4_any()],
            remote_ts: vec![TrafficSelector::ipv4_any()],
            pfs: None,
            mode: Mode::Tunnel,
            per_resource_sas: 0,
        }
    }
}

impl IkeConfig {
    /// A configuration with the defaults: AEAD proposals with groups 31, 19, 20 and 14, every
    /// ESP suite, any IPv4 traffic in tunnel mode, strongSwan-like timers, 32-octet nonces.
    pub fn new(
        local_addr: SocketAddr,
        remote_addr: SocketAddr,
        local_id: Identity,
        psk: Psk,
    ) -> IkeConfig {
        IkeConfig {
            local_addr,
            remote_addr,
            local_id,
            remote_id: None,
            psk,
            peer_psk: None,
            initial_contact: false,
            local_auth: LocalAuth::Psk,
            peer_auth: PeerAuth::Psk,
            wall_clock: SystemTime::now,
            ike_proposals: vec![IkeProposal::aead(vec![
                KeMethod::Curve25519,
                KeMethod::Ecp256,
                KeMethod::Ecp384,
                KeMethod::Modp2048,
            ])],
            selection: SelectionOrder::Ours,
            child: ChildConfig::ipv4_any(),
            more_children: Vec::new(),
            retransmit: RetransmitConfig::default(),
            half_open_timeout: Duration::from_secs(30),
            nonce_len: 32,
            max_invalid_ke_retries: 2,
            max_cookie_retries: 3,
            dpd_interval: None,
            nat_traversal: NatTraversal::Detect,
            natt_port: 4500,
            fragmentation: true,
            fragment_size: 1280,
        }
    }

    /// Child `index` of the connection: 0 is [`IkeConfig::child`], then
    /// [`IkeConfig::more_children`].
    pub fn child_config(&self, index: usize) -> Option<&ChildConfig> {
        match index.checked_sub(1) {
            None => Some(&self.child),
            Some(i) => self.more_children.get(i),
        }
    }

    /// Every child of the connection with its index, in order.
    pub fn child_configs(&self) -> impl Iterator<Item = (usize, &ChildConfig)> {
        std::iter::once(&self.child)
            .chain(self.more_children.iter())
            .enumerate()
    }

    /// Checks what would otherwise make the protocol misbehave: empty or inconsistent
    /// proposals, unimplemented groups, nonce length, timers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason| Err(ConfigError { field, reason });
        if self.ike_proposals.is_empty() || self.ike_proposals.len() > MAX_PROPOSALS {
            return err("ike_proposals", "between 1 and 32 proposals are needed");
        }
        for p in &self.ike_proposals {
            if p.encr.is_empty() || p.prf.is_empty() || p.ke.is_empty() {
                return err("ike_proposals", "every proposal needs encr, prf and ke");
            }
            let aead = p.encr.iter().filter(|e| e.is_aead()).count();
            if aead != 0 && aead != p.encr.len() {
                return err(
                    "ike_proposals",
                    "AEAD and non-AEAD ciphers need separate proposals",
                );
            }
            if aead == 0 && p.integ.is_empty() {
                return err(
                    "ike_proposals",
                    "a non-AEAD cipher needs an integrity algorithm",
                );
            }
            if aead != 0 && !p.integ.is_empty() {
                return err(
                    "ike_proposals",
                    "an AEAD cipher takes no integrity algorithm",
                );
            }
            if !p.ke.iter().all(|&m| KeyExchange::supports(m)) {
                return err("ike_proposals", "a key exchange method is not implemented");
            }
        }
        for (_, child) in self.child_configs() {
            Self::validate_child(child)?;
        }
        self.validate_auth()?;
        if self.fragmentation && !(576..=65_535).contains(&self.fragment_size) {
            return err("fragment_size", "must be between 576 and 65535");
        }
        if self.natt_port == 0 {
            return err("natt_port", "must not be 0");
        }
        if self.dpd_interval.is_some_and(|d| d.is_zero()) {
            return err("dpd_interval", "must be positive");
        }
        if !(Nonce::MIN_LEN..=Nonce::MAX_LEN).contains(&self.nonce_len) {
            return err("nonce_len", "must be between 16 and 256 octets");
        }
        let longest_prf = self
            .ike_proposals
            .iter()
            .flat_map(|p| p.prf.iter())
            .map(|p| p.key_len())
            .max()
            .unwrap_or(0);
        if self.nonce_len.saturating_mul(2) < longest_prf {
            return err(
                "nonce_len",
                "must be at least half the PRF's key size (§2.10)",
            );
        }
        let r = &self.retransmit;
        if r.initial_timeout.is_zero()
            || r.factor.is_nan()
            || r.factor < 1.0
            || !r.factor.is_finite()
        {
            return err(
                "retransmit",
                "the initial timeout must be positive and the factor at least 1",
            );
        }
        Ok(())
    }

    /// Whether either side authenticates with a signature (then IKE_SA_INIT announces
    /// SIGNATURE_HASH_ALGORITHMS, RFC 7427 §4).
    pub fn uses_signatures(&self) -> bool {
        !matches!(self.local_auth, LocalAuth::Psk) || !matches!(self.peer_auth, PeerAuth::Psk)
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let err = |field, reason| Err(ConfigError { field, reason });
        // That `local_id` is in our certificate is not checked here: the peer refuses it
        // anyway, and the configuration loader reports it with the file position.
        match &self.peer_auth {
            PeerAuth::Certificate(a) if a.certificates().is_empty() => {
                err("peer_auth", "no trust anchor (CA certificate) configured")
            }
            PeerAuth::PublicKeys(k) if k.is_empty() => {
                err("peer_auth", "no public key configured for the peer")
            }
            _ => Ok(()),
        }
    }

    fn validate_child(child: &ChildConfig) -> Result<(), ConfigError> {
        let err = |field, reason| Err(ConfigError { field, reason });
        if child.proposals.is_empty() || child.proposals.len() > MAX_PROPOSALS {
            return err("child.proposals", "between 1 and 32 proposals are needed");
        }
        for p in &child.proposals {
            if p.suites.is_empty() || p.esn.is_empty() {
                return err(
                    "child.proposals",
                    "every proposal needs a suite and an ESN choice",
                );
            }
            if !p.esn.iter().all(|e| matches!(e, EsnId::NoEsn | EsnId::Esn)) {
                return err("child.proposals", "ESN must be NoEsn or Esn");
            }
        }
        for (field, ts) in [
            ("child.local_ts", &child.local_ts),
            ("child.remote_ts", &child.remote_ts),
        ] {
            if ts.is_empty() || ts.len() > MAX_TRAFFIC_SELECTORS {
                return err(field, "between 1 and 64 traffic selectors are needed");
            }
            if ts.iter().any(|t| {
                !matches!(
                    t,
                    TrafficSelector::Ipv4 { .. } | TrafficSelector::Ipv6 { .. }
                )
            }) {
                return err(field, "only IPv4 and IPv6 address ranges are supported");
            }
        }
        if child.pfs.is_some_and(|m| !KeyExchange::supports(m)) {
            return err("child.pfs", "the key exchange method is not implemented");
        }
        if child.per_resource_sas > ChildConfig::MAX_PER_RESOURCE_SAS {
            return err("child.per_resource_sas", "at most 1024");
        }
        Ok(())
    }
}

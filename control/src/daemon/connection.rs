//! From a `[[connection]]` of the configuration file to the [`IkeConfig`] its IKE SAs run
//! with, and the choice of connection for a peer that initiates.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{self, Addr, AuthMethod, Connection, DhGroup, Encryption, IpNet};
use crate::crypto::{Encr, Integ, Prf};
use crate::ike::{
    ChildConfig, EspProposal, EspSuite, IkeConfig, IkeProposal, LocalAuth, Mode, NatTraversal, Psk,
    RetransmitConfig, SelectionOrder,
};
use crate::wire::{EsnId, KeMethod, TrafficSelector};

/// The daemon-wide choices that shape every connection (`xipsecd -p`, `-t`, `-T`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defaults {
    /// The NAT-T port.
    pub natt_port: u16,
    /// Retransmission of requests (`[daemon]` retransmit_timeout and retransmit_tries).
    pub retransmit: RetransmitConfig,
    /// NAT traversal as asked on the command line; a connection's `encap = true` forces it.
    pub nat_traversal: NatTraversal,
}

/// Why a connection cannot run although the file parsed: it asks for something this build
/// does not do yet. The configuration is at fault; the daemon skips the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The connection's name.
    pub connection: String,
    /// What it asks for.
    pub what: String,
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "connection '{}': {}", self.connection, self.what)
    }
}

/// A connection ready to run: its IKE configuration with the addresses still open (filled in
/// per IKE SA), and what the daemon needs around it.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The configuration as written.
    pub conn: Connection,
    /// The IKE configuration, with `local_addr` / `remote_addr` to be set per IKE SA.
    pub template: IkeConfig,
}

impl Prepared {
    /// The IKE configuration of an IKE SA between `local` and `remote`.
    pub fn for_path(&self, local: SocketAddr, remote: SocketAddr) -> Arc<IkeConfig> {
        let mut config = self.template.clone();
        config.local_addr = local;
        config.remote_addr = remote;
        Arc::new(config)
    }

    /// The IKE configuration of an IKE SA we initiate; `initial_contact` when it is our only
    /// one with this peer (§2.4).
    pub fn for_initiator(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        initial_contact: bool,
    ) -> Arc<IkeConfig> {
        let mut config = self.template.clone();
        config.local_addr = local;
        config.remote_addr = remote;
        config.initial_contact = initial_contact;
        Arc::new(config)
    }

    /// Whether a peer at `remote` talking to `local` may use this connection.
    pub fn accepts(&self, local: IpAddr, remote: IpAddr) -> bool {
        let matches = |addrs: &[Addr], ip: IpAddr| {
            addrs.is_empty()
                || addrs.iter().any(|a| match a {
                    Addr::Any => true,
                    Addr::Ip(a) => *a == ip,
                })
        };
        matches(&self.conn.local_addrs, local) && matches(&self.conn.remote_addrs, remote)
    }

    /// Whether the daemon initiates it on its own (`start_action = "start"`).
    pub fn starts(&self) -> bool {
        self.conn
            .children
            .first()
            .is_some_and(|c| c.start_action == config::StartAction::Start)
    }

    /// What decides whether a reload changed the connection: everything written, secrets
    /// by their SHA-256 (their `Debug` form is redacted).
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(format!("{:?}", self.conn).as_bytes());
        for psk in [&self.conn.local.psk, &self.conn.remote.psk]
            .into_iter()
            .flatten()
        {
            ctx.update(&[1]);
            ctx.update(psk.expose());
        }
        ctx.update(format!("{:?}", self.template.nat_traversal).as_bytes());
        ctx.finish().as_ref().to_vec()
    }

    /// The peer to initiate to, if the connection names one.
    pub fn initiation_target(&self) -> Option<IpAddr> {
        self.conn.remote_addrs.iter().find_map(|a| match a {
            Addr::Ip(ip) => Some(*ip),
            Addr::Any => None,
        })
    }

    /// Our address for initiating: the first configured one of the peer's family.
    pub fn initiation_source(&self, remote: IpAddr) -> Option<IpAddr> {
        self.conn.local_addrs.iter().find_map(|a| match a {
            Addr::Ip(ip) if ip.is_ipv4() == remote.is_ipv4() => Some(*ip),
            _ => None,
        })
    }
}

/// Prepares a connection, or says what of it this build cannot run.
pub fn prepare(conn: &Connection, defaults: Defaults) -> Result<Prepared, Unsupported> {
    let unsupported = |what: String| Unsupported {
        connection: conn.name.clone(),
        what,
    };
    let local_auth = config::load_local_auth(&conn.local).map_err(&unsupported)?;
    let peer_auth = config::load_peer_auth(&conn.remote).map_err(&unsupported)?;
    let uses_psk = conn.local.auth == AuthMethod::Psk || conn.remote.auth == AuthMethod::Psk;
    // Our key is the local psk (or the only one given); a remote psk beside it is the key the
    // peer proves (asymmetric PSKs).
    let psk = match conn.local.psk.as_ref().or(conn.remote.psk.as_ref()) {
        Some(psk) => Psk::new(psk.expose().to_vec()),
        None if uses_psk => return Err(unsupported("auth = \"psk\" needs a psk".into())),
        // Never used: both sides sign.
        None => Psk::new(Vec::new()),
    };
    let peer_psk = match (&conn.local.psk, &conn.remote.psk) {
        (Some(_), Some(theirs)) => Some(Psk::new(theirs.expose().to_vec())),
        _ => None,
    };
    let local_id = match (&conn.local.id, &local_auth) {
        (Some(id), _) => identity(id).map_err(&unsupported)?,
        // strongSwan's default with a certificate: its subject.
        (None, LocalAuth::Signature(c)) => match c.chain().first() {
            Some(cert) => crate::ike::Identity::Other(crate::wire::Identification {
                id_type: crate::wire::IdType::DerAsn1Dn,
                data: cert.subject_der().to_vec(),
            }),
            None => {
                return Err(unsupported(
                    "local.id is needed with a raw public key".into(),
                ))
            }
        },
        (None, _) => match conn.local_addrs.iter().find_map(|a| match a {
            Addr::Ip(ip) => Some(*ip),
            Addr::Any => None,
        }) {
            Some(ip) => crate::ike::Identity::Addr(ip),
            None => {
                return Err(unsupported(
                    "local.id is needed without a local address".into(),
                ))
            }
        },
    };
    let remote_id = conn
        .remote
        .id
        .as_ref()
        .map(identity)
        .transpose()
        .map_err(&unsupported)?;
    let child = conn
        .children
        .first()
        .ok_or_else(|| unsupported("a connection needs a [[connection.child]]".into()))?;
    let unspecified = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 500);
    let mut template = IkeConfig::new(unspecified, unspecified, local_id, psk);
    template.peer_psk = peer_psk;
    template.local_auth = local_auth;
    template.peer_auth = peer_auth;
    template.remote_id = remote_id;
    template.ike_proposals = conn
        .ike_proposals
        .iter()
        .map(ike_proposal)
        .collect::<Result<_, _>>()
        .map_err(unsupported)?;
    template.selection = SelectionOrder::Ours;
    template.child = child_config(child).map_err(&unsupported)?;
    template.more_children = conn
        .children
        .iter()
        .skip(1)
        .map(child_config)
        .collect::<Result<_, _>>()
        .map_err(&unsupported)?;
    template.dpd_interval = (!conn.dpd_interval.is_zero()).then_some(conn.dpd_interval);
    template.natt_port = defaults.natt_port;
    template.retransmit = defaults.retransmit;
    template.nat_traversal = match defaults.nat_traversal {
        NatTraversal::Detect if conn.encap => NatTraversal::Force,
        other => other,
    };
    template
        .validate()
        .map_err(|e| unsupported(format!("{}: {}", e.field, e.reason)))?;
    Ok(Prepared {
        conn: conn.clone(),
        template,
    })
}

fn identity(id: &config::Identity) -> Result<crate::ike::Identity, String> {
    config::ike_identity(id).ok_or_else(|| format!("the identity '{id:?}' cannot be encoded"))
}

fn ike_proposal(p: &config::IkeProposal) -> Result<IkeProposal, String> {
    let encr = p
        .encryption
        .iter()
        .map(|e| match e {
            Encryption::AesCbc128 => Ok(Encr::AesCbc128),
            Encryption::AesCbc256 => Ok(Encr::AesCbc256),
            Encryption::AesGcm16_128 => Ok(Encr::AesGcm16_128),
            Encryption::AesGcm16_256 => Ok(Encr::AesGcm16_256),
            Encryption::ChaCha20Poly1305 => Ok(Encr::Chacha20Poly1305),
            Encryption::AesCbc192 | Encryption::AesGcm16_192 => {
                Err("192-bit AES is not implemented for IKE".to_string())
            }
        })
        .collect::<Result<_, _>>()?;
    let integ = p
        .integrity
        .iter()
        .map(|i| match i {
            config::Integrity::Sha256_128 => Integ::HmacSha2_256_128,
            config::Integrity::Sha384_192 => Integ::HmacSha2_384_192,
            config::Integrity::Sha512_256 => Integ::HmacSha2_512_256,
        })
        .collect();
    let prf = p
        .prf
        .iter()
        .map(|f| match f {
            config::Prf::HmacSha256 => Prf::HmacSha2_256,
            config::Prf::HmacSha384 => Prf::HmacSha2_384,
            config::Prf::HmacSha512 => Prf::HmacSha2_512,
        })
        .collect();
    Ok(IkeProposal {
        encr,
        integ,
        prf,
        ke: p.dh.iter().map(|g| ke_method(*g)).collect(),
    })
}

fn ke_method(g: DhGroup) -> KeMethod {
    match g {
        DhGroup::Modp2048 => KeMethod::Modp2048,
        DhGroup::Modp3072 => KeMethod::Modp3072,
        DhGroup::Ecp256 => KeMethod::Ecp256,
        DhGroup::Ecp384 => KeMethod::Ecp384,
        DhGroup::Ecp521 => KeMethod::Ecp521,
        DhGroup::Curve25519 => KeMethod::Curve25519,
    }
}

fn child_config(child: &config::Child) -> Result<ChildConfig, String> {
    let proposals: Vec<EspProposal> = child
        .esp_proposals
        .iter()
        .map(|p| EspProposal {
            suites: p.encryption.iter().map(|c| esp_suite(*c)).collect(),
            esn: if p.esn.is_empty() {
                vec![EsnId::NoEsn]
            } else {
                p.esn
                    .iter()
                    .map(|e| match e {
                        config::Esn::NoEsn => EsnId::NoEsn,
                        config::Esn::Esn => EsnId::Esn,
                    })
                    .collect()
            },
        })
        .collect();
    // strongSwan takes PFS from the first ESP proposal's group.
    let pfs = child
        .esp_proposals
        .first()
        .and_then(|p| p.dh.first())
        .map(|g| ke_method(*g));
    Ok(ChildConfig {
        proposals,
        local_ts: child.local_ts.iter().map(traffic_selector).collect(),
        remote_ts: child.remote_ts.iter().map(traffic_selector).collect(),
        mode: match child.mode {
            config::Mode::Tunnel => Mode::Tunnel,
            config::Mode::Transport => Mode::Transport,
        },
        pfs,
        per_resource_sas: child.per_cpu_sas,
    })
}

/// The data plane's cipher of an ESP suite.
pub fn esp_suite(c: config::EspCipher) -> EspSuite {
    match c {
        config::EspCipher::Aes128Gcm16 => EspSuite::Aes128Gcm16,
        config::EspCipher::Aes256Gcm16 => EspSuite::Aes256Gcm16,
        config::EspCipher::ChaCha20Poly1305 => EspSuite::ChaCha20Poly1305,
    }
}

/// A prefix as an address range of any protocol and port.
pub fn traffic_selector(net: &IpNet) -> TrafficSelector {
    match net {
        IpNet::V4(n) => TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start: n.network(),
            end: n.broadcast(),
        },
        IpNet::V6(n) => TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start: n.network(),
            end: n.broadcast(),
        },
    }
}

//! How the daemon's values are written into the control protocol's info structs: algorithms in
//! strongSwan's names (so that `xipsecctl list-sas` reads like `swanctl --list-sas`), traffic
//! selectors, identities, and a configured connection as a [`ConnInfo`].

use std::fmt::Write as _;
use std::net::IpAddr;

use super::protocol::{Auth, ConnChildInfo, ConnInfo, Mode, Role, StartAction};
use crate::config;
use crate::crypto::{self, Encr, IkeSuite, Integ, Prf};
use crate::ike::{self, EspSuite};
use crate::wire::{KeMethod, TrafficSelector};

/// The IKE SA's algorithms as strongSwan prints them: `ENCR[/INTEG]/PRF/KE`, e.g.
/// `AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519` or
/// `AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`.
pub fn ike_algorithms(suite: &IkeSuite, ke: KeMethod) -> String {
    let mut s = String::with_capacity(64);
    s.push_str(encr_name(suite.encr()));
    if let Some(integ) = suite.integ() {
        s.push('/');
        s.push_str(integ_name(integ));
    }
    s.push('/');
    s.push_str(prf_name(suite.prf()));
    s.push('/');
    push_ke(&mut s, ke);
    s
}

/// The ESP AEAD as strongSwan prints it: `AES_GCM_16-128`, `AES_GCM_16-256`,
/// `CHACHA20_POLY1305`.
pub fn esp_algorithm(suite: EspSuite) -> &'static str {
    encr_name(suite.encr())
}

fn encr_name(encr: Encr) -> &'static str {
    match encr {
        Encr::AesCbc128 => "AES_CBC-128",
        Encr::AesCbc256 => "AES_CBC-256",
        Encr::AesGcm16_128 => "AES_GCM_16-128",
        Encr::AesGcm16_256 => "AES_GCM_16-256",
        Encr::Chacha20Poly1305 => "CHACHA20_POLY1305",
    }
}

fn integ_name(integ: Integ) -> &'static str {
    match integ {
        Integ::HmacSha1_96 => "HMAC_SHA1_96",
        Integ::HmacSha2_256_128 => "HMAC_SHA2_256_128",
        Integ::HmacSha2_384_192 => "HMAC_SHA2_384_192",
        Integ::HmacSha2_512_256 => "HMAC_SHA2_512_256",
    }
}

fn prf_name(prf: Prf) -> &'static str {
    match prf {
        Prf::HmacSha1 => "PRF_HMAC_SHA1",
        Prf::HmacSha2_256 => "PRF_HMAC_SHA2_256",
        Prf::HmacSha2_384 => "PRF_HMAC_SHA2_384",
        Prf::HmacSha2_512 => "PRF_HMAC_SHA2_512",
    }
}

fn push_ke(s: &mut String, ke: KeMethod) {
    let name = match ke {
        KeMethod::Modp2048 => "MODP_2048",
        KeMethod::Modp3072 => "MODP_3072",
        KeMethod::Modp4096 => "MODP_4096",
        KeMethod::Ecp256 => "ECP_256",
        KeMethod::Ecp384 => "ECP_384",
        KeMethod::Ecp521 => "ECP_521",
        KeMethod::Curve25519 => "CURVE_25519",
        KeMethod::Curve448 => "CURVE_448",
        other => {
            let _ = write!(s, "KE_{}", other.value());
            return;
        }
    };
    s.push_str(name);
}

/// A traffic selector as strongSwan prints it: `10.1.0.0/24` for a prefix,
/// `10.1.0.5..10.1.0.9` for another range, then `[tcp/443]`, `[udp/1000-2000]`, `[47]` when
/// it is limited to a protocol or ports.
pub fn traffic_selector(ts: &TrafficSelector) -> String {
    let mut s = String::with_capacity(24);
    match ts {
        TrafficSelector::Ipv4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => {
            push_range(
                &mut s,
                IpAddr::V4(*start),
                IpAddr::V4(*end),
                u128::from(u32::from(*start)),
                u128::from(u32::from(*end)),
                32,
            );
            push_proto_ports(&mut s, *ip_protocol, *start_port, *end_port);
        }
        TrafficSelector::Ipv6 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => {
            push_range(
                &mut s,
                IpAddr::V6(*start),
                IpAddr::V6(*end),
                u128::from(*start),
                u128::from(*end),
                128,
            );
            push_proto_ports(&mut s, *ip_protocol, *start_port, *end_port);
        }
        TrafficSelector::Other { ts_type, .. } => {
            let _ = write!(s, "{ts_type}");
        }
    }
    s
}

fn push_range(s: &mut String, start: IpAddr, end: IpAddr, lo: u128, hi: u128, bits: u32) {
    if lo <= hi {
        let host = hi - lo;
        // A prefix: the span is 2^k - 1 and the start is aligned to it.
        if host & host.wrapping_add(1) == 0 && lo & host == 0 {
            let _ = write!(s, "{start}/{}", bits - host.count_ones());
            return;
        }
    }
    let _ = write!(s, "{start}..{end}");
}

fn push_proto_ports(s: &mut String, proto: u8, start_port: u16, end_port: u16) {
    let any_port = start_port == 0 && end_port == u16::MAX;
    if proto == 0 && any_port {
        return;
    }
    s.push('[');
    match proto {
        1 => s.push_str("icmp"),
        6 => s.push_str("tcp"),
        17 => s.push_str("udp"),
        58 => s.push_str("ipv6-icmp"),
        132 => s.push_str("sctp"),
        n => {
            let _ = write!(s, "{n}");
        }
    }
    if !any_port {
        if start_port == end_port {
            let _ = write!(s, "/{start_port}");
        } else {
            let _ = write!(s, "/{start_port}-{end_port}");
        }
    }
    s.push(']');
}

/// An IKE identity as swanctl shows it: the name, address or mailbox itself; a key id as
/// `keyid:` and hex; other types with their type.
pub fn ike_identity(id: &ike::Identity) -> String {
    match id {
        ike::Identity::Fqdn(name) => name.clone(),
        ike::Identity::UserFqdn(mailbox) => mailbox.clone(),
        ike::Identity::Addr(addr) => addr.to_string(),
        other => other.to_string(),
    }
}

/// A configured identity as it is written in the configuration (`gw-a.example.net`,
/// `user@example.net`, `192.0.2.1`, `C=CH, O=example, CN=gw-a`).
pub fn config_identity(id: &config::Identity) -> String {
    match id {
        config::Identity::Fqdn(name) => name.clone(),
        config::Identity::UserFqdn(mailbox) => mailbox.clone(),
        config::Identity::Addr(addr) => addr.to_string(),
        config::Identity::Dn(rdns) => {
            let mut s = String::new();
            for (i, rdn) in rdns.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{}={}", rdn.attr, rdn.value);
            }
            s
        }
    }
}

/// An IKE proposal in the configuration's syntax, every transform written out (a PRF derived
/// from the integrity algorithm included): `aes256-sha256-prfsha256-modp2048`.
pub fn ike_proposal(p: &config::IkeProposal) -> String {
    use config::{Encryption as E, Integrity as I, Prf as P};
    let mut words: Vec<&str> = Vec::with_capacity(8);
    words.extend(p.encryption.iter().map(|e| match e {
        E::AesCbc128 => "aes128",
        E::AesCbc192 => "aes192",
        E::AesCbc256 => "aes256",
        E::AesGcm16_128 => "aes128gcm16",
        E::AesGcm16_192 => "aes192gcm16",
        E::AesGcm16_256 => "aes256gcm16",
        E::ChaCha20Poly1305 => "chacha20poly1305",
    }));
    words.extend(p.integrity.iter().map(|i| match i {
        I::Sha256_128 => "sha256",
        I::Sha384_192 => "sha384",
        I::Sha512_256 => "sha512",
    }));
    words.extend(p.prf.iter().map(|f| match f {
        P::HmacSha256 => "prfsha256",
        P::HmacSha384 => "prfsha384",
        P::HmacSha512 => "prfsha512",
    }));
    words.extend(p.dh.iter().copied().map(dh_keyword));
    words.join("-")
}

/// An ESP proposal in the configuration's syntax: `aes256gcm16-x25519-esn` (`noesn`, the
/// default, is written only next to `esn`).
pub fn esp_proposal(p: &config::EspProposal) -> String {
    let mut s = String::with_capacity(32);
    for c in &p.encryption {
        if !s.is_empty() {
            s.push('-');
        }
        let _ = write!(s, "{c}");
    }
    for g in &p.dh {
        s.push('-');
        s.push_str(dh_keyword(*g));
    }
    if p.esn != [config::Esn::NoEsn] {
        for e in &p.esn {
            s.push_str(match e {
                config::Esn::Esn => "-esn",
                config::Esn::NoEsn => "-noesn",
            });
        }
    }
    s
}

fn dh_keyword(g: config::DhGroup) -> &'static str {
    match g {
        config::DhGroup::Modp2048 => "modp2048",
        config::DhGroup::Modp3072 => "modp3072",
        config::DhGroup::Ecp256 => "ecp256",
        config::DhGroup::Ecp384 => "ecp384",
        config::DhGroup::Ecp521 => "ecp521",
        config::DhGroup::Curve25519 => "x25519",
    }
}

fn addr(a: &config::Addr) -> String {
    match a {
        config::Addr::Any => "%any".to_string(),
        config::Addr::Ip(ip) => ip.to_string(),
    }
}

/// A configured connection as `list-conns` reports it.
pub fn conn_info(c: &config::Connection) -> ConnInfo {
    ConnInfo {
        name: c.name.clone(),
        local_addrs: c.local_addrs.iter().map(addr).collect(),
        remote_addrs: c.remote_addrs.iter().map(addr).collect(),
        local_auth: c.local.auth.into(),
        remote_auth: c.remote.auth.into(),
        local_id: c.local.id.as_ref().map(config_identity),
        remote_id: c.remote.id.as_ref().map(config_identity),
        ike_proposals: c.ike_proposals.iter().map(ike_proposal).collect(),
        rekey_time_secs: c.rekey_time.as_secs(),
        reauth: c.key_renewal == config::KeyRenewal::Reauth,
        dpd_interval_secs: c.dpd_interval.as_secs(),
        mobike: c.mobike,
        encap: c.encap,
        children: c
            .children
            .iter()
            .map(|ch| ConnChildInfo {
                name: ch.name.clone(),
                mode: ch.mode.into(),
                local_ts: ch.local_ts.iter().map(ToString::to_string).collect(),
                remote_ts: ch.remote_ts.iter().map(ToString::to_string).collect(),
                esp_proposals: ch.esp_proposals.iter().map(esp_proposal).collect(),
                start_action: ch.start_action.into(),
                rekey_time_secs: ch.rekey_time.as_secs(),
            })
            .collect(),
    }
}

impl From<crypto::Role> for Role {
    fn from(r: crypto::Role) -> Role {
        match r {
            crypto::Role::Initiator => Role::Initiator,
            crypto::Role::Responder => Role::Responder,
        }
    }
}

impl From<ike::Mode> for Mode {
    fn from(m: ike::Mode) -> Mode {
        match m {
            ike::Mode::Tunnel => Mode::Tunnel,
            ike::Mode::Transport => Mode::Transport,
        }
    }
}

impl From<config::Mode> for Mode {
    fn from(m: config::Mode) -> Mode {
        match m {
            config::Mode::Tunnel => Mode::Tunnel,
            config::Mode::Transport => Mode::Transport,
        }
    }
}

impl From<config::AuthMethod> for Auth {
    fn from(a: config::AuthMethod) -> Auth {
        match a {
            config::AuthMethod::Psk => Auth::Psk,
            config::AuthMethod::Pubkey => Auth::Pubkey,
        }
    }
}

impl From<config::StartAction> for StartAction {
    fn from(a: config::StartAction) -> StartAction {
        match a {
            config::StartAction::Start => StartAction::Start,
            config::StartAction::Trap => StartAction::Trap,
            config::StartAction::None => StartAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::Path;

    use super::*;

    fn v4(proto: u8, ports: (u16, u16), start: [u8; 4], end: [u8; 4]) -> TrafficSelector {
        TrafficSelector::Ipv4 {
            ip_protocol: proto,
            start_port: ports.0,
            end_port: ports.1,
            start: Ipv4Addr::from(start),
            end: Ipv4Addr::from(end),
        }
    }

    #[test]
    fn selectors() {
        let any = (0, u16::MAX);
        assert_eq!(
            traffic_selector(&v4(0, any, [10, 1, 0, 0], [10, 1, 0, 255])),
            "10.1.0.0/24"
        );
        assert_eq!(traffic_selector(&TrafficSelector::ipv4_any()), "0.0.0.0/0");
        assert_eq!(
            traffic_selector(&v4(0, any, [10, 1, 0, 7], [10, 1, 0, 7])),
            "10.1.0.7/32"
        );
        assert_eq!(
            traffic_selector(&v4(0, any, [10, 1, 0, 5], [10, 1, 0, 9])),
            "10.1.0.5..10.1.0.9"
        );
        // Aligned span but the start is not on the boundary.
        assert_eq!(
            traffic_selector(&v4(0, any, [10, 1, 0, 1], [10, 1, 0, 4])),
            "10.1.0.1..10.1.0.4"
        );
        assert_eq!(
            traffic_selector(&v4(6, (443, 443), [10, 1, 0, 0], [10, 1, 0, 255])),
            "10.1.0.0/24[tcp/443]"
        );
        assert_eq!(
            traffic_selector(&v4(17, (1000, 2000), [10, 1, 0, 0], [10, 1, 0, 255])),
            "10.1.0.0/24[udp/1000-2000]"
        );
        assert_eq!(
            traffic_selector(&v4(47, any, [10, 1, 0, 0], [10, 1, 0, 255])),
            "10.1.0.0/24[47]"
        );
        let all6 = TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start: Ipv6Addr::UNSPECIFIED,
            end: Ipv6Addr::from(u128::MAX),
        };
        assert_eq!(traffic_selector(&all6), "::/0");
        let net = TrafficSelector::Ipv6 {
            ip_protocol: 58,
            start_port: 0,
            end_port: u16::MAX,
            start: "2001:db8::".parse().unwrap(),
            end: "2001:db8::ffff:ffff:ffff:ffff".parse().unwrap(),
        };
        assert_eq!(traffic_selector(&net), "2001:db8::/64[ipv6-icmp]");
    }

    #[test]
    fn algorithms() {
        let aead = IkeSuite::new(Encr::AesGcm16_128, None, Prf::HmacSha2_256).unwrap();
        assert_eq!(
            ike_algorithms(&aead, KeMethod::Curve25519),
            "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519"
        );
        let cbc = IkeSuite::new(
            Encr::AesCbc256,
            Some(Integ::HmacSha2_256_128),
            Prf::HmacSha2_256,
        )
        .unwrap();
        assert_eq!(
            ike_algorithms(&cbc, KeMethod::Modp2048),
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        );
        assert_eq!(
            ike_algorithms(&cbc, KeMethod::Unknown(1234)),
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/KE_1234"
        );
        assert_eq!(esp_algorithm(EspSuite::Aes256Gcm16), "AES_GCM_16-256");
        assert_eq!(
            esp_algorithm(EspSuite::ChaCha20Poly1305),
            "CHACHA20_POLY1305"
        );
    }

    #[test]
    fn identities() {
        assert_eq!(
            ike_identity(&ike::Identity::Fqdn("gw-b.example.net".into())),
            "gw-b.example.net"
        );
        assert_eq!(
            ike_identity(&ike::Identity::Addr("2001:db8::1".parse().unwrap())),
            "2001:db8::1"
        );
        assert_eq!(
            ike_identity(&ike::Identity::KeyId(vec![0xab, 0x01])),
            "keyid:ab01"
        );
        let dn = config::Identity::parse("c=CH,  O=example , CN=gw-a").unwrap();
        assert_eq!(config_identity(&dn), "C=CH, O=example, CN=gw-a");
    }

    const CONF: &str = r#"
[[connection]]
name = "site-b"
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
ike_proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"]
dpd_interval = 30
key_renewal = "reauth"
  [connection.local]
  auth = "psk"
  id = "gw-a.example.net"
  psk = "hex:00112233445566778899aabbccddeeff"
  [connection.remote]
  auth = "psk"
  [[connection.child]]
  name = "net"
  local_ts = ["10.1.0.0/24", "2001:db8:1::/48"]
  remote_ts = ["10.2.0.0/24", "2001:db8:2::/48"]
  esp_proposals = ["aes128gcm16", "aes256gcm16-x25519-esn", "chacha20poly1305-esn-noesn"]
  start_action = "trap"
"#;

    #[test]
    fn connection_from_config() {
        let cfg =
            config::Config::parse(CONF, "t.toml", Path::new("."), &Default::default()).unwrap();
        let c = conn_info(&cfg.connections[0]);
        assert_eq!(
            c,
            ConnInfo {
                name: "site-b".into(),
                local_addrs: vec!["192.0.2.1".into()],
                remote_addrs: vec!["192.0.2.2".into()],
                local_auth: Auth::Psk,
                remote_auth: Auth::Psk,
                local_id: Some("gw-a.example.net".into()),
                remote_id: None,
                ike_proposals: vec![
                    "aes128gcm16-prfsha256-x25519".into(),
                    "aes256-sha256-prfsha256-modp2048".into()
                ],
                rekey_time_secs: 14400,
                reauth: true,
                dpd_interval_secs: 30,
                mobike: true,
                encap: false,
                children: vec![ConnChildInfo {
                    name: "net".into(),
                    mode: Mode::Tunnel,
                    local_ts: vec!["10.1.0.0/24".into(), "2001:db8:1::/48".into()],
                    remote_ts: vec!["10.2.0.0/24".into(), "2001:db8:2::/48".into()],
                    esp_proposals: vec![
                        "aes128gcm16".into(),
                        "aes256gcm16-x25519-esn".into(),
                        "chacha20poly1305-esn-noesn".into()
                    ],
                    start_action: StartAction::Trap,
                    rekey_time_secs: 3600,
                }],
            }
        );
        // Every proposal string written back parses to the same proposal.
        let conn = &cfg.connections[0];
        for (p, s) in conn.ike_proposals.iter().zip(&c.ike_proposals) {
            assert_eq!(&config::IkeProposal::parse(s).unwrap(), p);
        }
        for (p, s) in conn.children[0]
            .esp_proposals
            .iter()
            .zip(&c.children[0].esp_proposals)
        {
            assert_eq!(&config::EspProposal::parse(s).unwrap(), p);
        }
    }
}

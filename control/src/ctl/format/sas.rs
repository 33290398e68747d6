//! `list-sas` as text, laid out like `swanctl --list-sas`.

use std::io::{self, Write};
use std::net::SocketAddr;

use super::join;
use crate::ctl::protocol::{ChildSaInfo, ChildSaState, IkeSaInfo, IkeSaState, Mode, Role};

/// Writes every IKE SA as a block, its Child SAs indented under it:
///
/// ```text
/// site-b: #1, ESTABLISHED, IKEv2, 0123456789abcdef_i* fedcba9876543210_r
///   local  'gw-a.example.net' @ 192.0.2.1[4500]
///   remote 'gw-b.example.net' @ 198.51.100.7[4500] (behind NAT)
///   AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519
///   established 120s ago, rekeying in 14000s
///   net: INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128/ESN
///     installed 100s ago, rekeying in 3400s
///     in  c1a2b3c4,  12345 bytes,   100 packets
///     out c5d6e7f8,  54321 bytes,   200 packets
///     local  10.1.0.0/24
///     remote 10.2.0.0/24
/// ```
pub fn sas(w: &mut impl Write, sas: &[IkeSaInfo]) -> io::Result<()> {
    if sas.is_empty() {
        return writeln!(w, "no IKE SAs");
    }
    for sa in sas {
        ike_sa(w, sa)?;
    }
    Ok(())
}

fn ike_sa(w: &mut impl Write, sa: &IkeSaInfo) -> io::Result<()> {
    let (star_i, star_r) = match sa.role {
        Role::Initiator => ("*", ""),
        Role::Responder => ("", "*"),
    };
    writeln!(
        w,
        "{}: #{}, {}, IKEv2, {:016x}_i{star_i} {:016x}_r{star_r}",
        sa.connection,
        sa.id,
        ike_state(sa.state),
        sa.spi_i,
        sa.spi_r
    )?;
    endpoint(w, "local ", &sa.local_id, sa.local_addr, sa.nat_local)?;
    endpoint(w, "remote", &sa.remote_id, sa.remote_addr, sa.nat_remote)?;
    if !sa.algorithms.is_empty() {
        writeln!(w, "  {}", sa.algorithms)?;
    }
    match (sa.established_secs, sa.rekey_in_secs) {
        (Some(up), Some(rekey)) => writeln!(w, "  established {up}s ago, rekeying in {rekey}s")?,
        (Some(up), None) => writeln!(w, "  established {up}s ago")?,
        (None, Some(rekey)) => writeln!(w, "  rekeying in {rekey}s")?,
        (None, None) => {}
    }
    for child in &sa.children {
        child_sa(w, child)?;
    }
    Ok(())
}

fn endpoint(
    w: &mut impl Write,
    side: &str,
    id: &str,
    addr: SocketAddr,
    nat: bool,
) -> io::Result<()> {
    let id = if id.is_empty() { "%any" } else { id };
    write!(w, "  {side} '{id}' @ {}[{}]", addr.ip(), addr.port())?;
    if nat {
        w.write_all(b" (behind NAT)")?;
    }
    w.write_all(b"\n")
}

fn child_sa(w: &mut impl Write, c: &ChildSaInfo) -> io::Result<()> {
    let mode = match c.mode {
        Mode::Tunnel => "TUNNEL",
        Mode::Transport => "TRANSPORT",
    };
    let encap = if c.udp_encap { "-in-UDP" } else { "" };
    let esn = if c.esn { "/ESN" } else { "" };
    write!(
        w,
        "  {}: {}, {mode}{encap}, ESP:{}{esn}",
        c.name,
        child_state(c.state),
        c.algorithm
    )?;
    match c.resource {
        // Per-resource Child SAs share their selectors: the resource tells them apart.
        Some(resource) => writeln!(w, ", resource {resource}")?,
        None => writeln!(w)?,
    }
    match c.rekey_in_secs {
        Some(rekey) => writeln!(
            w,
            "    installed {}s ago, rekeying in {rekey}s",
            c.installed_secs
        )?,
        None => writeln!(w, "    installed {}s ago", c.installed_secs)?,
    }
    writeln!(
        w,
        "    in  {:08x}, {:>6} bytes, {:>5} packets",
        c.spi_in, c.bytes_in, c.packets_in
    )?;
    writeln!(
        w,
        "    out {:08x}, {:>6} bytes, {:>5} packets",
        c.spi_out, c.bytes_out, c.packets_out
    )?;
    w.write_all(b"    local  ")?;
    join(w, &c.local_ts, " ")?;
    w.write_all(b"\n    remote ")?;
    join(w, &c.remote_ts, " ")?;
    w.write_all(b"\n")
}

fn ike_state(s: IkeSaState) -> &'static str {
    match s {
        IkeSaState::Connecting => "CONNECTING",
        IkeSaState::Established => "ESTABLISHED",
        IkeSaState::Rekeying => "REKEYING",
        IkeSaState::Deleting => "DELETING",
    }
}

fn child_state(s: ChildSaState) -> &'static str {
    match s {
        ChildSaState::Installed => "INSTALLED",
        ChildSaState::Rekeying => "REKEYING",
        ChildSaState::Rekeyed => "REKEYED",
        ChildSaState::Deleting => "DELETING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let sa = IkeSaInfo {
            id: 1,
            connection: "site-b".into(),
            state: IkeSaState::Established,
            role: Role::Responder,
            local_addr: "192.0.2.1:4500".parse().unwrap(),
            remote_addr: "[2001:db8::7]:4500".parse().unwrap(),
            local_id: "gw-a.example.net".into(),
            remote_id: String::new(),
            algorithms: "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519".into(),
            spi_i: 0x0123_4567_89ab_cdef,
            spi_r: 0xfe,
            established_secs: Some(120),
            rekey_in_secs: None,
            nat_local: false,
            nat_remote: true,
            children: vec![ChildSaInfo {
                name: "net".into(),
                state: ChildSaState::Installed,
                mode: Mode::Tunnel,
                spi_in: 0xc1a2b3c4,
                spi_out: 0x5,
                local_ts: vec!["10.1.0.0/24".into(), "10.3.0.0/24".into()],
                remote_ts: vec!["10.2.0.0/24".into()],
                algorithm: "AES_GCM_16-128".into(),
                esn: true,
                udp_encap: true,
                bytes_in: 12345,
                bytes_out: 1234567,
                packets_in: 100,
                packets_out: 200,
                installed_secs: 100,
                rekey_in_secs: Some(3400),
                resource: None,
            }],
        };
        let mut out = Vec::new();
        sas(&mut out, &[sa]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
site-b: #1, ESTABLISHED, IKEv2, 0123456789abcdef_i 00000000000000fe_r*
  local  'gw-a.example.net' @ 192.0.2.1[4500]
  remote '%any' @ 2001:db8::7[4500] (behind NAT)
  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519
  established 120s ago
  net: INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128/ESN
    installed 100s ago, rekeying in 3400s
    in  c1a2b3c4,  12345 bytes,   100 packets
    out 00000005, 1234567 bytes,   200 packets
    local  10.1.0.0/24 10.3.0.0/24
    remote 10.2.0.0/24
"
        );
        let mut out = Vec::new();
        sas(&mut out, &[]).unwrap();
        assert_eq!(out, b"no IKE SAs\n");
    }
}

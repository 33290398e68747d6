//! `list-conns` as text, laid out like `swanctl --list-conns`.

use std::io::{self, Write};

use super::join;
use crate::ctl::protocol::{Auth, ConnInfo, Mode, StartAction};

/// Writes every connection as a block, its children indented under it:
///
/// ```text
/// site-b: IKEv2, rekeying every 14400s, dpd every 30s, MOBIKE
///   local:  192.0.2.1
///   remote: 192.0.2.2
///   local psk authentication:
///     id: gw-a.example.net
///   remote psk authentication:
///     id: %any
///   proposals: aes128gcm16-prfsha256-x25519
///   net: TUNNEL, rekeying every 3600s, start_action start
///     local:  10.1.0.0/24
///     remote: 10.2.0.0/24
///     esp proposals: aes128gcm16, aes256gcm16-esn
/// ```
pub fn conns(w: &mut impl Write, conns: &[ConnInfo]) -> io::Result<()> {
    if conns.is_empty() {
        return writeln!(w, "no connections");
    }
    for c in conns {
        conn(w, c)?;
    }
    Ok(())
}

fn conn(w: &mut impl Write, c: &ConnInfo) -> io::Result<()> {
    let renewal = if c.reauth {
        "reauthentication"
    } else {
        "rekeying"
    };
    write!(
        w,
        "{}: IKEv2, {renewal} every {}s",
        c.name, c.rekey_time_secs
    )?;
    if c.dpd_interval_secs > 0 {
        write!(w, ", dpd every {}s", c.dpd_interval_secs)?;
    }
    if c.mobike {
        w.write_all(b", MOBIKE")?;
    }
    if c.encap {
        w.write_all(b", UDP encapsulation forced")?;
    }
    w.write_all(b"\n  local:  ")?;
    join(w, &c.local_addrs, ", ")?;
    w.write_all(b"\n  remote: ")?;
    join(w, &c.remote_addrs, ", ")?;
    w.write_all(b"\n")?;
    let local_id = c.local_id.as_deref().unwrap_or("(the IKE address in use)");
    let remote_id = c.remote_id.as_deref().unwrap_or("%any");
    writeln!(w, "  local {} authentication:", auth(c.local_auth))?;
    writeln!(w, "    id: {local_id}")?;
    writeln!(w, "  remote {} authentication:", auth(c.remote_auth))?;
    writeln!(w, "    id: {remote_id}")?;
    w.write_all(b"  proposals: ")?;
    join(w, &c.ike_proposals, ", ")?;
    w.write_all(b"\n")?;
    for ch in &c.children {
        let mode = match ch.mode {
            Mode::Tunnel => "TUNNEL",
            Mode::Transport => "TRANSPORT",
        };
        let start = match ch.start_action {
            StartAction::Start => "start",
            StartAction::Trap => "trap",
            StartAction::None => "none",
        };
        writeln!(
            w,
            "  {}: {mode}, rekeying every {}s, start_action {start}",
            ch.name, ch.rekey_time_secs
        )?;
        selectors(w, "    local:  ", &ch.local_ts)?;
        selectors(w, "    remote: ", &ch.remote_ts)?;
        w.write_all(b"    esp proposals: ")?;
        join(w, &ch.esp_proposals, ", ")?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn selectors(w: &mut impl Write, label: &str, ts: &[String]) -> io::Result<()> {
    w.write_all(label.as_bytes())?;
    if ts.is_empty() {
        // Transport mode without selectors: the IKE address (strongSwan's "dynamic").
        w.write_all(b"dynamic")?;
    } else {
        join(w, ts, " ")?;
    }
    w.write_all(b"\n")
}

fn auth(a: Auth) -> &'static str {
    match a {
        Auth::Psk => "psk",
        Auth::Pubkey => "public key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::protocol::ConnChildInfo;

    #[test]
    fn layout() {
        let c = ConnInfo {
            name: "rw".into(),
            local_addrs: vec!["%any".into()],
            remote_addrs: vec!["192.0.2.2".into(), "2001:db8::2".into()],
            local_auth: Auth::Pubkey,
            remote_auth: Auth::Psk,
            local_id: None,
            remote_id: Some("C=CH, CN=peer".into()),
            ike_proposals: vec![
                "aes128gcm16-prfsha256-x25519".into(),
                "aes256-sha256-prfsha256-modp2048".into(),
            ],
            rekey_time_secs: 14400,
            reauth: true,
            dpd_interval_secs: 0,
            mobike: false,
            encap: true,
            children: vec![ConnChildInfo {
                name: "host".into(),
                mode: Mode::Transport,
                local_ts: vec![],
                remote_ts: vec!["192.0.2.2/32".into()],
                esp_proposals: vec!["aes128gcm16".into()],
                start_action: StartAction::None,
                rekey_time_secs: 3600,
            }],
        };
        let mut out = Vec::new();
        conns(&mut out, &[c]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
rw: IKEv2, reauthentication every 14400s, UDP encapsulation forced
  local:  %any
  remote: 192.0.2.2, 2001:db8::2
  local public key authentication:
    id: (the IKE address in use)
  remote psk authentication:
    id: C=CH, CN=peer
  proposals: aes128gcm16-prfsha256-x25519, aes256-sha256-prfsha256-modp2048
  host: TRANSPORT, rekeying every 3600s, start_action none
    local:  dynamic
    remote: 192.0.2.2/32
    esp proposals: aes128gcm16
"
        );
    }
}

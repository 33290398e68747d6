//! MAC addresses: parsed from the command line and from iproute2's JSON (`ip -j link`,
//! `ip -j neigh`, `ip -j route get`), and looked up in a namespace. Frames built by the
//! AF_XDP and AF_PACKET generators carry the next hop's address themselves, so the harness
//! must know it: in its own topologies it reads both ends of every link; on real interfaces
//! it asks the neighbour table, after a ping if the table does not know yet.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use xipsec_testkit::netns::Netns;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` or with `-` between the bytes, any case; exactly six two-digit
    /// hex bytes.
    fn from_str(text: &str) -> Result<Mac, String> {
        let bad = || format!("'{text}' is not a MAC address like 02:00:00:00:00:01");
        let text = text.trim();
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            // from_str_radix would take a sign: "+2".
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

impl Mac {
    /// Whether frames to it reach one interface: not all zeros, not multicast or broadcast.
    pub fn is_unicast(self) -> bool {
        self.0 != [0; 6] && self.0[0] & 1 == 0
    }
}

/// The `address` of the one link in `ip -j link show dev IF` output.
pub fn parse_link(json: &str) -> Result<Mac, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ip -j link: {e}"))?;
    let address = value
        .get(0)
        .and_then(|link| link.get("address"))
        .and_then(|a| a.as_str())
        .ok_or_else(|| format!("ip -j link: no address in {json}"))?;
    address.parse()
}

/// The `lladdr` of `ip` in `ip -j neigh show` output, when the entry is usable (not FAILED
/// or INCOMPLETE).
pub fn parse_neigh(json: &str, ip: Ipv4Addr) -> Option<Mac> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.as_array()?.iter().find_map(|entry| {
        if entry.get("dst")?.as_str()? != ip.to_string() {
            return None;
        }
        let states: Vec<&str> = entry
            .get("state")
            .and_then(|s| s.as_array())
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if states.iter().any(|s| *s == "FAILED" || *s == "INCOMPLETE") {
            return None;
        }
        entry.get("lladdr")?.as_str()?.parse().ok()
    })
}

/// From `ip -j route get DST`: the next hop (the gateway, or DST itself when it is on the
/// link) and the interface.
pub fn parse_route_get(json: &str, dst: Ipv4Addr) -> Result<(Ipv4Addr, String), String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ip -j route get: {e}"))?;
    let route = value
        .get(0)
        .ok_or_else(|| format!("ip -j route get {dst}: no route"))?;
    let dev = route
        .get("dev")
        .and_then(|d| d.as_str())
        .ok_or_else(|| format!("ip -j route get {dst}: no device in {json}"))?;
    let hop = match route.get("gateway").and_then(|g| g.as_str()) {
        Some(gateway) => gateway
            .parse()
            .map_err(|_| format!("ip -j route get {dst}: gateway '{gateway}' is not IPv4"))?,
        None => dst,
    };
    Ok((hop, dev.to_owned()))
}

fn ip_json(netns: Option<&Netns>, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(xipsec_testkit::process::tool("ip"));
    if let Some(netns) = netns {
        command.args(["-n", netns.name()]);
    }
    command.arg("-j").args(args);
    let output = xipsec_testkit::process::run_bounded(&mut command, Duration::from_secs(5))?;
    if !output.status.success() {
        return Err(format!(
            "ip -j {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The MAC address of `interface` in `netns` (the current namespace when `None`).
pub fn link_mac(netns: Option<&Netns>, interface: &str) -> Result<Mac, String> {
    parse_link(&ip_json(netns, &["link", "show", "dev", interface])?)
        .map_err(|e| format!("{interface}: {e}"))
}

/// The MAC address frames to `dst` leave `interface` for, in the current namespace: the next
/// hop's from the neighbour table, after one ping to it when the table does not know it. The
/// route to `dst` must leave through `interface`.
pub fn next_hop_mac(interface: &str, dst: Ipv4Addr) -> Result<Mac, String> {
    let (hop, dev) = parse_route_get(&ip_json(None, &["route", "get", &dst.to_string()])?, dst)?;
    if dev != interface {
        return Err(format!(
            "the route to {dst} leaves through {dev}, not {interface}: give --tx-dst-mac"
        ));
    }
    let hop_text = hop.to_string();
    let lookup = || -> Result<Option<Mac>, String> {
        Ok(parse_neigh(
            &ip_json(None, &["neigh", "show", &hop_text, "dev", interface])?,
            hop,
        ))
    };
    if let Some(mac) = lookup()? {
        return Ok(mac);
    }
    // Resolution is the kernel's job: one ping makes it ask; its answer does not matter.
    if let Some(ping) = xipsec_testkit::process::find_tool("ping") {
        let _ = xipsec_testkit::process::run_bounded(
            Command::new(ping).args(["-c", "1", "-W", "1", "-I", interface, &hop_text]),
            Duration::from_secs(3),
        );
    }
    lookup()?.ok_or_else(|| {
        format!(
            "no neighbour entry for {hop} on {interface} (next hop to {dst}): give --tx-dst-mac"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_both_notations_and_print_back() {
        let mac: Mac = "02:AB:cd:00:10:ff".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0xab, 0xcd, 0x00, 0x10, 0xff]);
        assert_eq!(mac.to_string(), "02:ab:cd:00:10:ff");
        assert_eq!("02-ab-cd-00-10-ff".parse::<Mac>().unwrap(), mac);
        for bad in [
            "",
            "02:ab:cd:00:10",
            "02:ab:cd:00:10:ff:00",
            "2:ab:cd:00:10:ff",
            "02:ab:cd:00:10:fg",
            "02ab:cd:00:10:ff:",
            "0x:ab:cd:00:10:ff",
            "+2:ab:cd:00:10:ff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!(mac.is_unicast());
        assert!(!Mac([0xff; 6]).is_unicast());
        assert!(!Mac([0x01, 0, 0x5e, 0, 0, 1]).is_unicast());
        assert!(!Mac::default().is_unicast());
    }

    #[test]
    fn link_neighbour_and_route_json_as_iproute2_writes_it() {
        // Output of iproute2 6.x, trimmed.
        let link = r#"[{"ifindex":4,"ifname":"eth0","mtu":1500,"link_type":"ether","address":"02:fc:00:00:00:05","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
        assert_eq!(parse_link(link).unwrap().to_string(), "02:fc:00:00:00:05");
        assert!(parse_link("[]").is_err());
        assert!(parse_link("not json").is_err());

        let neigh = r#"[{"dst":"10.0.0.9","dev":"eth0","state":["FAILED"]},
            {"dst":"192.0.2.1","dev":"eth0","lladdr":"02:fc:00:00:00:01","state":["STALE"]},
            {"dst":"192.0.2.7","dev":"eth0","lladdr":"02:fc:00:00:00:07","state":["INCOMPLETE"]}]"#;
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_neigh(neigh, ip("192.0.2.1")),
            Some("02:fc:00:00:00:01".parse().unwrap())
        );
        assert_eq!(parse_neigh(neigh, ip("10.0.0.9")), None);
        assert_eq!(parse_neigh(neigh, ip("192.0.2.7")), None);
        assert_eq!(parse_neigh(neigh, ip("192.0.2.99")), None);

        let via = r#"[{"dst":"8.8.8.8","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(via, ip("8.8.8.8")).unwrap(),
            (ip("192.0.2.1"), "eth0".to_owned())
        );
        let direct = r#"[{"dst":"10.9.0.5","dev":"ens1","prefsrc":"10.9.0.1","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(direct, ip("10.9.0.5")).unwrap(),
            (ip("10.9.0.5"), "ens1".to_owned())
        );
        assert!(parse_route_get("[]", ip("10.9.0.5")).is_err());
    }
}

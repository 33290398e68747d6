//! The IKE and Child SAs charon reports, parsed from `swanctl --list-sas --pretty`: the vici
//! `list-sa` events, one `key = value` per line, sections in braces, lists in brackets.

use std::collections::BTreeMap;

/// An IKE SA as charon lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IkeSa {
    /// The connection's name.
    pub name: String,
    /// charon's unique id of this IKE SA (a rekeyed IKE SA gets a new one).
    pub uniqueid: u32,
    /// `CREATED`, `CONNECTING`, `ESTABLISHED`, `PASSIVE`, `REKEYING`, `REKEYED`, `DELETING`,
    /// `DESTROYING`.
    pub state: String,
    /// Whether charon was the original initiator.
    pub initiator: bool,
    /// The IKE SPIs (0 while not known yet).
    pub initiator_spi: u64,
    /// See `initiator_spi`.
    pub responder_spi: u64,
    /// charon's IKE address and port.
    pub local_host: String,
    /// See `local_host`.
    pub local_port: u16,
    /// charon's identity.
    pub local_id: String,
    /// The peer's IKE address and port.
    pub remote_host: String,
    /// See `remote_host`.
    pub remote_port: u16,
    /// The identity the peer proved.
    pub remote_id: String,
    /// Its Child SAs, in charon's order.
    pub children: Vec<ChildSa>,
    /// Every `key = value` charon gave for the IKE SA, by vici name: `encr-alg`,
    /// `encr-keysize`, `prf-alg`, `dh-group`, `nat-remote`, `nat-fake`, `rekey-time`, …
    pub fields: BTreeMap<String, String>,
}

/// A Child SA as charon lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildSa {
    /// The child's configured name.
    pub name: String,
    /// charon's unique id (a rekeyed Child SA gets a new one).
    pub uniqueid: u32,
    /// The reqid, shared by a Child SA and the ones that rekey it.
    pub reqid: u32,
    /// `CREATED`, `ROUTED`, `INSTALLING`, `INSTALLED`, `UPDATING`, `REKEYING`, `REKEYED`,
    /// `RETRYING`, `DELETING`, `DELETED`, `DESTROYING`.
    pub state: String,
    /// `TUNNEL`, `TRANSPORT`, …
    pub mode: String,
    /// `ESP` or `AH`.
    pub protocol: String,
    /// Whether ESP is in UDP (always, with kernel-libipsec).
    pub encap: bool,
    /// The SPI charon receives with (the peer's outbound SPI); 0 while not known.
    pub spi_in: u32,
    /// The SPI charon sends with (the peer's inbound SPI); 0 while not known.
    pub spi_out: u32,
    /// Traffic counters, as charon's ESP counted them.
    pub bytes_in: u64,
    /// See `bytes_in`.
    pub packets_in: u64,
    /// See `bytes_in`.
    pub bytes_out: u64,
    /// See `bytes_in`.
    pub packets_out: u64,
    /// The negotiated local traffic selectors ("10.1.0.0/24").
    pub local_ts: Vec<String>,
    /// The negotiated remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// Every `key = value` charon gave for the Child SA, by vici name: `encr-alg`,
    /// `encr-keysize`, `integ-alg`, `dh-group`, `esn`, `rekey-time`, `life-time`, …
    pub fields: BTreeMap<String, String>,
}

impl IkeSa {
    /// Whether the IKE SA is up.
    pub fn is_established(&self) -> bool {
        self.state == "ESTABLISHED"
    }

    /// The INSTALLED Child SA named `name`, if the IKE SA is ESTABLISHED and has one (the
    /// newest, when a rekey left two).
    pub fn installed_child(&self, name: &str) -> Option<&ChildSa> {
        if !self.is_established() {
            return None;
        }
        self.children
            .iter()
            .rev()
            .find(|child| child.name == name && child.is_installed())
    }
}

impl ChildSa {
    /// Whether the Child SA carries traffic.
    pub fn is_installed(&self) -> bool {
        self.state == "INSTALLED"
    }
}

/// Parses the output of `swanctl --list-sas --pretty`. An error names the line it could not
/// read; keys it does not model land in `fields`.
pub fn parse_list_sas(pretty: &str) -> Result<Vec<IkeSa>, String> {
    let root = parse_tree(pretty)?;
    let mut sas = Vec::new();
    for (event, section) in &root.sections {
        if event != "list-sa event" {
            continue;
        }
        for (name, ike) in &section.sections {
            sas.push(ike_sa(name, ike)?);
        }
    }
    Ok(sas)
}

fn ike_sa(name: &str, section: &Section) -> Result<IkeSa, String> {
    let fields: BTreeMap<String, String> = section.fields.iter().cloned().collect();
    let field = |key: &str| fields.get(key).cloned().unwrap_or_default();
    let mut children = Vec::new();
    for (key, sub) in &section.sections {
        if key == "child-sas" {
            for (_, child) in &sub.sections {
                children.push(child_sa(child)?);
            }
        }
    }
    Ok(IkeSa {
        name: name.to_owned(),
        uniqueid: number(&fields, "uniqueid", 10)?,
        state: field("state"),
        initiator: field("initiator") == "yes",
        initiator_spi: number(&fields, "initiator-spi", 16)?,
        responder_spi: number(&fields, "responder-spi", 16)?,
        local_host: field("local-host"),
        local_port: number(&fields, "local-port", 10)?,
        local_id: field("local-id"),
        remote_host: field("remote-host"),
        remote_port: number(&fields, "remote-port", 10)?,
        remote_id: field("remote-id"),
        children,
        fields,
    })
}

fn child_sa(section: &Section) -> Result<ChildSa, String> {
    let fields: BTreeMap<String, String> = section.fields.iter().cloned().collect();
    let field = |key: &str| fields.get(key).cloned().unwrap_or_default();
    let list = |key: &str| {
        section
            .lists
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, items)| items.clone())
            .unwrap_or_default()
    };
    Ok(ChildSa {
        name: field("name"),
        uniqueid: number(&fields, "uniqueid", 10)?,
        reqid: number(&fields, "reqid", 10)?,
        state: field("state"),
        mode: field("mode"),
        protocol: field("protocol"),
        encap: field("encap") == "yes",
        spi_in: number(&fields, "spi-in", 16)?,
        spi_out: number(&fields, "spi-out", 16)?,
        bytes_in: number(&fields, "bytes-in", 10)?,
        packets_in: number(&fields, "packets-in", 10)?,
        bytes_out: number(&fields, "bytes-out", 10)?,
        packets_out: number(&fields, "packets-out", 10)?,
        local_ts: list("local-ts"),
        remote_ts: list("remote-ts"),
        fields,
    })
}

/// A number charon gave in `radix`; 0 when it gave none (an SA still being set up).
fn number<T: TryFrom<u64>>(
    fields: &BTreeMap<String, String>,
    key: &str,
    radix: u32,
) -> Result<T, String> {
    let Some(text) = fields.get(key) else {
        return T::try_from(0).map_err(|_| format!("{key}: no zero"));
    };
    u64::from_str_radix(text, radix)
        .ok()
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| format!("{key} = {text}: not a number swanctl would print"))
}

/// One `{ … }` of the pretty output.
#[derive(Debug, Default)]
struct Section {
    fields: Vec<(String, String)>,
    lists: Vec<(String, Vec<String>)>,
    sections: Vec<(String, Section)>,
}

fn parse_tree(text: &str) -> Result<Section, String> {
    // The open sections, innermost last, each with the name it goes in its parent under.
    let mut stack: Vec<(String, Section)> = vec![(String::new(), Section::default())];
    let mut list: Option<(String, Vec<String>)> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let bad = || format!("swanctl --list-sas line {}: {raw:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some((key, items)) = list.as_mut() {
            if line == "]" {
                let (_, section) = stack.last_mut().ok_or_else(bad)?;
                section
                    .lists
                    .push((std::mem::take(key), std::mem::take(items)));
                list = None;
            } else {
                items.push(line.to_owned());
            }
            continue;
        }
        if line == "}" {
            let (name, section) = stack.pop().ok_or_else(bad)?;
            let (_, parent) = stack.last_mut().ok_or_else(bad)?;
            parent.sections.push((name, section));
        } else if let Some(key) = line.strip_suffix(" = [") {
            list = Some((key.to_owned(), Vec::new()));
        } else if let Some((key, value)) = line.split_once(" = ") {
            let (_, section) = stack.last_mut().ok_or_else(bad)?;
            section.fields.push((key.to_owned(), value.to_owned()));
        } else if let Some(name) = line.strip_suffix(" {") {
            stack.push((name.to_owned(), Section::default()));
        } else {
            return Err(bad());
        }
    }
    if stack.len() != 1 || list.is_some() {
        return Err("swanctl --list-sas: output ends inside a section".to_owned());
    }
    stack
        .pop()
        .map(|(_, root)| root)
        .ok_or_else(|| "swanctl --list-sas: nothing".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by Debian's swanctl 5.9.8 here, an initiator right after a Child SA rekey.
    const AFTER_CHILD_REKEY: &str = "\
list-sa event {
  peer {
    uniqueid = 1
    version = 2
    state = ESTABLISHED
    local-host = 10.77.0.1
    local-port = 4500
    local-id = 10.77.0.1
    remote-host = 10.77.0.2
    remote-port = 4500
    remote-id = 10.77.0.2
    initiator = yes
    initiator-spi = da6f0b9e1cdf9b09
    responder-spi = 4d66f0730ff9270e
    nat-remote = yes
    nat-any = yes
    encr-alg = AES_GCM_16
    encr-keysize = 128
    prf-alg = PRF_HMAC_SHA2_256
    dh-group = CURVE_25519
    established = 0
    rekey-time = 14390
    child-sas {
      net-1 {
        name = net
        uniqueid = 1
        reqid = 1
        state = DELETED
        mode = TUNNEL
        protocol = ESP
        encap = yes
        spi-in = e83ff4fb
        spi-out = 742ed6ee
        encr-alg = AES_GCM_16
        encr-keysize = 128
        bytes-in = 0
        packets-in = 0
        bytes-out = 0
        packets-out = 0
        rekey-time = 3276
        life-time = 3960
        install-time = 0
        local-ts = [
          10.77.1.0/24
        ]
        remote-ts = [
          10.77.2.0/24
        ]
      }
      net-2 {
        name = net
        uniqueid = 2
        reqid = 1
        state = INSTALLED
        mode = TUNNEL
        protocol = ESP
        encap = yes
        spi-in = 8b1195d0
        spi-out = 1389aa1a
        encr-alg = AES_GCM_16
        encr-keysize = 128
        bytes-in = 168
        packets-in = 2
        bytes-out = 168
        packets-out = 2
        rekey-time = 3248
        life-time = 3960
        install-time = 0
        local-ts = [
          10.77.1.0/24
        ]
        remote-ts = [
          10.77.2.0/24
        ]
      }
    }
  }
}
list-sas reply {
}
";

    #[test]
    fn reads_an_ike_sa_with_an_old_and_a_new_child() {
        let sas = parse_list_sas(AFTER_CHILD_REKEY).unwrap();
        assert_eq!(sas.len(), 1);
        let ike = &sas[0];
        assert_eq!(ike.name, "peer");
        assert!(ike.is_established() && ike.initiator);
        assert_eq!(ike.initiator_spi, 0xda6f_0b9e_1cdf_9b09);
        assert_eq!(ike.responder_spi, 0x4d66_f073_0ff9_270e);
        assert_eq!(
            (ike.local_host.as_str(), ike.local_port),
            ("10.77.0.1", 4500)
        );
        assert_eq!(ike.remote_id, "10.77.0.2");
        assert_eq!(ike.fields["dh-group"], "CURVE_25519");
        assert_eq!(ike.children.len(), 2);
        assert_eq!(ike.children[0].state, "DELETED");
        let child = ike.installed_child("net").unwrap();
        assert_eq!((child.spi_in, child.spi_out), (0x8b11_95d0, 0x1389_aa1a));
        assert_eq!((child.uniqueid, child.reqid), (2, 1));
        assert!(child.encap);
        assert_eq!((child.packets_in, child.bytes_out), (2, 168));
        assert_eq!(child.local_ts, ["10.77.1.0/24"]);
        assert_eq!(child.remote_ts, ["10.77.2.0/24"]);
        assert!(ike.installed_child("other").is_none());
    }

    #[test]
    fn no_sas_is_an_empty_list() {
        assert_eq!(parse_list_sas("list-sas reply {\n}\n").unwrap(), []);
    }

    #[test]
    fn unreadable_output_is_an_error_naming_the_line() {
        let error = parse_list_sas("list-sa event {\n  peer {\n    what\n").unwrap_err();
        assert!(error.contains("line 3"), "{error}");
        assert!(parse_list_sas("list-sa event {\n  peer {\n").is_err());
        assert!(parse_list_sas("}\n").is_err());
    }
}

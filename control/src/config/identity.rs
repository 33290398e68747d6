//! `id`: an IKE identity written as text, classified into its ID type (RFC 7296 §3.5).

use std::net::IpAddr;

/// One attribute of an ASN.1 distinguished name, e.g. `CN=gw-a`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdn {
    /// The attribute type, in its canonical short form (`C`, `ST`, `L`, `O`, `OU`, `CN`, `DC`,
    /// `E`, `SN`, `serialNumber`, `UID`).
    pub attr: &'static str,
    /// The value, trimmed.
    pub value: String,
}

/// An identity from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// ID_FQDN: `gw-a.example.net` (or `@gw-a` to force the FQDN type, as in strongSwan).
    Fqdn(String),
    /// ID_RFC822_ADDR: `user@example.net`.
    UserFqdn(String),
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_DER_ASN1_DN: `C=CH, O=x, CN=y`, attributes in the order written.
    Dn(Vec<Rdn>),
}

const ATTRS: &[(&str, &str)] = &[
    ("c", "C"),
    ("st", "ST"),
    ("l", "L"),
    ("o", "O"),
    ("ou", "OU"),
    ("cn", "CN"),
    ("dc", "DC"),
    ("e", "E"),
    ("email", "E"),
    ("emailaddress", "E"),
    ("sn", "SN"),
    ("serialnumber", "serialNumber"),
    ("uid", "UID"),
];

impl Identity {
    /// Classifies `s`: an IP address, a DN (contains `=`), a user FQDN (contains `@`), else an
    /// FQDN.
    pub fn parse(s: &str) -> Result<Identity, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty identity".into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Identity::Addr(ip));
        }
        if s.contains('=') {
            let mut rdns = Vec::new();
            for part in s.split(',') {
                let Some((attr, value)) = part.split_once('=') else {
                    return Err(format!("'{}' in DN '{s}' is not TYPE=value", part.trim()));
                };
                let key = attr.trim().to_ascii_lowercase();
                let Some(&(_, canon)) = ATTRS.iter().find(|(k, _)| *k == key) else {
                    return Err(format!(
                        "unknown attribute type '{}' in DN '{s}' (known: C, ST, L, O, OU, CN, DC, E, SN, serialNumber, UID)",
                        attr.trim()
                    ));
                };
                let value = value.trim();
                if value.is_empty() {
                    return Err(format!("empty {canon} in DN '{s}'"));
                }
                rdns.push(Rdn {
                    attr: canon,
                    value: value.to_string(),
                });
            }
            return Ok(Identity::Dn(rdns));
        }
        if let Some(fqdn) = s.strip_prefix('@') {
            check_fqdn(fqdn).map_err(|e| format!("'{s}': {e}"))?;
            return Ok(Identity::Fqdn(fqdn.to_string()));
        }
        if let Some((user, domain)) = s.split_once('@') {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("'{s}' is not a valid user@fqdn"));
            }
            check_fqdn(domain).map_err(|e| format!("'{s}': {e}"))?;
            return Ok(Identity::UserFqdn(s.to_string()));
        }
        check_fqdn(s).map_err(|e| {
            format!("'{s}' is not an FQDN, user@fqdn, IP address or ASN.1 DN ({e})")
        })?;
        Ok(Identity::Fqdn(s.to_string()))
    }
}

fn check_fqdn(s: &str) -> Result<(), String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return Err("a domain name has 1 to 253 characters".into());
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a domain label has 1 to 63 characters".into());
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("'{label}' is not a domain label"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(
            Identity::parse("gw-a.example.net").unwrap(),
            Identity::Fqdn("gw-a.example.net".into())
        );
        assert_eq!(Identity::parse("@gw").unwrap(), Identity::Fqdn("gw".into()));
        assert_eq!(
            Identity::parse("alice@example.net").unwrap(),
            Identity::UserFqdn("alice@example.net".into())
        );
        assert_eq!(
            Identity::parse("2001:db8::1").unwrap(),
            Identity::Addr("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("C=CH, O=x, cn=y").unwrap(),
            Identity::Dn(vec![
                Rdn {
                    attr: "C",
                    value: "CH".into()
                },
                Rdn {
                    attr: "O",
                    value: "x".into()
                },
                Rdn {
                    attr: "CN",
                    value: "y".into()
                },
            ])
        );
        assert!(Identity::parse("C=CH, XX=y")
            .unwrap_err()
            .contains("unknown attribute type 'XX'"));
        assert!(Identity::parse("not a name").is_err());
        assert!(Identity::parse("@").is_err());
        assert!(Identity::parse("a@").is_err());
    }
}

//! One charon instance's configuration: the connection a test wants, and the strongswan.conf
//! and swanctl.conf that say it to charon.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the two ends authenticate (the same method both ways).
#[derive(Clone, Debug)]
pub enum Auth {
    /// A pre-shared key (RFC 7296 §2.15), sent to charon as a quoted string.
    Psk(String),
    /// Certificates: this end's certificate and private key, and the CA certificate that must
    /// have signed the peer's (PEM or DER files, e.g. from [`crate::pki`]). charon always sends
    /// its certificate (`send_cert = always`), whether or not the peer asked with CERTREQ.
    Pubkey {
        /// This end's certificate.
        cert: PathBuf,
        /// This end's private key.
        key: PathBuf,
        /// The CA certificate the peer's certificate must chain to.
        cacert: PathBuf,
    },
}

/// When charon brings the Child SA up by itself (swanctl.conf `start_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAction {
    /// Only when told to ([`super::Charon::initiate`]) or when the peer initiates.
    #[default]
    None,
    /// Install a trap policy: the first matching packet starts the negotiation.
    Trap,
    /// Initiate as soon as the configuration is loaded.
    Start,
}

/// One IKE connection with one Child SA, as swanctl.conf says it. Addresses, identities,
/// proposals and traffic selectors are strings in strongSwan's own syntax, so anything
/// swanctl.conf accepts can be tested (`"%any"` as remote address for a responder only,
/// `"C=CH, O=xipsec, CN=moon"` as a DN identity, `"aes256gcm16-prfsha384-ecp384"`).
#[derive(Clone, Debug)]
pub struct CharonConfig {
    /// The IKE connection's name (what `--initiate --ike`, `--rekey --ike` and `--list-sas`
    /// use). Default "peer".
    pub name: String,
    /// The Child SA's name. Default "net".
    pub child: String,
    /// `local_addrs`: where charon listens and initiates from.
    pub local_addrs: String,
    /// `remote_addrs`: the peer.
    pub remote_addrs: String,
    /// `local_port`, when not 500.
    pub local_port: Option<u16>,
    /// `remote_port`, when not 500.
    pub remote_port: Option<u16>,
    /// This end's identity. Default: the local address.
    pub local_id: String,
    /// The identity the peer must prove. Default: the remote address.
    pub remote_id: String,
    /// PSK or certificates.
    pub auth: Auth,
    /// IKE proposals, most preferred first. Default `["aes128gcm16-prfsha256-x25519"]`.
    pub ike_proposals: Vec<String>,
    /// ESP proposals, most preferred first. Default `["aes128gcm16"]`.
    pub esp_proposals: Vec<String>,
    /// The Child SA's local traffic selectors. Empty means `dynamic` (the IKE address); note
    /// that kernel-libipsec only installs a Child SA when the namespace has an address inside
    /// the local selector, so tests put one on `lo`.
    pub local_ts: Vec<String>,
    /// The Child SA's remote traffic selectors. Empty means `dynamic`.
    pub remote_ts: Vec<String>,
    /// When charon brings the Child SA up by itself.
    pub start_action: StartAction,
    /// `dpd_delay`: liveness checks after this much silence. None: none.
    pub dpd_delay: Option<Duration>,
    /// The IKE SA's `rekey_time` (whole seconds). None: strongSwan's default (4 h).
    pub ike_rekey_time: Option<Duration>,
    /// The Child SA's `rekey_time` (whole seconds). None: strongSwan's default (1 h).
    pub child_rekey_time: Option<Duration>,
    /// `encap = yes`: force UDP encapsulation of ESP. kernel-libipsec uses ESP in UDP 4500
    /// whatever this says (it fakes NAT detection), so the peer must speak NAT-T anyway.
    pub encap: bool,
    /// Extra `key = value` lines for the connection section (e.g. `("mobike", "no")`,
    /// `("fragmentation", "yes")`, `("reauth_time", "0")`). Values are written as they are.
    pub conn_options: Vec<(String, String)>,
    /// Extra `key = value` lines for the child section (e.g. `("dpd_action", "restart")`,
    /// `("mode", "transport")`, `("life_time", "20s")`).
    pub child_options: Vec<(String, String)>,
    /// Extra `key = value` lines for strongswan.conf's `charon` section (e.g.
    /// `("retransmit_tries", "2")`, `("port", "10500")`).
    pub charon_options: Vec<(String, String)>,
    /// The filelog level of every subsystem (-1..4); `ike`, `cfg`, `chd` and `knl` log at
    /// least at 2. Default 1.
    pub log_level: i8,
}

impl CharonConfig {
    /// A connection from `local_addr` to `remote_addr` with `auth`, the identities set to the
    /// addresses, AES-GCM-128 with X25519 for IKE, AES-GCM-128 for ESP, dynamic traffic
    /// selectors, and every other setting at strongSwan's default.
    pub fn new(local_addr: &str, remote_addr: &str, auth: Auth) -> CharonConfig {
        CharonConfig {
            name: "peer".to_owned(),
            child: "net".to_owned(),
            local_addrs: local_addr.to_owned(),
            remote_addrs: remote_addr.to_owned(),
            local_port: None,
            remote_port: None,
            local_id: local_addr.to_owned(),
            remote_id: remote_addr.to_owned(),
            auth,
            ike_proposals: vec!["aes128gcm16-prfsha256-x25519".to_owned()],
            esp_proposals: vec!["aes128gcm16".to_owned()],
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            start_action: StartAction::None,
            dpd_delay: None,
            ike_rekey_time: None,
            child_rekey_time: None,
            encap: false,
            conn_options: Vec::new(),
            child_options: Vec::new(),
            charon_options: Vec::new(),
            log_level: 1,
        }
    }
}

/// The plugins charon loads: crypto for every suite the tests use (openssl: ECDSA, RSA,
/// Ed25519, ECP and MODP groups; curve25519; gcm and aes), credentials in PEM, ESP in user
/// space (kernel-libipsec, since the kernel has no ESP here) and the vici control socket.
pub const PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation \
constraints aes sha1 sha2 hmac gcm curve25519 kdf kernel-libipsec kernel-netlink socket-default \
vici";

/// What swanctl needs to read credentials and talk to charon (and nothing that complains about
/// a missing TPM).
const SWANCTL_PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey";

/// The certificate files [`Auth::Pubkey`] needs under swanctl/: (source, subdirectory, name).
pub(super) fn credential_files(auth: &Auth) -> Vec<(&Path, &'static str, &'static str)> {
    match auth {
        Auth::Psk(_) => Vec::new(),
        Auth::Pubkey { cert, key, cacert } => vec![
            (cert.as_path(), "x509", "local.pem"),
            (key.as_path(), "private", "local.pem"),
            (cacert.as_path(), "x509ca", "ca.pem"),
        ],
    }
}

/// strongswan.conf for an instance whose files live in `dir`.
pub(super) fn strongswan_conf(conf: &CharonConfig, dir: &Path) -> String {
    let at_least_2 = conf.log_level.max(2);
    let mut out = String::new();
    let _ = writeln!(out, "charon {{");
    let _ = writeln!(out, "  load_modular = no");
    let _ = writeln!(out, "  load = {PLUGINS}");
    let _ = writeln!(out, "  install_virtual_ip = no");
    for (key, value) in &conf.charon_options {
        let _ = writeln!(out, "  {key} = {value}");
    }
    let _ = writeln!(out, "  plugins {{");
    let _ = writeln!(
        out,
        "    vici {{\n      socket = {}\n    }}",
        quote(&format!("unix://{}", dir.join("charon.vici").display()))
    );
    let _ = writeln!(out, "  }}");
    // No syslog: everything goes to the instance's own file.
    let _ = writeln!(out, "  syslog {{\n  }}");
    let _ = writeln!(out, "  filelog {{\n    test {{");
    let _ = writeln!(
        out,
        "      path = {}",
        quote(&dir.join("charon.log").display().to_string())
    );
    let _ = writeln!(out, "      time_format = \"%H:%M:%S\"");
    let _ = writeln!(out, "      flush_line = yes");
    let _ = writeln!(out, "      default = {}", conf.log_level);
    for subsystem in ["ike", "cfg", "chd", "knl"] {
        let _ = writeln!(out, "      {subsystem} = {at_least_2}");
    }
    let _ = writeln!(out, "    }}\n  }}");
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "swanctl {{\n  load = {SWANCTL_PLUGINS}\n}}");
    out
}

/// swanctl.conf: the one connection and, for PSK, its secret.
pub(super) fn swanctl_conf(conf: &CharonConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "connections {{");
    let _ = writeln!(out, "  {} {{", conf.name);
    let _ = writeln!(out, "    version = 2");
    let _ = writeln!(out, "    local_addrs = {}", quote(&conf.local_addrs));
    let _ = writeln!(out, "    remote_addrs = {}", quote(&conf.remote_addrs));
    if let Some(port) = conf.local_port {
        let _ = writeln!(out, "    local_port = {port}");
    }
    if let Some(port) = conf.remote_port {
        let _ = writeln!(out, "    remote_port = {port}");
    }
    let _ = writeln!(
        out,
        "    proposals = {}",
        quote(&conf.ike_proposals.join(","))
    );
    if let Some(delay) = conf.dpd_delay {
        let _ = writeln!(out, "    dpd_delay = {}s", delay.as_secs());
    }
    if let Some(time) = conf.ike_rekey_time {
        let _ = writeln!(out, "    rekey_time = {}s", time.as_secs());
    }
    if conf.encap {
        let _ = writeln!(out, "    encap = yes");
    }
    let (method, local_extra, remote_extra) = match &conf.auth {
        Auth::Psk(_) => ("psk", "", ""),
        Auth::Pubkey { .. } => {
            // Whether or not the peer sent CERTREQ.
            let _ = writeln!(out, "    send_cert = always");
            (
                "pubkey",
                "      certs = local.pem\n",
                "      cacerts = ca.pem\n",
            )
        }
    };
    for (key, value) in &conf.conn_options {
        let _ = writeln!(out, "    {key} = {value}");
    }
    let _ = writeln!(out, "    local {{");
    let _ = writeln!(out, "      auth = {method}");
    let _ = writeln!(out, "      id = {}", quote(&conf.local_id));
    let _ = write!(out, "{local_extra}");
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "    remote {{");
    let _ = writeln!(out, "      auth = {method}");
    let _ = writeln!(out, "      id = {}", quote(&conf.remote_id));
    let _ = write!(out, "{remote_extra}");
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "    children {{");
    let _ = writeln!(out, "      {} {{", conf.child);
    let _ = writeln!(out, "        local_ts = {}", selectors(&conf.local_ts));
    let _ = writeln!(out, "        remote_ts = {}", selectors(&conf.remote_ts));
    let _ = writeln!(
        out,
        "        esp_proposals = {}",
        quote(&conf.esp_proposals.join(","))
    );
    let start_action = match conf.start_action {
        StartAction::None => "none",
        StartAction::Trap => "trap",
        StartAction::Start => "start",
    };
    let _ = writeln!(out, "        start_action = {start_action}");
    if let Some(time) = conf.child_rekey_time {
        let _ = writeln!(out, "        rekey_time = {}s", time.as_secs());
    }
    for (key, value) in &conf.child_options {
        let _ = writeln!(out, "        {key} = {value}");
    }
    let _ = writeln!(out, "      }}\n    }}\n  }}\n}}");
    if let Auth::Psk(secret) = &conf.auth {
        let _ = writeln!(
            out,
            "secrets {{\n  ike-peer {{\n    secret = {}\n  }}\n}}",
            quote(secret)
        );
    }
    out
}

fn selectors(list: &[String]) -> String {
    if list.is_empty() {
        "dynamic".to_owned()
    } else {
        quote(&list.join(","))
    }
}

/// A double-quoted strongSwan settings string: backslash and double quote escaped.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_the_settings_parser_would_end_a_string_on() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn psk_connection_says_what_was_asked() {
        let mut conf = CharonConfig::new("10.0.0.1", "10.0.0.2", Auth::Psk("s3cret".into()));
        conf.local_ts = vec!["10.1.0.0/24".into()];
        conf.child_rekey_time = Some(Duration::from_secs(7));
        let text = swanctl_conf(&conf);
        for line in [
            "local_addrs = \"10.0.0.1\"",
            "remote_addrs = \"10.0.0.2\"",
            "auth = psk",
            "local_ts = \"10.1.0.0/24\"",
            "remote_ts = dynamic",
            "proposals = \"aes128gcm16-prfsha256-x25519\"",
            "esp_proposals = \"aes128gcm16\"",
            "rekey_time = 7s",
            "secret = \"s3cret\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}

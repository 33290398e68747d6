//! Walks the parsed TOML (every key and value with its span) into the typed [`Config`],
//! validating as it goes and collecting every error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use zeroize::{Zeroize, Zeroizing};

use super::diag::line_col;
use super::macros::{expand, Expanded};
use super::secret::{check_readable, decode_hex, read_secret_file};
use super::*;

type V<'i> = Spanned<DeValue<'i>>;

#[path = "certs.rs"]
pub(super) mod certs;

/// The IKE and Child SA lifetime range TNSR accepts, in seconds.
const LIFETIME: (i128, i128) = (120, 214_783_647);
const DEFAULT_IKE_PROPOSALS: &[&str] = &["aes128gcm16-prfsha256-x25519"];
const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes128gcm16"];
const DEFAULT_REPLAY_WINDOW: u32 = 1024;

struct Cx<'a> {
    file: &'a str,
    original: &'a str,
    expanded: &'a Expanded,
    base_dir: &'a Path,
    diags: Vec<(usize, Diagnostic)>,
}

impl Cx<'_> {
    fn err(&mut self, span: &Range<usize>, path: &str, message: impl Into<String>) {
        let offset = self.expanded.original_offset(span.start);
        self.err_at(offset, path, message);
    }

    fn err_at(&mut self, offset: usize, path: &str, message: impl Into<String>) {
        self.diags.push((
            offset,
            Diagnostic {
                file: self.file.to_string(),
                position: Some(line_col(self.original, offset)),
                path: path.to_string(),
                message: message.into(),
            },
        ));
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.original, self.expanded.original_offset(span.start)).0
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// A table being read: its keys are checked against the known ones on creation.
struct Tbl<'t, 'i> {
    t: &'t DeTable<'i>,
    span: Range<usize>,
    path: String,
}

impl<'t, 'i> Tbl<'t, 'i> {
    fn new(cx: &mut Cx<'_>, v: &'t V<'i>, path: String, known: &[&str]) -> Option<Self> {
        let Some(t) = v.get_ref().as_table() else {
            cx.err(
                &v.span(),
                &path,
                format!("expected a table, found {}", v.get_ref().type_str()),
            );
            return None;
        };
        let tbl = Tbl {
            t,
            span: v.span(),
            path,
        };
        for (k, _) in tbl.t.iter() {
            if !known.contains(&k.get_ref().as_ref()) {
                cx.err(
                    &k.span(),
                    &tbl.p(k.get_ref()),
                    format!("unknown key; known keys here: {}", known.join(", ")),
                );
            }
        }
        Some(tbl)
    }

    fn get(&self, key: &str) -> Option<&'t V<'i>> {
        self.t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn p(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    fn required(&self, cx: &mut Cx<'_>, key: &str) -> Option<&'t V<'i>> {
        let v = self.get(key);
        if v.is_none() {
            let path = if self.path.is_empty() { "" } else { &self.path };
            cx.err(&self.span, path, format!("missing required key '{key}'"));
        }
        v
    }
}

fn type_err(cx: &mut Cx<'_>, v: &V<'_>, path: &str, want: &str) {
    cx.err(
        &v.span(),
        path,
        format!("expected {want}, found {}", v.get_ref().type_str()),
    );
}

fn string<'v>(cx: &mut Cx<'_>, v: &'v V<'_>, path: &str) -> Option<&'v str> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        _ => {
            type_err(cx, v, path, "a string");
            None
        }
    }
}

fn boolean(cx: &mut Cx<'_>, v: &V<'_>, path: &str) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            type_err(cx, v, path, "true or false");
            None
        }
    }
}

fn integer(cx: &mut Cx<'_>, v: &V<'_>, path: &str) -> Option<i128> {
    match v.get_ref() {
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(n),
            Err(_) => {
                cx.err(&v.span(), path, "integer out of range");
                None
            }
        },
        _ => {
            type_err(cx, v, path, "an integer");
            None
        }
    }
}

fn ranged(cx: &mut Cx<'_>, v: &V<'_>, path: &str, lo: i128, hi: i128) -> Option<i128> {
    let n = integer(cx, v, path)?;
    if n < lo || n > hi {
        cx.err(&v.span(), path, format!("{n} is out of range {lo}..={hi}"));
        return None;
    }
    Some(n)
}

fn seconds(
    cx: &mut Cx<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
    range: (i128, i128),
    default: u64,
) -> Duration {
    let secs = t
        .get(key)
        .and_then(|v| ranged(cx, v, &t.p(key), range.0, range.1))
        .map_or(default, |n| n as u64);
    Duration::from_secs(secs)
}

fn flag(cx: &mut Cx<'_>, t: &Tbl<'_, '_>, key: &str, default: bool) -> bool {
    t.get(key)
        .and_then(|v| boolean(cx, v, &t.p(key)))
        .unwrap_or(default)
}

/// An array of strings (a single string is taken as a one-element array).
fn strings<'v>(cx: &mut Cx<'_>, v: &'v V<'_>, path: &str) -> Vec<(&'v str, Range<usize>)> {
    match v.get_ref() {
        DeValue::String(s) => vec![(s.as_ref(), v.span())],
        DeValue::Array(a) => a
            .iter()
            .filter_map(|e| string(cx, e, path).map(|s| (s, e.span())))
            .collect(),
        _ => {
            type_err(cx, v, path, "an array of strings");
            vec![]
        }
    }
}

fn keyword<T: Copy>(
    cx: &mut Cx<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let v = t.get(key)?;
    let path = t.p(key);
    let s = string(cx, v, &path)?;
    match options.iter().find(|(k, _)| *k == s) {
        Some((_, x)) => Some(*x),
        None => {
            let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
            cx.err(
                &v.span(),
                &path,
                format!("'{s}' is not one of {}", names.join(", ")),
            );
            None
        }
    }
}

fn name(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> (String, Range<usize>) {
    let Some(v) = t.required(cx, "name") else {
        return (String::new(), t.span.clone());
    };
    let path = t.p("name");
    let Some(s) = string(cx, v, &path) else {
        return (String::new(), v.span());
    };
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        cx.err(
            &v.span(),
            &path,
            format!("'{s}' is not a valid name (1 to 64 letters, digits, '-', '_', '.')"),
        );
    }
    (s.to_string(), v.span())
}

fn duplicates(
    cx: &mut Cx<'_>,
    names: &[(String, Range<usize>)],
    path: impl Fn(usize) -> String,
    what: &str,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (n, span)) in names.iter().enumerate() {
        if n.is_empty() {
            continue;
        }
        if let Some(&first) = seen.get(n.as_str()) {
            let line = cx.line_of(&names[first].1);
            cx.err(
                span,
                &path(i),
                format!("duplicate {what} name '{n}' (first at line {line})"),
            );
        } else {
            seen.insert(n, i);
        }
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn net_family(n: &IpNet) -> &'static str {
    family(&n.addr())
}

fn ip(cx: &mut Cx<'_>, v: &V<'_>, path: &str) -> Option<IpAddr> {
    let s = string(cx, v, path)?;
    match s.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.err(&v.span(), path, format!("'{s}' is not an IP address"));
            None
        }
    }
}

fn prefix(s: &str) -> Result<IpNet, String> {
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| format!("'{s}' is not a prefix"))?;
        if net.trunc() != net {
            return Err(format!(
                "'{s}' has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let a: IpAddr = s.parse().map_err(|_| format!("'{s}' is not a prefix"))?;
        Ok(IpNet::from(a))
    }
}

fn prefixes(cx: &mut Cx<'_>, t: &Tbl<'_, '_>, key: &str) -> Option<Vec<(IpNet, Range<usize>)>> {
    let v = t.get(key)?;
    let path = t.p(key);
    let mut out = vec![];
    for (s, span) in strings(cx, v, &path) {
        match prefix(s) {
            Ok(n) => out.push((n, span)),
            Err(e) => cx.err(&span, &path, e),
        }
    }
    Some(out)
}

/// Traffic selectors: the families of both sides must match; in transport mode each must also be
/// a host prefix of the family of the outer addresses.
fn check_ts(
    cx: &mut Cx<'_>,
    t: &Tbl<'_, '_>,
    mode: Mode,
    local_ts: &[(IpNet, Range<usize>)],
    remote_ts: &[(IpNet, Range<usize>)],
    outer: (&[IpAddr], &[IpAddr], &str),
) {
    for (mine, other, key, other_key) in [
        (local_ts, remote_ts, "local_ts", "remote_ts"),
        (remote_ts, local_ts, "remote_ts", "local_ts"),
    ] {
        for (n, span) in mine {
            if !other.is_empty() && !other.iter().any(|(o, _)| net_family(o) == net_family(n)) {
                cx.err(
                    span,
                    &t.p(key),
                    format!(
                        "'{n}' is {} but {other_key} has no {} prefix",
                        net_family(n),
                        net_family(n)
                    ),
                );
            }
        }
    }
    match mode {
        Mode::Tunnel => {}
        Mode::Transport => {
            for (ts, addrs, key) in [
                (local_ts, outer.0, "local_ts"),
                (remote_ts, outer.1, "remote_ts"),
            ] {
                for (n, span) in ts {
                    if n.prefix_len() != n.max_prefix_len() {
                        cx.err(
                            span,
                            &t.p(key),
                            format!(
                                "'{n}' is not a host prefix (/32 or /128), as transport mode needs"
                            ),
                        );
                    } else if !addrs.is_empty() && !addrs.iter().any(|a| family(a) == net_family(n))
                    {
                        let what = if key == "local_ts" { "local" } else { "remote" };
                        cx.err(
                            span,
                            &t.p(key),
                            format!(
                                "'{n}' is {} but the {what} {} has no {} address (transport mode)",
                                net_family(n),
                                outer.2,
                                net_family(n)
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn replay_window(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> u32 {
    let Some(v) = t.get("replay_window") else {
        return DEFAULT_REPLAY_WINDOW;
    };
    let path = t.p("replay_window");
    match integer(cx, v, &path) {
        Some(n) if n == 0 || (64..=65536).contains(&n) => n as u32,
        Some(n) => {
            cx.err(
                &v.span(),
                &path,
                format!("{n} is out of range (0 = off, or 64..=65536)"),
            );
            DEFAULT_REPLAY_WINDOW
        }
        None => DEFAULT_REPLAY_WINDOW,
    }
}

const MODES: &[(&str, Mode)] = &[("tunnel", Mode::Tunnel), ("transport", Mode::Transport)];

/// `file:`, `hex:` or inline. Errors never quote the value.
fn secret(cx: &mut Cx<'_>, v: &V<'_>, path: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s = string(cx, v, path)?;
    let r = if let Some(p) = s.strip_prefix("file:") {
        read_secret_file(&cx.resolve(p))
    } else if let Some(h) = s.strip_prefix("hex:") {
        decode_hex(h.as_bytes()).map_err(|e| format!("hex: value is {e}"))
    } else {
        Ok(Zeroizing::new(s.as_bytes().to_vec()))
    };
    match r {
        Ok(b) if b.is_empty() => {
            cx.err(&v.span(), path, "empty secret");
            None
        }
        Ok(b) => Some(b),
        Err(e) => {
            cx.err(&v.span(), path, e);
            None
        }
    }
}

fn file_path(cx: &mut Cx<'_>, v: &V<'_>, path: &str, secret: bool) -> Option<PathBuf> {
    let s = string(cx, v, path)?;
    let p = cx.resolve(s);
    let r = if secret {
        read_secret_file(&p).map(drop)
    } else {
        check_readable(&p)
    };
    if let Err(e) = r {
        cx.err(&v.span(), path, e);
    }
    Some(p)
}

pub(super) fn parse(
    text: &str,
    file: &str,
    base_dir: &Path,
    macros: &Macros,
) -> Result<Config, Errors> {
    let (mut expanded, macro_errors) = expand(text, macros);
    let mut cx = Cx {
        file,
        original: text,
        expanded: &expanded,
        base_dir,
        diags: vec![],
    };
    for (offset, msg) in macro_errors {
        cx.err_at(offset, "", msg);
    }
    let config = if cx.diags.is_empty() {
        let (root, errors) = DeTable::parse_recoverable(&cx.expanded.text);
        // After a syntax error the parser's recovery often reports more on the same line:
        // keep the first of each line.
        let mut last_line = 0;
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            let line = cx.line_of(&span);
            if line != last_line {
                cx.err(&span, "", e.message().trim_end().to_string());
                last_line = line;
            }
        }
        if cx.diags.is_empty() {
            let root: V<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
            Some(config(&mut cx, &root))
        } else {
            None
        }
    } else {
        None
    };
    let mut diags = std::mem::take(&mut cx.diags);
    drop(cx);
    expanded.text.zeroize();
    diags.sort_by_key(|d| d.0);
    match config {
        Some(c) if diags.is_empty() => Ok(c),
        _ => Err(Errors(diags.into_iter().map(|d| d.1).collect())),
    }
}

fn config(cx: &mut Cx<'_>, root: &V<'_>) -> Config {
    let Some(top) = Tbl::new(
        cx,
        root,
        String::new(),
        &["daemon", "connection", "dataplane", "manual_sa"],
    ) else {
        return Config::default();
    };
    let daemon = top.get("daemon").map(|v| daemon(cx, v)).unwrap_or_default();
    let mut connections = vec![];
    let mut names = vec![];
    for (i, v) in array_of_tables(cx, &top, "connection") {
        let (c, span) = connection(cx, v, format!("connection[{i}]"), &daemon);
        names.push((c.name.clone(), span));
        connections.push(c);
    }
    duplicates(
        cx,
        &names,
        |i| format!("connection[{i}].name"),
        "connection",
    );
    let dataplane = top
        .get("dataplane")
        .map(|v| dataplane(cx, v))
        .unwrap_or_default();
    let mut manual_sas = vec![];
    let mut names = vec![];
    let mut spis: HashMap<u32, String> = HashMap::new();
    for (i, v) in array_of_tables(cx, &top, "manual_sa") {
        let path = format!("manual_sa[{i}]");
        let (sa, span, spi_span) = manual_sa(cx, v, path.clone());
        names.push((sa.name.clone(), span));
        if sa.direction == Direction::In && sa.spi != 0 {
            if let Some(other) = spis.get(&sa.spi) {
                let msg = format!(
                    "inbound SPI {:#x} is already used by manual_sa '{other}'",
                    sa.spi
                );
                cx.err(&spi_span, &format!("{path}.spi"), msg);
            } else {
                spis.insert(sa.spi, sa.name.clone());
            }
        }
        manual_sas.push(sa);
    }
    duplicates(cx, &names, |i| format!("manual_sa[{i}].name"), "manual_sa");
    Config {
        daemon,
        connections,
        dataplane,
        manual_sas,
    }
}

fn array_of_tables<'t, 'i>(cx: &mut Cx<'_>, t: &Tbl<'t, 'i>, key: &str) -> Vec<(usize, &'t V<'i>)> {
    match t.get(key) {
        None => vec![],
        Some(v) => match v.get_ref() {
            DeValue::Array(a) => a.iter().enumerate().collect(),
            _ => {
                cx.err(
                    &v.span(),
                    &t.p(key),
                    format!("expected [[{key}]] (an array of tables)"),
                );
                vec![]
            }
        },
    }
}

fn daemon(cx: &mut Cx<'_>, v: &V<'_>) -> Daemon {
    let Some(t) = Tbl::new(
        cx,
        v,
        "daemon".into(),
        &["listen", "retransmit_timeout", "retransmit_tries"],
    ) else {
        return Daemon::default();
    };
    let mut listen = vec![];
    if let Some(v) = t.get("listen") {
        for (s, span) in strings(cx, v, "daemon.listen") {
            match s.parse::<IpAddr>() {
                Ok(a) => listen.push(a),
                Err(_) => cx.err(
                    &span,
                    "daemon.listen",
                    format!("'{s}' is not an IP address"),
                ),
            }
        }
    }
    let retransmit_timeout = seconds(cx, &t, "retransmit_timeout", (1, 600), 4);
    let retransmit_tries = t
        .get("retransmit_tries")
        .and_then(|v| ranged(cx, v, &t.p("retransmit_tries"), 0, 30))
        .map_or(5, |n| n as u32);
    Daemon {
        listen,
        retransmit_timeout,
        retransmit_tries,
    }
}

fn addrs(cx: &mut Cx<'_>, v: &V<'_>, path: &str) -> Vec<(Addr, Range<usize>)> {
    let list = strings(cx, v, path);
    if list.is_empty() {
        cx.err(&v.span(), path, "needs at least one address (or \"%any\")");
    }
    let mut out = vec![];
    for (s, span) in &list {
        if *s == "%any" {
            if list.len() > 1 {
                cx.err(span, path, "'%any' cannot be combined with addresses");
            }
            out.push((Addr::Any, span.clone()));
        } else {
            match s.parse::<IpAddr>() {
                Ok(a) => out.push((Addr::Ip(a), span.clone())),
                Err(_) => cx.err(
                    span,
                    path,
                    format!("'{s}' is not an IP address or \"%any\""),
                ),
            }
        }
    }
    out
}

fn specific(addrs: &[(Addr, Range<usize>)]) -> Vec<IpAddr> {
    if addrs.iter().any(|(a, _)| *a == Addr::Any) {
        return vec![];
    }
    addrs
        .iter()
        .filter_map(|(a, _)| match a {
            Addr::Ip(ip) => Some(*ip),
            Addr::Any => None,
        })
        .collect()
}

const CONNECTION_KEYS: &[&str] = &[
    "name",
    "local_addrs",
    "remote_addrs",
    "ike_proposals",
    "dpd_interval",
    "rekey_time",
    "key_renewal",
    "mobike",
    "encap",
    "unique_ids",
    "local",
    "remote",
    "child",
];

fn placeholder_end() -> End {
    End {
        auth: AuthMethod::Psk,
        id: None,
        psk: None,
        cert: None,
        key: None,
        cacerts: vec![],
    }
}

fn connection(
    cx: &mut Cx<'_>,
    v: &V<'_>,
    path: String,
    daemon: &Daemon,
) -> (Connection, Range<usize>) {
    let mut c = Connection {
        name: String::new(),
        local_addrs: vec![Addr::Any],
        remote_addrs: vec![],
        ike_proposals: vec![],
        dpd_interval: Duration::ZERO,
        rekey_time: Duration::from_secs(14400),
        key_renewal: KeyRenewal::default(),
        mobike: true,
        encap: false,
        unique_ids: UniqueIds::default(),
        local: placeholder_end(),
        remote: placeholder_end(),
        children: vec![],
    };
    let Some(t) = Tbl::new(cx, v, path, CONNECTION_KEYS) else {
        return (c, v.span());
    };
    let (name, name_span) = name(cx, &t);
    c.name = name;
    let local = match t.get("local_addrs") {
        Some(v) => addrs(cx, v, &t.p("local_addrs")),
        None => vec![(Addr::Any, t.span.clone())],
    };
    let remote = match t.required(cx, "remote_addrs") {
        Some(v) => addrs(cx, v, &t.p("remote_addrs")),
        None => vec![],
    };
    let (local_ips, remote_ips) = (specific(&local), specific(&remote));
    if !local_ips.is_empty() {
        for (a, span) in &remote {
            if let Addr::Ip(ip) = a {
                if !local_ips.iter().any(|l| family(l) == family(ip)) {
                    cx.err(
                        span,
                        &t.p("remote_addrs"),
                        format!(
                            "'{ip}' is {} but local_addrs has no {} address",
                            family(ip),
                            family(ip)
                        ),
                    );
                }
            }
        }
    }
    if !daemon.listen.is_empty() {
        for (a, span) in &local {
            if let Addr::Ip(ip) = a {
                if !daemon.listen.contains(ip) {
                    cx.err(
                        span,
                        &t.p("local_addrs"),
                        format!("'{ip}' is not in daemon.listen"),
                    );
                }
            }
        }
    }
    c.local_addrs = local.iter().map(|(a, _)| *a).collect();
    c.remote_addrs = remote.iter().map(|(a, _)| *a).collect();

    let path = t.p("ike_proposals");
    c.ike_proposals = match t.get("ike_proposals") {
        Some(v) => {
            let list = strings(cx, v, &path);
            if list.is_empty() {
                cx.err(&v.span(), &path, "needs at least one proposal");
            }
            list.into_iter()
                .filter_map(|(s, span)| match IkeProposal::parse(s) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cx.err(&span, &path, e);
                        None
                    }
                })
                .collect()
        }
        None => DEFAULT_IKE_PROPOSALS
            .iter()
            .map(|s| IkeProposal::parse(s).expect("default proposal parses"))
            .collect(),
    };
    c.dpd_interval = seconds(cx, &t, "dpd_interval", (0, 3600), 0);
    c.rekey_time = seconds(cx, &t, "rekey_time", LIFETIME, 14400);
    c.key_renewal = keyword(
        cx,
        &t,
        "key_renewal",
        &[("rekey", KeyRenewal::Rekey), ("reauth", KeyRenewal::Reauth)],
    )
    .unwrap_or_default();
    c.mobike = flag(cx, &t, "mobike", true);
    c.encap = flag(cx, &t, "encap", false);
    c.unique_ids = keyword(
        cx,
        &t,
        "unique_ids",
        &[
            ("keep", UniqueIds::Keep),
            ("never", UniqueIds::Never),
            ("no", UniqueIds::No),
            ("replace", UniqueIds::Replace),
        ],
    )
    .unwrap_or_default();
    if let Some(v) = t.required(cx, "local") {
        c.local = end(cx, v, t.p("local"), true);
    }
    if let Some(v) = t.required(cx, "remote") {
        c.remote = end(cx, v, t.p("remote"), false);
    }
    // A PSK must be written somewhere if either side authenticates with one. (Only when both
    // `auth`s are valid, and judged by the keys written: a psk that failed to load has its own
    // error already.)
    let auth_of = |key: &str| {
        t.get(key)
            .and_then(|v| v.get_ref().as_table())
            .and_then(|e| e.iter().find(|(k, _)| k.get_ref() == "auth"))
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    };
    let has_psk = |key: &str| {
        t.get(key)
            .and_then(|v| v.get_ref().as_table())
            .is_some_and(|e| e.iter().any(|(k, _)| k.get_ref() == "psk"))
    };
    let (la, ra) = (auth_of("local"), auth_of("remote"));
    let valid = |a: &Option<String>| matches!(a.as_deref(), Some("psk" | "pubkey"));
    if valid(&la)
        && valid(&ra)
        && (la.as_deref() == Some("psk") || ra.as_deref() == Some("psk"))
        && !has_psk("local")
        && !has_psk("remote")
    {
        let key = if la.as_deref() == Some("psk") {
            "local"
        } else {
            "remote"
        };
        let span = t.get(key).map_or(t.span.clone(), |v| v.span());
        cx.err(
            &span,
            &t.p(key),
            "auth = \"psk\" needs a psk (in [connection.local] or [connection.remote])",
        );
    }
    let mut names = vec![];
    for (j, v) in array_of_tables(cx, &t, "child") {
        let (child, span) = child(
            cx,
            v,
            format!("{}[{j}]", t.p("child")),
            &local_ips,
            &remote_ips,
        );
        names.push((child.name.clone(), span));
        c.children.push(child);
    }
    duplicates(
        cx,
        &names,
        |j| format!("{}[{j}].name", t.p("child")),
        "child",
    );
    (c, name_span)
}

fn end(cx: &mut Cx<'_>, v: &V<'_>, path: String, local: bool) -> End {
    let known: &[&str] = if local {
        &["auth", "id", "psk", "cert", "key"]
    } else {
        &["auth", "id", "psk", "cacerts"]
    };
    let mut e = placeholder_end();
    let Some(t) = Tbl::new(cx, v, path, known) else {
        return e;
    };
    if t.required(cx, "auth").is_some() {
        e.auth = keyword(
            cx,
            &t,
            "auth",
            &[("psk", AuthMethod::Psk), ("pubkey", AuthMethod::Pubkey)],
        )
        .unwrap_or(AuthMethod::Psk);
    }
    let auth_ok = t
        .get("auth")
        .and_then(|v| v.get_ref().as_str())
        .is_some_and(|s| s == "psk" || s == "pubkey");
    if let Some(v) = t.get("id") {
        let path = t.p("id");
        if let Some(s) = string(cx, v, &path) {
            match Identity::parse(s) {
                Ok(id) => e.id = Some(id),
                Err(m) => cx.err(&v.span(), &path, m),
            }
        }
    }
    if let Some(v) = t.get("psk") {
        let path = t.p("psk");
        if auth_ok && e.auth != AuthMethod::Psk {
            cx.err(&v.span(), &path, "psk is only used with auth = \"psk\"");
        } else if let Some(b) = secret(cx, v, &path) {
            e.psk = Some(Secret::new(b.to_vec()));
        }
    }
    for key in ["cert", "key"] {
        if !local {
            break;
        }
        if let Some(v) = t.get(key) {
            let path = t.p(key);
            if auth_ok && e.auth != AuthMethod::Pubkey {
                cx.err(
                    &v.span(),
                    &path,
                    format!("{key} is only used with auth = \"pubkey\""),
                );
            } else {
                let p = file_path(cx, v, &path, key == "key");
                if key == "cert" {
                    e.cert = p;
                } else {
                    e.key = p;
                }
            }
        } else if local && auth_ok && e.auth == AuthMethod::Pubkey {
            cx.err(&t.span, &t.path, format!("auth = \"pubkey\" needs '{key}'"));
        }
    }
    if let Some(v) = t.get("cacerts").filter(|_| !local) {
        let path = t.p("cacerts");
        if auth_ok && e.auth != AuthMethod::Pubkey {
            cx.err(
                &v.span(),
                &path,
                "cacerts is only used with auth = \"pubkey\"",
            );
        } else {
            for (s, span) in strings(cx, v, &path) {
                let p = cx.resolve(s);
                if let Err(m) = check_readable(&p) {
                    cx.err(&span, &path, m);
                }
                e.cacerts.push(p);
            }
        }
    } else if !local && auth_ok && e.auth == AuthMethod::Pubkey {
        cx.err(&t.span, &t.path, "auth = \"pubkey\" needs 'cacerts'");
    }
    certs::check(cx, &t, &e, local);
    e
}

const CHILD_KEYS: &[&str] = &[
    "name",
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "mode",
    "start_action",
    "rekey_time",
    "replay_window",
    "per_cpu_sas",
    "rekey_bytes",
    "life_bytes",
    "rekey_packets",
    "life_packets",
];

fn child(
    cx: &mut Cx<'_>,
    v: &V<'_>,
    path: String,
    local_ips: &[IpAddr],
    remote_ips: &[IpAddr],
) -> (Child, Range<usize>) {
    let mut c = Child {
        name: String::new(),
        local_ts: vec![],
        remote_ts: vec![],
        esp_proposals: vec![],
        mode: Mode::Tunnel,
        start_action: StartAction::None,
        rekey_time: Duration::from_secs(3600),
        replay_window: DEFAULT_REPLAY_WINDOW,
        per_cpu_sas: 0,
        volume: VolumeLifetimes::default(),
    };
    let Some(t) = Tbl::new(cx, v, path, CHILD_KEYS) else {
        return (c, v.span());
    };
    let (name, name_span) = name(cx, &t);
    c.name = name;
    c.mode = keyword(cx, &t, "mode", MODES).unwrap_or_default();
    let ts = |cx: &mut Cx<'_>, key| {
        if c.mode == Mode::Tunnel {
            t.required(cx, key);
        }
        prefixes(cx, &t, key).unwrap_or_default()
    };
    let local_ts = ts(cx, "local_ts");
    let remote_ts = ts(cx, "remote_ts");
    check_ts(
        cx,
        &t,
        c.mode,
        &local_ts,
        &remote_ts,
        (local_ips, remote_ips, "local_addrs/remote_addrs"),
    );
    c.local_ts = local_ts.into_iter().map(|x| x.0).collect();
    c.remote_ts = remote_ts.into_iter().map(|x| x.0).collect();
    let path = t.p("esp_proposals");
    c.esp_proposals = match t.get("esp_proposals") {
        Some(v) => {
            let list = strings(cx, v, &path);
            if list.is_empty() {
                cx.err(&v.span(), &path, "needs at least one proposal");
            }
            list.into_iter()
                .filter_map(|(s, span)| match EspProposal::parse(s) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cx.err(&span, &path, e);
                        None
                    }
                })
                .collect()
        }
        None => DEFAULT_ESP_PROPOSALS
            .iter()
            .map(|s| EspProposal::parse(s).expect("default proposal parses"))
            .collect(),
    };
    c.start_action = keyword(
        cx,
        &t,
        "start_action",
        &[
            ("start", StartAction::Start),
            ("trap", StartAction::Trap),
            ("none", StartAction::None),
        ],
    )
    .unwrap_or_default();
    c.rekey_time = seconds(cx, &t, "rekey_time", LIFETIME, 3600);
    c.replay_window = replay_window(cx, &t);
    c.per_cpu_sas = per_cpu_sas(cx, &t);
    c.volume = volume_lifetimes(cx, &t);
    (c, name_span)
}

/// `rekey_bytes`/`life_bytes` and `rekey_packets`/`life_packets`: a life defaults to a tenth
/// past its rekey value and must exceed it.
fn volume_lifetimes(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> VolumeLifetimes {
    let mut pair = |rekey_key: &str, life_key: &str| {
        let count = |cx: &mut Cx<'_>, key: &str| {
            t.get(key)
                .and_then(|v| ranged(cx, v, &t.p(key), 0, i128::from(u64::MAX)))
                .map(|n| n as u64)
        };
        let rekey = count(cx, rekey_key).unwrap_or(0);
        let life = match count(cx, life_key) {
            Some(life) => {
                if rekey != 0 && life != 0 && life <= rekey {
                    let span = t.get(life_key).map(|v| v.span()).unwrap_or(t.span.clone());
                    cx.err(
                        &span,
                        &t.p(life_key),
                        format!("{life} must exceed {rekey_key} ({rekey}): the rekey comes first"),
                    );
                }
                life
            }
            None => rekey.saturating_add(rekey / 10),
        };
        (rekey, life)
    };
    let (rekey_bytes, life_bytes) = pair("rekey_bytes", "life_bytes");
    let (rekey_packets, life_packets) = pair("rekey_packets", "life_packets");
    VolumeLifetimes {
        rekey_bytes,
        life_bytes,
        rekey_packets,
        life_packets,
    }
}

/// `per_cpu_sas`: 0 (off) up to the IKE core's bound.
fn per_cpu_sas(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> u32 {
    let max = i128::from(crate::ike::ChildConfig::MAX_PER_RESOURCE_SAS);
    t.get("per_cpu_sas")
        .and_then(|v| ranged(cx, v, &t.p("per_cpu_sas"), 0, max))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn dataplane(cx: &mut Cx<'_>, v: &V<'_>) -> Dataplane {
    let mut d = Dataplane::default();
    let Some(t) = Tbl::new(
        cx,
        v,
        "dataplane".into(),
        &["interfaces", "backend", "workers", "sa_capacity"],
    ) else {
        return d;
    };
    if let Some(v) = t.get("interfaces") {
        let path = t.p("interfaces");
        for (s, span) in strings(cx, v, &path) {
            if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\t', ':']) {
                cx.err(&span, &path, format!("'{s}' is not an interface name (1 to 15 characters, no '/', ':' or spaces)"));
            } else if d.interfaces.iter().any(|i| i == s) {
                cx.err(&span, &path, format!("'{s}' is listed twice"));
            } else {
                d.interfaces.push(s.to_string());
            }
        }
    }
    d.backend = keyword(
        cx,
        &t,
        "backend",
        &[
            ("auto", Backend::Auto),
            ("afxdp", Backend::Afxdp),
            ("portable", Backend::Portable),
        ],
    )
    .unwrap_or_default();
    d.workers = t
        .get("workers")
        .and_then(|v| ranged(cx, v, "dataplane.workers", 1, 1024))
        .map(|n| n as u32);
    d.sa_capacity = t
        .get("sa_capacity")
        .and_then(|v| {
            let max = i128::from(xipsec_dataplane::table::MAX_CAPACITY);
            ranged(cx, v, "dataplane.sa_capacity", 2, max)
        })
        .map(|n| n as u32);
    d
}

const MANUAL_SA_KEYS: &[&str] = &[
    "name",
    "direction",
    "spi",
    "cipher",
    "key",
    "mode",
    "local",
    "remote",
    "local_ts",
    "remote_ts",
    "encap",
    "esn",
    "replay_window",
];

fn manual_sa(cx: &mut Cx<'_>, v: &V<'_>, path: String) -> (ManualSa, Range<usize>, Range<usize>) {
    let unspecified = IpAddr::from([0u8; 4]);
    let mut sa = ManualSa {
        name: String::new(),
        direction: Direction::Out,
        spi: 0,
        cipher: EspCipher::Aes128Gcm16,
        key: Secret::new(vec![]),
        mode: Mode::Tunnel,
        local: unspecified,
        remote: unspecified,
        local_ts: vec![],
        remote_ts: vec![],
        encap: None,
        esn: false,
        replay_window: DEFAULT_REPLAY_WINDOW,
    };
    let Some(t) = Tbl::new(cx, v, path, MANUAL_SA_KEYS) else {
        return (sa, v.span(), v.span());
    };
    let (name, name_span) = name(cx, &t);
    sa.name = name;
    if t.required(cx, "direction").is_some() {
        sa.direction = keyword(
            cx,
            &t,
            "direction",
            &[("out", Direction::Out), ("in", Direction::In)],
        )
        .unwrap_or(Direction::Out);
    }
    let mut spi_span = t.span.clone();
    if let Some(v) = t.required(cx, "spi") {
        spi_span = v.span();
        let path = t.p("spi");
        if let Some(n) = integer(cx, v, &path) {
            match n {
                0 => cx.err(&v.span(), &path, "SPI 0 is invalid"),
                1..=255 => cx.err(
                    &v.span(),
                    &path,
                    format!("SPI {n} is reserved (1..=255, RFC 4303 §2.1)"),
                ),
                256..=0xffff_ffff => sa.spi = n as u32,
                _ => cx.err(&v.span(), &path, format!("{n} does not fit in 32 bits")),
            }
        }
    }
    let mut cipher_ok = false;
    if let Some(v) = t.required(cx, "cipher") {
        let path = t.p("cipher");
        if let Some(s) = string(cx, v, &path) {
            match EspCipher::from_keyword(s) {
                Some(c) => {
                    sa.cipher = c;
                    cipher_ok = true;
                }
                None => cx.err(
                    &v.span(),
                    &path,
                    format!("'{s}' is not one of aes128gcm16, aes256gcm16, chacha20poly1305"),
                ),
            }
        }
    }
    if let Some(v) = t.required(cx, "key") {
        let path = t.p("key");
        if let Some(s) = string(cx, v, &path) {
            let bytes = if let Some(h) = s.strip_prefix("hex:") {
                decode_hex(h.as_bytes()).map_err(|e| format!("key is {e}"))
            } else if let Some(p) = s.strip_prefix("file:") {
                read_secret_file(&cx.resolve(p)).and_then(|text| {
                    let text = text.strip_prefix(b"hex:").unwrap_or(&text);
                    decode_hex(text).map_err(|e| format!("{p}: key is {e}"))
                })
            } else {
                Err("key must be \"hex:...\" or \"file:/path\"".to_string())
            };
            match bytes {
                Ok(b) if cipher_ok && b.len() != sa.cipher.keymat_len() => cx.err(
                    &v.span(),
                    &path,
                    format!(
                        "{} needs {} bytes of key and salt, got {}",
                        sa.cipher,
                        sa.cipher.keymat_len(),
                        b.len()
                    ),
                ),
                Ok(b) => sa.key = Secret::new(b.to_vec()),
                Err(e) => cx.err(&v.span(), &path, e),
            }
        }
    }
    sa.mode = keyword(cx, &t, "mode", MODES).unwrap_or_default();
    let local = t
        .required(cx, "local")
        .and_then(|v| ip(cx, v, &t.p("local")));
    let remote_v = t.required(cx, "remote");
    let remote = remote_v.and_then(|v| ip(cx, v, &t.p("remote")));
    if let (Some(l), Some(r), Some(rv)) = (local, remote, remote_v) {
        if family(&l) != family(&r) {
            cx.err(
                &rv.span(),
                &t.p("remote"),
                format!("'{r}' is {} but local is {}", family(&r), family(&l)),
            );
        }
    }
    sa.local = local.unwrap_or(unspecified);
    sa.remote = remote.unwrap_or(unspecified);
    let ts = |cx: &mut Cx<'_>, key| {
        if sa.mode == Mode::Tunnel {
            t.required(cx, key);
        }
        prefixes(cx, &t, key).unwrap_or_default()
    };
    let local_ts = ts(cx, "local_ts");
    let remote_ts = ts(cx, "remote_ts");
    let (lo, ro): (Vec<IpAddr>, Vec<IpAddr>) =
        (local.into_iter().collect(), remote.into_iter().collect());
    check_ts(
        cx,
        &t,
        sa.mode,
        &local_ts,
        &remote_ts,
        (&lo, &ro, "address"),
    );
    sa.local_ts = local_ts.into_iter().map(|x| x.0).collect();
    sa.remote_ts = remote_ts.into_iter().map(|x| x.0).collect();
    if sa.mode == Mode::Transport {
        if sa.local_ts.is_empty() {
            sa.local_ts = lo.iter().map(|a| IpNet::from(*a)).collect();
        }
        if sa.remote_ts.is_empty() {
            sa.remote_ts = ro.iter().map(|a| IpNet::from(*a)).collect();
        }
    }
    if let Some(v) = t.get("encap") {
        let path = t.p("encap");
        match v.get_ref() {
            DeValue::Boolean(false) => {}
            DeValue::Table(_) => {
                if let Some(e) = Tbl::new(cx, v, path.clone(), &["sport", "dport"]) {
                    let port = |cx: &mut Cx<'_>, key| {
                        e.required(cx, key)
                            .and_then(|v| ranged(cx, v, &e.p(key), 1, 65535))
                            .map(|n| n as u16)
                    };
                    let (sport, dport) = (port(cx, "sport"), port(cx, "dport"));
                    if let (Some(sport), Some(dport)) = (sport, dport) {
                        sa.encap = Some(UdpEncap { sport, dport });
                    }
                }
            }
            _ => cx.err(
                &v.span(),
                &path,
                "expected false or { sport = 4500, dport = 4500 }",
            ),
        }
    }
    sa.esn = flag(cx, &t, "esn", false);
    sa.replay_window = replay_window(cx, &t);
    (sa, name_span, spi_span)
}

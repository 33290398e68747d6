//! `status` and `counters` as text.

use std::io::{self, Write};

use crate::ctl::protocol::{CountersInfo, StatusInfo};

/// Writes the daemon's status:
///
/// ```text
/// xipsecd 0.1.0, pid 4242, up 1d 2h 3m 4s
///   config:      /etc/xipsec/xipsec.toml
///   data plane:  afxdp (xipsec-dataplane, pid 4343)
///   connections: 2
///   IKE SAs:     1
///   Child SAs:   1
/// ```
pub fn status(w: &mut impl Write, s: &StatusInfo) -> io::Result<()> {
    write!(w, "xipsecd {}, pid {}, up ", s.version, s.pid)?;
    uptime(w, s.uptime_secs)?;
    writeln!(w)?;
    writeln!(w, "  config:      {}", s.config_file)?;
    match s.dataplane_pid {
        Some(pid) => writeln!(
            w,
            "  data plane:  {} (xipsec-dataplane, pid {pid})",
            s.backend
        )?,
        None => writeln!(w, "  data plane:  {}", s.backend)?,
    }
    writeln!(w, "  connections: {}", s.connections)?;
    writeln!(w, "  IKE SAs:     {}", s.ike_sas)?;
    writeln!(w, "  Child SAs:   {}", s.child_sas)
}

fn uptime(w: &mut impl Write, secs: u64) -> io::Result<()> {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        write!(w, "{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        write!(w, "{h}h {m}m {s}s")
    } else if m > 0 {
        write!(w, "{m}m {s}s")
    } else {
        write!(w, "{s}s")
    }
}

/// Writes each counter on its own line, names left-aligned and values right-aligned, a blank
/// line between groups (the part of the name before the first `.`).
pub fn counters(w: &mut impl Write, c: &CountersInfo) -> io::Result<()> {
    if c.counters.is_empty() {
        return writeln!(w, "no counters");
    }
    let name_width = c
        .counters
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0);
    let value_width = c.counters.values().map(|v| digits(*v)).max().unwrap_or(1);
    let mut group: Option<&str> = None;
    for (name, value) in &c.counters {
        let g = name.split('.').next().unwrap_or(name);
        if group.is_some_and(|prev| prev != g) {
            writeln!(w)?;
        }
        group = Some(g);
        writeln!(w, "{name:<name_width$}  {value:>value_width$}")?;
    }
    Ok(())
}

fn digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_layout() {
        let s = StatusInfo {
            version: "0.1.0".into(),
            pid: 4242,
            uptime_secs: 86_400 + 2 * 3600 + 3 * 60 + 4,
            config_file: "/etc/xipsec/xipsec.toml".into(),
            connections: 2,
            ike_sas: 1,
            child_sas: 3,
            backend: "afxdp".into(),
            dataplane_pid: Some(4343),
        };
        let mut out = Vec::new();
        status(&mut out, &s).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
xipsecd 0.1.0, pid 4242, up 1d 2h 3m 4s
  config:      /etc/xipsec/xipsec.toml
  data plane:  afxdp (xipsec-dataplane, pid 4343)
  connections: 2
  IKE SAs:     1
  Child SAs:   3
"
        );
        for (secs, text) in [(0, "0s"), (61, "1m 1s"), (3600, "1h 0m 0s")] {
            let mut out = Vec::new();
            uptime(&mut out, secs).unwrap();
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn counters_aligned_and_grouped() {
        let mut c = CountersInfo::default();
        c.counters.insert("ike.datagrams_in".into(), 12);
        c.counters.insert("ike.dropped.bad_spi".into(), 3);
        c.counters.insert("dataplane.packets_out".into(), 1_000_000);
        let mut out = Vec::new();
        counters(&mut out, &c).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
dataplane.packets_out  1000000

ike.datagrams_in            12
ike.dropped.bad_spi          3
"
        );
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(u64::MAX), 20);
    }
}

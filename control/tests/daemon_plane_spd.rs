//! The daemon's SPD writes at hub scale: from the data plane's sharing threshold on, installs
//! only mark the SPD and one flush writes a whole burst of them; below it every install is in
//! the table at once. Checked through the data plane's reader, as a worker sees the table.

use std::fmt::Write as _;

use xipsec_control::config::{Config, Macros};
use xipsec_control::daemon::Plane;
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::SHARED_FROM;

/// `count` outbound manual SAs, one per site /24 from 16.0.0.0 on, starting at site `first`.
fn sites(first: usize, count: usize) -> String {
    let mut text = String::new();
    for i in first..first + count {
        let network = 0x1000_0000u32 + ((i as u32) << 8);
        let _ = write!(
            text,
            "[[manual_sa]]\nname = \"s{i}\"\ndirection = \"out\"\nspi = {}\n\
             cipher = \"aes128gcm16\"\nkey = \"hex:000102030405060708090a0b0c0d0e0f10111213\"\n\
             local = \"198.51.100.1\"\nremote = \"198.51.100.2\"\nlocal_ts = [\"10.1.0.0/16\"]\n\
             remote_ts = [\"{}/24\"]\n\n",
            0x1_0000 + i,
            std::net::Ipv4Addr::from(network)
        );
    }
    text
}

#[test]
fn a_large_spd_is_written_once_per_burst_a_small_one_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("spd.table");
    let below = SHARED_FROM - 1;
    let config = |text: &str| Config::parse(text, "spd", dir.path(), &Macros::new()).unwrap();
    let mut plane = Plane::create(&table, 2 * SHARED_FROM as u32).unwrap();
    plane.defer_spd_writes();
    let reader = TableReader::open(&table).unwrap();
    let policies = || {
        let mut out = Vec::new();
        reader.read_policies(&mut out).unwrap();
        out.len()
    };
    // Small: each install is in the table before install_manual returns.
    for sa in &config(&sites(0, below)).manual_sas {
        plane.install_manual(sa).unwrap();
    }
    assert_eq!(policies(), below);
    // From the threshold on: marked, written by the flush, all at once.
    let version = reader.spd_version();
    for sa in &config(&sites(below, 3)).manual_sas {
        plane.install_manual(sa).unwrap();
    }
    assert_eq!(
        reader.spd_version(),
        version,
        "nothing written before the flush"
    );
    assert_eq!(policies(), below);
    plane.flush_spd().unwrap();
    assert_eq!(policies(), below + 3);
    assert_ne!(reader.spd_version(), version);
    // A flush with nothing new writes nothing.
    let version = reader.spd_version();
    plane.flush_spd().unwrap();
    assert_eq!(reader.spd_version(), version);
}

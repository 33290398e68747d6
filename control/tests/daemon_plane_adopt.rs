//! A control plane restarted beside a running data plane re-attaches to the SA table instead of
//! recreating it: its manual SAs take their slots back untouched (sequence numbers and replay
//! state live there), and SAs no one claims keep forwarding for a grace period, then go.
//! Checked through the data plane's reader, as a worker sees the table.

use std::time::{Duration, Instant};

use xipsec_control::config::{Config, Macros};
use xipsec_control::daemon::{Plane, ORPHAN_GRACE};
use xipsec_dataplane::table::{Direction, TableReader};

const OUT_KEY: &str =
    "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const IN_KEY: &str = "hex:000102030405060708090a0b0c0d0e0f10111213";

fn manual(name: &str, direction: &str, spi: u32, key: &str, remote_ts: &str) -> String {
    format!(
        r#"
[[manual_sa]]
name = "{name}"
direction = "{direction}"
spi = {spi}
cipher = "{cipher}"
key = "{key}"
local = "198.51.100.1"
remote = "198.51.100.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["{remote_ts}"]
"#,
        cipher = if key.len() > 50 {
            "aes256gcm16"
        } else {
            "aes128gcm16"
        },
    )
}

fn config(dir: &std::path::Path, text: &str) -> Config {
    Config::parse(text, "adopt", dir, &Macros::new()).expect("valid config")
}

#[test]
fn a_restarted_control_plane_takes_its_manual_sas_back_and_lets_the_rest_expire() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("adopt.table");
    let first = config(
        dir.path(),
        &[
            manual("out", "out", 0x7001, OUT_KEY, "10.2.0.0/24"),
            manual("in", "in", 0x7002, IN_KEY, "10.2.0.0/24"),
            // Gone from the file by the restart: an orphan.
            manual("old", "out", 0x7003, OUT_KEY, "10.3.0.0/24"),
        ]
        .concat(),
    );
    let mut plane = Plane::create(&table, 64).unwrap();
    let slots: Vec<_> = first
        .manual_sas
        .iter()
        .map(|sa| plane.install_manual(sa).unwrap())
        .collect();
    let reader = TableReader::open(&table).unwrap();
    let versions: Vec<_> = slots.iter().map(|s| reader.version(*s).unwrap()).collect();
    let mut before = Vec::new();
    reader.read_policies(&mut before).unwrap();
    // The control plane dies; the table (and a worker reading it) stays.
    drop(plane);

    let started = Instant::now();
    let mut plane = Plane::adopt(&table, started).expect("re-attach");
    assert_eq!(
        plane.orphans(),
        3,
        "every installed SA is kept until claimed"
    );
    let mut after = Vec::new();
    reader.read_policies(&mut after).unwrap();
    assert_eq!(after, before, "the SPD is untouched by re-attaching");

    let second = config(
        dir.path(),
        &[
            manual("out", "out", 0x7001, OUT_KEY, "10.2.0.0/24"),
            manual("in", "in", 0x7002, IN_KEY, "10.2.0.0/24"),
        ]
        .concat(),
    );
    for (sa, slot) in second.manual_sas.iter().zip(&slots) {
        assert_eq!(
            plane.install_manual(sa).unwrap(),
            *slot,
            "{} takes its slot back",
            sa.name
        );
    }
    for (slot, version) in slots.iter().zip(&versions).take(2) {
        assert_eq!(
            reader.version(*slot),
            Some(*version),
            "a claimed slot is not rewritten (the workers' state for it stays valid)"
        );
    }
    assert_eq!(plane.orphans(), 1);

    assert_eq!(
        plane.expire_orphans(started + ORPHAN_GRACE - Duration::from_secs(1)),
        0
    );
    assert!(
        reader.read(slots[2]).is_ok(),
        "the orphan forwards during its grace"
    );
    assert_eq!(plane.expire_orphans(started + ORPHAN_GRACE), 1);
    assert!(
        reader.read(slots[2]).is_err(),
        "the orphan is gone after its grace"
    );
    let mut last = Vec::new();
    reader.read_policies(&mut last).unwrap();
    assert_eq!(last.len(), 1, "only the claimed outbound SA's policy stays");
    assert_eq!(last[0].outbound, slots[0]);
    assert_eq!(plane.expire_orphans(started + ORPHAN_GRACE * 2), 0);
}

#[test]
fn a_manual_sa_whose_key_changed_across_the_restart_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("rekeyed.table");
    let first = config(
        dir.path(),
        &manual("in", "in", 0x7102, IN_KEY, "10.2.0.0/24"),
    );
    let mut plane = Plane::create(&table, 16).unwrap();
    plane.install_manual(&first.manual_sas[0]).unwrap();
    drop(plane);

    let mut plane = Plane::adopt(&table, Instant::now()).unwrap();
    let new_key = "hex:ffeeddccbbaa99887766554433221100ffeeddcc";
    let second = config(
        dir.path(),
        &manual("in", "in", 0x7102, new_key, "10.2.0.0/24"),
    );
    plane
        .install_manual(&second.manual_sas[0])
        .expect("the file wins over the table's stale SA with the same SPI");
    assert_eq!(plane.orphans(), 0);
    let reader = TableReader::open(&table).unwrap();
    let (_, found) = reader.read_inbound(0x7102).expect("inbound by SPI");
    assert_eq!(found.record.direction, Direction::Inbound);
    assert_eq!(found.record.keymat.as_bytes()[0], 0xff, "the new key");
}

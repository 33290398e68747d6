use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::tests::sample;
use super::*;

/// A table file of the test's own under /dev/shm (or the temp dir), removed on drop.
struct TempTable(PathBuf);

impl TempTable {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(dir.join(format!("xipsec-test-{}-{name}-{n}", std::process::id())))
    }
}

impl Drop for TempTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn install_find_read_delete() {
    let file = TempTable::new("basic");
    let mut writer = TableWriter::create(&file.0, 64).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let inbound = sample(0x1111_0001, Direction::Inbound);
    let outbound = sample(0x2222_0002, Direction::Outbound);
    let in_slot = writer.install(&inbound).unwrap();
    let out_slot = writer.install(&outbound).unwrap();
    assert_eq!(writer.installed(), 2);

    let (found, snapshot) = reader.read_inbound(0x1111_0001).unwrap();
    assert_eq!(found, in_slot);
    assert_eq!(snapshot.record, inbound);
    assert_eq!(reader.version(in_slot), Some(snapshot.version));
    // Outbound SAs are not in the SPI index (they are reached through the SPD).
    assert_eq!(reader.find_inbound(0x2222_0002), None);
    assert_eq!(reader.read(out_slot).unwrap().record, outbound);
    assert_eq!(reader.find_inbound(0x3333_0003), None);

    let generation = reader.generation();
    writer.delete(in_slot).unwrap();
    assert!(reader.generation() > generation);
    assert_ne!(
        reader.version(in_slot),
        Some(snapshot.version),
        "a cached copy is stale"
    );
    assert_eq!(reader.find_inbound(0x1111_0001), None);
    assert_eq!(reader.read(in_slot).unwrap_err(), ReadError::Free);
    assert!(matches!(
        writer.delete(in_slot),
        Err(TableError::NoSuchSlot(_))
    ));
    assert_eq!(reader.read(SlotId(64)).unwrap_err(), ReadError::OutOfRange);
}

#[test]
fn deleting_zeroes_the_keys_in_the_file() {
    let file = TempTable::new("zero");
    let mut writer = TableWriter::create(&file.0, 4).unwrap();
    let mut record = sample(0x5555_0005, Direction::Inbound);
    let key = [0xC3u8; 36];
    record.keymat = Keymat::new(&key).unwrap();
    let slot = writer.install(&record).unwrap();
    let contains_key = || {
        std::fs::read(&file.0)
            .unwrap()
            .windows(16)
            .any(|w| w == &key[..16])
    };
    assert!(contains_key(), "the key is in the table while installed");
    writer.delete(slot).unwrap();
    assert!(!contains_key(), "no trace of the key once deleted");
}

#[test]
fn duplicate_spis_full_tables_and_bad_capacities_are_refused() {
    let file = TempTable::new("limits");
    assert!(matches!(
        TableWriter::create(&file.0, 0),
        Err(TableError::Capacity(0))
    ));
    let mut writer = TableWriter::create(&file.0, 2).unwrap();
    writer.install(&sample(7, Direction::Inbound)).unwrap();
    assert!(matches!(
        writer.install(&sample(7, Direction::Inbound)),
        Err(TableError::DuplicateSpi(7))
    ));
    // The same SPI outbound is another SA (the peer chose it).
    writer.install(&sample(7, Direction::Outbound)).unwrap();
    assert!(matches!(
        writer.install(&sample(8, Direction::Inbound)),
        Err(TableError::Full)
    ));
}

#[test]
fn one_writer_at_a_time_and_foreign_files_are_refused() {
    let file = TempTable::new("lock");
    let _writer = TableWriter::create(&file.0, 8).unwrap();
    assert!(matches!(
        TableWriter::open(&file.0),
        Err(TableError::WriterLocked)
    ));
    let foreign = TempTable::new("foreign");
    std::fs::write(&foreign.0, vec![0x42u8; 8192]).unwrap();
    assert!(matches!(
        TableReader::open(&foreign.0),
        Err(TableError::NotATable)
    ));
}

#[test]
fn a_restarted_control_plane_finds_every_sa_and_workers_never_notice() {
    let file = TempTable::new("restart");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let slots: Vec<SlotId> = (0..10u32)
        .map(|i| {
            writer
                .install(&sample(0x100 + i, Direction::Inbound))
                .unwrap()
        })
        .collect();
    writer.delete(slots[3]).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let area = reader.worker_area(slots[0]).unwrap();
    area.add_traffic(5, 500, 1);
    drop(writer);

    // The control plane is gone; the worker still reads and reports.
    assert!(reader.read_inbound(0x100).is_some());
    area.add_traffic(1, 100, 0);

    let mut writer = TableWriter::open(&file.0).unwrap();
    assert_eq!(writer.installed(), 9);
    assert!(matches!(
        writer.install(&sample(0x101, Direction::Inbound)),
        Err(TableError::DuplicateSpi(0x101))
    ));
    let status = writer.status(slots[0]).unwrap();
    assert_eq!((status.packets, status.bytes, status.drops), (6, 600, 1));
    // The freed slot is free again, and the rest keep their SPIs.
    let reused = writer.install(&sample(0x999, Direction::Inbound)).unwrap();
    assert_eq!(reused, slots[3]);
    assert_eq!(reader.read_inbound(0x109).unwrap().0, slots[9]);
}

#[test]
fn worker_reports_reach_the_control_plane() {
    let file = TempTable::new("worker");
    let mut writer = TableWriter::create(&file.0, 4).unwrap();
    let slot = writer.install(&sample(1, Direction::Outbound)).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let area = reader.worker_area(slot).unwrap();
    area.raise(layout::flags::SOFT_EXPIRED);
    area.reserve_sequence_until(12345);
    area.mark_first_use(1_800_000_000);
    area.mark_first_use(1_900_000_000);
    let status = writer.status(slot).unwrap();
    assert_eq!(status.flags, layout::flags::SOFT_EXPIRED);
    assert_eq!(status.next_sequence, 12345);
    assert_eq!(status.first_use, 1_800_000_000);
    // A reused slot starts clean.
    writer.delete(slot).unwrap();
    let slot = writer.install(&sample(2, Direction::Outbound)).unwrap();
    assert_eq!(writer.status(slot).unwrap(), SlotStatus::default());
}

/// One writer replacing SAs as fast as it can while readers read: every record a reader gets
/// must be one the writer wrote, whole. Each record is built from one number `k`, so a record
/// mixing two writes shows up as fields that disagree about `k`.
#[test]
fn readers_never_see_a_torn_sa() {
    let file = TempTable::new("stress");
    let mut writer = TableWriter::create(&file.0, 8).unwrap();
    let record_for = |k: u32| {
        let mut record = sample(k, Direction::Outbound);
        record.keymat = Keymat::new(&[k as u8; 36]).unwrap();
        record.lifetimes.soft_packets = u64::from(k);
        record.lifetimes.hard_packets = u64::from(k) * 3;
        record.installed_at = u64::from(k) << 20;
        record
    };
    let slot = writer.install(&record_for(1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let path = file.0.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let reader = TableReader::open(&path).unwrap();
                let (mut consistent, mut busy) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match reader.read(slot) {
                        Ok(snapshot) => {
                            let r = snapshot.record;
                            let k = r.params.spi;
                            assert_eq!(r.lifetimes.soft_packets, u64::from(k), "torn read");
                            assert_eq!(r.lifetimes.hard_packets, u64::from(k) * 3, "torn read");
                            assert_eq!(r.installed_at, u64::from(k) << 20, "torn read");
                            assert!(
                                r.keymat.as_bytes().iter().all(|&b| b == k as u8),
                                "torn read"
                            );
                            consistent += 1;
                        }
                        Err(ReadError::Busy) => busy += 1,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                (consistent, busy)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut k = 1u32;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            k += 1;
            let words = record_for(k).encode();
            slot::write(writer_region(&writer), slot_at(&writer, slot), &words);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for reader in readers {
        let (consistent, _busy) = reader.join().expect("no reader saw a torn SA");
        total += consistent;
    }
    assert!(k > 10_000, "the writer made {k} writes");
    assert!(total > 1_000, "readers completed {total} consistent reads");
}

fn writer_region(writer: &TableWriter) -> &region::Region {
    writer.region_for_tests()
}

fn slot_at(writer: &TableWriter, slot: SlotId) -> usize {
    writer.region_for_tests().slot_at(slot.0)
}

#[test]
fn a_million_sas_fit_in_a_sparse_file() {
    let file = TempTable::new("million");
    let capacity = 1 << 20;
    let mut writer = TableWriter::create(&file.0, capacity).unwrap();
    let length = std::fs::metadata(&file.0).unwrap().len();
    assert_eq!(length as usize, layout::region_len(capacity));
    assert_eq!(length, 4096 + (2 << 20) * 8 + 16 + (1 << 20) * (80 + 256));
    let reader = TableReader::open(&file.0).unwrap();
    for spi in 0..20_000u32 {
        writer
            .install(&sample(spi.wrapping_mul(2_654_435_761), Direction::Inbound))
            .unwrap();
    }
    for spi in (0..20_000u32).step_by(97) {
        let spi = spi.wrapping_mul(2_654_435_761);
        assert_eq!(reader.read_inbound(spi).unwrap().1.record.params.spi, spi);
    }
}

/// The SPI index against a map, under random installs and deletes: tombstones must never hide
/// an SPI that is still installed, nor keep one that was deleted.
#[test]
fn the_spi_index_agrees_with_a_model_under_churn() {
    let file = TempTable::new("churn");
    let capacity = 64;
    let mut writer = TableWriter::create(&file.0, capacity).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut model: std::collections::HashMap<u32, SlotId> = std::collections::HashMap::new();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        // A small SPI space so that inserts collide with deleted entries' probe sequences.
        let spi = (next() % 200) as u32 + 1;
        match model.get(&spi).copied() {
            Some(slot) => {
                writer.delete(slot).unwrap();
                model.remove(&spi);
            }
            None if model.len() < capacity as usize => {
                let slot = writer.install(&sample(spi, Direction::Inbound)).unwrap();
                model.insert(spi, slot);
            }
            None => {}
        }
        let probe = (next() % 200) as u32 + 1;
        assert_eq!(
            reader.find_inbound(probe),
            model.get(&probe).copied(),
            "SPI {probe}"
        );
    }
    for spi in 1..=200 {
        assert_eq!(reader.find_inbound(spi), model.get(&spi).copied());
    }
    // However many tombstones the churn left, a lookup probes only as far as an insert ever
    // had to.
    let longest = writer_region(&writer)
        .u64_at(layout::header::INDEX_MAX_PROBE)
        .load(Ordering::Relaxed);
    assert!(longest < 32, "longest probe {longest} of 128 entries");
}

#[test]
fn policies_round_trip_and_match_by_priority() {
    use std::net::IpAddr;
    let file = TempTable::new("spd");
    let mut writer = TableWriter::create(&file.0, 8).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let narrow = writer.install(&sample(1, Direction::Outbound)).unwrap();
    let wide = writer.install(&sample(2, Direction::Outbound)).unwrap();
    let inbound = writer.install(&sample(3, Direction::Inbound)).unwrap();
    let net = |text: &str, len| AddressRange::prefix(text.parse().unwrap(), len).unwrap();
    let policies = [
        Policy {
            local: net("10.1.0.0", 24),
            remote: net("10.2.0.0", 24),
            protocol: Some(17),
            local_ports: ANY_PORT,
            remote_ports: (53, 53),
            outbound: narrow,
        },
        Policy {
            local: net("10.1.0.0", 16),
            remote: net("10.2.0.0", 16),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: wide,
        },
        Policy {
            local: net("2001:db8:1::", 48),
            remote: AddressRange::new(
                "2001:db8:2::10".parse().unwrap(),
                "2001:db8:2::20".parse().unwrap(),
            )
            .unwrap(),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: wide,
        },
    ];
    writer.set_policies(&policies).unwrap();
    let mut copy = Vec::new();
    let version = reader.read_policies(&mut copy).unwrap();
    assert_eq!(copy, policies);
    assert_eq!(reader.spd_version(), version);
    // One SA's policies alone, in order, at the same version.
    let mut into = Vec::new();
    assert_eq!(reader.policies_into(wide, &mut into), Ok(version));
    assert_eq!(into, [policies[1], policies[2]]);
    assert_eq!(reader.policies_into(narrow, &mut into), Ok(version));
    assert_eq!(into, [policies[0]]);
    assert_eq!(reader.policies_into(SlotId(999), &mut into), Ok(version));
    assert!(into.is_empty());

    let flow = |src: &str, dst: &str, protocol, ports| Flow {
        source: src.parse::<IpAddr>().unwrap(),
        destination: dst.parse::<IpAddr>().unwrap(),
        protocol,
        ports,
    };
    let first_match = |f: &Flow| copy.iter().find(|p| p.matches(f)).map(|p| p.outbound);
    assert_eq!(
        first_match(&flow("10.1.0.5", "10.2.0.9", 17, Some((4000, 53)))),
        Some(narrow)
    );
    assert_eq!(
        first_match(&flow("10.1.0.5", "10.2.0.9", 17, Some((4000, 54)))),
        Some(wide)
    );
    assert_eq!(
        first_match(&flow("10.1.9.5", "10.2.7.9", 6, Some((1, 2)))),
        Some(wide)
    );
    // A fragment without ports cannot match a port-specific policy.
    assert_eq!(
        first_match(&flow("10.1.0.5", "10.2.0.9", 17, None)),
        Some(wide)
    );
    assert_eq!(first_match(&flow("10.3.0.5", "10.2.0.9", 17, None)), None);
    assert_eq!(
        first_match(&flow("2001:db8:1::1", "2001:db8:2::15", 58, None)),
        Some(wide)
    );
    assert_eq!(
        first_match(&flow("2001:db8:1::1", "2001:db8:2::21", 58, None)),
        None
    );
    assert_eq!(
        first_match(&flow("10.1.0.5", "2001:db8:2::15", 58, None)),
        None
    );

    // Policies must point at outbound SAs, and there is room for one per slot.
    let mut bad = policies[1];
    bad.outbound = inbound;
    assert!(matches!(
        writer.set_policies(&[bad]),
        Err(TableError::PolicyWithoutSa(_))
    ));
    assert!(matches!(
        writer.set_policies(&[policies[1]; 9]),
        Err(TableError::TooManyPolicies(9))
    ));
    writer.set_policies(&[]).unwrap();
    assert_ne!(reader.spd_version(), version);
    reader.read_policies(&mut copy).unwrap();
    assert!(copy.is_empty());
    assert_eq!(AddressRange::prefix("10.0.0.0".parse().unwrap(), 33), None);
    assert_eq!(
        AddressRange::new("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()),
        None
    );
}

/// An inbound record names its outbound twin; the reader sees the pair the writer wrote, and
/// a record without one (a manual SA) reads back without one.
#[test]
fn an_inbound_record_carries_its_pair() {
    let file = TempTable::new("pair");
    let mut writer = TableWriter::create(&file.0, 8).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let out_slot = writer
        .install(&sample(0x5555_0001, Direction::Outbound))
        .unwrap();
    let mut inbound = sample(0x5555_0002, Direction::Inbound);
    inbound.pair = Some(out_slot);
    writer.install(&inbound).unwrap();
    let manual = sample(0x5555_0003, Direction::Inbound);
    writer.install(&manual).unwrap();
    let (_, snapshot) = reader.read_inbound(0x5555_0002).unwrap();
    assert_eq!(snapshot.record.pair, Some(out_slot));
    assert_eq!(snapshot.record, inbound);
    let (_, snapshot) = reader.read_inbound(0x5555_0003).unwrap();
    assert_eq!(snapshot.record.pair, None);
}

/// A traffic selector's range becomes the prefixes the XDP program's LPM table holds: exactly
/// the range, nothing more (a wider prefix would steer someone else's plaintext into the workers).
#[test]
fn a_range_becomes_the_fewest_covering_prefixes() {
    let v4 = |a: &str, b: &str| AddressRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap();
    let text =
        |r: AddressRange| -> Vec<String> { r.subnets().iter().map(|n| n.to_string()).collect() };
    assert_eq!(text(v4("10.1.0.0", "10.1.0.255")), ["10.1.0.0/24"]);
    assert_eq!(
        text(v4("10.0.0.1", "10.0.0.6")),
        ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
    );
    assert_eq!(text(v4("0.0.0.0", "255.255.255.255")), ["0.0.0.0/0"]);
    let v6 = AddressRange::new(
        "2001:db8::".parse().unwrap(),
        "2001:db8::ffff".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(text(v6), ["2001:db8::/112"]);
}

//! A hub's SPD with thousands of tunnels, through the shared table as a worker reads it:
//! each plaintext packet takes its own site's SA (not the first tunnel's, not the catch-all
//! behind them), and a packet from a site is accepted only on that site's Child SA. The
//! expected answers come from the tunnel numbering, not from the index under test. And with
//! more policies than [`SHARED_FROM`], a change reaches the worker through the indexer
//! thread, not through a re-read in its packet loop.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::*;
use xipsec_dataplane::esp::{ip, CipherSuite, Endpoints, SaParams};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, TableReader, TableWriter,
    ANY_PORT, ANY_WORKER,
};
use xipsec_dataplane::worker::{flow_of, SaSource, SpdIndexer, SpdMirror, TableSas, SHARED_FROM};

const TUNNELS: u32 = 3000;

struct TempTable(PathBuf);

impl Drop for TempTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Site `i`'s network: 16.0.0.0 onwards, a /24 each.
fn site(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x1000_0000 + (i << 8))
}

fn host(network: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(network) + n)
}

fn packet(source: Ipv4Addr, destination: Ipv4Addr) -> Vec<u8> {
    let mut packet = ipv4_udp(64, 0, true);
    packet[12..16].copy_from_slice(&source.octets());
    packet[16..20].copy_from_slice(&destination.octets());
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet
}

fn record(spi: u32) -> SaRecord {
    let suite = CipherSuite::Aes128Gcm16;
    SaRecord {
        direction: Direction::Outbound,
        params: SaParams::tunnel(
            spi,
            suite,
            Endpoints::V4 {
                local: Ipv4Addr::new(192, 0, 2, 1),
                remote: Ipv4Addr::new(192, 0, 2, 2),
            },
        ),
        keymat: Keymat::new(&keymat(suite)).unwrap(),
        lifetimes: Lifetimes::default(),
        owner_worker: ANY_WORKER,
        installed_at: 1_800_000_000,
        pair: None,
    }
}

#[test]
fn each_of_thousands_of_tunnels_takes_its_own_site_and_only_its_own() {
    let path =
        TempTable(std::env::temp_dir().join(format!("xipsec-spd-scale-{}", std::process::id())));
    let mut writer = TableWriter::create(&path.0, TUNNELS + 1).unwrap();
    let local = AddressRange::prefix("10.0.0.0".parse().unwrap(), 16).unwrap();
    let tunnel = |i: u32, outbound: SlotId| Policy {
        local,
        remote: AddressRange::prefix(site(i).into(), 24).unwrap(),
        protocol: None,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    };
    let slots: Vec<SlotId> = (0..TUNNELS)
        .map(|i| writer.install(&record(0x1000 + i)).unwrap())
        .collect();
    let catch_all = writer.install(&record(0x0FFF)).unwrap();
    let mut policies: Vec<Policy> = (0..TUNNELS).map(|i| tunnel(i, slots[i as usize])).collect();
    // Everything else from 10.0.0.0/16 through one more SA, last: it must never shadow a site.
    policies.push(Policy {
        remote: AddressRange::prefix("0.0.0.0".parse().unwrap(), 0).unwrap(),
        ..tunnel(0, catch_all)
    });
    writer.set_policies(&policies).unwrap();

    let reader = TableReader::open(&path.0).unwrap();
    let mut sas = TableSas::new(&reader);
    let mut mirror = SpdMirror::default();
    assert!(mirror.refresh(&reader));
    assert_eq!(mirror.len(), TUNNELS as usize + 1);
    let ours = Ipv4Addr::new(10, 0, 3, 4);
    for i in (0..TUNNELS).step_by(7).chain([TUNNELS - 1]) {
        let out = packet(ours, host(site(i), 1 + i % 250));
        assert_eq!(sas.outbound_slot(&out), Some(slots[i as usize]), "site {i}");
        // The reply from the site: allowed on its own Child SA, on no neighbour's.
        let reply = flow_of(&packet(host(site(i), 9), ours)).unwrap();
        assert!(mirror.allows_inbound(slots[i as usize], &reply), "site {i}");
        let neighbour = slots[((i + 1) % TUNNELS) as usize];
        assert!(!mirror.allows_inbound(neighbour, &reply), "site {i}");
    }
    // Past the last site, and between the sites' networks and 10.0.0.0/16's own: the
    // catch-all; from outside 10.0.0.0/16: nothing.
    let beyond = host(site(TUNNELS), 1);
    assert_eq!(sas.outbound_slot(&packet(ours, beyond)), Some(catch_all));
    let elsewhere = Ipv4Addr::new(192, 0, 2, 77);
    assert_eq!(sas.outbound_slot(&packet(ours, elsewhere)), Some(catch_all));
    let stranger = Ipv4Addr::new(10, 9, 0, 1);
    assert_eq!(sas.outbound_slot(&packet(stranger, host(site(5), 1))), None);
    let reply = flow_of(&packet(elsewhere, ours)).unwrap();
    assert!(mirror.allows_inbound(catch_all, &reply));
    assert!(!mirror.allows_inbound(slots[0], &reply));
}

/// A table of `tunnels` sites with one policy each, in order; returns the slots.
fn hub(path: &std::path::Path, tunnels: u32) -> (TableWriter, Vec<SlotId>, Vec<Policy>) {
    let mut writer = TableWriter::create(path, tunnels).unwrap();
    let local = AddressRange::prefix("10.0.0.0".parse().unwrap(), 16).unwrap();
    let slots: Vec<SlotId> = (0..tunnels)
        .map(|i| writer.install(&record(0x1000 + i)).unwrap())
        .collect();
    let policies: Vec<Policy> = (0..tunnels)
        .map(|i| Policy {
            local,
            remote: AddressRange::prefix(site(i).into(), 24).unwrap(),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: slots[i as usize],
        })
        .collect();
    writer.set_policies(&policies).unwrap();
    (writer, slots, policies)
}

fn temp_table(name: &str) -> TempTable {
    TempTable(std::env::temp_dir().join(format!("xipsec-spd-{name}-{}", std::process::id())))
}

#[test]
fn a_large_spd_reaches_the_worker_through_the_indexer_not_its_packet_loop() {
    let tunnels = SHARED_FROM as u32 + 100;
    let path = temp_table("shared");
    let (mut writer, slots, mut policies) = hub(&path.0, tunnels);
    let reader = TableReader::open(&path.0).unwrap();
    let indexer = SpdIndexer::start(&path.0).unwrap();
    let shared = indexer.shared();
    let mut sas = TableSas::new(&reader).with_shared_spd(std::sync::Arc::clone(&shared));
    let ours = Ipv4Addr::new(10, 0, 3, 4);
    let to_site = |i: u32| packet(ours, host(site(i), 1));
    assert_eq!(sas.outbound_slot(&to_site(7)), Some(slots[7]));

    // Site 7 moves to site 8's SA: the worker sees it once the indexer has indexed it.
    policies[7].outbound = slots[8];
    writer.set_policies(&policies).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        sas.begin_batch();
        if sas.outbound_slot(&to_site(7)) == Some(slots[8]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(shared.version(), Some(reader.spd_version()));
    assert_eq!(sas.outbound_slot(&to_site(9)), Some(slots[9]));

    // With the indexer gone, a change stays unseen: the worker never re-reads a large SPD
    // itself, it keeps forwarding with the index it has.
    drop(indexer);
    policies[7].outbound = slots[9];
    writer.set_policies(&policies).unwrap();
    for _ in 0..3 {
        sas.begin_batch();
        sas.end_batch();
    }
    assert_eq!(sas.outbound_slot(&to_site(7)), Some(slots[8]));
}

#[test]
fn a_small_spd_is_read_by_the_worker_at_once_even_with_an_indexer() {
    let path = temp_table("small");
    let (mut writer, slots, mut policies) = hub(&path.0, 50);
    let reader = TableReader::open(&path.0).unwrap();
    let indexer = SpdIndexer::start(&path.0).unwrap();
    let mut sas = TableSas::new(&reader).with_shared_spd(indexer.shared());
    let to_site = |i: u32| packet(Ipv4Addr::new(10, 0, 3, 4), host(site(i), 1));
    assert_eq!(sas.outbound_slot(&to_site(7)), Some(slots[7]));
    policies[7].outbound = slots[8];
    writer.set_policies(&policies).unwrap();
    sas.begin_batch();
    assert_eq!(sas.outbound_slot(&to_site(7)), Some(slots[8]));
}

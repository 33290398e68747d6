//! Fixtures shared by the criterion benchmarks in `benches/`: one SA shape and one packet
//! shape, so every benchmark measures the same thing.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use xipsec_dataplane::esp::{ip, CipherSuite, Endpoints, SaParams, ENCAP_HEADROOM, ENCAP_TAILROOM};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, TableWriter, ANY_PORT,
};

/// Packets per batch, as a worker would process them.
pub const BATCH: usize = 32;
/// The inner packet sizes every benchmark runs.
pub const SIZES: [usize; 5] = [64, 128, 512, 1420, 9000];
pub const SUITE: CipherSuite = CipherSuite::Aes128Gcm16;

/// Keying material for [`SUITE`]: key, then salt.
pub fn keymat() -> Vec<u8> {
    (0..SUITE.keymat_len() as u8).collect()
}

/// A tunnel-mode SA over IPv4.
pub fn params() -> SaParams {
    SaParams::tunnel(
        0x1000,
        SUITE,
        Endpoints::V4 {
            local: Ipv4Addr::new(192, 0, 2, 1),
            remote: Ipv4Addr::new(192, 0, 2, 2),
        },
    )
}

/// An inner IPv4 UDP packet of `len` bytes.
pub fn inner_packet(len: usize) -> Vec<u8> {
    let mut packet = vec![0xA5u8; len];
    packet[0] = 0x45;
    packet[1] = 0;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[6] = 0x40;
    packet[8] = 64;
    packet[9] = ip::proto::UDP;
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet
}

/// A batch of frames, each holding `packet` after the encapsulation headroom and just big
/// enough for its encapsulation, so that raw AEAD and ESP touch the same amount of memory.
pub fn frames(packet: &[u8]) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|_| {
            let mut frame = vec![0u8; ENCAP_HEADROOM + packet.len() + ENCAP_TAILROOM];
            frame[ENCAP_HEADROOM..ENCAP_HEADROOM + packet.len()].copy_from_slice(packet);
            frame
        })
        .collect()
}

/// A table under /dev/shm with 64 other inbound SAs (so that lookups do not hit slot 0 by
/// luck), then our outbound SA (slot 64), the peer's inbound SA and one policy for
/// everything; removed when dropped.
#[derive(Debug)]
pub struct BenchTable {
    pub path: PathBuf,
    /// Held for the table's lifetime: the writer's lock marks the table as in use.
    _writer: TableWriter,
}

impl BenchTable {
    /// `name` keeps the tables of benchmarks running side by side apart.
    pub fn new(name: &str) -> Self {
        let path = PathBuf::from(format!(
            "/dev/shm/xipsec-bench-{name}-{}",
            std::process::id()
        ));
        let mut writer = TableWriter::create(&path, 1024).expect("table");
        let record = |direction, spi| SaRecord {
            direction,
            params: SaParams { spi, ..params() },
            keymat: Keymat::new(&keymat()).expect("keymat"),
            lifetimes: Lifetimes::default(),
            owner_worker: 0,
            installed_at: 0,
            pair: None,
        };
        for spi in 0x2000..0x2040u32 {
            writer
                .install(&record(Direction::Inbound, spi))
                .expect("install");
        }
        let outbound = writer
            .install(&record(Direction::Outbound, params().spi))
            .expect("install");
        writer
            .install(&record(Direction::Inbound, params().spi))
            .expect("install");
        let everything = AddressRange::prefix("0.0.0.0".parse().unwrap(), 0).unwrap();
        writer
            .set_policies(&[Policy {
                local: everything,
                remote: everything,
                protocol: None,
                local_ports: ANY_PORT,
                remote_ports: ANY_PORT,
                outbound,
            }])
            .expect("policy");
        Self {
            path,
            _writer: writer,
        }
    }
}

impl Drop for BenchTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The criterion settings of the micro-benchmarks: a second of warm-up, three of measurement.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

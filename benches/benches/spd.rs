//! The outbound SPD at tunnel counts from one to carrier scale: a worker's lookup of the policy
//! a plaintext packet takes (through its indexed copy, and through the first-match scan of the
//! same policies that the index replaced), the worker's refresh of its copy after the SPD
//! changed (by itself, or taking what the indexer thread built), and the control plane's
//! rewrite of the SPD.
//! `cargo bench -p xipsec-benches --bench spd`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use xipsec_benches::{keymat, params, BATCH};
use xipsec_dataplane::esp::SaParams;
use xipsec_dataplane::table::{
    AddressRange, Direction, Flow, Keymat, Lifetimes, Policy, SaRecord, TableReader, TableWriter,
    ANY_PORT, ANY_WORKER,
};
use xipsec_dataplane::worker::{SpdIndexer, SpdMirror, SHARED_FROM};

const TUNNELS: [u32; 3] = [1, 1_000, 100_000];

/// `tunnels` outbound SAs, each with one policy from 10.0.0.0/16 to a /24 of its own, as a
/// hub terminating that many sites has, each SA pinned to worker `owner_worker` (RFC 9611)
/// or to none ([`ANY_WORKER`]); removed when dropped.
struct Spd {
    path: PathBuf,
    writer: TableWriter,
    policies: Vec<Policy>,
}

impl Spd {
    fn new(tunnels: u32, owner_worker: u16) -> Self {
        let path = PathBuf::from(format!(
            "/dev/shm/xipsec-bench-spd-{tunnels}-{owner_worker}-{}",
            std::process::id()
        ));
        let mut writer = TableWriter::create(&path, tunnels).expect("table");
        let local = AddressRange::prefix("10.0.0.0".parse().unwrap(), 16).unwrap();
        let policies = (0..tunnels)
            .map(|i| {
                let record = SaRecord {
                    direction: Direction::Outbound,
                    params: SaParams {
                        spi: 0x1000 + i,
                        ..params()
                    },
                    keymat: Keymat::new(&keymat()).expect("keymat"),
                    lifetimes: Lifetimes::default(),
                    owner_worker,
                    installed_at: 0,
                    pair: None,
                };
                Policy {
                    local,
                    remote: AddressRange::prefix(site(i), 24).unwrap(),
                    protocol: None,
                    local_ports: ANY_PORT,
                    remote_ports: ANY_PORT,
                    outbound: writer.install(&record).expect("install"),
                }
            })
            .collect::<Vec<_>>();
        writer.set_policies(&policies).expect("policies");
        Self {
            path,
            writer,
            policies,
        }
    }
}

impl Drop for Spd {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The network of site `i`: 16.0.0.0 onwards, one /24 each.
fn site(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x1000_0000 + (i << 8)))
}

/// A batch of flows to sites spread over all of them.
fn flows(tunnels: u32) -> Vec<Flow> {
    (0..BATCH as u32)
        .map(|k| {
            let i = k.wrapping_mul(2_654_435_761) % tunnels;
            let IpAddr::V4(network) = site(i) else {
                unreachable!()
            };
            Flow {
                source: "10.0.3.4".parse().unwrap(),
                destination: IpAddr::V4(Ipv4Addr::from(u32::from(network) + 7)),
                protocol: 17,
                ports: Some((4000, 5000)),
            }
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("spd_lookup");
    for tunnels in TUNNELS {
        let spd = Spd::new(tunnels, ANY_WORKER);
        let reader = TableReader::open(&spd.path).expect("reader");
        let mut mirror = SpdMirror::default();
        assert!(mirror.refresh(&reader));
        let flows = flows(tunnels);
        for flow in &flows {
            let scan = spd.policies.iter().position(|p| p.matches(flow));
            let expected = scan.map(|i| spd.policies[i].outbound);
            assert_eq!(mirror.lookup(flow), expected);
            assert!(expected.is_some());
        }
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::new("indexed", tunnels), |b| {
            b.iter(|| {
                for flow in &flows {
                    black_box(mirror.lookup(black_box(flow)));
                }
            })
        });
        if tunnels >= 100_000 {
            group.sample_size(10);
        }
        group.bench_function(BenchmarkId::new("scan", tunnels), |b| {
            b.iter(|| {
                for flow in &flows {
                    black_box(spd.policies.iter().position(|p| p.matches(black_box(flow))));
                }
            })
        });
        group.sample_size(100);
    }
    group.finish();
}

fn change(c: &mut Criterion) {
    let mut group = c.benchmark_group("spd_change");
    group.sample_size(10);
    for tunnels in TUNNELS {
        for (name, owner_worker) in [("worker_refresh", ANY_WORKER), ("worker_refresh_pinned", 0)] {
            let mut spd = Spd::new(tunnels, owner_worker);
            let reader = TableReader::open(&spd.path).expect("reader");
            let mut mirror = SpdMirror::default();
            group.bench_function(BenchmarkId::new(name, tunnels), |b| {
                b.iter_batched(
                    || spd.writer.set_policies(&spd.policies).expect("policies"),
                    |()| assert!(mirror.refresh(&reader)),
                    BatchSize::PerIteration,
                )
            });
        }
        // A worker taking the indexer's index of the new version (from SHARED_FROM policies
        // on): what is left of a change in its packet loop.
        if tunnels as usize >= SHARED_FROM {
            let mut spd = Spd::new(tunnels, ANY_WORKER);
            let reader = TableReader::open(&spd.path).expect("reader");
            let indexer = SpdIndexer::start(&spd.path).expect("indexer");
            let shared = indexer.shared();
            let mut mirror = SpdMirror::default();
            mirror.use_shared(std::sync::Arc::clone(&shared));
            group.bench_function(BenchmarkId::new("worker_adopt_indexed", tunnels), |b| {
                b.iter_batched(
                    || {
                        spd.writer.set_policies(&spd.policies).expect("policies");
                        while shared.version() != Some(reader.spd_version()) {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                        }
                    },
                    |()| assert!(mirror.refresh(&reader) && mirror.is_current(&reader)),
                    BatchSize::PerIteration,
                )
            });
        }
        // As a worker refreshes: its SA cache knows the owners, no record is read.
        let mut spd = Spd::new(tunnels, ANY_WORKER);
        let reader = TableReader::open(&spd.path).expect("reader");
        let mut mirror = SpdMirror::default();
        group.bench_function(
            BenchmarkId::new("worker_refresh_owners_known", tunnels),
            |b| {
                b.iter_batched(
                    || spd.writer.set_policies(&spd.policies).expect("policies"),
                    |()| assert!(mirror.refresh_with(&reader, |_| Some(ANY_WORKER))),
                    BatchSize::PerIteration,
                )
            },
        );
        group.bench_function(BenchmarkId::new("control_rewrite", tunnels), |b| {
            b.iter(|| spd.writer.set_policies(&spd.policies).expect("policies"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xipsec_benches::criterion();
    targets = lookup, change
}
criterion_main!(benches);

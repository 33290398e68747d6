//! The worker's per-packet path without the kernel: SAs straight from the caller against SAs
//! found through the shared table (SPD mirror, SA cache, one version load per packet), batch in,
//! batch out, in the same run. `cargo bench -p xipsec-benches --bench worker`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use xipsec_benches::{frames, inner_packet, keymat, params, BenchTable, BATCH};
use xipsec_dataplane::esp::{
    Decapsulator, InboundSa, OutboundSa, PacketBuf, Verdict, ENCAP_HEADROOM,
};
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::{flow_of, SaSource, TableSas};

const SIZES: [usize; 2] = [64, 1420];

fn encap(c: &mut Criterion) {
    let table = BenchTable::new("worker");
    let reader = TableReader::open(&table.path).expect("reader");
    let mut group = c.benchmark_group("worker_encap");
    for len in SIZES {
        group.throughput(Throughput::Elements(BATCH as u64));
        let inner = inner_packet(len);
        let mut direct = OutboundSa::new(params(), &keymat()).expect("SA");
        let mut via_table = TableSas::new(&reader);
        group.bench_function(BenchmarkId::new("direct", len), |b| {
            let mut frames = frames(&inner);
            b.iter(|| {
                for frame in frames.iter_mut() {
                    frame[ENCAP_HEADROOM..ENCAP_HEADROOM + 20].copy_from_slice(&inner[..20]);
                    let mut buf = PacketBuf::new(frame, ENCAP_HEADROOM, len).expect("window");
                    black_box(direct.encap(&mut buf).is_ok());
                }
            })
        });
        group.bench_function(BenchmarkId::new("via_table", len), |b| {
            let mut frames = frames(&inner);
            b.iter(|| {
                for frame in frames.iter_mut() {
                    frame[ENCAP_HEADROOM..ENCAP_HEADROOM + 20].copy_from_slice(&inner[..20]);
                    let mut buf = PacketBuf::new(frame, ENCAP_HEADROOM, len).expect("window");
                    let ok = match via_table.outbound_for(buf.data()) {
                        Some(sa) => sa.encap(&mut buf).is_ok(),
                        None => false,
                    };
                    black_box(ok);
                }
                via_table.end_batch();
            })
        });
        assert!(flow_of(&inner).is_some());
    }
    group.finish();
}

fn decap(c: &mut Criterion) {
    let table = BenchTable::new("worker");
    let reader = TableReader::open(&table.path).expect("reader");
    let mut group = c.benchmark_group("worker_decap");
    // One sender for every size: the table keeps the receiver's replay state across them, as it
    // would across worker restarts, so sequence numbers must keep rising.
    let mut sender = OutboundSa::new(params(), &keymat()).expect("SA");
    for len in SIZES {
        group.throughput(Throughput::Elements(BATCH as u64));
        let inner = inner_packet(len);
        let mut fresh = || {
            let mut frames = frames(&inner);
            let mut windows = Vec::with_capacity(BATCH);
            for frame in frames.iter_mut() {
                let mut buf = PacketBuf::new(frame, ENCAP_HEADROOM, len).expect("window");
                sender.encap(&mut buf).expect("encap");
                windows.push((buf.offset(), buf.len()));
            }
            (frames, windows)
        };
        let mut direct = InboundSa::new(params(), &keymat()).expect("SA");
        let mut via_table = TableSas::new(&reader);
        let mut decapsulator = Decapsulator::default();
        let mut verdicts = [Verdict::Forward; BATCH];
        for (name, use_table) in [("direct", false), ("via_table", true)] {
            group.bench_function(BenchmarkId::new(name, len), |b| {
                b.iter_batched_ref(
                    &mut fresh,
                    |(frames, windows)| {
                        let mut bufs: Vec<PacketBuf<'_>> = frames
                            .iter_mut()
                            .zip(windows.iter())
                            .map(|(f, &(start, len))| PacketBuf::new(f, start, len).unwrap())
                            .collect();
                        if use_table {
                            decapsulator.decap_batch(via_table.inbound(), &mut bufs, &mut verdicts);
                            via_table.end_batch();
                        } else {
                            decapsulator.decap_batch(&mut direct, &mut bufs, &mut verdicts);
                        }
                        assert!(verdicts.iter().all(|v| v.is_forward()));
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xipsec_benches::criterion();
    targets = encap, decap
}
criterion_main!(benches);

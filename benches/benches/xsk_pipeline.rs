//! The AF_XDP worker's per-packet pipeline without the kernel: Ethernet frames in (classify,
//! ownership, ESP in place, next hop, Ethernet header), transmit windows out, batch by batch;
//! with a fixed SA pair, with SAs from the shared table, and through the hand-off to the
//! owning worker. `cargo bench -p xipsec-benches --bench xsk_pipeline`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use xipsec_benches::{inner_packet, keymat, params, BenchTable, BATCH};
use xipsec_dataplane::esp::{InboundSa, OutboundSa, PacketBuf};
use xipsec_dataplane::fib::{NextHop, NextHops};
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::{
    Handoff, HandoffConfig, Outcome, Pipeline, SaSource, StaticSas, TableSas,
};

const SIZES: [usize; 2] = [64, 1420];
/// Where an AF_XDP frame's packet starts: the kernel's headroom.
const HEADROOM: usize = 256;
const LAN: u32 = 1;
const WAN: u32 = 2;

/// Every destination is one hop away on the WAN port.
struct OneHop;

impl NextHops for OneHop {
    fn lookup(&mut self, _destination: IpAddr) -> NextHop {
        NextHop::Resolved {
            ifindex: WAN,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            mtu: 1500,
        }
    }
}

fn ethernet(packet: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 3, 0x08, 0x00];
    frame.extend_from_slice(packet);
    frame
}

/// A batch of 2 KiB buffers holding `frame` after the kernel's headroom.
fn buffers(frame: &[u8]) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|_| {
            let mut buffer = vec![0u8; 2048.max(HEADROOM + frame.len() + 128)];
            buffer[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
            buffer
        })
        .collect()
}

fn static_sas() -> StaticSas {
    StaticSas {
        outbound: OutboundSa::new(params(), &keymat()).expect("SA"),
        inbound: InboundSa::new(params(), &keymat()).expect("SA"),
    }
}

/// One batch of plaintext frames through `pipeline`, each sent on out of the WAN port.
fn encap_batch<S: SaSource, N: NextHops>(
    pipeline: &mut Pipeline<S, N>,
    buffers: &mut [Vec<u8>],
    frame: &[u8],
) {
    pipeline.begin_batch();
    let now = Instant::now();
    for buffer in buffers.iter_mut() {
        // Encapsulation overwrote the frame's headers; the payload may stay scrambled.
        buffer[HEADROOM..HEADROOM + 14 + 28].copy_from_slice(&frame[..14 + 28]);
        let outcome = pipeline.process_frame(buffer, HEADROOM, frame.len(), now);
        assert!(matches!(outcome, Outcome::Transmit { port: 1, .. }));
        black_box(outcome);
    }
    pipeline.end_batch();
}

/// Plaintext in, ESP out of the WAN port: a fixed pair, the table's SAs on their owner, and
/// the table's SAs received by the other worker (hand-off, then the owner's work).
fn encap(c: &mut Criterion) {
    // Slot 64: owned by worker 0 of 2.
    let table = BenchTable::new("pipeline");
    let reader = TableReader::open(&table.path).expect("reader");
    let handoff = Handoff::new(HandoffConfig::new(2)).expect("hand-off");
    let mut group = c.benchmark_group("xsk_pipeline_encap");
    for len in SIZES {
        group.throughput(Throughput::Elements(BATCH as u64));
        let frame = ethernet(&inner_packet(len));
        let mut fixed = Pipeline::new(static_sas(), OneHop, &[LAN, WAN], None).expect("pipeline");
        let mut owner = Pipeline::new(
            TableSas::for_worker(&reader, 0, 2),
            OneHop,
            &[LAN, WAN],
            Some((Arc::clone(&handoff), 0)),
        )
        .expect("pipeline");
        let mut other = Pipeline::new(
            TableSas::for_worker(&reader, 1, 2),
            OneHop,
            &[LAN, WAN],
            Some((Arc::clone(&handoff), 1)),
        )
        .expect("pipeline");
        group.bench_function(BenchmarkId::new("static", len), |b| {
            let mut buffers = buffers(&frame);
            b.iter(|| encap_batch(&mut fixed, &mut buffers, &frame))
        });
        group.bench_function(BenchmarkId::new("table_owner", len), |b| {
            let mut buffers = buffers(&frame);
            b.iter(|| encap_batch(&mut owner, &mut buffers, &frame))
        });
        group.bench_function(BenchmarkId::new("table_handed_over", len), |b| {
            let mut buffers = buffers(&frame);
            b.iter(|| {
                other.begin_batch();
                let now = Instant::now();
                for buffer in buffers.iter_mut() {
                    let outcome = other.process_frame(buffer, HEADROOM, frame.len(), now);
                    assert_eq!(outcome, Outcome::HandedOff);
                }
                other.end_batch();
                owner.begin_batch();
                while let Some(mut packet) = handoff.receive(0) {
                    let outcome = owner.process_handed_over(&mut packet);
                    assert!(matches!(outcome, Outcome::Transmit { port: 1, .. }));
                    black_box(outcome);
                    handoff.recycle(packet);
                }
                owner.end_batch();
            })
        });
    }
    group.finish();
}

/// ESP in, plaintext out (the fixed pair; every destination on the WAN port).
fn decap(c: &mut Criterion) {
    let mut group = c.benchmark_group("xsk_pipeline_decap");
    let mut sender = OutboundSa::new(params(), &keymat()).expect("SA");
    for len in SIZES {
        group.throughput(Throughput::Elements(BATCH as u64));
        let inner = inner_packet(len);
        let mut pipeline =
            Pipeline::new(static_sas(), OneHop, &[LAN, WAN], None).expect("pipeline");
        let mut fresh = || {
            (0..BATCH)
                .map(|_| {
                    let mut buffer = vec![0u8; 2048.max(HEADROOM + len + 128)];
                    buffer[HEADROOM..HEADROOM + len].copy_from_slice(&inner);
                    let mut packet = PacketBuf::new(&mut buffer, HEADROOM, len).expect("window");
                    sender.encap(&mut packet).expect("encap");
                    let (start, esp_len) = (packet.offset(), packet.len());
                    buffer[start - 14..start].copy_from_slice(&ethernet(&[])[..14]);
                    (buffer, start - 14, esp_len + 14)
                })
                .collect::<Vec<_>>()
        };
        group.bench_function(BenchmarkId::new("static", len), |b| {
            b.iter_batched_ref(
                &mut fresh,
                |frames| {
                    pipeline.begin_batch();
                    let now = Instant::now();
                    for (buffer, start, len) in frames.iter_mut() {
                        let outcome = pipeline.process_frame(buffer, *start, *len, now);
                        assert!(matches!(outcome, Outcome::Transmit { .. }));
                    }
                    pipeline.end_batch();
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xipsec_benches::criterion();
    targets = encap, decap
}
criterion_main!(benches);

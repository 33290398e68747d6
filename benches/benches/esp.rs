//! ESP per-packet cost beside the raw AEAD on the same payloads, in one run, so the ratio holds
//! on a noisy shared machine. Batches of 32 packets, as a worker would process them.
//!
//! `cargo bench -p xipsec-benches --bench esp` (docs/benchmarks.md has the figures).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use xipsec_benches::{frames, inner_packet, keymat, params, BATCH, SIZES};
use xipsec_dataplane::esp::{
    Decapsulator, InboundSa, OutboundSa, PacketBuf, Verdict, ENCAP_HEADROOM,
};

fn bufs(frames: &mut [Vec<u8>], start: usize, len: usize) -> Vec<PacketBuf<'_>> {
    frames
        .iter_mut()
        .map(|f| PacketBuf::new(f, start, len).unwrap())
        .collect()
}

fn raw_aead(c: &mut Criterion) {
    let mut group = c.benchmark_group("aead_seal");
    for len in SIZES {
        group.throughput(Throughput::Bytes((BATCH * len) as u64));
        let mut frames = frames(&inner_packet(len));
        let aws = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, &keymat()[..16])
                .unwrap(),
        );
        let ring_key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &keymat()[..16]).unwrap(),
        );
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("aws-lc-rs", len), |b| {
            b.iter(|| {
                for frame in frames.iter_mut() {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    let tag = aws
                        .seal_in_place_separate_tag(
                            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                            aws_lc_rs::aead::Aad::from(&counter.to_be_bytes()),
                            &mut frame[ENCAP_HEADROOM..ENCAP_HEADROOM + len],
                        )
                        .unwrap();
                    let _ = black_box(tag);
                }
            })
        });
        group.bench_function(BenchmarkId::new("ring", len), |b| {
            b.iter(|| {
                for frame in frames.iter_mut() {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    let tag = ring_key
                        .seal_in_place_separate_tag(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            ring::aead::Aad::from(&counter.to_be_bytes()),
                            &mut frame[ENCAP_HEADROOM..ENCAP_HEADROOM + len],
                        )
                        .unwrap();
                    let _ = black_box(tag);
                }
            })
        });
    }
    group.finish();
}

fn esp(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_encap");
    for len in SIZES {
        group.throughput(Throughput::Bytes((BATCH * len) as u64));
        let mut sa = OutboundSa::new(params(), &keymat()).unwrap();
        let inner = inner_packet(len);
        let mut frames = frames(&inner);
        let mut verdicts = [Verdict::Forward; BATCH];
        let mut round = |frames: &mut [Vec<u8>], verdicts: &mut [Verdict]| {
            // Encryption is in place, so each round encrypts the last round's ciphertext again:
            // same length, same work. Only the inner IP header is put back (20 bytes, ~1 ns),
            // since encapsulation reads it.
            for frame in frames.iter_mut() {
                frame[ENCAP_HEADROOM..ENCAP_HEADROOM + 20].copy_from_slice(&inner[..20]);
            }
            let mut batch = bufs(frames, ENCAP_HEADROOM, len);
            sa.encap_batch(&mut batch, verdicts);
        };
        round(&mut frames, &mut verdicts);
        round(&mut frames, &mut verdicts);
        assert!(verdicts.iter().all(|v| v.is_forward()), "{verdicts:?}");
        group.bench_function(BenchmarkId::new("tunnel-v4", len), |b| {
            b.iter(|| {
                round(&mut frames, &mut verdicts);
                black_box(&verdicts);
            })
        });
    }
    group.finish();
}

/// Decapsulation beside the raw AEAD open of the same packets. Each timed call gets a batch of
/// 32 packets freshly encapsulated (outside the measurement) with the next sequence numbers,
/// so both sides open ciphertext that is equally hot in the cache, and the inbound SA's replay
/// window slides along as it would in service.
fn decap(c: &mut Criterion) {
    let mut group = c.benchmark_group("decap");
    for len in SIZES {
        group.throughput(Throughput::Bytes((BATCH * len) as u64));
        let inner = inner_packet(len);
        let mut out = OutboundSa::new(params(), &keymat()).unwrap();
        let mut fresh_batch = move || {
            let mut frames = frames(&inner);
            let mut verdicts = [Verdict::Forward; BATCH];
            let windows: Vec<(usize, usize)> = {
                let mut batch = bufs(&mut frames, ENCAP_HEADROOM, inner.len());
                out.encap_batch(&mut batch, &mut verdicts);
                batch.iter().map(|b| (b.offset(), b.len())).collect()
            };
            (frames, windows)
        };
        let key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, &keymat()[..16])
                .unwrap(),
        );
        let salt: [u8; 4] = keymat()[16..20].try_into().unwrap();
        group.bench_function(BenchmarkId::new("aead-open", len), |b| {
            b.iter_batched_ref(
                &mut fresh_batch,
                |(frames, windows)| {
                    for (frame, &(start, len)) in frames.iter_mut().zip(windows.iter()) {
                        // Outer IPv4 (20), SPI and sequence (the AAD), IV, then ciphertext.
                        let wire = &mut frame[start..start + len];
                        let (header, body) = wire.split_at_mut(36);
                        let mut nonce = [0u8; 12];
                        nonce[..4].copy_from_slice(&salt);
                        nonce[4..].copy_from_slice(&header[28..36]);
                        let opened = key.open_in_place(
                            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                            aws_lc_rs::aead::Aad::from(&header[20..28]),
                            body,
                        );
                        assert!(opened.is_ok());
                    }
                },
                BatchSize::PerIteration,
            )
        });
        let mut sa = InboundSa::new(params(), &keymat()).unwrap();
        let mut decapsulator = Decapsulator::default();
        let mut verdicts = [Verdict::Forward; BATCH];
        group.bench_function(BenchmarkId::new("esp", len), |b| {
            b.iter_batched_ref(
                &mut fresh_batch,
                |(frames, windows)| {
                    let mut batch: Vec<PacketBuf<'_>> = frames
                        .iter_mut()
                        .zip(windows.iter())
                        .map(|(f, &(start, len))| PacketBuf::new(f, start, len).unwrap())
                        .collect();
                    decapsulator.decap_batch(&mut sa, &mut batch, &mut verdicts);
                    assert!(verdicts.iter().all(|v| v.is_forward()));
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
    targets = raw_aead, esp, decap
}
criterion_main!(benches);

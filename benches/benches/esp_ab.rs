//! ESP against the raw AEAD, interleaved: each round times one batch of raw AEAD work and one
//! batch of ESP work on equally fresh packets, alternating which goes first, and the medians of
//! many rounds are compared. On a shared, noisy machine this gives a far steadier ratio than
//! two criterion benchmarks measured minutes apart.
//!
//! `cargo bench -p xipsec-benches --bench esp_ab` (docs/benchmarks.md has the figures).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use xipsec_benches::{frames, inner_packet, keymat, params, BATCH, SIZES};
use xipsec_dataplane::esp::{
    Decapsulator, InboundSa, OutboundSa, PacketBuf, Verdict, ENCAP_HEADROOM,
};

const ROUNDS: usize = 3000;
/// Outer IPv4 header, then SPI and sequence number (the AAD), then the IV.
const AAD_AT: usize = 20;
const CIPHERTEXT_AT: usize = 36;

/// A batch of frames, each with `packet` after the headroom and just enough room for ESP.
struct Batch {
    frames: Vec<Vec<u8>>,
    windows: Vec<(usize, usize)>,
}

impl Batch {
    fn plaintext(packet: &[u8]) -> Self {
        Self {
            frames: frames(packet),
            windows: vec![(ENCAP_HEADROOM, packet.len()); BATCH],
        }
    }

    fn encapsulated(packet: &[u8], sa: &mut OutboundSa) -> Self {
        let mut batch = Self::plaintext(packet);
        let mut verdicts = [Verdict::Forward; BATCH];
        let mut bufs = batch.bufs();
        sa.encap_batch(&mut bufs, &mut verdicts);
        let windows = bufs.iter().map(|b| (b.offset(), b.len())).collect();
        batch.windows = windows;
        batch
    }

    fn bufs(&mut self) -> Vec<PacketBuf<'_>> {
        self.frames
            .iter_mut()
            .zip(&self.windows)
            .map(|(frame, &(start, len))| PacketBuf::new(frame, start, len).expect("window"))
            .collect()
    }
}

fn median_per_packet(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_nanos() as f64 / BATCH as f64
}

/// Runs `raw` and `esp` alternately on fresh batches from `prepare`; per-packet medians.
fn interleave(
    mut prepare: impl FnMut() -> (Batch, Batch),
    mut raw: impl FnMut(&mut Batch),
    mut esp: impl FnMut(&mut Batch),
) -> (f64, f64) {
    let (mut raw_times, mut esp_times) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (mut a, mut b) = prepare();
        let time = |f: &mut dyn FnMut(&mut Batch), batch: &mut Batch| {
            let started = Instant::now();
            f(batch);
            started.elapsed()
        };
        if round % 2 == 0 {
            raw_times.push(time(&mut raw, &mut a));
            esp_times.push(time(&mut esp, &mut b));
        } else {
            esp_times.push(time(&mut esp, &mut b));
            raw_times.push(time(&mut raw, &mut a));
        }
    }
    (median_per_packet(raw_times), median_per_packet(esp_times))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run one tiny round then.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &SIZES } else { &SIZES[..1] };
    let keymat = keymat();
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &keymat[..16]).expect("key"));
    let salt: [u8; 4] = keymat[16..20].try_into().expect("salt");
    println!("ESP vs raw AES-128-GCM, tunnel mode IPv4, batches of {BATCH}, median of {ROUNDS} interleaved rounds, ns per packet");
    println!("| bytes | AEAD seal | ESP encap | encap − seal | seal/encap | AEAD open | ESP decap | decap − open | open/decap |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &len in sizes {
        let inner = inner_packet(len);
        let mut out = OutboundSa::new(params(), &keymat).expect("SA");
        // The AEAD's share of ESP: the payload with its padding and the two trailer bytes.
        let sealed_len = (len + 2).next_multiple_of(4);
        let mut counter = 0u64;
        let (seal, encap) = interleave(
            || (Batch::plaintext(&inner), Batch::plaintext(&inner)),
            |batch| {
                for frame in &mut batch.frames {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[..4].copy_from_slice(&salt);
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    let aad = counter.to_be_bytes();
                    let tag = key.seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&aad),
                        &mut frame[ENCAP_HEADROOM..ENCAP_HEADROOM + sealed_len],
                    );
                    let _ = black_box(tag);
                }
            },
            |batch| {
                let mut verdicts = [Verdict::Forward; BATCH];
                out.encap_batch(&mut batch.bufs(), &mut verdicts);
                assert!(verdicts.iter().all(|v| v.is_forward()));
            },
        );

        let mut sender = OutboundSa::new(params(), &keymat).expect("SA");
        let mut inbound = InboundSa::new(params(), &keymat).expect("SA");
        let mut decapsulator = Decapsulator::default();
        let (open, decap) = interleave(
            || {
                let a = Batch::encapsulated(&inner, &mut sender);
                let b = Batch::encapsulated(&inner, &mut sender);
                (a, b)
            },
            |batch| {
                for (frame, &(start, len)) in batch.frames.iter_mut().zip(&batch.windows) {
                    let (header, body) = frame[start..start + len].split_at_mut(CIPHERTEXT_AT);
                    let mut nonce = [0u8; 12];
                    nonce[..4].copy_from_slice(&salt);
                    nonce[4..].copy_from_slice(&header[AAD_AT + 8..CIPHERTEXT_AT]);
                    let opened = key.open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&header[AAD_AT..AAD_AT + 8]),
                        body,
                    );
                    assert!(opened.is_ok());
                }
            },
            |batch| {
                let mut verdicts = [Verdict::Forward; BATCH];
                decapsulator.decap_batch(&mut inbound, &mut batch.bufs(), &mut verdicts);
                assert!(verdicts.iter().all(|v| v.is_forward()));
            },
        );
        println!(
            "| {len} | {seal:.0} | {encap:.0} | {:+.0} | {:.0}% | {open:.0} | {decap:.0} | {:+.0} | {:.0}% |",
            encap - seal,
            100.0 * seal / encap,
            decap - open,
            100.0 * open / decap
        );
    }
}

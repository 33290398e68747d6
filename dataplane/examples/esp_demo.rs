//! Pushes packets through ESP encapsulation and decapsulation for every cipher suite, checks
//! that they come back intact, shows what a replayed and a tampered packet become, and prints a
//! table of rates on one core. `tools/demo` runs it.
//!
//! The rates are wall-clock on whatever else the machine is doing; the criterion benches
//! (docs/benchmarks.md) are the measurement.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, DropReason, Endpoints, InboundSa, OutboundSa, PacketBuf,
    SaParams, Verdict, ENCAP_HEADROOM, ENCAP_TAILROOM,
};

const BATCH: usize = 32;
const SIZES: [usize; 4] = [64, 512, 1420, 9000];

fn endpoints(reverse: bool) -> Endpoints {
    let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    if reverse {
        Endpoints::V4 {
            local: b,
            remote: a,
        }
    } else {
        Endpoints::V4 {
            local: a,
            remote: b,
        }
    }
}

fn inner_packet(len: usize, id: u16) -> Vec<u8> {
    let mut packet: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
    packet[..20].fill(0);
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[8] = 64;
    packet[9] = ip::proto::UDP;
    packet[12..16].copy_from_slice(&[10, 1, 0, 1]);
    packet[16..20].copy_from_slice(&[10, 2, 0, 1]);
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet
}

struct Row {
    suite: CipherSuite,
    size: usize,
    packets: u64,
    encap: Duration,
    decap: Duration,
}

/// Encapsulates and decapsulates batches for about `budget`, checking every packet.
fn run(suite: CipherSuite, size: usize, budget: Duration) -> Row {
    let keymat: Vec<u8> = (0..suite.keymat_len() as u8).collect();
    let mut out = OutboundSa::new(SaParams::tunnel(0x100, suite, endpoints(false)), &keymat)
        .expect("outbound SA");
    let mut inb = InboundSa::new(SaParams::tunnel(0x100, suite, endpoints(true)), &keymat)
        .expect("inbound SA");
    let mut decapsulator = Decapsulator::default();
    let originals: Vec<Vec<u8>> = (0..BATCH).map(|i| inner_packet(size, i as u16)).collect();
    let frame_len = ENCAP_HEADROOM + size + ENCAP_TAILROOM;
    let mut frames = vec![vec![0u8; frame_len]; BATCH];
    let mut verdicts = [Verdict::Forward; BATCH];
    let (mut encap, mut decap, mut packets) = (Duration::ZERO, Duration::ZERO, 0u64);
    while encap + decap < budget {
        for (frame, original) in frames.iter_mut().zip(&originals) {
            frame[ENCAP_HEADROOM..ENCAP_HEADROOM + size].copy_from_slice(original);
        }
        let mut batch: Vec<PacketBuf<'_>> = frames
            .iter_mut()
            .map(|f| PacketBuf::new(f, ENCAP_HEADROOM, size).expect("window"))
            .collect();
        let started = Instant::now();
        out.encap_batch(&mut batch, &mut verdicts);
        encap += started.elapsed();
        assert!(
            verdicts.iter().all(|v| v.is_forward()),
            "encap dropped: {verdicts:?}"
        );
        let started = Instant::now();
        decapsulator.decap_batch(&mut inb, &mut batch, &mut verdicts);
        decap += started.elapsed();
        assert!(
            verdicts.iter().all(|v| v.is_forward()),
            "decap dropped: {verdicts:?}"
        );
        for (buf, original) in batch.iter().zip(&originals) {
            assert_eq!(buf.data(), &original[..], "a packet came back changed");
        }
        packets += BATCH as u64;
    }
    Row {
        suite,
        size,
        packets,
        encap,
        decap,
    }
}

/// A replayed and a tampered packet, to show that drops are counted by reason.
fn show_drops() {
    let suite = CipherSuite::Aes128Gcm16;
    let keymat: Vec<u8> = (0..suite.keymat_len() as u8).collect();
    let mut out = OutboundSa::new(SaParams::tunnel(0x200, suite, endpoints(false)), &keymat)
        .expect("outbound SA");
    let mut inb = InboundSa::new(SaParams::tunnel(0x200, suite, endpoints(true)), &keymat)
        .expect("inbound SA");
    let mut decapsulator = Decapsulator::default();
    let mut frame = vec![0u8; ENCAP_HEADROOM + 100 + ENCAP_TAILROOM];
    frame[ENCAP_HEADROOM..ENCAP_HEADROOM + 100].copy_from_slice(&inner_packet(100, 1));
    let mut buf = PacketBuf::new(&mut frame, ENCAP_HEADROOM, 100).expect("window");
    out.encap(&mut buf).expect("encap");
    let wire = buf.data().to_vec();
    let mut attempt = |bytes: &[u8]| {
        let mut copy = bytes.to_vec();
        let len = copy.len();
        let mut buf = PacketBuf::new(&mut copy, 0, len).expect("window");
        decapsulator.decap(&mut inb, &mut buf)
    };
    let mut tampered = wire.clone();
    *tampered.last_mut().expect("non-empty") ^= 1;
    println!("a tampered packet:   {:?}", attempt(&tampered));
    println!("the genuine packet:  {:?}", attempt(&wire));
    println!("the same, replayed:  {:?}", attempt(&wire));
    let drops = &inb.counters().drops;
    assert_eq!(drops.get(DropReason::AuthenticationFailed), 1);
    assert_eq!(drops.get(DropReason::Replayed), 1);
    let counted: Vec<String> = drops
        .nonzero()
        .map(|(reason, n)| format!("{}={n}", reason.name()))
        .collect();
    println!("inbound SA drop counters: {}\n", counted.join(" "));
}

fn main() {
    let budget = std::env::args()
        .nth(1)
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(150), Duration::from_millis);
    println!("xipsec ESP core: tunnel mode over IPv4, batches of {BATCH}, one core\n");
    show_drops();
    println!(
        "{:<17} {:>6} {:>10} {:>11} {:>11} {:>13}",
        "suite", "bytes", "packets", "encap Mpps", "decap Mpps", "encap Gbit/s"
    );
    for suite in CipherSuite::ALL {
        for size in SIZES {
            let row = run(suite, size, budget);
            let mpps = |d: Duration| row.packets as f64 / d.as_secs_f64() / 1e6;
            let gbits = row.packets as f64 * row.size as f64 * 8.0 / row.encap.as_secs_f64() / 1e9;
            println!(
                "{:<17} {:>6} {:>10} {:>11.2} {:>11.2} {:>13.2}",
                row.suite.name(),
                row.size,
                row.packets,
                mpps(row.encap),
                mpps(row.decap),
                gbits
            );
        }
    }
    println!(
        "\nevery packet came back byte for byte; rates are wall-clock (see docs/benchmarks.md)"
    );
}

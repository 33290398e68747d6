//! What the receiver does with hostile or broken input, and the sender at its limits: replay
//! edges, ESN across 2^32, bit flips, truncations, bad padding, NAT-T look-alikes, exhaustion.

mod common;

use common::*;
use proptest::prelude::*;
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, DropReason, InboundSa, Mode, OutboundSa, SaParams,
    SequenceStatus, UdpEncap, Verdict,
};

fn v4_pair(suite: CipherSuite) -> (OutboundSa, InboundSa) {
    sa_pair(SaParams::tunnel(0x4242, suite, V4_ENDPOINTS))
}

/// `count` wire packets with sequence numbers 1..=count.
fn stream(out: &mut OutboundSa, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| encap(out, &ipv4_udp(64, 0, true)))
        .collect()
}

fn verdict(decapsulator: &mut Decapsulator, inb: &mut InboundSa, wire: &[u8]) -> Verdict {
    decap(decapsulator, inb, wire).0
}

#[test]
fn replay_window_edges() {
    let mut params = SaParams::tunnel(0x4242, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    params.replay_window = 64;
    let (mut out, mut inb) = sa_pair(params);
    let packets = stream(&mut out, 200);
    let mut d = Decapsulator::default();
    // Deliver 200 first: the window is now (136, 200].
    assert_eq!(verdict(&mut d, &mut inb, &packets[199]), Verdict::Forward);
    assert_eq!(
        verdict(&mut d, &mut inb, &packets[199]),
        Verdict::Drop(DropReason::Replayed)
    );
    // Exactly at the left edge (137) is inside; one more behind (136) is not.
    assert_eq!(verdict(&mut d, &mut inb, &packets[136]), Verdict::Forward);
    assert_eq!(
        verdict(&mut d, &mut inb, &packets[135]),
        Verdict::Drop(DropReason::BehindWindow)
    );
    assert_eq!(
        verdict(&mut d, &mut inb, &packets[136]),
        Verdict::Drop(DropReason::Replayed)
    );
    // Out of order inside the window is fine, once.
    for seq in (150..200).rev() {
        assert_eq!(
            verdict(&mut d, &mut inb, &packets[seq - 1]),
            Verdict::Forward,
            "{seq}"
        );
    }
    let drops = &inb.counters().drops;
    assert_eq!(drops.get(DropReason::Replayed), 2);
    assert_eq!(drops.get(DropReason::BehindWindow), 1);
}

#[test]
fn a_big_jump_then_late_packets() {
    let (mut out, mut inb) = v4_pair(CipherSuite::Aes256Gcm16);
    let mut d = Decapsulator::default();
    let early = stream(&mut out, 3);
    out.advance_sequence_to(1_000_000);
    let late = stream(&mut out, 1);
    assert_eq!(verdict(&mut d, &mut inb, &late[0]), Verdict::Forward);
    assert_eq!(
        verdict(&mut d, &mut inb, &early[0]),
        Verdict::Drop(DropReason::BehindWindow)
    );
    assert_eq!(inb.replay_window().top(), 1_000_000);
}

#[test]
fn a_forged_packet_never_moves_the_window() {
    let (mut out, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
    let mut d = Decapsulator::default();
    let packets = stream(&mut out, 2);
    // A forgery claiming a far-ahead sequence number: the window must stay where it is.
    let mut forged = packets[0].clone();
    forged[24..28].copy_from_slice(&5_000_000u32.to_be_bytes());
    assert_eq!(
        verdict(&mut d, &mut inb, &forged),
        Verdict::Drop(DropReason::AuthenticationFailed)
    );
    assert_eq!(inb.replay_window().top(), 0);
    assert_eq!(verdict(&mut d, &mut inb, &packets[0]), Verdict::Forward);
    assert_eq!(verdict(&mut d, &mut inb, &packets[1]), Verdict::Forward);
}

#[test]
fn esn_across_two_to_the_32() {
    for suite in CipherSuite::ALL {
        let mut params = SaParams::tunnel(0x77, suite, V6_ENDPOINTS);
        params.esn = true;
        let (mut out, mut inb) = sa_pair(params);
        let mut d = Decapsulator::default();
        let start = (1u64 << 32) - 20;
        out.advance_sequence_to(start);
        inb.resume_after(start - 1);
        let packets = stream(&mut out, 40);
        // Deliver with some reordering straddling the boundary.
        let mut order: Vec<usize> = (0..40).collect();
        order.swap(18, 22);
        order.swap(19, 25);
        for i in order {
            assert_eq!(
                verdict(&mut d, &mut inb, &packets[i]),
                Verdict::Forward,
                "{suite:?} #{i}"
            );
        }
        assert_eq!(inb.replay_window().top(), start + 39);
        // On the wire only the low 32 bits travel.
        assert_eq!(ip::read_u32(&packets[39], 44), (start + 39) as u32);
        // A replay of a packet from before the boundary is still recognised.
        assert_eq!(
            verdict(&mut d, &mut inb, &packets[5]),
            Verdict::Drop(DropReason::Replayed)
        );
    }
}

#[test]
fn without_esn_the_sequence_never_wraps() {
    let (mut out, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
    let mut d = Decapsulator::default();
    assert_eq!(out.sequence_status(), SequenceStatus::Fresh);
    out.advance_sequence_to(u64::from(u32::MAX) - 1);
    assert_eq!(out.sequence_status(), SequenceStatus::RekeySoon);
    inb.resume_after(u64::from(u32::MAX) - 2);
    let last_two = stream(&mut out, 2);
    for wire in &last_two {
        assert_eq!(verdict(&mut d, &mut inb, wire), Verdict::Forward);
    }
    assert_eq!(out.sequence_status(), SequenceStatus::Exhausted);
    let mut frame = Frame::new(&ipv4_udp(64, 0, true));
    assert_eq!(
        frame.with_buf(|buf| out.encap(buf)),
        Err(DropReason::SequenceExhausted)
    );
    assert_eq!(out.counters().drops.get(DropReason::SequenceExhausted), 1);
}

#[test]
fn esn_sequence_ends_at_two_to_the_64_minus_one() {
    let mut params = SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    params.esn = true;
    let (mut out, _) = sa_pair(params);
    out.advance_sequence_to(u64::MAX);
    stream(&mut out, 1);
    assert_eq!(out.sequence_status(), SequenceStatus::Exhausted);
    let mut frame = Frame::new(&ipv4_udp(64, 0, true));
    assert_eq!(
        frame.with_buf(|buf| out.encap(buf)),
        Err(DropReason::SequenceExhausted)
    );
}

#[test]
fn every_single_bit_flip_in_the_esp_packet_is_rejected() {
    for suite in CipherSuite::ALL {
        for udp_encap in [None, Some(UdpEncap::NATT_DEFAULT)] {
            let mut params = SaParams::tunnel(0x0102_0304, suite, V4_ENDPOINTS);
            params.udp_encap = udp_encap;
            let (mut out, mut inb) = sa_pair(params);
            let mut d = Decapsulator::default();
            let wire = encap(&mut out, &ipv4_udp(61, 0, true));
            let esp_at = if udp_encap.is_some() { 28 } else { 20 };
            for bit in esp_at * 8..wire.len() * 8 {
                let mut flipped = wire.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let v = verdict(&mut d, &mut inb, &flipped);
                assert!(!v.is_forward(), "{suite:?} bit {bit} accepted");
            }
            assert_eq!(inb.replay_window().top(), 0, "no flip moved the window");
            assert_eq!(verdict(&mut d, &mut inb, &wire), Verdict::Forward);
        }
    }
}

#[test]
fn every_outer_ipv4_header_bit_flip_is_rejected_or_harmless() {
    let (mut out, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
    let mut d = Decapsulator::default();
    let inner = ipv4_udp(64, 0, true);
    let wire = encap(&mut out, &inner);
    for bit in 0..20 * 8 {
        let mut flipped = wire.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        // The header checksum catches every single-bit flip in the header.
        assert!(
            !verdict(&mut d, &mut inb, &flipped).is_forward(),
            "bit {bit}"
        );
    }
}

#[test]
fn every_truncation_is_rejected() {
    for suite in CipherSuite::ALL {
        for mode in [Mode::Tunnel, Mode::Transport] {
            let mut params = SaParams::tunnel(0x99, suite, V4_ENDPOINTS);
            params.mode = mode;
            let (mut out, mut inb) = sa_pair(params);
            let mut d = Decapsulator::default();
            let wire = encap(&mut out, &ipv4_udp(77, 0, true));
            for len in 0..wire.len() {
                // Cut short as a link would, with the IP header still claiming the full length.
                let v = verdict(&mut d, &mut inb, &wire[..len]);
                assert!(!v.is_forward(), "{suite:?} {mode:?} cut at {len}");
                // And cut short by an attacker who also fixes the IP header's length.
                if len >= 20 {
                    let mut cut = wire[..len].to_vec();
                    cut[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    ip::set_ipv4_checksum(&mut cut[..20]);
                    let v = verdict(&mut d, &mut inb, &cut);
                    assert!(
                        !v.is_forward(),
                        "{suite:?} {mode:?} consistent cut at {len}"
                    );
                }
            }
            assert_eq!(verdict(&mut d, &mut inb, &wire), Verdict::Forward);
        }
    }
}

#[test]
fn authentic_packets_with_bad_trailers_are_dropped() {
    let suite = CipherSuite::Aes128Gcm16;
    let (_, mut inb) = sa_pair(SaParams::tunnel(0x55, suite, V4_ENDPOINTS));
    let mut d = Decapsulator::default();
    let inner = ipv4_udp(28, 0, true);
    let with_trailer = |padding: &[u8], pad_len: u8, next_header: u8| {
        let mut plaintext = inner.clone();
        plaintext.extend_from_slice(padding);
        plaintext.extend_from_slice(&[pad_len, next_header]);
        plaintext
    };
    let cases: [(Vec<u8>, DropReason); 6] = [
        (with_trailer(&[1, 3], 2, 4), DropReason::BadPadding),
        (with_trailer(&[0, 0], 2, 4), DropReason::BadPadding),
        (with_trailer(&[1, 2], 200, 4), DropReason::BadPadding),
        (
            with_trailer(&[1, 2], 2, ip::proto::TCP),
            DropReason::BadNextHeader,
        ),
        (
            with_trailer(&[1, 2], 2, ip::proto::NO_NEXT_HEADER),
            DropReason::DummyPacket,
        ),
        (
            with_trailer(&[1, 2], 2, ip::proto::IPV6),
            DropReason::MalformedInner,
        ),
    ];
    for (i, (plaintext, reason)) in cases.into_iter().enumerate() {
        let wire = hand_sealed_ipv4(suite, 0x55, i as u32 + 1, &plaintext);
        assert_eq!(
            verdict(&mut d, &mut inb, &wire),
            Verdict::Drop(reason),
            "case {i}"
        );
        // The packet was authentic, so its number is used up (RFC 4303 §3.4.3 marks after the
        // integrity check, before the content is judged).
        assert_eq!(
            verdict(&mut d, &mut inb, &wire),
            Verdict::Drop(DropReason::Replayed)
        );
    }
    // The hand-built packet is right when its trailer is.
    let good = hand_sealed_ipv4(suite, 0x55, 100, &with_trailer(&[1, 2], 2, 4));
    assert_eq!(
        decap(&mut d, &mut inb, &good),
        (Verdict::Forward, inner.clone())
    );
    // Ciphertext that is not a multiple of four bytes.
    let odd = hand_sealed_ipv4(suite, 0x55, 101, &with_trailer(&[1], 1, 4));
    assert_eq!(
        verdict(&mut d, &mut inb, &odd),
        Verdict::Drop(DropReason::BadAlignment)
    );
    // A tunnel-mode inner packet that claims more bytes than it has.
    let mut lying = inner.clone();
    lying[2..4].copy_from_slice(&500u16.to_be_bytes());
    let mut plaintext = lying;
    plaintext.extend_from_slice(&[1, 2, 2, 4]);
    let wire = hand_sealed_ipv4(suite, 0x55, 102, &plaintext);
    assert_eq!(
        verdict(&mut d, &mut inb, &wire),
        Verdict::Drop(DropReason::MalformedInner)
    );
}

/// An IPv4 UDP datagram from 4500 to `dport` with `payload`.
fn udp_on_port(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = ipv4_udp(28, 0, false);
    packet.truncate(28);
    packet.extend_from_slice(payload);
    let total = packet.len() as u16;
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet[20..22].copy_from_slice(&4500u16.to_be_bytes());
    packet[22..24].copy_from_slice(&dport.to_be_bytes());
    packet[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    packet
}

#[test]
fn the_natt_port_carries_esp_ike_and_keepalives() {
    let (_, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
    let mut d = Decapsulator::new(4500);
    let keepalive = udp_on_port(4500, &[0xFF]);
    assert_eq!(
        verdict(&mut d, &mut inb, &keepalive),
        Verdict::Drop(DropReason::NattKeepalive)
    );
    let ike = udp_on_port(4500, &[0, 0, 0, 0, 0x11, 0x22]);
    assert_eq!(verdict(&mut d, &mut inb, &ike), Verdict::ToControlPlane);
    let elsewhere = udp_on_port(4501, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        verdict(&mut d, &mut inb, &elsewhere),
        Verdict::Drop(DropReason::NotEsp)
    );
    let short = udp_on_port(4500, &[1, 2]);
    assert_eq!(
        verdict(&mut d, &mut inb, &short),
        Verdict::Drop(DropReason::Truncated)
    );
    // A configured NAT-T port other than 4500 (xipsecd -p).
    let mut custom = Decapsulator::new(14500);
    let ike = udp_on_port(14500, &[0, 0, 0, 0, 0x11]);
    assert_eq!(
        verdict(&mut custom, &mut inb, &ike),
        Verdict::ToControlPlane
    );
    assert_eq!(d.unattributed.total(), 3);
}

#[test]
fn outer_fragments_and_malformed_headers_are_dropped() {
    let (mut out, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
    let mut d = Decapsulator::default();
    let wire = encap(&mut out, &ipv4_udp(64, 0, true));
    let mut fragment = wire.clone();
    fragment[6] = 0x20; // more fragments
    ip::set_ipv4_checksum(&mut fragment[..20]);
    assert_eq!(
        verdict(&mut d, &mut inb, &fragment),
        Verdict::Drop(DropReason::OuterFragment)
    );
    let mut bad_ihl = wire.clone();
    bad_ihl[0] = 0x44;
    assert_eq!(
        verdict(&mut d, &mut inb, &bad_ihl),
        Verdict::Drop(DropReason::MalformedOuter)
    );
    let mut not_ip = wire.clone();
    not_ip[0] = 0x55;
    assert_eq!(
        verdict(&mut d, &mut inb, &not_ip),
        Verdict::Drop(DropReason::MalformedOuter)
    );
    let mut tcp = wire.clone();
    tcp[9] = ip::proto::TCP;
    ip::set_ipv4_checksum(&mut tcp[..20]);
    assert_eq!(
        verdict(&mut d, &mut inb, &tcp),
        Verdict::Drop(DropReason::NotEsp)
    );
    let mut bad_checksum = wire;
    bad_checksum[10] ^= 1;
    assert_eq!(
        verdict(&mut d, &mut inb, &bad_checksum),
        Verdict::Drop(DropReason::OuterChecksum)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Nothing on the wire can panic the receiver, and nothing random gets through.
    #[test]
    fn random_input_never_panics_or_passes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, mut inb) = v4_pair(CipherSuite::Aes128Gcm16);
        let mut d = Decapsulator::default();
        let v = verdict(&mut d, &mut inb, &bytes);
        prop_assert!(!v.is_forward());
    }

    /// Random mutations of a valid packet (including its SPI and lengths) never panic and are
    /// never accepted unless they left the packet unchanged.
    #[test]
    fn mutated_packets_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        natt in any::<bool>(),
    ) {
        let mut params = SaParams::tunnel(0x4242, CipherSuite::ChaCha20Poly1305, V6_ENDPOINTS);
        params.udp_encap = natt.then_some(UdpEncap::NATT_DEFAULT);
        let (mut out, mut inb) = sa_pair(params);
        let wire = encap(&mut out, &ipv6_udp(90, 0, 0));
        let mut mutated = wire.clone();
        for (at, value) in edits {
            let at = at % mutated.len();
            mutated[at] = value;
        }
        mutated.truncate(cut % (wire.len() + 1));
        let v = verdict(&mut Decapsulator::default(), &mut inb, &mutated);
        if v.is_forward() {
            // Only mutations outside what ESP protects may leave a packet acceptable: the outer
            // IPv6 header's unchecked fields (addresses too: NAT and MOBIKE move them), and the
            // UDP checksum, which the ICV makes redundant.
            prop_assert_eq!(mutated.len(), wire.len());
            let protected = if natt { 48 } else { 40 };
            prop_assert_eq!(&mutated[protected..], &wire[protected..]);
            prop_assert_eq!(&mutated[4..7], &wire[4..7], "length and next header");
        }
    }

    /// Whatever a local process hands to encapsulation, it never panics, and what it accepts
    /// the peer can decapsulate.
    #[test]
    fn random_plaintext_never_panics_encapsulation(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        transport in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let mut plaintext = bytes;
        if let Some(byte) = plaintext.first_mut() {
            *byte = first;
        }
        let mut params = SaParams::tunnel(
            0x10,
            CipherSuite::Aes128Gcm16,
            if v6 { V6_ENDPOINTS } else { V4_ENDPOINTS },
        );
        params.mode = if transport { Mode::Transport } else { Mode::Tunnel };
        let (mut out, mut inb) = sa_pair(params);
        let mut frame = Frame::new(&plaintext);
        if frame.with_buf(|buf| out.encap(buf)).is_ok() {
            let wire = frame.data().to_vec();
            // Decapsulation must not panic either; it may refuse an inner packet whose own
            // header lies about its length, which encapsulation does not police.
            let _ = decap(&mut Decapsulator::default(), &mut inb, &wire);
        } else {
            prop_assert_eq!(frame.data(), &plaintext[..], "a refused packet is left as it was");
        }
    }

    /// Any plaintext size round trips, in both modes.
    #[test]
    fn any_size_round_trips(len in 28usize..3000, transport in any::<bool>(), tos in any::<u8>()) {
        let mut params = SaParams::tunnel(0x10, CipherSuite::Aes256Gcm16, V4_ENDPOINTS);
        params.mode = if transport { Mode::Transport } else { Mode::Tunnel };
        let (mut out, mut inb) = sa_pair(params);
        let plaintext = ipv4_udp(len, tos & !0b11, false);
        let wire = encap(&mut out, &plaintext);
        let (v, restored) = decap(&mut Decapsulator::default(), &mut inb, &wire);
        prop_assert_eq!(v, Verdict::Forward);
        prop_assert_eq!(restored, plaintext);
    }
}

//! Encapsulation and decapsulation against each other: every mode and family mix, NAT-T, ESN,
//! TFC padding, DF and ECN handling, and what the outer headers say.

mod common;

use common::*;
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, DfPolicy, DropReason, Mode, PacketBuf, SaParams, UdpEncap,
    Verdict, ENCAP_HEADROOM, ENCAP_TAILROOM,
};

fn all_params() -> Vec<SaParams> {
    let mut all = Vec::new();
    for suite in CipherSuite::ALL {
        for endpoints in [V4_ENDPOINTS, V6_ENDPOINTS] {
            for mode in [Mode::Tunnel, Mode::Transport] {
                for udp_encap in [None, Some(UdpEncap::NATT_DEFAULT)] {
                    for esn in [false, true] {
                        let mut params = SaParams::tunnel(0x1000_0001, suite, endpoints);
                        params.mode = mode;
                        params.udp_encap = udp_encap;
                        params.esn = esn;
                        all.push(params);
                    }
                }
            }
        }
    }
    all
}

fn plaintexts(params: &SaParams) -> Vec<Vec<u8>> {
    let sizes = [48, 49, 50, 51, 64, 128, 512, 1420, 9000];
    match params.mode {
        // Tunnel mode carries either family whatever the outer one is.
        Mode::Tunnel => sizes
            .iter()
            .flat_map(|&n| [ipv4_udp(n, 0x28, true), ipv6_udp(n, 0x28, 0xabcde)])
            .collect(),
        Mode::Transport => sizes
            .iter()
            .map(|&n| packet_for(params.endpoints, n))
            .collect(),
    }
}

#[test]
fn every_mode_and_family_mix_round_trips() {
    for params in all_params() {
        let (mut out, mut inb) = sa_pair(params);
        let mut decapsulator = Decapsulator::default();
        for plaintext in plaintexts(&params) {
            let wire = encap(&mut out, &plaintext);
            let (verdict, restored) = decap(&mut decapsulator, &mut inb, &wire);
            assert_eq!(
                verdict,
                Verdict::Forward,
                "{params:?} len {}",
                plaintext.len()
            );
            assert_eq!(restored, plaintext, "{params:?}");
        }
        let sent = plaintexts(&params).len() as u64;
        assert_eq!(out.counters().packets, sent);
        assert_eq!(inb.counters().packets, sent);
        assert_eq!(inb.counters().bytes, out.counters().bytes);
        assert_eq!(inb.counters().drops.total(), 0);
    }
}

#[test]
fn tunnel_outer_ipv4_header() {
    let mut params = SaParams::tunnel(7, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    params.outer_ttl = 17;
    let (mut out, _) = sa_pair(params);
    let inner = ipv4_udp(100, 0b1011_1010, true);
    let wire = encap(&mut out, &inner);
    assert_eq!(wire[0], 0x45);
    assert_eq!(
        wire[1], 0b1011_1010,
        "DSCP copied, ECN copied (RFC 6040 normal mode)"
    );
    assert_eq!(usize::from(ip::read_u16(&wire, 2)), wire.len());
    assert_eq!(ip::read_u16(&wire, 4), 1, "ID from the sequence number");
    assert_eq!(ip::read_u16(&wire, 6), ip::IPV4_DF, "DF copied");
    assert_eq!(wire[8], 17);
    assert_eq!(wire[9], ip::proto::ESP);
    assert_eq!(&wire[12..20], &[192, 0, 2, 1, 192, 0, 2, 2]);
    assert!(ip::ipv4_checksum_ok(&wire[..20]));
    assert_eq!(ip::read_u32(&wire, 20), 7, "SPI");
    assert_eq!(ip::read_u32(&wire, 24), 1, "the first sequence number is 1");
    assert_eq!(
        &wire[28..36],
        &1u64.to_be_bytes(),
        "IV is the sequence number"
    );
    // 100 bytes of payload + 2 trailer bytes pad to 104; then the ICV.
    assert_eq!(wire.len(), 20 + 8 + 8 + 104 + 16);
}

#[test]
fn tunnel_outer_ipv6_header_copies_traffic_class_and_flow_label() {
    let (mut out, _) = sa_pair(SaParams::tunnel(7, CipherSuite::Aes256Gcm16, V6_ENDPOINTS));
    let inner = ipv6_udp(100, 0xb9, 0x12345);
    let wire = encap(&mut out, &inner);
    let word = ip::read_u32(&wire, 0);
    assert_eq!(word >> 28, 6);
    assert_eq!((word >> 20) & 0xFF, 0xb9);
    assert_eq!(word & 0xFFFFF, 0x12345);
    assert_eq!(usize::from(ip::read_u16(&wire, 4)), wire.len() - 40);
    assert_eq!(wire[6], ip::proto::ESP);
    assert_eq!(wire[7], 64);
}

#[test]
fn natt_udp_header() {
    let mut params = SaParams::tunnel(9, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    params.udp_encap = Some(UdpEncap {
        local_port: 4500,
        remote_port: 31337,
    });
    let (mut out, _) = sa_pair(params);
    let wire = encap(&mut out, &ipv4_udp(60, 0, false));
    assert_eq!(wire[9], ip::proto::UDP);
    assert_eq!(ip::read_u16(&wire, 20), 4500);
    assert_eq!(ip::read_u16(&wire, 22), 31337);
    assert_eq!(usize::from(ip::read_u16(&wire, 24)), wire.len() - 20);
    assert_eq!(
        ip::read_u16(&wire, 26),
        0,
        "RFC 3948: checksum zero over IPv4"
    );
    assert_eq!(ip::read_u32(&wire, 28), 9, "SPI right after the UDP header");

    params.endpoints = V6_ENDPOINTS;
    let (mut out, _) = sa_pair(params);
    let wire = encap(&mut out, &ipv4_udp(60, 0, false));
    let checksum = ip::read_u16(&wire, 46);
    assert_ne!(checksum, 0, "UDP over IPv6 needs a checksum");
    let mut zeroed = wire[40..].to_vec();
    zeroed[6] = 0;
    zeroed[7] = 0;
    let (src, dst): ([u8; 16], [u8; 16]) = (
        wire[8..24].try_into().unwrap(),
        wire[24..40].try_into().unwrap(),
    );
    assert_eq!(ip::udp_ipv6_checksum(&src, &dst, &zeroed), checksum);
}

#[test]
fn df_policy() {
    for (policy, inner_df, expected) in [
        (DfPolicy::Copy, true, true),
        (DfPolicy::Copy, false, false),
        (DfPolicy::Set, false, true),
        (DfPolicy::Clear, true, false),
    ] {
        let mut params = SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
        params.df = policy;
        let (mut out, _) = sa_pair(params);
        let wire = encap(&mut out, &ipv4_udp(60, 0, inner_df));
        assert_eq!(
            ip::read_u16(&wire, 6) & ip::IPV4_DF != 0,
            expected,
            "{policy:?}"
        );
    }
    // An inner IPv6 packet is never fragmented by routers: Copy sets DF.
    let (mut out, _) = sa_pair(SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let wire = encap(&mut out, &ipv6_udp(60, 0, 0));
    assert_eq!(ip::read_u16(&wire, 6), ip::IPV4_DF);
}

/// Sets the outer IPv4 ECN field as a congested router on the path would.
fn mark_outer_ecn(wire: &mut [u8], ecn: u8) {
    wire[1] = (wire[1] & !0b11) | ecn;
    ip::set_ipv4_checksum(&mut wire[..20]);
}

#[test]
fn ecn_congestion_marks_reach_the_inner_packet() {
    let params = SaParams::tunnel(3, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    let (mut out, mut inb) = sa_pair(params);
    let mut decapsulator = Decapsulator::default();
    // Inner ECT(0), marked CE on the way: the inner packet leaves with CE and a fixed checksum.
    let mut wire = encap(&mut out, &ipv4_udp(80, 0b10, true));
    mark_outer_ecn(&mut wire, 0b11);
    let (verdict, inner) = decap(&mut decapsulator, &mut inb, &wire);
    assert_eq!(verdict, Verdict::Forward);
    assert_eq!(inner[1] & 0b11, 0b11);
    assert!(ip::ipv4_checksum_ok(&inner[..20]));
    // Inner Not-ECT marked CE: RFC 6040 says drop.
    let mut wire = encap(&mut out, &ipv4_udp(80, 0, true));
    mark_outer_ecn(&mut wire, 0b11);
    let (verdict, _) = decap(&mut decapsulator, &mut inb, &wire);
    assert_eq!(verdict, Verdict::Drop(DropReason::EcnConflict));
    assert_eq!(inb.counters().drops.get(DropReason::EcnConflict), 1);
}

#[test]
fn tfc_padding_is_sent_and_stripped() {
    let mut params = SaParams::tunnel(5, CipherSuite::ChaCha20Poly1305, V4_ENDPOINTS);
    params.tfc_pad_to = Some(1000);
    let (mut out, mut inb) = sa_pair(params);
    let inner = ipv4_udp(100, 0, true);
    let wire = encap(&mut out, &inner);
    assert_eq!(wire.len(), 20 + 8 + 8 + 1000 + 2 + 2 + 16);
    let (verdict, restored) = decap(&mut Decapsulator::default(), &mut inb, &wire);
    assert_eq!(verdict, Verdict::Forward);
    assert_eq!(restored, inner);
}

#[test]
fn transport_mode_keeps_ipv4_options_and_ipv6_extension_headers() {
    let (mut out, mut inb) = sa_pair(SaParams {
        mode: Mode::Transport,
        ..SaParams::tunnel(11, CipherSuite::Aes128Gcm16, V4_ENDPOINTS)
    });
    // IPv4 with 4 bytes of options (a NOP and an end-of-list, padded).
    let mut with_options = ipv4_udp(64, 0, true);
    with_options.splice(20..20, [1u8, 1, 1, 0]);
    with_options[0] = 0x46;
    with_options[2..4].copy_from_slice(&68u16.to_be_bytes());
    ip::set_ipv4_checksum(&mut with_options[..24]);
    let wire = encap(&mut out, &with_options);
    assert_eq!(&wire[20..24], &[1, 1, 1, 0], "options stay in the header");
    assert_eq!(ip::read_u32(&wire, 24), 11, "ESP follows the options");
    let (verdict, restored) = decap(&mut Decapsulator::default(), &mut inb, &wire);
    assert_eq!((verdict, restored), (Verdict::Forward, with_options));

    let (mut out, mut inb) = sa_pair(SaParams {
        mode: Mode::Transport,
        ..SaParams::tunnel(12, CipherSuite::Aes128Gcm16, V6_ENDPOINTS)
    });
    // IPv6 with an 8-byte hop-by-hop header (PadN) before UDP.
    let mut with_hbh = ipv6_udp(64, 0, 0);
    with_hbh.splice(40..40, [ip::proto::UDP, 0, 1, 4, 0, 0, 0, 0]);
    with_hbh[6] = ip::proto::HOP_BY_HOP;
    with_hbh[4..6].copy_from_slice(&32u16.to_be_bytes());
    let wire = encap(&mut out, &with_hbh);
    assert_eq!(wire[6], ip::proto::HOP_BY_HOP);
    assert_eq!(wire[40], ip::proto::ESP, "hop-by-hop now announces ESP");
    assert_eq!(ip::read_u32(&wire, 48), 12);
    let (verdict, restored) = decap(&mut Decapsulator::default(), &mut inb, &wire);
    assert_eq!((verdict, restored), (Verdict::Forward, with_hbh));
}

#[test]
fn transport_mode_refuses_the_other_family() {
    let (mut out, _) = sa_pair(SaParams {
        mode: Mode::Transport,
        ..SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS)
    });
    let inner = ipv6_udp(64, 0, 0);
    let mut frame = Frame::new(&inner);
    let result = frame.with_buf(|buf| out.encap(buf));
    assert_eq!(result, Err(DropReason::FamilyMismatch));
    assert_eq!(
        frame.data(),
        &inner[..],
        "a dropped packet is left as it was"
    );
}

#[test]
fn headroom_and_tailroom_limits() {
    let (mut out, _) = sa_pair(SaParams {
        udp_encap: Some(UdpEncap::NATT_DEFAULT),
        ..SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V6_ENDPOINTS)
    });
    let inner = ipv4_udp(99, 0, true);
    // The documented room is enough for the worst case (IPv6 + UDP, 3 bytes of padding).
    let mut frame = Frame::with_room(&inner, ENCAP_HEADROOM, ENCAP_TAILROOM);
    assert_eq!(frame.with_buf(|buf| out.encap(buf)), Ok(()));
    let mut frame = Frame::with_room(&inner, ENCAP_HEADROOM - 1, ENCAP_TAILROOM);
    assert_eq!(
        frame.with_buf(|buf| out.encap(buf)),
        Err(DropReason::NoHeadroom)
    );
    let mut frame = Frame::with_room(&inner, ENCAP_HEADROOM, ENCAP_TAILROOM - 1);
    assert_eq!(
        frame.with_buf(|buf| out.encap(buf)),
        Err(DropReason::NoTailroom)
    );
    assert_eq!(out.counters().drops.total(), 2);
    assert_eq!(
        out.next_sequence(),
        2,
        "drops do not spend sequence numbers"
    );
}

#[test]
fn oversized_and_malformed_plaintext_is_refused() {
    let (mut out, _) = sa_pair(SaParams::tunnel(1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let mut frame = Frame::new(&ipv4_udp(65535 - 20, 0, false));
    assert_eq!(
        frame.with_buf(|buf| out.encap(buf)),
        Err(DropReason::TooBig)
    );
    for junk in [&[][..], &[0x45; 10][..], &[0x15; 64][..]] {
        let mut frame = Frame::new(junk);
        assert_eq!(
            frame.with_buf(|buf| out.encap(buf)),
            Err(DropReason::MalformedPlaintext)
        );
    }
}

#[test]
fn batches_give_one_verdict_per_packet() {
    let (mut out, mut inb) = sa_pair(SaParams::tunnel(77, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let plaintexts = [ipv4_udp(64, 0, true), vec![0x99; 30], ipv6_udp(200, 0, 0)];
    let mut frames: Vec<Frame> = plaintexts.iter().map(|p| Frame::new(p)).collect();
    let mut verdicts = [Verdict::Forward; 3];
    {
        let mut bufs: Vec<PacketBuf<'_>> = frames
            .iter_mut()
            .map(|f| PacketBuf::new(&mut f.bytes, f.start, f.len).unwrap())
            .collect();
        out.encap_batch(&mut bufs, &mut verdicts);
        assert_eq!(
            verdicts,
            [
                Verdict::Forward,
                Verdict::Drop(DropReason::MalformedPlaintext),
                Verdict::Forward
            ]
        );
        Decapsulator::default().decap_batch(&mut inb, &mut bufs, &mut verdicts);
        assert_eq!(verdicts[0], Verdict::Forward);
        assert_eq!(verdicts[2], Verdict::Forward);
        assert_eq!(bufs[0].data(), &plaintexts[0][..]);
        assert_eq!(bufs[2].data(), &plaintexts[2][..]);
    }
}

#[test]
fn link_layer_padding_after_the_ip_packet_is_ignored() {
    let (mut out, mut inb) = sa_pair(SaParams::tunnel(5, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let inner = ipv4_udp(64, 0, true);
    let mut wire = encap(&mut out, &inner);
    wire.extend_from_slice(&[0; 6]);
    let (verdict, restored) = decap(&mut Decapsulator::default(), &mut inb, &wire);
    assert_eq!((verdict, restored), (Verdict::Forward, inner));
}

#[test]
fn spi_is_checked_even_for_a_single_sa() {
    let (mut out, _) = sa_pair(SaParams::tunnel(5, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let (_, mut other) = sa_pair(SaParams::tunnel(6, CipherSuite::Aes128Gcm16, V4_ENDPOINTS));
    let wire = encap(&mut out, &ipv4_udp(64, 0, true));
    let mut decapsulator = Decapsulator::default();
    let (verdict, _) = decap(&mut decapsulator, &mut other, &wire);
    assert_eq!(verdict, Verdict::Drop(DropReason::UnknownSpi));
    assert_eq!(decapsulator.unattributed.get(DropReason::UnknownSpi), 1);
}

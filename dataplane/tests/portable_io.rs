//! The portable backend's two devices on their own, in a network namespace: a multi-queue TUN
//! device read in batches into the ESP core's headroom and written back, and the UDP ESP
//! socket rebuilding the outer headers the decapsulator parses, handing IKE through and
//! discarding what does not fit a frame.
//!
//! Needs root: without it each test prints "SKIPPED" and passes, unless `XIPSEC_REQUIRE_ALL`
//! is set.

mod netns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netns::{unique_prefix, wait_for, Netns};
use xipsec_dataplane::esp::ip::{read_u16, set_ipv4_checksum, write_u16};
use xipsec_dataplane::esp::{
    CipherSuite, Decapsulator, DropReason, Endpoints, InboundSa, PacketBuf, SaParams, Verdict,
    ENCAP_HEADROOM, ENCAP_TAILROOM,
};
use xipsec_dataplane::io::portable::{EspSocket, EspTransport, Tun, TunConfig, RX_HEADROOM};

const TIMEOUT: Duration = Duration::from_secs(5);

fn frames(count: usize, len: usize) -> Vec<Vec<u8>> {
    vec![vec![0u8; len]; count]
}

fn bufs(frames: &mut [Vec<u8>]) -> Vec<PacketBuf<'_>> {
    frames
        .iter_mut()
        .map(|frame| PacketBuf::new(frame, 0, 0).unwrap())
        .collect()
}

#[test]
fn tun_reads_into_the_headroom_and_writes_back() {
    if !netns::can_run("tun_reads_into_the_headroom_and_writes_back") {
        return;
    }
    let netns = Netns::new(format!("{}-tun", unique_prefix()));
    let mut queues = netns.run(|| {
        let first = Tun::create(&TunConfig {
            multi_queue: true,
            mtu: Some(1400),
            ..TunConfig::new("xipsec%d")
        })
        .unwrap();
        let second = first.open_queue().unwrap();
        [first, second]
    });
    let name = queues[0].name().to_owned();
    assert!(name.starts_with("xipsec"), "{name}");
    assert_eq!(queues[1].name(), name);
    netns.ip(&["addr", "add", "10.9.0.1/24", "dev", &name]);
    let (sender, receiver) = netns.run(|| {
        (
            UdpSocket::bind("10.9.0.1:6000").unwrap(),
            UdpSocket::bind("10.9.0.1:6001").unwrap(),
        )
    });
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();

    // Out through the device: 10 datagrams to a host behind it.
    const COUNT: usize = 10;
    for i in 0..COUNT {
        let payload = format!("tun datagram {i}");
        sender.send_to(payload.as_bytes(), "10.9.0.2:6001").unwrap();
    }
    let mut storage = frames(2 * COUNT, 2048);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut round = 0;
    assert!(
        wait_for(TIMEOUT, || {
            let mut batch = bufs(&mut storage);
            let queue = &mut queues[round % 2];
            round += 1;
            let n = queue.recv_batch(&mut batch);
            for buf in &batch[..n] {
                assert_eq!(buf.offset(), ENCAP_HEADROOM);
                assert!(buf.tailroom() >= ENCAP_TAILROOM);
                let packet = buf.data();
                // IPv4 UDP to 10.9.0.2 (the kernel may also send IPv6 housekeeping).
                if packet[0] >> 4 == 4 && packet[9] == 17 && packet[16..20] == [10, 9, 0, 2] {
                    got.push(packet.to_vec());
                }
            }
            got.len() >= COUNT
        }),
        "read {} of {COUNT} packets from the TUN queues",
        got.len()
    );
    for (i, packet) in got.iter().enumerate() {
        assert_eq!(usize::from(read_u16(packet, 2)), packet.len());
        assert_eq!(&packet[28..], format!("tun datagram {i}").as_bytes());
    }

    // Back in through the device: the same packets as if 10.9.0.2 had answered.
    let replies: Vec<Vec<u8>> = got
        .iter()
        .map(|packet| {
            let mut reply = packet.clone();
            reply[12..16].copy_from_slice(&packet[16..20]);
            reply[16..20].copy_from_slice(&packet[12..16]);
            set_ipv4_checksum(&mut reply[..20]);
            write_u16(&mut reply, 20, 6001); // from port 6001 of 10.9.0.2 ...
            write_u16(&mut reply, 22, 6001); // ... to the receiver
            write_u16(&mut reply, 26, 0); // no UDP checksum (allowed over IPv4)
            reply
        })
        .collect();
    let written = queues[1].send_batch(replies.iter().map(Vec::as_slice));
    assert_eq!(written, COUNT, "{:?}", queues[1].tx_stats());
    let mut buf = [0u8; 256];
    for i in 0..COUNT {
        let (n, from) = receiver
            .recv_from(&mut buf)
            .expect("a reply through the TUN");
        assert_eq!(from, "10.9.0.2:6001".parse().unwrap());
        assert_eq!(&buf[..n], format!("tun datagram {i}").as_bytes());
    }

    // A packet longer than the frame's room is counted and skipped, not truncated.
    let mut small = frames(1, ENCAP_HEADROOM + 100 + ENCAP_TAILROOM);
    sender.send_to(&[0x55; 500], "10.9.0.2:6001").unwrap();
    let discarded_before = queues[0].rx_stats().discarded + queues[1].rx_stats().discarded;
    assert!(wait_for(TIMEOUT, || {
        for queue in &mut queues {
            let mut batch = bufs(&mut small);
            let n = queue.recv_batch(&mut batch);
            assert!(batch[..n].iter().all(|buf| buf.len() <= 100));
        }
        queues[0].rx_stats().discarded + queues[1].rx_stats().discarded > discarded_before
    }));
}

#[test]
fn udp_socket_rebuilds_the_outer_headers() {
    if !netns::can_run("udp_socket_rebuilds_the_outer_headers") {
        return;
    }
    let netns = Netns::new(format!("{}-udp", unique_prefix()));
    for local in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let (mut esp, peer) = netns.run(|| {
            (
                EspSocket::udp(SocketAddr::new(local, 4500)).unwrap(),
                UdpSocket::bind(SocketAddr::new(local, 0)).unwrap(),
            )
        });
        assert_eq!(esp.transport(), EspTransport::Udp);
        // The peer marks its datagrams ECT(0) with DSCP 8: the rebuilt header must carry both.
        set_traffic_class(&peer, local, 0x22);
        let to = esp.local_addr();
        let esp_like: Vec<u8> = (1..=64).collect(); // SPI 0x01020304
        let mut ike = vec![0u8; 4];
        ike.extend_from_slice(b"an IKE message");
        peer.send_to(&esp_like, to).unwrap();
        peer.send_to(&[0xAB; 3000], to).unwrap(); // larger than a frame's room
        peer.send_to(&ike, to).unwrap();

        let mut storage = frames(4, 2048);
        let mut meta = [Default::default(); 4];
        let mut batch = bufs(&mut storage);
        let mut total = 0;
        wait_for(TIMEOUT, || {
            total += esp.recv_batch(&mut batch[total..], &mut meta[total..]);
            total >= 2 && esp.rx_stats().discarded >= 1
        });
        assert_eq!(total, 2, "{:?}", esp.rx_stats());
        assert_eq!(esp.rx_stats().discarded, 1);

        let ip_len = if local.is_ipv4() { 20 } else { 40 };
        for (buf, meta) in batch[..2].iter().zip(&meta) {
            assert_eq!(meta.peer, peer.local_addr().unwrap());
            assert_eq!(meta.local, to);
            assert_eq!(meta.header_len, ip_len + 8);
            assert_eq!(buf.offset() + meta.header_len, RX_HEADROOM);
            assert_eq!(meta.traffic_class, 0x22);
            let header = buf.data();
            let class = if local.is_ipv4() {
                header[1]
            } else {
                (header[0] << 4) | (header[1] >> 4)
            };
            assert_eq!(class, 0x22);
        }
        assert_eq!(&batch[0].data()[ip_len + 8..], &esp_like[..]);
        assert_eq!(&batch[1].data()[ip_len + 8..], &ike[..]);

        // The decapsulator accepts the rebuilt headers: the ESP packet gets as far as the SPI
        // lookup, the IKE message is handed on untouched.
        let endpoints = match local {
            IpAddr::V4(local) => Endpoints::V4 {
                local,
                remote: local,
            },
            IpAddr::V6(local) => Endpoints::V6 {
                local,
                remote: local,
            },
        };
        let mut other_sa = InboundSa::new(
            SaParams::tunnel(0x0bad_0bad, CipherSuite::Aes128Gcm16, endpoints),
            &[1; 20],
        )
        .unwrap();
        let mut verdicts = [Verdict::Forward; 2];
        let mut decapsulator = Decapsulator::new(4500);
        decapsulator.decap_batch(&mut other_sa, &mut batch[..2], &mut verdicts);
        assert_eq!(
            verdicts,
            [
                Verdict::Drop(DropReason::UnknownSpi),
                Verdict::ToControlPlane
            ]
        );

        // IKE and keepalives go out of port 4500 to the peer.
        esp.send_ike(meta[1].peer, b"an IKE reply").unwrap();
        esp.send_keepalive(meta[1].peer).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"\0\0\0\0an IKE reply"[..], to));
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[0xFF][..], to));

        // What is not an ESP packet of this socket's family is not sent.
        let not_udp = ipv4_esp_packet();
        let sent = esp.send_batch([&not_udp[..], &[0x45; 10][..]]);
        assert_eq!(sent, 0);
        assert_eq!(esp.tx_stats().discarded, 2);
    }
}

/// A well-formed IPv4 packet that is not UDP: a UDP ESP socket must refuse it.
fn ipv4_esp_packet() -> Vec<u8> {
    let mut packet = vec![0u8; 40];
    packet[0] = 0x45;
    write_u16(&mut packet, 2, 40);
    packet[8] = 64;
    packet[9] = 50;
    packet[12..16].copy_from_slice(&[127, 0, 0, 1]);
    packet[16..20].copy_from_slice(&[127, 0, 0, 1]);
    set_ipv4_checksum(&mut packet[..20]);
    packet
}

fn set_traffic_class(socket: &UdpSocket, family: IpAddr, class: libc::c_int) {
    let (level, name) = match family {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_TOS),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    };
    // SAFETY: a live int and its size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&class as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

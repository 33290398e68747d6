//! The portable backend end to end, in network namespaces: host A -- gateway A == gateway B --
//! host B, each gateway a `PortableGateway` on its own thread with manual AES-GCM-128 SAs.
//! UDP crosses both ways, as ESP in UDP (NAT-T) and as plain ESP, over IPv4 and IPv6 outer
//! addresses; a capture on the link between the gateways sees only ESP, never the plaintext.
//! With NAT-T, IKE and keepalives on port 4500 reach the caller, and IKE goes back out.
//!
//! Needs root (namespaces, TUN, raw sockets): without it each test prints "SKIPPED" and
//! passes, unless `XIPSEC_REQUIRE_ALL` is set.

mod netns;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netns::gateways::{deliver, gateway_in, host_socket, sas, RunningGateway, Transport};
use netns::{classify_wan_frame, Capture, Topology, WanFrame, HOST_A, HOST_B};
use xipsec_dataplane::io::portable::{ControlKind, GatewayCounters, PortableGateway};

/// Bytes every plaintext datagram carries; the capture must never see them.
const MARKER: &[u8] = b"XIPSEC-PLAINTEXT-MARKER";
const SPI_A_TO_B: u32 = 0x0000_a0b1;
const SPI_B_TO_A: u32 = 0x0000_b0a1;
/// Datagrams sent one at a time (each answered), then in one burst.
const PING_PONGS: usize = 20;
const BURST: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(5);

fn set_tos(socket: &UdpSocket, tos: libc::c_int) {
    // SAFETY: a live int and its size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_TOS,
            (&tos as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "IP_TOS: {}", std::io::Error::last_os_error());
}

fn datagram(direction: &str, i: usize) -> Vec<u8> {
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(format!(" {direction} #{i} ").as_bytes());
    bytes.resize(200, b'.');
    bytes
}

fn check_counters(name: &str, counters: &GatewayCounters, gateway: &PortableGateway) {
    eprintln!("{name}: {counters:#?}");
    assert_eq!(counters.encap_dropped, 0, "{name}: encapsulation drops");
    assert_eq!(counters.decap_dropped, 0, "{name}: decapsulation drops");
    assert_eq!(
        gateway.inbound().counters().drops.total(),
        0,
        "{name}: inbound SA drops {:?}",
        gateway
            .inbound()
            .counters()
            .drops
            .nonzero()
            .collect::<Vec<_>>()
    );
    assert!(counters.encapsulated >= PING_PONGS as u64, "{name}");
    assert!(counters.decapsulated >= PING_PONGS as u64, "{name}");
    assert_eq!(counters.esp_tx.errors, 0, "{name}: {:?}", counters.esp_tx);
    assert_eq!(counters.tun_tx.errors, 0, "{name}: {:?}", counters.tun_tx);
    assert_eq!(counters.esp_rx.discarded, 0, "{name}");
    assert_eq!(counters.esp_tx.discarded, 0, "{name}");
}

fn through_the_tunnel(test: &str, wan_a: &str, wan_b: &str, transport: Transport) {
    if !netns::can_run(test) {
        return;
    }
    let topology = Topology::new(wan_a, wan_b);
    let addr = |cidr: &str| -> IpAddr { cidr.split('/').next().unwrap().parse().unwrap() };
    let (wan_a, wan_b) = (addr(wan_a), addr(wan_b));

    let capture = Capture::start(&topology.gw_a, "wan");
    // The same capture on the plaintext side proves the marker check can fail.
    let lan_capture = Capture::start(&topology.gw_a, "lan");
    let gateway_a = gateway_in(
        &topology.gw_a,
        wan_a,
        transport,
        "10.2.0.0/24",
        sas(wan_a, wan_b, transport, SPI_A_TO_B, SPI_B_TO_A),
    );
    let gateway_b = gateway_in(
        &topology.gw_b,
        wan_b,
        transport,
        "10.1.0.0/24",
        sas(wan_b, wan_a, transport, SPI_B_TO_A, SPI_A_TO_B),
    );

    // IKE goes out of the NAT-T port behind the non-ESP marker.
    let ike_peer = (transport == Transport::NattUdp).then(|| {
        let peer = topology
            .gw_b
            .run(|| UdpSocket::bind((wan_b, 5000)))
            .unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let to = peer.local_addr().unwrap();
        gateway_a
            .esp_socket()
            .send_ike(to, b"IKE_SA_INIT response")
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer
            .recv_from(&mut buf)
            .expect("the IKE message from gateway A");
        assert_eq!(&buf[..n], b"\0\0\0\0IKE_SA_INIT response");
        assert_eq!(from, SocketAddr::new(wan_a, 4500));
        peer
    });

    let running_a = RunningGateway::start(gateway_a);
    let running_b = RunningGateway::start(gateway_b);
    let host_a = host_socket(&topology.host_a, HOST_A);
    // Host A's datagrams are ECN-capable, ECT(0): the outer header must say so too
    // (RFC 6040), through the cmsg (NAT-T) or the header the core built (raw).
    set_tos(&host_a, 0x02);
    let host_b = host_socket(&topology.host_b, HOST_B);

    for i in 0..PING_PONGS {
        let source = deliver(&host_a, &host_b, &datagram("A->B", i));
        assert_eq!(source, host_a.local_addr().unwrap());
        let source = deliver(&host_b, &host_a, &datagram("B->A", i));
        assert_eq!(source, host_b.local_addr().unwrap());
    }

    // A burst, many packets per batch.
    let to_b = host_b.local_addr().unwrap();
    for i in 0..BURST {
        host_a.send_to(&datagram("burst", i), to_b).unwrap();
    }
    let mut seen = [false; BURST];
    let mut buf = [0u8; 2048];
    while let Ok(n) = host_b.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(i) = text
            .split('#')
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|_| text.contains("burst"))
        {
            seen[i] = true;
        }
        if seen.iter().all(|&s| s) {
            break;
        }
    }
    let arrived = seen.iter().filter(|&&s| s).count();
    assert_eq!(arrived, BURST, "burst datagrams that crossed");

    // IKE and a keepalive sent to gateway A's NAT-T port reach the caller.
    if let Some(peer) = &ike_peer {
        let gateway_port = SocketAddr::new(wan_a, 4500);
        peer.send_to(b"\0\0\0\0IKE_SA_INIT request", gateway_port)
            .unwrap();
        peer.send_to(&[0xFF], gateway_port).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            match running_a.control.recv_timeout(TIMEOUT) {
                Ok(datagram) => got.push(datagram),
                Err(e) => panic!("control datagrams so far {got:?}: {e}"),
            }
        }
        let from = peer.local_addr().unwrap();
        assert!(got.contains(&(
            ControlKind::Ike,
            from,
            b"\0\0\0\0IKE_SA_INIT request".to_vec()
        )));
        assert!(got.contains(&(ControlKind::Keepalive, from, vec![0xFF])));
    }

    let gateway_a = running_a.stop();
    let gateway_b = running_b.stop();
    let frames = capture.stop();
    let lan_frames = lan_capture.stop();
    assert!(
        lan_frames
            .iter()
            .any(|frame| frame.windows(MARKER.len()).any(|w| w == MARKER)),
        "the capture on the LAN side never saw the plaintext marker"
    );

    let counters_a = gateway_a.counters();
    let counters_b = gateway_b.counters();
    check_counters("gateway A", &counters_a, &gateway_a);
    check_counters("gateway B", &counters_b, &gateway_b);
    assert!(counters_a.encapsulated >= (PING_PONGS + BURST) as u64);
    assert!(counters_b.decapsulated >= (PING_PONGS + BURST) as u64);
    if transport == Transport::NattUdp {
        assert_eq!(counters_a.ike_to_caller, 1);
        assert_eq!(counters_a.keepalives_to_caller, 1);
    }

    // On the wire between the gateways: ESP only, and never the plaintext.
    let mut esp_frames = 0;
    let mut ect_frames = 0;
    for frame in &frames {
        assert!(
            !frame.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext on the wire: {frame:02x?}"
        );
        match (classify_wan_frame(frame), transport) {
            (WanFrame::Esp { spi }, Transport::RawEsp)
            | (WanFrame::NattUdp { first_word: spi }, Transport::NattUdp)
                if spi != 0 =>
            {
                assert!(spi == SPI_A_TO_B || spi == SPI_B_TO_A, "SPI {spi:#x}");
                if netns::traffic_class(frame).unwrap() & 0b11 == 0b10 {
                    assert_eq!(spi, SPI_A_TO_B, "ECT(0) only comes from host A");
                    ect_frames += 1;
                }
                esp_frames += 1
            }
            // The IKE test messages and the keepalive.
            (WanFrame::NattUdp { .. }, Transport::NattUdp) => {}
            (WanFrame::Housekeeping, _) => {}
            (other, _) => panic!("unexpected frame on the WAN link: {other:?} {frame:02x?}"),
        }
    }
    // Every datagram of host A, and nothing else (gateway A's own IPv6 housekeeping through
    // the TUN device, e.g. MLD, is tunnelled too, without ECN).
    assert!(
        ect_frames >= PING_PONGS + BURST,
        "{ect_frames} ESP frames with ECT(0) captured"
    );
    let expected = 2 * PING_PONGS + BURST;
    assert!(
        esp_frames >= expected,
        "{esp_frames} ESP frames captured, expected at least {expected}"
    );
}

#[test]
fn natt_over_ipv4() {
    through_the_tunnel(
        "natt_over_ipv4",
        "192.0.2.1/24",
        "192.0.2.2/24",
        Transport::NattUdp,
    );
}

#[test]
fn plain_esp_over_ipv4() {
    through_the_tunnel(
        "plain_esp_over_ipv4",
        "192.0.2.1/24",
        "192.0.2.2/24",
        Transport::RawEsp,
    );
}

#[test]
fn natt_over_ipv6() {
    through_the_tunnel(
        "natt_over_ipv6",
        "2001:db8:ffff::1/64",
        "2001:db8:ffff::2/64",
        Transport::NattUdp,
    );
}

#[test]
fn plain_esp_over_ipv6() {
    through_the_tunnel(
        "plain_esp_over_ipv6",
        "2001:db8:ffff::1/64",
        "2001:db8:ffff::2/64",
        Transport::RawEsp,
    );
}

//! Building blocks for gateway tests: manual SA pairs, a portable gateway on a thread of its
//! own, and UDP sockets on the hosts behind the gateways.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use xipsec_dataplane::esp::{CipherSuite, Endpoints, InboundSa, OutboundSa, SaParams, UdpEncap};
use xipsec_dataplane::io::portable::{
    ControlKind, EspSocket, GatewayConfig, PortableGateway, Tun, TunConfig,
};

use super::Netns;

/// The UDP port the hosts' test sockets use.
pub const HOST_PORT: u16 = 7000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    NattUdp,
    RawEsp,
}

pub fn keymat(direction: u8) -> Vec<u8> {
    // 16 bytes of AES-128 key and 4 of salt, different each way.
    (0..20u8).map(|i| i.wrapping_mul(29) ^ direction).collect()
}

/// The parameters of one SA between `local` and `remote` (AES-GCM-128, tunnel mode).
pub fn sa_params(local: IpAddr, remote: IpAddr, transport: Transport, spi: u32) -> SaParams {
    let endpoints = match (local, remote) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => Endpoints::V4 { local, remote },
        (IpAddr::V6(local), IpAddr::V6(remote)) => Endpoints::V6 { local, remote },
        _ => panic!("mixed families"),
    };
    let mut params = SaParams::tunnel(spi, CipherSuite::Aes128Gcm16, endpoints);
    if transport == Transport::NattUdp {
        params.udp_encap = Some(UdpEncap::NATT_DEFAULT);
    }
    params
}

/// The SAs of one gateway: outbound with `out_spi`, inbound with `in_spi`.
pub fn sas(
    local: IpAddr,
    remote: IpAddr,
    transport: Transport,
    out_spi: u32,
    in_spi: u32,
) -> (OutboundSa, InboundSa) {
    let params = |spi| sa_params(local, remote, transport, spi);
    (
        OutboundSa::new(params(out_spi), &keymat(out_spi as u8)).unwrap(),
        InboundSa::new(params(in_spi), &keymat(in_spi as u8)).unwrap(),
    )
}

/// A gateway running on its own thread; stopped and joined by `stop` (or on drop).
pub struct RunningGateway {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<PortableGateway>>,
    pub control: mpsc::Receiver<(ControlKind, SocketAddr, Vec<u8>)>,
}

impl RunningGateway {
    pub fn start(mut gateway: PortableGateway) -> RunningGateway {
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, control) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                gateway
                    .run(&stop, |datagram| {
                        let _ =
                            sender.send((datagram.kind, datagram.peer, datagram.payload.to_vec()));
                    })
                    .expect("the gateway loop failed");
                gateway
            })
        };
        RunningGateway {
            stop,
            thread: Some(thread),
            control,
        }
    }

    pub fn stop(mut self) -> PortableGateway {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the gateway thread panicked")
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the TUN device and the ESP socket inside `netns`, and routes `remote_lan` into the
/// TUN device.
pub fn gateway_in(
    netns: &Netns,
    local: IpAddr,
    transport: Transport,
    remote_lan: &str,
    (outbound, inbound): (OutboundSa, InboundSa),
) -> PortableGateway {
    let (tun, esp) = netns.run(|| {
        let tun = Tun::create(&TunConfig {
            mtu: Some(1400),
            ..TunConfig::new("tun0")
        })
        .expect("creating the TUN device");
        let esp = match transport {
            Transport::NattUdp => EspSocket::udp(SocketAddr::new(local, 4500)),
            Transport::RawEsp => EspSocket::raw(local),
        }
        .expect("opening the ESP socket");
        (tun, esp)
    });
    // Bursts of ESP must not overflow the default receive buffer.
    esp.set_recv_buffer(4 << 20).expect("SO_RCVBUFFORCE");
    netns.ip(&["route", "add", remote_lan, "dev", tun.name()]);
    PortableGateway::new(tun, esp, outbound, inbound, GatewayConfig::default())
}

pub fn host_socket(netns: &Netns, address: &str) -> UdpSocket {
    let socket = netns
        .run(|| UdpSocket::bind((address, HOST_PORT)))
        .expect("binding the host socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // Room for the whole burst: it is read only after it was sent.
    let bytes: libc::c_int = 4 << 20;
    // SAFETY: a live int and its size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        set,
        0,
        "SO_RCVBUFFORCE: {}",
        std::io::Error::last_os_error()
    );
    socket
}

/// Sends `payload` from `from` to `to` until it arrives (a few tries: the first packets wait
/// for neighbour resolution), and returns where it came from.
pub fn deliver(from: &UdpSocket, to: &UdpSocket, payload: &[u8]) -> SocketAddr {
    let destination = to.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..5 {
        from.send_to(payload, destination).unwrap();
        loop {
            match to.recv_from(&mut buf) {
                Ok((n, source)) if &buf[..n] == payload => return source,
                Ok(_) => continue, // a late copy of an earlier try
                Err(_) => break,
            }
        }
    }
    panic!("{:?} never arrived", String::from_utf8_lossy(payload));
}

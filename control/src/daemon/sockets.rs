//! The IKE sockets: UDP 500 and the NAT-T port on every listen address. On the NAT-T port an
//! IKE message follows four zero octets (the non-ESP marker, RFC 3948 §2.2); a single 0xff is
//! a NAT keepalive; anything else is ESP, which belongs to the data plane: sent on to the
//! AF_XDP data plane's Unix socket when there is one
//! ([`forwarded_esp`](xipsec_dataplane::process::forwarded_esp)), dropped otherwise.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use xipsec_dataplane::process::forwarded_esp;

use crate::ike::{Path, Transmit};

/// The non-ESP marker.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The largest IKE datagram we receive (RFC 7296 §2: at least 1280 must work; fragmentation
/// keeps real ones below this).
const MAX_DATAGRAM: usize = 65_535;

/// A datagram for the engine.
#[derive(Debug)]
pub struct Received {
    pub path: Path,
    /// The IKE message, marker removed.
    pub message: Vec<u8>,
}

/// Sends ESP datagrams on to the data plane's Unix socket, without waiting: one it cannot
/// take (not running, its queue full) is dropped.
#[derive(Debug)]
struct EspForwarder {
    socket: UnixDatagram,
    path: PathBuf,
    message: std::sync::Mutex<Vec<u8>>,
}

impl EspForwarder {
    fn new(path: PathBuf) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            path,
            message: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether the datagram from `source` to `destination` went.
    fn forward(&self, source: SocketAddr, destination: SocketAddr, datagram: &[u8]) -> bool {
        let mut message = self.message.lock().unwrap_or_else(|e| e.into_inner());
        forwarded_esp::encode(source, destination, datagram, &mut message).is_some()
            && self.socket.send_to(&message, &self.path).is_ok()
    }
}

/// What arrived on the NAT-T port.
#[derive(Debug, PartialEq, Eq)]
pub enum NattPayload<'a> {
    /// An IKE message (marker removed).
    Ike(&'a [u8]),
    /// A NAT keepalive.
    Keepalive,
    /// ESP (a non-zero SPI first): the data plane's.
    Esp,
    /// Too short to be anything.
    Runt,
}

/// Sorts a datagram of the NAT-T port (RFC 3948 §2.2, §2.3).
pub fn classify_natt(payload: &[u8]) -> NattPayload<'_> {
    match payload {
        [0xff] => NattPayload::Keepalive,
        [0, 0, 0, 0, rest @ ..] if !rest.is_empty() => NattPayload::Ike(rest),
        p if p.len() >= 8 => NattPayload::Esp,
        _ => NattPayload::Runt,
    }
}

/// One bound socket and what it is for.
#[derive(Debug)]
struct Bound {
    local: SocketAddr,
    socket: Arc<UdpSocket>,
    natt: bool,
}

/// The daemon's IKE sockets.
#[derive(Debug)]
pub struct IkeSockets {
    bound: Vec<Bound>,
}

/// Counters of what the sockets threw away.
#[derive(Debug, Default)]
pub struct SocketCounters {
    pub esp_on_ike_socket: std::sync::atomic::AtomicU64,
    /// Of those, sent on to the data plane.
    pub esp_forwarded: std::sync::atomic::AtomicU64,
    pub runts: std::sync::atomic::AtomicU64,
    pub keepalives: std::sync::atomic::AtomicU64,
    pub send_errors: std::sync::atomic::AtomicU64,
}

impl SocketCounters {
    /// Name and value of each counter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        vec![
            ("esp_on_ike_socket", self.esp_on_ike_socket.load(Relaxed)),
            ("esp_forwarded", self.esp_forwarded.load(Relaxed)),
            ("runts", self.runts.load(Relaxed)),
            ("keepalives", self.keepalives.load(Relaxed)),
            ("send_errors", self.send_errors.load(Relaxed)),
        ]
    }
}

impl IkeSockets {
    /// Binds port 500 and, unless `natt_port` is `None` (the data plane owns that port and
    /// hands IKE over), the NAT-T port on every address.
    pub async fn bind(addrs: &[IpAddr], natt_port: Option<u16>) -> io::Result<IkeSockets> {
        let mut bound = Vec::new();
        for &ip in addrs {
            for (port, natt) in std::iter::once((500, false)).chain(natt_port.map(|p| (p, true))) {
                let local = SocketAddr::new(ip, port);
                let socket = UdpSocket::bind(local).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot bind UDP {local}: {e}"))
                })?;
                bound.push(Bound {
                    local,
                    socket: Arc::new(socket),
                    natt,
                });
            }
        }
        Ok(IkeSockets { bound })
    }

    /// Binds the NAT-T port on more addresses.
    pub async fn bind_more(&mut self, addrs: &[IpAddr], natt_port: u16) -> io::Result<()> {
        for &ip in addrs {
            let local = SocketAddr::new(ip, natt_port);
            let socket = UdpSocket::bind(local)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {local}: {e}")))?;
            self.bound.push(Bound {
                local,
                socket: Arc::new(socket),
                natt: true,
            });
        }
        Ok(())
    }

    /// Starts a receiving task per socket, feeding `tx`; ESP on the NAT-T port goes to the
    /// Unix socket at `esp_forward`, if given.
    pub fn spawn_receivers(
        &self,
        tx: mpsc::Sender<Received>,
        counters: Arc<SocketCounters>,
        esp_forward: Option<PathBuf>,
    ) {
        let forwarder = esp_forward.and_then(|path| match EspForwarder::new(path) {
            Ok(forwarder) => Some(Arc::new(forwarder)),
            Err(e) => {
                warn!("ESP on the NAT-T port will be dropped: {e}");
                None
            }
        });
        for b in &self.bound {
            let forwarder = forwarder.clone();
            let socket = b.socket.clone();
            let local = b.local;
            let natt = b.natt;
            let tx = tx.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let (n, remote) = match socket.recv_from(&mut buf).await {
                        Ok(r) => r,
                        Err(e) => {
                            // ICMP errors surface here on Linux; the socket stays usable.
                            debug!(%local, "receive: {e}");
                            continue;
                        }
                    };
                    let datagram = &buf[..n];
                    let message = if natt {
                        match classify_natt(datagram) {
                            NattPayload::Ike(m) => m,
                            NattPayload::Keepalive => {
                                counters
                                    .keepalives
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                continue;
                            }
                            NattPayload::Esp => {
                                counters
                                    .esp_on_ike_socket
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if forwarder
                                    .as_ref()
                                    .is_some_and(|f| f.forward(remote, local, datagram))
                                {
                                    counters
                                        .esp_forwarded
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                continue;
                            }
                            NattPayload::Runt => {
                                counters
                                    .runts
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                continue;
                            }
                        }
                    } else {
                        datagram
                    };
                    let received = Received {
                        path: Path { local, remote },
                        message: message.to_vec(),
                    };
                    if tx.send(received).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// Sends a NAT keepalive (one 0xff octet, no marker) from our NAT-T socket at
    /// `path.local`; `false` if there is none or the send failed.
    pub fn send_keepalive(&self, path: Path) -> bool {
        self.bound
            .iter()
            .find(|b| b.natt && b.local == path.local)
            .is_some_and(|b| b.socket.try_send_to(&[0xff], path.remote).is_ok())
    }

    /// Sends `t` from the socket bound to its source (with the marker on the NAT-T port), or
    /// returns `false` when no socket of ours has that address.
    pub fn send(&self, t: &Transmit, counters: &SocketCounters) -> bool {
        let Some(b) = self.bound.iter().find(|b| b.local == t.source) else {
            return false;
        };
        let result = if b.natt {
            let mut framed = Vec::with_capacity(4 + t.contents.len());
            framed.extend_from_slice(&NON_ESP_MARKER);
            framed.extend_from_slice(&t.contents);
            b.socket.try_send_to(&framed, t.destination)
        } else {
            b.socket.try_send_to(&t.contents, t.destination)
        };
        if let Err(e) = result {
            // A full send buffer loses the datagram like the network would: retransmission
            // covers it.
            counters
                .send_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!(to = %t.destination, "send: {e}");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natt_payloads_are_told_apart_as_rfc_3948_says() {
        assert_eq!(classify_natt(&[0xff]), NattPayload::Keepalive);
        assert_eq!(
            classify_natt(&[0, 0, 0, 0, 1, 2]),
            NattPayload::Ike(&[1, 2])
        );
        assert_eq!(classify_natt(&[0, 0, 0, 0]), NattPayload::Runt);
        assert_eq!(classify_natt(&[0, 0, 1, 0, 0, 0, 0, 1]), NattPayload::Esp);
        assert_eq!(classify_natt(&[1, 2, 3]), NattPayload::Runt);
    }
}

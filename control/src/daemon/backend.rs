//! The data plane the daemon runs beside itself: the portable backend's worker over a TUN
//! device and ESP sockets, reading the SA table the engine writes. The worker owns the NAT-T
//! port (ESP in UDP and IKE share it, RFC 3948), hands IKE to the daemon through a channel and
//! lets the daemon send IKE through an [`IkeSender`] on the same socket.
//!
//! The AF_XDP data plane (`dataplane_process.rs`) is a process of its own instead.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{error, warn};
use xipsec_dataplane::io::portable::{
    interface_index, EspSocket, GatewayConfig, IkeSender, PortableWorker, Route, RouteSocket, Tun,
    TunConfig, RT_TABLE_MAIN,
};
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::TableSas;

use super::plane::RouteChange;
use super::sockets::Received;
use crate::ike::Path;

/// The TUN device of the portable backend (one daemon per network namespace, like
/// kernel-libipsec's `ipsec0`).
pub const TUN_NAME: &str = "xipsec0";

/// Its MTU: a 1500-byte outer path minus the largest ESP-in-UDP overhead over IPv6 (40 + 8 +
/// 8 + 8 + 16 + 2 + 15 of padding, rounded down).
pub const TUN_MTU: u32 = 1400;

/// A running portable worker.
#[derive(Debug)]
pub struct PortableBackend {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sender: IkeSender,
    routes: RouteSocket,
    ifindex: u32,
}

impl PortableBackend {
    /// Creates the TUN device and the ESP sockets on `local` (UDP on `natt_port`, and raw ESP),
    /// and starts the worker on the table at `table`. IKE that arrives on the NAT-T port goes
    /// to `ike`.
    pub fn start(
        local: IpAddr,
        natt_port: u16,
        table: PathBuf,
        ike: mpsc::Sender<Received>,
    ) -> io::Result<PortableBackend> {
        let mut tun_config = TunConfig::new(TUN_NAME);
        tun_config.mtu = Some(TUN_MTU);
        let tun = Tun::create(&tun_config)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create {TUN_NAME}: {e}")))?;
        let ifindex = interface_index(tun.name())?;
        let udp = EspSocket::udp(SocketAddr::new(local, natt_port)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind UDP {local}:{natt_port}: {e}"),
            )
        })?;
        let sender = udp.ike_sender()?;
        let mut sockets = vec![udp];
        match EspSocket::raw(local) {
            Ok(raw) => sockets.push(raw),
            // Without CAP_NET_RAW only ESP in UDP works; say so once.
            Err(e) => warn!("no raw ESP socket on {local} ({e}): ESP only in UDP {natt_port}"),
        }
        let routes = RouteSocket::open()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("xipsec-worker".into())
            .spawn(move || run_worker(tun, sockets, table, &thread_stop, ike))?;
        Ok(PortableBackend {
            stop,
            thread: Some(thread),
            sender,
            routes,
            ifindex,
        })
    }

    /// Sends an IKE message from the NAT-T port (the non-ESP marker is added).
    pub fn send_ike(&self, to: SocketAddr, message: &[u8]) -> io::Result<usize> {
        self.sender.send_ike(to, message)
    }

    /// Sends a NAT keepalive from the NAT-T port.
    pub fn send_keepalive(&self, to: SocketAddr) -> io::Result<usize> {
        self.sender.send_keepalive(to)
    }

    /// Our address on the NAT-T port.
    pub fn natt_addr(&self) -> SocketAddr {
        self.sender.local_addr()
    }

    /// Routes a prefix of the peer's into the TUN device, or stops doing so.
    pub fn apply(&mut self, change: RouteChange) -> io::Result<()> {
        let (net, add) = match change {
            RouteChange::Add(net) => (net, true),
            RouteChange::Remove(net) => (net, false),
        };
        let route = Route {
            destination: net.network(),
            prefix_len: net.prefix_len(),
            ifindex: self.ifindex,
            table: RT_TABLE_MAIN,
        };
        if add {
            self.routes.add(&route)
        } else {
            match self.routes.delete(&route) {
                // Gone already (the operator removed it): what we wanted.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                other => other,
            }
        }
    }
}

impl Drop for PortableBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_worker(
    tun: Tun,
    sockets: Vec<EspSocket>,
    table: PathBuf,
    stop: &AtomicBool,
    ike: mpsc::Sender<Received>,
) {
    let reader = match TableReader::open(&table) {
        Ok(r) => r,
        Err(e) => {
            error!(
                "the worker cannot open the SA table {}: {e:?}",
                table.display()
            );
            return;
        }
    };
    let mut worker = match PortableWorker::new(
        tun,
        sockets,
        TableSas::new(&reader),
        GatewayConfig::default(),
    ) {
        Ok(w) => w,
        Err(e) => {
            error!("the worker cannot start: {e}");
            return;
        }
    };
    let result = worker.run(stop, |d| {
        if let Some(message) = d.ike_message() {
            let received = Received {
                path: Path {
                    local: d.local,
                    remote: d.peer,
                },
                message: message.to_vec(),
            };
            // A full queue drops like a full socket buffer would; IKE retransmits.
            let _ = ike.try_send(received);
        }
    });
    if let Err(e) = result {
        error!("the worker stopped: {e}");
    }
}

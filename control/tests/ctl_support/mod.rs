//! A mock xipsecd behind a real control socket: canned status, connections, SAs and counters,
//! and a log of every request it decoded.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use xipsec_control::ctl::protocol::{
    Auth, ChildSaInfo, ChildSaState, ConnChildInfo, ConnInfo, CountersInfo, IkeSaInfo, IkeSaState,
    Mode, Request, Response, Role, StartAction, StatusInfo, Target,
};
use xipsec_control::ctl::server::{self, Handler, ServeOptions};

/// What the mock serves.
#[derive(Debug)]
pub struct Mock {
    pub status: StatusInfo,
    pub conns: Vec<ConnInfo>,
    pub sas: Vec<IkeSaInfo>,
    pub counters: CountersInfo,
    /// Every request decoded, in order.
    pub log: Mutex<Vec<Request>>,
}

impl Mock {
    pub fn new(n_sas: usize) -> Mock {
        Mock {
            status: status(n_sas),
            conns: conns(),
            sas: sample_sas(n_sas),
            counters: counters(),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Handler for Mock {
    async fn handle(&self, request: Request) -> Response {
        self.log.lock().unwrap().push(request.clone());
        match request {
            Request::Status => Response::Status(self.status.clone()),
            Request::ListConns => Response::Conns(self.conns.clone()),
            Request::ListSas => Response::Sas(self.sas.clone()),
            Request::Counters => Response::Counters(self.counters.clone()),
            Request::Reload => Response::ok("configuration reloaded: 2 connections"),
            Request::Rekey { target, child } => {
                Response::ok(format!("rekeying {target} (child: {child})"))
            }
            Request::Initiate { name } if name == "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Response::ok("too late")
            }
            Request::Initiate { name } => {
                if self.conns.iter().any(|c| c.name == name) {
                    Response::ok(format!("initiating {name}"))
                } else {
                    Response::error(format!("no connection named '{name}'"))
                }
            }
            Request::Terminate { target } => {
                match Target::resolve(&target, |n| self.conns.iter().any(|c| c.name == n)) {
                    Some(Target::Connection(name)) => {
                        Response::ok(format!("terminating every IKE SA of {name}"))
                    }
                    Some(Target::IkeSa(id)) if self.sas.iter().any(|s| s.id == id) => {
                        Response::ok(format!("terminating IKE SA #{id}"))
                    }
                    Some(Target::IkeSa(id)) => Response::error(format!("no IKE SA #{id}")),
                    None => Response::error(format!("no connection or IKE SA '{target}'")),
                }
            }
        }
    }
}

pub fn status(n_sas: usize) -> StatusInfo {
    StatusInfo {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 93_784,
        config_file: "/etc/xipsec/xipsec.toml".into(),
        connections: 2,
        ike_sas: n_sas as u64,
        child_sas: 2 * n_sas as u64,
        backend: "afxdp".into(),
        dataplane_pid: Some(4343),
    }
}

pub fn conns() -> Vec<ConnInfo> {
    vec![
        ConnInfo {
            name: "site-b".into(),
            local_addrs: vec!["192.0.2.1".into()],
            remote_addrs: vec!["192.0.2.2".into()],
            local_auth: Auth::Psk,
            remote_auth: Auth::Psk,
            local_id: Some("gw-a.example.net".into()),
            remote_id: Some("gw-b.example.net".into()),
            ike_proposals: vec![
                "aes128gcm16-prfsha256-x25519".into(),
                "aes256-sha256-prfsha256-modp2048".into(),
            ],
            rekey_time_secs: 14400,
            reauth: false,
            dpd_interval_secs: 30,
            mobike: true,
            encap: false,
            children: vec![ConnChildInfo {
                name: "net".into(),
                mode: Mode::Tunnel,
                local_ts: vec!["10.1.0.0/24".into()],
                remote_ts: vec!["10.2.0.0/24".into()],
                esp_proposals: vec!["aes128gcm16".into(), "aes256gcm16-esn".into()],
                start_action: StartAction::Start,
                rekey_time_secs: 3600,
            }],
        },
        // A name that is all digits: `terminate 42` means it, `terminate '#42'` an SA.
        ConnInfo {
            name: "42".into(),
            local_addrs: vec!["%any".into()],
            remote_addrs: vec!["%any".into()],
            local_auth: Auth::Pubkey,
            remote_auth: Auth::Pubkey,
            local_id: None,
            remote_id: None,
            ike_proposals: vec!["aes256gcm16-prfsha384-ecp384".into()],
            rekey_time_secs: 7200,
            reauth: true,
            dpd_interval_secs: 0,
            mobike: false,
            encap: true,
            children: vec![ConnChildInfo {
                name: "host".into(),
                mode: Mode::Transport,
                local_ts: vec![],
                remote_ts: vec![],
                esp_proposals: vec!["chacha20poly1305".into()],
                start_action: StartAction::None,
                rekey_time_secs: 1800,
            }],
        },
    ]
}

pub fn counters() -> CountersInfo {
    let mut counters = BTreeMap::new();
    counters.insert("ike.datagrams_in".to_string(), 123_456);
    counters.insert("ike.datagrams_out".to_string(), 123_400);
    counters.insert("ike.dropped.bad_spi".to_string(), 7);
    counters.insert("dataplane.packets_in".to_string(), 9_876_543_210);
    counters.insert("dataplane.dropped.replay".to_string(), 3);
    CountersInfo { counters }
}

/// `n` IKE SAs with two Child SAs each, every field varied with the index.
pub fn sample_sas(n: usize) -> Vec<IkeSaInfo> {
    (0..n as u64)
        .map(|i| {
            let v6 = i % 3 == 2;
            let (local, remote): (SocketAddr, SocketAddr) = if v6 {
                (
                    "[2001:db8::1]:500".parse().unwrap(),
                    format!("[2001:db8:1::{:x}]:4500", i + 1).parse().unwrap(),
                )
            } else {
                (
                    "192.0.2.1:4500".parse().unwrap(),
                    format!("198.51.{}.{}:{}", (i >> 8) & 0xff, i & 0xff, 4500 + (i % 7))
                        .parse()
                        .unwrap(),
                )
            };
            let child = |k: u64| ChildSaInfo {
                name: if k == 0 { "net".into() } else { "voice".into() },
                state: match (i + k) % 4 {
                    0 => ChildSaState::Installed,
                    1 => ChildSaState::Rekeying,
                    2 => ChildSaState::Rekeyed,
                    _ => ChildSaState::Deleting,
                },
                mode: if k == 0 {
                    Mode::Tunnel
                } else {
                    Mode::Transport
                },
                spi_in: 0xc000_0000 | (i as u32) << 1 | k as u32,
                spi_out: 0x0100_0000 + (i as u32) * 2 + k as u32,
                local_ts: vec![format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff)],
                remote_ts: vec!["10.200.0.0/16".into(), "2001:db8:ffff::/48".into()],
                algorithm: if k == 0 {
                    "AES_GCM_16-128".into()
                } else {
                    "CHACHA20_POLY1305".into()
                },
                esn: k == 1,
                udp_encap: i % 2 == 1,
                bytes_in: i * 1000 + k,
                bytes_out: u64::MAX - i,
                packets_in: i * 10,
                packets_out: i * 11 + k,
                installed_secs: i % 3600,
                rekey_in_secs: if k == 0 { Some(3600 - i % 3600) } else { None },
                resource: None,
            };
            IkeSaInfo {
                id: i + 1,
                connection: if i % 2 == 0 {
                    "site-b".into()
                } else {
                    "42".into()
                },
                state: match i % 4 {
                    0 => IkeSaState::Established,
                    1 => IkeSaState::Connecting,
                    2 => IkeSaState::Rekeying,
                    _ => IkeSaState::Deleting,
                },
                role: if i % 2 == 0 {
                    Role::Initiator
                } else {
                    Role::Responder
                },
                local_addr: local,
                remote_addr: remote,
                local_id: "gw-a.example.net".into(),
                remote_id: if i % 4 == 1 {
                    String::new()
                } else {
                    format!("peer-{i}.example.net")
                },
                algorithms: "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519".into(),
                spi_i: 0x8000_0000_0000_0000 | i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 1,
                spi_r: if i % 4 == 1 { 0 } else { u64::MAX - i },
                established_secs: if i % 4 == 1 { None } else { Some(i) },
                rekey_in_secs: if i % 5 == 0 {
                    None
                } else {
                    Some(14_400 - i % 14_400)
                },
                nat_local: i % 6 == 1,
                nat_remote: i % 2 == 1,
                children: if i % 4 == 1 {
                    vec![]
                } else {
                    vec![child(0), child(1)]
                },
            }
        })
        .collect()
}

/// A handler served on a socket in its own thread and runtime; stopped on drop.
pub struct Running<H> {
    pub handler: Arc<H>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds `path` and serves `handler` on it in a new thread; returns once the socket is bound,
/// or the bind error.
pub fn serve_on<H: Handler>(
    path: &Path,
    handler: H,
    options: ServeOptions,
) -> std::io::Result<Running<H>> {
    let handler = Arc::new(handler);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let h = Arc::clone(&handler);
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = match server::bind(&path) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            tokio::select! {
                () = server::serve_with(listener, h, options) => {}
                _ = stop_rx => {}
            }
        });
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server thread did not start");
    let running = Running {
        handler,
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    ready.map(|()| running)
}

impl<H> Drop for Running<H> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A mock daemon serving on `<tempdir>/run/xipsec/xipsecd.sock` (the directories do not exist
/// before: bind creates them); stopped, and its directory removed, on drop.
pub struct MockDaemon {
    pub running: Running<Mock>,
    pub path: PathBuf,
    pub dir: TempDir,
}

impl MockDaemon {
    pub fn start(mock: Mock) -> MockDaemon {
        MockDaemon::start_with(mock, ServeOptions::default())
    }

    pub fn start_with(mock: Mock, options: ServeOptions) -> MockDaemon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/xipsec/xipsecd.sock");
        let running = serve_on(&path, mock, options).expect("bind failed");
        MockDaemon { running, path, dir }
    }

    pub fn mock(&self) -> &Mock {
        &self.running.handler
    }
}

//! The tokio shell around the [`Engine`]: it loads the configuration, binds the sockets,
//! creates the SA table, and then only moves datagrams in and out, fires timers and answers
//! signals. Everything that decides lives in the engine.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::backend::PortableBackend;
use super::connection::{prepare, Defaults, Prepared};
use super::dataplane_process::{self, DataplaneProcess, DataplaneSpec, Supervised};
use super::engine::Engine;
use super::plane::{Plane, DEFAULT_CAPACITY};
use super::report::{self, DaemonFacts};
use super::sockets::{IkeSockets, Received, SocketCounters};
use super::{listen_addresses, DaemonError, Options};
use crate::config::{Backend, Config};
use crate::ctl;
use crate::ctl::protocol::{Request, Response};
use xipsec_dataplane::process::forwarded_esp::esp_socket_path;
use xipsec_dataplane::process::stats_path;

/// `xipsecctl` requests waiting for the loop.
const CONTROL_QUEUE: usize = 16;

/// How long SIGTERM waits for the peers to acknowledge our Deletes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Datagrams waiting for the engine; beyond this, receivers wait (the kernel's socket buffer
/// then drops, as under any overload).
const RX_QUEUE: usize = 4096;
/// Datagrams handled after the one that woke the loop, before the next SPD write and sends.
const DATAGRAM_BURST: usize = 64;

/// Loads the configuration and the connections this build can run.
fn load(opts: &Options) -> Result<(Config, Vec<Prepared>), DaemonError> {
    let config = Config::load(&opts.config, &opts.macros)
        .map_err(|errors| DaemonError::Config(errors.0.iter().map(|e| e.to_string()).collect()))?;
    let defaults = Defaults {
        natt_port: opts.natt_port,
        nat_traversal: opts.nat_traversal,
        retransmit: crate::ike::RetransmitConfig {
            initial_timeout: config.daemon.retransmit_timeout,
            max_retransmits: config.daemon.retransmit_tries,
            ..crate::ike::RetransmitConfig::default()
        },
    };
    let mut prepared = Vec::new();
    for conn in &config.connections {
        match prepare(conn, defaults) {
            Ok(p) => prepared.push(p),
            Err(e) => error!("{e}; the connection is skipped"),
        }
    }
    Ok((config, prepared))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let (config, prepared) = load(&opts)?;
    let listen = listen_addresses(&config);
    if listen.is_empty() && !config.connections.is_empty() {
        return Err(DaemonError::Config(vec![format!(
            "{}: no address to receive IKE on: set daemon.listen or a connection's local_addrs",
            opts.config.display()
        )]));
    }
    let table_path = opts.table_path();
    if let Some(dir) = table_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DaemonError::Local(format!("cannot create {}: {e}", dir.display())))?;
    }
    let afxdp = wants_afxdp(&opts, &config)?;
    let capacity = config.dataplane.sa_capacity.unwrap_or(DEFAULT_CAPACITY);
    // A data plane that outlived its control plane forwards with the table: adopt the table
    // rather than recreate it under the workers' feet.
    let running = match afxdp {
        true => DataplaneProcess::find(&opts.dataplane_pid_path())
            .map_err(|e| DaemonError::Local(format!("data plane: {e}")))?,
        false => None,
    };
    let mut plane = match &running {
        Some(dataplane) => {
            let plane = Plane::adopt(&table_path, Instant::now()).map_err(|e| {
                DaemonError::Local(format!(
                    "a data plane runs (pid {}) but its SA table {} cannot be re-opened: {e}",
                    dataplane.pid(),
                    table_path.display()
                ))
            })?;
            info!(
                pid = dataplane.pid(),
                kept = plane.orphans(),
                "re-attached to the running data plane; its SAs keep forwarding"
            );
            plane
        }
        None => Plane::create(&table_path, capacity).map_err(|e| {
            DaemonError::Local(format!(
                "cannot create the SA table {}: {e:?}",
                table_path.display()
            ))
        })?,
    };
    for sa in &config.manual_sas {
        plane.install_manual(sa).map_err(|e| {
            DaemonError::Local(format!("manual_sa '{}' cannot be installed: {e}", sa.name))
        })?;
        info!(name = %sa.name, spi = format_args!("{:08x}", sa.spi), direction = ?sa.direction,
              "manual SA installed");
    }
    plane.defer_spd_writes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Local(format!("cannot start the runtime: {e}")))?;
    let spec = DataplaneSpec {
        table: table_path.clone(),
        pid_file: opts.dataplane_pid_path(),
        interfaces: config.dataplane.interfaces.clone(),
        workers: config.dataplane.workers,
        natt_port: opts.natt_port,
    };
    let program = dataplane_process::program();
    let process = match (afxdp, running) {
        (false, _) => None,
        (true, Some(running)) => Some(running),
        (true, None) => match DataplaneProcess::start(&program, &spec) {
            Ok(started) => Some(started),
            Err(e) if config.dataplane.backend == Backend::Auto => {
                warn!("AF_XDP data plane: {e}; using the portable backend");
                None
            }
            Err(e) => return Err(DaemonError::Local(format!("AF_XDP data plane: {e}"))),
        },
    };
    let mut dataplane = process.map(|p| Supervised::new(p, spec, program));
    // The portable worker runs inside xipsecd, on the first IPv4 address it listens on.
    let backend_addr = match dataplane {
        Some(_) => None,
        None => listen
            .iter()
            .copied()
            .find(IpAddr::is_ipv4)
            .or_else(|| listen.first().copied())
            .or_else(|| config.manual_sas.first().map(|sa| sa.local)),
    };
    let backend_name = match (&dataplane, backend_addr) {
        (Some(_), _) => "afxdp",
        (None, Some(_)) => "portable",
        (None, None) => "none",
    };
    let engine = Engine::new(prepared, plane, listen.clone());
    // Where manual SAs receive ESP in UDP. With the AF_XDP data plane no socket holds these
    // ports, yet a datagram the kernel reassembled from fragments arrives on one: xipsecd
    // takes it there and sends it on to the data plane.
    let mut manual_natt: Vec<(IpAddr, u16)> = config
        .manual_sas
        .iter()
        .filter_map(|sa| Some((sa.local, sa.encap?.sport)))
        .filter(|&(ip, port)| !(listen.contains(&ip) && port == opts.natt_port))
        .collect();
    manual_natt.sort_unstable();
    manual_natt.dedup();
    let result = runtime.block_on(event_loop(
        opts,
        engine,
        listen,
        manual_natt,
        backend_addr,
        backend_name,
        dataplane.as_mut(),
    ));
    // A clean stop deleted every SA: nothing is left to forward.
    if let Some(dataplane) = dataplane {
        dataplane.stop();
    }
    let _ = std::fs::remove_file(&table_path);
    result
}

/// Whether the AF_XDP data plane is wanted: `afxdp`, or `auto` with interfaces to run on.
fn wants_afxdp(opts: &Options, config: &Config) -> Result<bool, DaemonError> {
    let dataplane = &config.dataplane;
    match dataplane.backend {
        Backend::Portable => Ok(false),
        Backend::Auto => Ok(!dataplane.interfaces.is_empty()),
        Backend::Afxdp if dataplane.interfaces.is_empty() => Err(DaemonError::Config(vec![format!(
            "{}: dataplane.backend = \"afxdp\" needs dataplane.interfaces (where the XDP program attaches)",
            opts.config.display()
        )])),
        Backend::Afxdp => Ok(true),
    }
}

async fn event_loop(
    opts: Options,
    mut engine: Engine,
    listen: Vec<IpAddr>,
    manual_natt: Vec<(IpAddr, u16)>,
    backend_addr: Option<IpAddr>,
    backend_name: &'static str,
    mut dataplane: Option<&mut Supervised>,
) -> Result<(), DaemonError> {
    let (tx, mut rx) = mpsc::channel::<Received>(RX_QUEUE);
    // The worker owns the NAT-T port of the address it runs on; the daemon the others.
    let mut backend = match backend_addr {
        Some(addr) => Some(
            PortableBackend::start(addr, opts.natt_port, opts.table_path(), tx.clone())
                .map_err(|e| DaemonError::Local(format!("data plane: {e}")))?,
        ),
        None => None,
    };
    let natt_elsewhere: Vec<IpAddr> = listen
        .iter()
        .copied()
        .filter(|a| Some(*a) != backend_addr)
        .collect();
    let mut sockets = IkeSockets::bind(&listen, None)
        .await
        .map_err(|e| DaemonError::Local(e.to_string()))?;
    sockets
        .bind_more(&natt_elsewhere, opts.natt_port)
        .await
        .map_err(|e| DaemonError::Local(e.to_string()))?;
    if dataplane.is_some() {
        for (ip, port) in manual_natt {
            if let Err(e) = sockets.bind_more(&[ip], port).await {
                warn!("ESP in UDP reassembled from fragments will be dropped: {e}");
            }
        }
    }
    let counters = Arc::new(SocketCounters::default());
    // ESP in UDP that reaches the NAT-T socket (reassembled from fragments by the kernel)
    // belongs to the AF_XDP data plane.
    let esp_forward = dataplane
        .is_some()
        .then(|| esp_socket_path(&opts.dataplane_pid_path()));
    sockets.spawn_receivers(tx, counters.clone(), esp_forward);
    let control = ctl::server::bind(&opts.socket).map_err(|e| {
        DaemonError::Local(format!("control socket {}: {e}", opts.socket.display()))
    })?;
    let (control_handler, mut requests) = ctl::server::channel(CONTROL_QUEUE);
    let control_task = tokio::spawn(ctl::server::serve(control, Arc::new(control_handler)));
    let started = Instant::now();
    let config_file = opts.config.display().to_string();
    let signal_error = |e: std::io::Error| DaemonError::Local(format!("signals: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    info!(listen = ?listen, natt_port = opts.natt_port, connections = engine.connections().len(),
          table = %opts.table_path().display(), "xipsecd started");
    if !opts.passive {
        engine.start(Instant::now());
    }
    let mut stopping: Option<Instant> = None;
    loop {
        flush(&mut engine, &sockets, backend.as_ref(), &counters);
        if let Some(b) = backend.as_mut() {
            while let Some(change) = engine.poll_route_change() {
                if let Err(e) = b.apply(change) {
                    error!(?change, "route: {e}");
                }
            }
        }
        if let Some(deadline) = stopping {
            if engine.is_empty() || Instant::now() >= deadline {
                break;
            }
        }
        let wake = engine
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let wake = match stopping {
            Some(d) => wake.min(tokio::time::Instant::from_std(d)),
            None => wake,
        };
        tokio::select! {
            Some(r) = rx.recv() => {
                // What else is waiting, too, up to a bound: under a burst of handshakes their
                // Child SAs reach the table in one SPD write.
                engine.datagram(Instant::now(), r.path, &r.message);
                for _ in 0..DATAGRAM_BURST {
                    let Ok(r) = rx.try_recv() else {
                        break;
                    };
                    engine.datagram(Instant::now(), r.path, &r.message);
                }
            }
            _ = tokio::time::sleep_until(wake) => engine.timeout(Instant::now()),
            _ = heartbeat.tick() => {
                engine.plane().heartbeat();
                engine.data_plane_lifetimes(Instant::now());
                let expired = engine.plane_mut().expire_orphans(Instant::now());
                if expired > 0 {
                    info!(expired, "SAs of the previous control plane removed");
                }
                if stopping.is_none() {
                    if let Some(dataplane) = dataplane.as_deref_mut() {
                        dataplane.check();
                    }
                }
            }
            _ = sigterm.recv(), if stopping.is_none() => {
                info!("SIGTERM: deleting every IKE SA");
                engine.shutdown(Instant::now());
                stopping = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = sigint.recv(), if stopping.is_none() => {
                info!("SIGINT: deleting every IKE SA");
                engine.shutdown(Instant::now());
                stopping = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = sighup.recv() => {
                let _ = reload(&opts, &mut engine);
            }
            Some(pending) = requests.recv() => {
                let facts = DaemonFacts {
                    started,
                    config_file: &config_file,
                    backend: backend_name,
                    dataplane_pid: dataplane.as_deref().and_then(Supervised::pid),
                    dataplane_stats: dataplane
                        .is_some()
                        .then(|| stats_path(&opts.dataplane_pid_path())),
                };
                let response = answer(&opts, &mut engine, &facts, &counters, pending.request());
                pending.reply(response);
            }
        }
    }
    control_task.abort();
    let _ = std::fs::remove_file(&opts.socket);
    drop(backend);
    info!("xipsecd stopped");
    Ok(())
}

/// SIGHUP or `xipsecctl reload`: reads the file again; on errors the running configuration
/// stays and the errors are returned.
fn reload(opts: &Options, engine: &mut Engine) -> Result<String, String> {
    match load(opts) {
        Ok((_, prepared)) => {
            let (kept, changed, removed, added) =
                engine.reload(Instant::now(), prepared, !opts.passive);
            info!(kept, changed, removed, added, "configuration reloaded");
            Ok(format!(
                "reloaded: {kept} unchanged, {changed} changed, {removed} removed, {added} added"
            ))
        }
        Err(e) => {
            error!("reload failed, the running configuration stays:\n{e}");
            Err(format!(
                "reload failed, the running configuration stays:\n{e}"
            ))
        }
    }
}

/// Answers one `xipsecctl` request between two datagrams.
fn answer(
    opts: &Options,
    engine: &mut Engine,
    facts: &DaemonFacts<'_>,
    counters: &SocketCounters,
    request: &Request,
) -> Response {
    let now = Instant::now();
    match request {
        Request::Status => Response::Status(report::status(engine, facts, now)),
        Request::ListConns => Response::Conns(
            engine
                .connections()
                .iter()
                .map(|c| ctl::describe::conn_info(&c.conn))
                .collect(),
        ),
        Request::ListSas => Response::Sas(report::ike_sas(engine, now)),
        Request::Counters => Response::Counters(report::counters(
            engine,
            &counters.snapshot(),
            facts.dataplane_stats.as_deref(),
        )),
        Request::Initiate { name } => match engine.initiate(now, name) {
            Ok(id) => Response::ok(format!("initiating IKE SA #{id} of '{name}'")),
            Err(e) => Response::error(e.to_string()),
        },
        Request::Terminate { target } => match engine.terminate(now, target) {
            Ok(n) => Response::ok(format!("deleting {n} IKE SA(s)")),
            Err(e) => Response::error(e.to_string()),
        },
        Request::Rekey { target, child } => match engine.rekey(now, target, *child) {
            Ok(n) => Response::ok(format!("{n} rekey(s) started")),
            Err(e) => Response::error(e.to_string()),
        },
        Request::Reload => match reload(opts, engine) {
            Ok(message) => Response::ok(message),
            Err(message) => Response::error(message),
        },
    }
}

fn flush(
    engine: &mut Engine,
    sockets: &IkeSockets,
    backend: Option<&PortableBackend>,
    counters: &SocketCounters,
) {
    // Before anything goes out: a peer that hears of a Child SA may use it at once.
    if let Err(e) = engine.plane_mut().flush_spd() {
        error!("the SPD cannot be written: {e}");
    }
    while let Some(path) = engine.poll_keepalive() {
        let sent = match backend.filter(|b| b.natt_addr() == path.local) {
            Some(b) => b.send_keepalive(path.remote).is_ok(),
            None => sockets.send_keepalive(path),
        };
        if !sent {
            counters
                .send_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    while let Some(t) = engine.poll_transmit() {
        if let Some(b) = backend.filter(|b| b.natt_addr() == t.source) {
            if let Err(e) = b.send_ike(t.destination, &t.contents) {
                counters
                    .send_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(to = %t.destination, "send: {e}");
            }
        } else if !sockets.send(&t, counters) {
            warn!(source = %t.source, "no socket bound to the source of a datagram; dropped");
        }
    }
}

//! The tokio shell around the [`Engine`]: it loads the configuration, binds the sockets,
//! creates the SA table, and then only moves datagrams in and out, fires timers and answers
//! signals. Everything that decides lives in the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::connection::{prepare, Defaults, Prepared};
use super::engine::Engine;
use super::plane::{Plane, DEFAULT_CAPACITY};
use super::sockets::{IkeSockets, Received, SocketCounters};
use super::{listen_addresses, DaemonError, Options};
use crate::config::Config;

/// How long SIGTERM waits for the peers to acknowledge our Deletes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Datagrams waiting for the engine; beyond this, receivers wait (the kernel's socket buffer
/// then drops, as under any overload).
const RX_QUEUE: usize = 4096;

/// Loads the configuration and the connections this build can run.
fn load(opts: &Options) -> Result<(Config, Vec<Prepared>), DaemonError> {
    let config = Config::load(&opts.config, &opts.macros)
        .map_err(|errors| DaemonError::Config(errors.0.iter().map(|e| e.to_string()).collect()))?;
    let defaults = Defaults {
        natt_port: opts.natt_port,
        nat_traversal: opts.nat_traversal,
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
    let plane = Plane::create(&table_path, DEFAULT_CAPACITY).map_err(|e| {
        DaemonError::Local(format!(
            "cannot create the SA table {}: {e:?}",
            table_path.display()
        ))
    })?;
    let mut plane = plane;
    for sa in &config.manual_sas {
        plane.install_manual(sa).map_err(|e| {
            DaemonError::Local(format!("manual_sa '{}' cannot be installed: {e}", sa.name))
        })?;
        info!(name = %sa.name, spi = format_args!("{:08x}", sa.spi), direction = ?sa.direction,
              "manual SA installed");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Local(format!("cannot start the runtime: {e}")))?;
    let engine = Engine::new(prepared, plane, listen.clone());
    let result = runtime.block_on(event_loop(opts, engine, listen));
    let _ = std::fs::remove_file(&table_path);
    result
}

async fn event_loop(
    opts: Options,
    mut engine: Engine,
    listen: Vec<std::net::IpAddr>,
) -> Result<(), DaemonError> {
    let sockets = IkeSockets::bind(&listen, Some(opts.natt_port))
        .await
        .map_err(|e| DaemonError::Local(e.to_string()))?;
    let counters = Arc::new(SocketCounters::default());
    let (tx, mut rx) = mpsc::channel::<Received>(RX_QUEUE);
    sockets.spawn_receivers(tx, counters.clone());
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
        flush(&mut engine, &sockets, &counters);
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
            Some(r) = rx.recv() => engine.datagram(Instant::now(), r.path, &r.message),
            _ = tokio::time::sleep_until(wake) => engine.timeout(Instant::now()),
            _ = heartbeat.tick() => engine.plane().heartbeat(),
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
            _ = sighup.recv() => reload(&opts, &mut engine),
        }
    }
    info!("xipsecd stopped");
    Ok(())
}

/// SIGHUP: reads the file again; on errors the running configuration stays.
fn reload(opts: &Options, engine: &mut Engine) {
    match load(opts) {
        Ok((_, prepared)) => {
            let (kept, changed, removed, added) =
                engine.reload(Instant::now(), prepared, !opts.passive);
            info!(kept, changed, removed, added, "configuration reloaded");
        }
        Err(e) => error!("reload failed, the running configuration stays:\n{e}"),
    }
}

fn flush(engine: &mut Engine, sockets: &IkeSockets, counters: &SocketCounters) {
    while let Some(t) = engine.poll_transmit() {
        if !sockets.send(&t, counters) {
            warn!(source = %t.source, "no socket bound to the source of a datagram; dropped");
        }
    }
}

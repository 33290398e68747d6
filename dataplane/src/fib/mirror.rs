//! [`FibMirror`]: the thread that keeps a copy of the kernel's links, main routing table and
//! neighbours, current through rtnetlink notifications, publishes it to the workers as
//! immutable [`FibSnapshot`]s, and asks the kernel to resolve the neighbours the workers
//! found missing.
//!
//! One socket carries the dumps and the notifications, so that they are read in the order
//! the kernel produced them: a change made while a table is being dumped arrives after the
//! dump's part that it changes, and is applied on top. Each table is forgotten just before
//! it is dumped again. A second socket sends the resolution requests and reads their
//! acknowledgements.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;

use super::handle::FibHandle;
use super::netlink::*;
use super::parse::parse;
use super::resolve::{Admit, ResolveLimiter, ResolveRequest};
use super::snapshot::FibSnapshot;
use super::socket::{poll_readable, EventFd, NetlinkSocket, Received};
use super::state::{FibState, Redump};

/// How long one dump may take before the mirror gives up on it (and tries again later).
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the thread wakes when nothing happens, to notice a stop it was not woken for.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// The pause after a failing system call, so that a broken socket does not spin a core.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Dump rounds per wake-up before the thread publishes what it has and looks again.
const MAX_DUMP_ROUNDS: usize = 3;
/// Datagrams read per wake-up: under a storm of changes the workers still get snapshots.
const MAX_DATAGRAMS: usize = 1024;
/// Large enough for any datagram the kernel sends (dump parts are at most 32 KiB).
const BUFFER_LEN: usize = 64 * 1024;

/// How a [`FibMirror`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorConfig {
    /// The notification socket's receive buffer, in bytes. A burst of changes larger than
    /// this overruns it (`ENOBUFS`); the mirror then reads every table again. The kernel
    /// doubles the value; without `CAP_NET_ADMIN` it is capped by `net.core.rmem_max`.
    pub receive_buffer: usize,
    /// The least time between two requests to resolve the same neighbour.
    pub resolve_interval: Duration,
    /// Room in the workers' queue of resolution requests; a request that finds it full is
    /// dropped (and counted), and made again by a later packet.
    pub resolve_queue: usize,
    /// The most distinct neighbours asked about within one `resolve_interval`.
    pub resolve_limit: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            receive_buffer: 4 << 20,
            resolve_interval: Duration::from_secs(1),
            resolve_queue: 1024,
            resolve_limit: 4096,
        }
    }
}

/// What the mirror has done, for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// The generation of the latest published snapshot.
    pub generation: u64,
    /// Notifications and dump messages applied.
    pub messages: u64,
    /// Messages that did not parse (the kernel's fault, or a forger's), and truncated
    /// datagrams.
    pub malformed: u64,
    /// Datagrams from a process rather than the kernel, ignored.
    pub foreign: u64,
    /// Times the notification socket overran (`ENOBUFS`); each is followed by a full dump.
    pub overruns: u64,
    /// Table dumps started.
    pub dumps: u64,
    /// Dumps the kernel marked inconsistent (`NLM_F_DUMP_INTR`), and done again.
    pub interrupted_dumps: u64,
    /// Resolution requests sent to the kernel.
    pub resolve_sent: u64,
    /// Resolution requests not sent because the same neighbour was asked about less than
    /// `resolve_interval` ago.
    pub resolve_too_soon: u64,
    /// Resolution requests dropped: too many distinct neighbours within an interval, or the
    /// workers' queue full.
    pub resolve_dropped: u64,
    /// Resolution requests the kernel refused (the interface went away, say).
    pub resolve_refused: u64,
    /// Failed system calls and timed-out dumps.
    pub errors: u64,
    /// The `errno` of the latest failure counted in `resolve_refused` or `errors`.
    pub last_errno: Option<i32>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    messages: AtomicU64,
    malformed: AtomicU64,
    foreign: AtomicU64,
    overruns: AtomicU64,
    dumps: AtomicU64,
    interrupted_dumps: AtomicU64,
    resolve_sent: AtomicU64,
    resolve_too_soon: AtomicU64,
    pub(crate) resolve_dropped: AtomicU64,
    resolve_refused: AtomicU64,
    errors: AtomicU64,
    last_errno: AtomicI32,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the mirror's thread, the owner and the workers' handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub snapshot: ArcSwap<FibSnapshot>,
    /// The generation of `snapshot`, stored after it: a worker that sees a new number loads
    /// a snapshot at least that new.
    pub generation: AtomicU64,
    pub requests: ArrayQueue<ResolveRequest>,
    /// Set by the worker that queued a request and woke the thread; cleared by the thread
    /// before it empties the queue. One wake-up per round, however many requests.
    pub request_pending: AtomicBool,
    pub wake: EventFd,
    stop: AtomicBool,
    pub counters: Counters,
}

impl Shared {
    pub(crate) fn new(snapshot: FibSnapshot, resolve_queue: usize) -> io::Result<Self> {
        Ok(Self {
            generation: AtomicU64::new(snapshot.generation()),
            snapshot: ArcSwap::from_pointee(snapshot),
            requests: ArrayQueue::new(resolve_queue.max(1)),
            request_pending: AtomicBool::new(false),
            wake: EventFd::new()?,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    fn error(&self, error: &io::Error) {
        bump(&self.counters.errors);
        self.counters
            .last_errno
            .store(error.raw_os_error().unwrap_or(0), Ordering::Relaxed);
    }
}

/// A copy of the kernel's forwarding tables, kept current by a thread of its own, for the
/// AF_XDP workers (issue 5: the egress interface and next-hop MAC of every packet come from
/// the kernel). Dropping it stops the thread; handles keep the last snapshot.
///
/// ```no_run
/// use xipsec_dataplane::fib::{FibMirror, NextHops};
/// let mirror = FibMirror::start()?;
/// let mut handle = mirror.handle(); // one per worker, moved to its thread
/// handle.begin_batch();
/// let next_hop = handle.lookup("192.0.2.1".parse().unwrap());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FibMirror {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FibMirror {
    /// [`FibMirror::start_with`] the default [`MirrorConfig`].
    pub fn start() -> io::Result<Self> {
        Self::start_with(MirrorConfig::default())
    }

    /// Subscribes to the kernel's link, IPv4 route, IPv6 route and neighbour notifications,
    /// reads the tables, publishes the first snapshot and starts the thread that keeps it
    /// current. Everything is read in the calling thread's network namespace, which is the
    /// one the sockets belong to for their whole life. Fails when the sockets cannot be
    /// opened or the first dump fails.
    pub fn start_with(config: MirrorConfig) -> io::Result<Self> {
        let events = NetlinkSocket::open(
            &[
                RTNLGRP_LINK,
                RTNLGRP_NEIGH,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_ROUTE,
            ],
            config.receive_buffer,
        )?;
        let requests = NetlinkSocket::open(&[], 256 * 1024)?;
        let shared = Arc::new(Shared::new(FibSnapshot::default(), config.resolve_queue)?);
        let mut engine = Engine {
            events,
            requests,
            state: FibState::default(),
            limiter: ResolveLimiter::new(config.resolve_interval, config.resolve_limit),
            buffer: vec![0; BUFFER_LEN],
            seq: 0,
            redump: Redump::ALL,
            shared: shared.clone(),
        };
        // A burst of changes during the first dump may overrun it: try a few times, then
        // go with what there is (the thread goes on trying).
        for _ in 0..3 {
            engine.run_dumps()?;
            if engine.redump.is_empty() {
                break;
            }
        }
        engine.publish(true);
        let thread = std::thread::Builder::new()
            .name("xipsec-fib".into())
            .spawn(move || engine.run())?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// A handle for one worker: its lookups use the latest snapshot, picked up at
    /// [`begin_batch`](super::NextHops::begin_batch).
    pub fn handle(&self) -> FibHandle {
        FibHandle::new(self.shared.clone())
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> Arc<FibSnapshot> {
        self.shared.snapshot.load_full()
    }

    /// The counters so far.
    pub fn stats(&self) -> MirrorStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let errno = c.last_errno.load(Ordering::Relaxed);
        MirrorStats {
            generation: self.shared.generation.load(Ordering::Acquire),
            messages: load(&c.messages),
            malformed: load(&c.malformed),
            foreign: load(&c.foreign),
            overruns: load(&c.overruns),
            dumps: load(&c.dumps),
            interrupted_dumps: load(&c.interrupted_dumps),
            resolve_sent: load(&c.resolve_sent),
            resolve_too_soon: load(&c.resolve_too_soon),
            resolve_dropped: load(&c.resolve_dropped),
            resolve_refused: load(&c.resolve_refused),
            errors: load(&c.errors),
            last_errno: (errno != 0).then_some(errno),
        }
    }
}

impl Drop for FibMirror {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.wake();
        if let Some(thread) = self.thread.take() {
            // The thread never panics on input; if it did, there is nothing left to stop.
            let _ = thread.join();
        }
    }
}

/// The mirror's thread: its sockets and its working copy of the tables.
struct Engine {
    /// Subscribed to the groups; the dumps go over it too.
    events: NetlinkSocket,
    /// Resolution requests and their acknowledgements.
    requests: NetlinkSocket,
    state: FibState,
    limiter: ResolveLimiter,
    buffer: Vec<u8>,
    seq: u32,
    /// Tables to dump before the next publication.
    redump: Redump,
    shared: Arc<Shared>,
}

impl Engine {
    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let timeout = if self.redump.is_empty() {
                IDLE_WAKE
            } else {
                Duration::ZERO
            };
            let fds = [self.events.fd(), self.shared.wake.fd(), self.requests.fd()];
            match poll_readable(fds, timeout) {
                Ok(ready) if ready[1] => self.shared.wake.drain(),
                Ok(_) => {}
                Err(error) => {
                    self.shared.error(&error);
                    std::thread::sleep(ERROR_BACKOFF);
                    continue;
                }
            }
            if let Err(error) = self.step() {
                self.shared.error(&error);
                std::thread::sleep(ERROR_BACKOFF);
            }
        }
    }

    /// One round: apply what the kernel said, dump what must be, answer the workers,
    /// publish once.
    fn step(&mut self) -> io::Result<()> {
        self.read_events()?;
        self.run_dumps()?;
        self.read_acknowledgements()?;
        self.resolve()?;
        self.publish(false);
        Ok(())
    }

    /// Publishes the state when it changed and no table is waiting to be dumped again (a
    /// half-read table would be worse than the last complete one), or when `force`d.
    fn publish(&mut self, force: bool) {
        if !force && !self.redump.is_empty() {
            return;
        }
        if !self.state.take_dirty() && !force {
            return;
        }
        let generation = self.shared.generation.load(Ordering::Relaxed) + 1;
        self.shared
            .snapshot
            .store(Arc::new(self.state.snapshot(generation)));
        self.shared.generation.store(generation, Ordering::Release);
    }

    /// Reads and applies the waiting notifications.
    fn read_events(&mut self) -> io::Result<()> {
        for _ in 0..MAX_DATAGRAMS {
            let Some(len) = self.receive()? else {
                return Ok(());
            };
            let buffer = std::mem::take(&mut self.buffer);
            for message in messages(&buffer[..len]) {
                match message {
                    Ok(message) => self.apply(&message),
                    Err(_) => bump(&self.shared.counters.malformed),
                }
            }
            self.buffer = buffer;
        }
        Ok(())
    }

    /// One datagram from the kernel into `buffer`: its length, or `None` when nothing is
    /// waiting. Overruns and truncated datagrams mark every table for a dump; datagrams from
    /// processes are dropped.
    fn receive(&mut self) -> io::Result<Option<usize>> {
        let counters = &self.shared.counters;
        loop {
            match self.events.recv(&mut self.buffer)? {
                Received::Empty => return Ok(None),
                Received::Overrun => {
                    bump(&counters.overruns);
                    self.redump.insert(Redump::ALL);
                }
                Received::Datagram {
                    from_kernel: false, ..
                } => bump(&counters.foreign),
                Received::Datagram {
                    truncated: true, ..
                } => {
                    bump(&counters.malformed);
                    self.redump.insert(Redump::ALL);
                }
                Received::Datagram { len, .. } => return Ok(Some(len)),
            }
        }
    }

    /// Applies a notification (or a dump part).
    fn apply(&mut self, message: &Message<'_>) {
        match message.kind {
            NLMSG_OVERRUN => {
                bump(&self.shared.counters.overruns);
                self.redump.insert(Redump::ALL);
            }
            // Answers to an earlier dump that timed out.
            NLMSG_NOOP | NLMSG_ERROR | NLMSG_DONE => {}
            _ => match parse(message) {
                Ok(update) => {
                    bump(&self.shared.counters.messages);
                    let redump = self.state.apply(update);
                    self.redump.insert(redump);
                }
                Err(_) => bump(&self.shared.counters.malformed),
            },
        }
    }

    /// Dumps the tables marked for it, a bounded number of rounds.
    fn run_dumps(&mut self) -> io::Result<()> {
        for _ in 0..MAX_DUMP_ROUNDS {
            if self.redump.is_empty() {
                break;
            }
            for dump in Dump::ALL {
                if self.redump.contains(dump) {
                    self.redump.remove(dump);
                    if let Err(error) = self.dump(dump) {
                        self.redump.insert(Redump::only(dump));
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads one table afresh, applying the notifications that arrive meanwhile in order.
    fn dump(&mut self, dump: Dump) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut request = [0u8; MAX_REQUEST_LEN];
        let len = encode_dump(dump, seq, &mut request);
        self.state.clear(dump);
        self.events.send(&request[..len])?;
        bump(&self.shared.counters.dumps);
        let deadline = Instant::now() + DUMP_TIMEOUT;
        let port = self.events.port();
        loop {
            let Some(len) = self.receive()? else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the kernel did not finish the {dump:?} dump"),
                    ));
                }
                poll_readable([self.events.fd()], left)?;
                continue;
            };
            let buffer = std::mem::take(&mut self.buffer);
            let mut done = None;
            for message in messages(&buffer[..len]) {
                let Ok(message) = message else {
                    // The rest of this part is lost: the table is incomplete.
                    bump(&self.shared.counters.malformed);
                    self.redump.insert(Redump::only(dump));
                    break;
                };
                if message.seq != seq || message.port != port {
                    self.apply(&message);
                    continue;
                }
                match message.kind {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let status = u32_at(message.payload, 0).map_or(0, |v| v as i32);
                        done = Some(status);
                        break;
                    }
                    _ => {
                        if message.flags & NLM_F_DUMP_INTR != 0 {
                            bump(&self.shared.counters.interrupted_dumps);
                            self.redump.insert(Redump::only(dump));
                        }
                        self.apply(&message);
                    }
                }
            }
            self.buffer = buffer;
            match done {
                None => {}
                Some(0) => return Ok(()),
                Some(status) if status < 0 => {
                    // The kernel could not finish (ENOBUFS, EINTR): the table is partial.
                    self.redump.insert(Redump::only(dump));
                    return Err(io::Error::from_raw_os_error(-status));
                }
                // A positive DONE payload is a length some families report: finished.
                Some(_) => return Ok(()),
            }
        }
    }

    /// Counts the kernel's refusals of resolution requests.
    fn read_acknowledgements(&mut self) -> io::Result<()> {
        loop {
            match self.requests.recv(&mut self.buffer)? {
                Received::Empty => return Ok(()),
                Received::Overrun => {}
                Received::Datagram {
                    len,
                    from_kernel: true,
                    ..
                } => {
                    for message in messages(&self.buffer[..len]).flatten() {
                        if message.kind != NLMSG_ERROR {
                            continue;
                        }
                        let error = u32_at(message.payload, 0).map_or(0, |v| v as i32);
                        if error != 0 {
                            let counters = &self.shared.counters;
                            bump(&counters.resolve_refused);
                            counters.last_errno.store(-error, Ordering::Relaxed);
                        }
                    }
                }
                Received::Datagram { .. } => bump(&self.shared.counters.foreign),
            }
        }
    }

    /// Asks the kernel to resolve what the workers queued, at most once per interval per
    /// neighbour.
    fn resolve(&mut self) -> io::Result<()> {
        let shared = self.shared.clone();
        // Cleared before the queue is emptied: a request queued after this wakes us again.
        shared.request_pending.store(false, Ordering::SeqCst);
        let now = Instant::now();
        let counters = &shared.counters;
        while let Some(request) = shared.requests.pop() {
            // Resolved since the worker looked: its next batch sees it.
            if self.state.has_neighbour(request.ifindex, request.address) {
                continue;
            }
            match self.limiter.admit(request, now) {
                Admit::Send => {
                    self.seq = self.seq.wrapping_add(1).max(1);
                    let mut out = [0u8; MAX_REQUEST_LEN];
                    let len = encode_resolve(request.ifindex, request.address, self.seq, &mut out);
                    self.requests.send(&out[..len])?;
                    bump(&counters.resolve_sent);
                }
                Admit::TooSoon => bump(&counters.resolve_too_soon),
                Admit::Full => bump(&counters.resolve_dropped),
            }
        }
        Ok(())
    }
}

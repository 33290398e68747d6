//! An in-memory pair of IKE endpoints, in the style of quinn-proto's `tests/util.rs` `Pair`:
//! an initiator, a responder created from the first IKE_SA_INIT request that reaches it, a
//! simulated clock the test advances, and a deterministic (seeded) network that can drop,
//! duplicate, reorder and delay datagrams.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xipsec_control::crypto::{CryptoError, Rng};
use xipsec_control::ike::{
    ChildSaDeleted, ChildSaInstalled, ChildSaRekeyed, CookieJar, CookieVerdict, Error, Event,
    Identity, IkeConfig, IkeSa, IkeSaDeleted, IkeSaEstablished, Psk, RetransmitConfig,
};
use xipsec_control::wire::Header;

/// splitmix64: a small deterministic generator, for the SAs' `Rng` and the network's dice.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

pub fn rng(seed: u64) -> Box<dyn Rng + Send> {
    Box::new(SeededRng::new(seed))
}

pub const INITIATOR_ADDR: &str = "192.0.2.1:500";
pub const RESPONDER_ADDR: &str = "198.51.100.1:500";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Fast timers so that tests cover many retransmissions in little simulated time.
pub fn fast_retransmit() -> RetransmitConfig {
    RetransmitConfig {
        initial_timeout: Duration::from_millis(500),
        factor: 2.0,
        max_timeout: Duration::from_secs(8),
        max_retransmits: 4,
    }
}

/// The initiator's configuration: alice@example.com, key "secret".
pub fn initiator_config() -> IkeConfig {
    let mut c = IkeConfig::new(
        addr(INITIATOR_ADDR),
        addr(RESPONDER_ADDR),
        Identity::UserFqdn("alice@example.com".into()),
        Psk::new(b"a shared secret of some length".to_vec()),
    );
    c.remote_id = Some(Identity::Fqdn("gw.example.com".into()));
    c.retransmit = fast_retransmit();
    c
}

/// The responder's configuration: gw.example.com, same key.
pub fn responder_config() -> IkeConfig {
    let mut c = IkeConfig::new(
        addr(RESPONDER_ADDR),
        addr(INITIATOR_ADDR),
        Identity::Fqdn("gw.example.com".into()),
        Psk::new(b"a shared secret of some length".to_vec()),
    );
    c.remote_id = Some(Identity::UserFqdn("alice@example.com".into()));
    c.retransmit = fast_retransmit();
    c
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Initiator,
    Responder,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        }
    }
}

/// What the network does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver,
    Drop,
    Duplicate,
    Delay(Duration),
}

/// A datagram the network carries.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub to: Side,
    pub bytes: Vec<u8>,
    pub deliver_at: Instant,
    seq: u64,
}

/// One line of the network log.
#[derive(Clone, Debug)]
pub struct Sent {
    pub at: Instant,
    pub from: Side,
    pub header: Header,
    pub action: Action,
    pub bytes: Vec<u8>,
}

/// A per-datagram decision, given the sender, the header and how many datagrams this sender
/// has sent before (0 for its first).
pub type Filter = Box<dyn FnMut(Side, &Header, usize) -> Action>;

/// A seeded network: fixed latency, then random loss, duplication and extra delay (which
/// reorders), after an optional scripted filter.
pub struct Network {
    pub latency: Duration,
    pub loss: f64,
    pub duplicate: f64,
    /// Extra delay drawn uniformly from [0, jitter): datagrams overtake each other.
    pub jitter: Duration,
    /// Probability that a datagram not lost or duplicated is held back by an extra delay
    /// drawn uniformly from [0, reorder_delay), so that later ones overtake it.
    pub reorder: f64,
    /// The longest extra delay of a datagram held back by `reorder`.
    pub reorder_delay: Duration,
    pub filter: Option<Filter>,
    pub log: Vec<Sent>,
    dice: SeededRng,
    in_flight: Vec<Datagram>,
    seq: u64,
    sent_by: [usize; 2],
}

impl Network {
    pub fn new(seed: u64) -> Network {
        Network {
            latency: Duration::from_millis(10),
            loss: 0.0,
            duplicate: 0.0,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            filter: None,
            log: Vec::new(),
            dice: SeededRng::new(seed ^ 0x5eed),
            in_flight: Vec::new(),
            seq: 0,
            sent_by: [0, 0],
        }
    }

    fn delay(&mut self) -> Duration {
        self.latency + self.jitter.mul_f64(self.dice.unit())
    }

    fn push(&mut self, to: Side, bytes: Vec<u8>, at: Instant) {
        self.seq += 1;
        self.in_flight.push(Datagram {
            to,
            bytes,
            deliver_at: at,
            seq: self.seq,
        });
    }

    pub fn send(&mut self, now: Instant, from: Side, bytes: Vec<u8>) {
        let header = Header::peek(&bytes).expect("we only send IKE messages");
        let index = &mut self.sent_by[from as usize];
        let n = *index;
        *index += 1;
        let mut action = match self.filter.as_mut() {
            Some(f) => f(from, &header, n),
            None => Action::Deliver,
        };
        if action == Action::Deliver {
            if self.dice.unit() < self.loss {
                action = Action::Drop;
            } else if self.dice.unit() < self.duplicate {
                action = Action::Duplicate;
            } else if self.reorder > 0.0 && self.dice.unit() < self.reorder {
                action = Action::Delay(self.reorder_delay.mul_f64(self.dice.unit()));
            }
        }
        self.log.push(Sent {
            at: now,
            from,
            header,
            action,
            bytes: bytes.clone(),
        });
        let to = from.other();
        match action {
            Action::Drop => {}
            Action::Deliver => {
                let d = self.delay();
                self.push(to, bytes, now + d);
            }
            Action::Duplicate => {
                let (d1, d2) = (self.delay(), self.delay());
                self.push(to, bytes.clone(), now + d1);
                self.push(to, bytes, now + d2);
            }
            Action::Delay(extra) => {
                let d = self.delay();
                self.push(to, bytes, now + d + extra);
            }
        }
    }

    /// Turns every impairment off: from now on each datagram arrives once, after the fixed
    /// latency (those already in flight keep their delivery times).
    pub fn heal(&mut self) {
        self.loss = 0.0;
        self.duplicate = 0.0;
        self.jitter = Duration::ZERO;
        self.reorder = 0.0;
        self.filter = None;
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.iter().map(|d| d.deliver_at).min()
    }

    fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        let i = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, d)| d.deliver_at <= now)
            .min_by_key(|(_, d)| (d.deliver_at, d.seq))
            .map(|(i, _)| i)?;
        Some(self.in_flight.remove(i))
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// Sends what `sa` has to send, collects its events, returns what an IKE SA rekey made: its
/// successor first, then (simultaneous rekeys, §2.8.2) the redundant new SA.
fn drain(
    net: &mut Network,
    now: Instant,
    events: &mut Vec<Event>,
    side: Side,
    sa: &mut IkeSa,
) -> Vec<IkeSa> {
    while let Some(t) = sa.poll_transmit() {
        if side == Side::Initiator {
            assert_eq!(t.destination, addr(RESPONDER_ADDR));
        }
        net.send(now, side, t.contents);
    }
    while let Some(e) = sa.poll_event() {
        events.push(e);
    }
    std::iter::from_fn(|| sa.poll_rekeyed()).collect()
}

/// Two endpoints and the network between them.
pub struct Pair {
    pub now: Instant,
    pub initiator: IkeSa,
    pub responder: Option<IkeSa>,
    pub responder_config: Arc<IkeConfig>,
    pub net: Network,
    pub events: [Vec<Event>; 2],
    /// Datagrams each side dropped (`handle` returned an error).
    pub drops: [Vec<Error>; 2],
    /// First IKE_SA_INIT requests the responder refused without creating an SA.
    pub rejected: Vec<Error>,
    /// When set, first IKE_SA_INIT requests go through it before `IkeSa::respond` (§2.6),
    /// with `half_open` as the daemon's count of half-open SAs.
    pub cookie_jar: Option<CookieJar>,
    pub half_open: usize,
    /// COOKIE answers the jar sent.
    pub cookies_sent: usize,
    /// Old IKE SAs of each side after an IKE SA rekey, until drained; datagrams are routed to
    /// them by the initiator's SPI.
    pub retired: [Vec<IkeSa>; 2],
    /// Initiator SPIs of IKE SAs replaced by [`Pair::restart`]: datagrams for them that no
    /// retired SA claims are dropped instead of starting a responder.
    pub stale: Vec<u64>,
    initiator_config: Arc<IkeConfig>,
    seed: u64,
    responder_attempts: u64,
    restarts: u64,
}

impl Pair {
    /// Starts the initiator; the responder is created when a request reaches it.
    pub fn new(initiator: IkeConfig, responder: IkeConfig, seed: u64) -> Pair {
        let now = Instant::now();
        let initiator_config = Arc::new(initiator);
        let initiator = IkeSa::initiate(initiator_config.clone(), now, rng(seed)).unwrap();
        Pair {
            now,
            initiator,
            responder: None,
            responder_config: Arc::new(responder),
            net: Network::new(seed),
            events: [Vec::new(), Vec::new()],
            drops: [Vec::new(), Vec::new()],
            rejected: Vec::new(),
            cookie_jar: None,
            half_open: 0,
            cookies_sent: 0,
            retired: [Vec::new(), Vec::new()],
            stale: Vec::new(),
            initiator_config,
            seed,
            responder_attempts: 0,
            restarts: 0,
        }
    }

    /// The default configurations.
    pub fn default_configs(seed: u64) -> Pair {
        Pair::new(initiator_config(), responder_config(), seed)
    }

    fn flush(&mut self) {
        for side in [Side::Initiator, Side::Responder] {
            let n = side as usize;
            let (net, now, events) = (&mut self.net, self.now, &mut self.events[n]);
            // What a rekey of a retired SA made: its successor becomes current, a redundant
            // SA of §2.8.2 goes straight to the retired ones.
            let mut successors = Vec::new();
            let mut redundant = Vec::new();
            for sa in &mut self.retired[n] {
                let mut made = drain(net, now, events, side, sa).into_iter();
                successors.extend(made.next());
                redundant.extend(made);
            }
            let current = match side {
                Side::Initiator => Some(&mut self.initiator),
                Side::Responder => self.responder.as_mut(),
            };
            if let Some(current) = current {
                loop {
                    let mut made = drain(net, now, events, side, current).into_iter();
                    let next = made.next().or_else(|| successors.pop());
                    redundant.extend(made);
                    match next {
                        Some(new) => self.retired[n].push(std::mem::replace(current, new)),
                        None => break,
                    }
                }
            }
            self.retired[n].extend(redundant);
            self.retired[n].retain(|sa| !sa.is_drained());
        }
    }

    fn deliver(&mut self, d: Datagram) {
        let spi_i = Header::peek(&d.bytes).map(|h| h.initiator_spi).ok();
        let side = d.to as usize;
        if let Some(old) = self.retired[side]
            .iter_mut()
            .find(|sa| Some(sa.spi_i()) == spi_i)
        {
            if let Err(e) = old.handle(self.now, &d.bytes) {
                self.drops[side].push(e);
            }
            return;
        }
        if spi_i.is_some_and(|spi| self.stale.contains(&spi)) {
            // A replaced SA that drained: a daemon drops datagrams for SPIs it does not know,
            // and would give a late first request a half-open responder that expires
            // unanswered. Dropping has the same outcome and keeps the responder slot free.
            return;
        }
        match d.to {
            Side::Initiator => {
                if let Err(e) = self.initiator.handle(self.now, &d.bytes) {
                    self.drops[0].push(e);
                }
            }
            Side::Responder => match self.responder.as_mut() {
                Some(r) => {
                    if let Err(e) = r.handle(self.now, &d.bytes) {
                        self.drops[1].push(e);
                    }
                }
                None => {
                    if let Some(jar) = &self.cookie_jar {
                        match jar.check(&d.bytes, addr(INITIATOR_ADDR), self.half_open) {
                            CookieVerdict::Accept => {}
                            CookieVerdict::SendCookie(reply) => {
                                self.cookies_sent += 1;
                                self.net.send(self.now, Side::Responder, reply);
                                return;
                            }
                            CookieVerdict::Drop => return,
                        }
                    }
                    self.responder_attempts += 1;
                    let seed = self
                        .seed
                        .wrapping_mul(31)
                        .wrapping_add(self.responder_attempts);
                    match IkeSa::respond(
                        self.responder_config.clone(),
                        self.now,
                        rng(seed),
                        &d.bytes,
                    ) {
                        Ok(sa) => self.responder = Some(sa),
                        Err(rejected) => {
                            self.rejected.push(rejected.error);
                            if let Some(reply) = rejected.reply {
                                self.net.send(self.now, Side::Responder, reply.contents);
                            }
                        }
                    }
                }
            },
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let i = self.initiator.poll_timeout();
        let r = self.responder.as_ref().and_then(IkeSa::poll_timeout);
        let old = self
            .retired
            .iter()
            .flatten()
            .filter_map(IkeSa::poll_timeout);
        [i, r, self.net.next_delivery()]
            .into_iter()
            .flatten()
            .chain(old)
            .min()
    }

    /// Advances to the next delivery or timer and processes everything due then. `false` when
    /// nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(next) = self.next_timer() else {
            return false;
        };
        if next > self.now {
            self.now = next;
        }
        while let Some(d) = self.net.pop_due(self.now) {
            self.deliver(d);
            self.flush();
        }
        if self.initiator.poll_timeout().is_some_and(|t| t <= self.now) {
            self.initiator.handle_timeout(self.now);
        }
        if let Some(r) = self.responder.as_mut() {
            if r.poll_timeout().is_some_and(|t| t <= self.now) {
                r.handle_timeout(self.now);
            }
        }
        for old in self.retired.iter_mut().flatten() {
            if old.poll_timeout().is_some_and(|t| t <= self.now) {
                old.handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Runs until nothing is in flight and no timer is armed.
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// Runs until `until` holds (checked after every step), or panics after too many steps.
    pub fn drive_until(&mut self, mut until: impl FnMut(&Pair) -> bool) {
        for _ in 0..100_000 {
            if until(self) {
                return;
            }
            if !self.step() {
                assert!(until(self), "the pair settled before the condition held");
                return;
            }
        }
        panic!("the condition never held");
    }

    pub fn events(&self, side: Side) -> &[Event] {
        &self.events[side as usize]
    }

    pub fn established(&self, side: Side) -> Option<&IkeSaEstablished> {
        self.events(side).iter().find_map(|e| match e {
            Event::IkeSaEstablished(x) => Some(x),
            _ => None,
        })
    }

    pub fn installed(&self, side: Side) -> Vec<&ChildSaInstalled> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaInstalled(c) => Some(&**c),
                _ => None,
            })
            .collect()
    }

    pub fn responder(&self) -> &IkeSa {
        self.responder.as_ref().expect("no responder SA")
    }

    /// Asserts that both sides installed exactly one Child SA and that they mirror each other:
    /// SPIs crosswise, keys crosswise, same suite, ESN and mode, selectors crosswise.
    pub fn assert_child_sas_match(&self) -> (&ChildSaInstalled, &ChildSaInstalled) {
        let i = self.installed(Side::Initiator);
        let r = self.installed(Side::Responder);
        assert_eq!((i.len(), r.len()), (1, 1), "one Child SA on each side");
        let (i, r) = (i[0], r[0]);
        assert_eq!(i.inbound_spi, r.outbound_spi);
        assert_eq!(i.outbound_spi, r.inbound_spi);
        assert_ne!(i.inbound_spi, i.outbound_spi);
        assert_eq!(i.inbound_keymat, r.outbound_keymat);
        assert_eq!(i.outbound_keymat, r.inbound_keymat);
        assert_ne!(i.inbound_keymat, i.outbound_keymat);
        assert_eq!(i.inbound_keymat.len(), i.suite.keymat_len());
        assert_eq!((i.suite, i.esn, i.mode), (r.suite, r.esn, r.mode));
        assert_eq!(i.local_ts, r.remote_ts);
        assert_eq!(i.remote_ts, r.local_ts);
        (i, r)
    }
}

/// Asserts that two Child SAs installed by the two sides mirror each other: SPIs and keys
/// crosswise, same suite, ESN and mode, selectors crosswise.
pub fn assert_mirror(i: &ChildSaInstalled, r: &ChildSaInstalled) {
    assert_eq!(i.inbound_spi, r.outbound_spi);
    assert_eq!(i.outbound_spi, r.inbound_spi);
    assert_ne!(i.inbound_spi, i.outbound_spi);
    assert_eq!(i.inbound_keymat, r.outbound_keymat);
    assert_eq!(i.outbound_keymat, r.inbound_keymat);
    assert_ne!(i.inbound_keymat, i.outbound_keymat);
    assert_eq!(i.inbound_keymat.len(), i.suite.keymat_len());
    assert_eq!((i.suite, i.esn, i.mode), (r.suite, r.esn, r.mode));
    assert_eq!(i.local_ts, r.remote_ts);
    assert_eq!(i.remote_ts, r.local_ts);
}

/// Helpers for the exchanges after IKE_AUTH.
impl Pair {
    /// The SA of one side.
    pub fn sa(&mut self, side: Side) -> &mut IkeSa {
        match side {
            Side::Initiator => &mut self.initiator,
            Side::Responder => self.responder.as_mut().expect("no responder SA"),
        }
    }

    /// Runs until both sides installed their first Child SA (works with liveness timers
    /// armed, unlike [`Pair::drive`]).
    pub fn establish(&mut self) {
        self.drive_until(|p| {
            p.installed(Side::Initiator).len() == 1 && p.installed(Side::Responder).len() == 1
        });
    }

    /// Processes everything due up to `now + d`, then sets the clock there.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..100_000 {
            self.flush();
            match self.next_timer() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("run_for never reached its end");
    }

    pub fn rekeyed(&self, side: Side) -> Vec<&ChildSaRekeyed> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaRekeyed(c) => Some(&**c),
                _ => None,
            })
            .collect()
    }

    pub fn deleted(&self, side: Side) -> Vec<ChildSaDeleted> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaDeleted(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    pub fn ike_deleted(&self, side: Side) -> Option<IkeSaDeleted> {
        self.events(side).iter().find_map(|e| match e {
            Event::IkeSaDeleted(d) => Some(*d),
            _ => None,
        })
    }

    pub fn child_failures(&self, side: Side) -> Vec<&Error> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaFailed { error } => Some(error),
                _ => None,
            })
            .collect()
    }
}

/// Several IKE SAs over time (a daemon that starts again after the IKE SA went).
impl Pair {
    /// Starts a new IKE SA from the initiator's configuration, as a daemon does when the old
    /// one is gone. The current SAs of both sides move to `retired`, where they keep being
    /// driven (and reached by their SPIs) until drained; the responder is created anew from
    /// the new first request.
    pub fn restart(&mut self) {
        self.flush();
        self.restarts += 1;
        let seed = self
            .seed
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(self.restarts);
        let new = IkeSa::initiate(self.initiator_config.clone(), self.now, rng(seed)).unwrap();
        let old = std::mem::replace(&mut self.initiator, new);
        self.stale.push(old.spi_i());
        self.retired[0].push(old);
        if let Some(old) = self.responder.take() {
            self.stale.push(old.spi_i());
            self.retired[1].push(old);
        }
        self.retired[0].retain(|sa| !sa.is_drained());
        self.retired[1].retain(|sa| !sa.is_drained());
        self.flush();
    }

    /// Every IKE SA one side still has: the current one, then the retired ones.
    pub fn all_sas(&self, side: Side) -> Vec<&IkeSa> {
        let current = match side {
            Side::Initiator => Some(&self.initiator),
            Side::Responder => self.responder.as_ref(),
        };
        current
            .into_iter()
            .chain(self.retired[side as usize].iter())
            .collect()
    }
}

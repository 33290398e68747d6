//! Drives IKE SAs (xipsec_control::ike::IkeSa) with datagrams and timeouts the fuzzer picks.
//! Nothing may panic, whatever arrives and whenever.
//!
//! The first input octet picks the start: a responder only (the first datagram the fuzzer
//! sends it is its IKE_SA_INIT request), a responder after a genuine IKE_SA_INIT exchange, or
//! an established pair; and the NAT traversal mode. The rest is a program of operations on an
//! in-memory network between the two sides: deliver, drop, duplicate, reorder, corrupt or
//! truncate the genuine datagrams in flight; inject raw datagrams (optionally with the SA's
//! SPIs, so they get past the SPI checks); advance the clock and fire timers; ask a side to
//! rekey, create, delete; deliver from another address (NAT-T). And, because random bytes
//! never get past the SK payload's integrity check: seal arbitrary inner payloads with the
//! first IKE SA's real keys (recomputed here from the IKE_SA_INIT messages and the
//! initiator's recorded random octets), so the fuzzer reaches IKE_AUTH, CREATE_CHILD_SA and
//! INFORMATIONAL processing with authentic garbage.
//!
//! Run with `cargo fuzz run -s none ike_sa` from the repository root.
#![no_main]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xipsec_control::crypto::{
    skeyseed, CryptoError, Encr, IkeSaKeys, IkeSuite, KeyExchange, Prf, Rng, Role, SkCipher,
};
use xipsec_control::ike::{
    Identity, IkeConfig, IkeProposal, IkeSa, NatTraversal, Path, Psk, RetransmitConfig,
};
use xipsec_control::wire::{Header, KeMethod, Message, Payload};

const I_ADDR: &str = "192.0.2.1:500";
const R_ADDR: &str = "198.51.100.1:500";
/// Datagrams kept in flight towards one side; more are dropped.
const MAX_IN_FLIGHT: usize = 32;
/// IKE SAs kept per side (successors of rekeys, responders of new requests).
const MAX_SAS: usize = 6;
const MAX_OPS: usize = 160;

/// splitmix64.
struct SeededRng(u64);

impl SeededRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for chunk in dest.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// A seeded generator that keeps a copy of every fill, to find the initiator's private key.
struct Recording {
    rng: SeededRng,
    fills: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Rng for Recording {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        self.rng.fill(dest)?;
        self.fills.lock().unwrap().push(dest.to_vec());
        Ok(())
    }
}

/// Replays one recorded fill.
struct Replay(Vec<u8>);

impl Rng for Replay {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        if dest.len() != self.0.len() {
            return Err(CryptoError::Rng);
        }
        dest.copy_from_slice(&self.0);
        Ok(())
    }
}

/// The fuzzer's program, read front to back; reads past the end give zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(initiator: bool, nat: NatTraversal) -> IkeConfig {
    let (local, remote) = if initiator {
        (I_ADDR, R_ADDR)
    } else {
        (R_ADDR, I_ADDR)
    };
    let alice = Identity::UserFqdn("alice@example.com".into());
    let gw = Identity::Fqdn("gw.example.com".into());
    let (me, peer) = if initiator { (alice, gw) } else { (gw, alice) };
    let mut c = IkeConfig::new(
        addr(local),
        addr(remote),
        me,
        Psk::new(b"a shared secret of some length".to_vec()),
    );
    c.remote_id = Some(peer);
    // One suite, so that the keys can be recomputed here.
    c.ike_proposals = vec![IkeProposal {
        encr: vec![Encr::AesGcm16_256],
        integ: Vec::new(),
        prf: vec![Prf::HmacSha2_256],
        ke: vec![KeMethod::Curve25519],
    }];
    c.retransmit = RetransmitConfig {
        initial_timeout: Duration::from_millis(500),
        factor: 2.0,
        max_timeout: Duration::from_secs(8),
        max_retransmits: 3,
    };
    c.half_open_timeout = Duration::from_secs(30);
    c.dpd_interval = Some(Duration::from_secs(10));
    c.nat_traversal = nat;
    c
}

/// The first IKE SA's keys, for sealing forged messages.
struct Forge {
    spi_i: u64,
    spi_r: u64,
    /// `ciphers[k]` seals what side `k` sends (0: the initiator).
    ciphers: [SkCipher; 2],
}

/// Recomputes the keys of the IKE SA set up by `request` and `response` (IKE_SA_INIT), with
/// the initiator's private key found among its generator's fills.
fn forge(request: &[u8], response: &[u8], fills: &[Vec<u8>]) -> Option<Forge> {
    let parts = |bytes: &[u8]| -> Option<(Header, Vec<u8>, Vec<u8>)> {
        let m = Message::decode(bytes).ok()?;
        let nonce = m.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.0.clone()),
            _ => None,
        })?;
        let ke = m.payloads.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k.data.clone()),
            _ => None,
        })?;
        Some((m.header, nonce, ke))
    };
    let (_, ni, kei) = parts(request)?;
    let (header, nr, ker) = parts(response)?;
    let ours = fills.iter().find_map(|f| {
        let ke = KeyExchange::generate(KeMethod::Curve25519, &mut Replay(f.clone())).ok()?;
        (ke.public_value() == kei.as_slice()).then_some(ke)
    })?;
    let g_ir = ours.agree(&ker).ok()?;
    let suite = IkeSuite::new(Encr::AesGcm16_256, None, Prf::HmacSha2_256).ok()?;
    let seed = skeyseed(suite.prf(), &ni, &nr, &g_ir);
    let (spi_i, spi_r) = (header.initiator_spi, header.responder_spi);
    let keys = IkeSaKeys::derive(
        &suite,
        &seed,
        &ni,
        &nr,
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
    )
    .ok()?;
    Some(Forge {
        spi_i,
        spi_r,
        ciphers: [
            keys.sk_cipher(Role::Initiator).ok()?,
            keys.sk_cipher(Role::Responder).ok()?,
        ],
    })
}

struct World {
    now: Instant,
    /// The IKE SAs of each side (0: the original initiator's), newest last.
    sides: [Vec<IkeSa>; 2],
    /// Datagrams on their way to each side.
    queues: [VecDeque<Vec<u8>>; 2],
    /// The highest Message ID of a request each side sent.
    last_request: [u32; 2],
    r_cfg: Arc<IkeConfig>,
    forge: Option<Forge>,
    seed: u64,
}

impl World {
    fn new(nat: NatTraversal, seed: u64) -> World {
        World {
            now: Instant::now(),
            sides: [Vec::new(), Vec::new()],
            queues: [VecDeque::new(), VecDeque::new()],
            last_request: [0, 0],
            r_cfg: Arc::new(config(false, nat)),
            forge: None,
            seed,
        }
    }

    fn send(&mut self, to: usize, bytes: Vec<u8>) {
        if self.queues[to].len() < MAX_IN_FLIGHT {
            self.queues[to].push_back(bytes);
        }
    }

    /// Collects what every SA has to send, its events and its successor.
    fn drain(&mut self) {
        for k in 0..2 {
            let mut out = Vec::new();
            let mut successors = Vec::new();
            for sa in &mut self.sides[k] {
                while let Some(t) = sa.poll_transmit() {
                    out.push(t.contents);
                }
                while sa.poll_event().is_some() {}
                successors.extend(sa.poll_rekeyed());
            }
            for bytes in out {
                if let Ok(h) = Header::peek(&bytes) {
                    if !h.flags.response {
                        self.last_request[k] = self.last_request[k].max(h.message_id);
                    }
                }
                self.send(1 - k, bytes);
            }
            self.sides[k].extend(successors);
            self.sides[k].retain(|sa| !sa.is_drained());
            let excess = self.sides[k].len().saturating_sub(MAX_SAS);
            self.sides[k].drain(..excess);
        }
    }

    /// Hands a datagram to the SA of side `to` it is for (by initiator SPI), or to a new
    /// responder if none is and it is for the responder's side.
    fn deliver(&mut self, to: usize, bytes: &[u8], path: Option<Path>) {
        let spi_i = Header::peek(bytes).map(|h| h.initiator_spi).ok();
        let now = self.now;
        let sas = &mut self.sides[to];
        let target = sas.iter().rposition(|sa| Some(sa.spi_i()) == spi_i);
        match (target, to) {
            (Some(index), _) => {
                let sa = &mut sas[index];
                let _ = match path {
                    Some(p) => sa.handle_from(now, p, bytes),
                    None => sa.handle(now, bytes),
                };
            }
            (None, 1) => {
                self.seed = self.seed.wrapping_add(1);
                let rng = Box::new(SeededRng(self.seed));
                match IkeSa::respond(self.r_cfg.clone(), now, rng, bytes) {
                    Ok(sa) => {
                        if sas.len() < MAX_SAS {
                            sas.push(sa);
                        }
                    }
                    Err(rejected) => {
                        if let Some(reply) = rejected.reply {
                            self.send(0, reply.contents);
                        }
                    }
                }
            }
            (None, _) => {
                if let Some(sa) = sas.last_mut() {
                    let _ = sa.handle(now, bytes);
                }
            }
        }
    }

    fn timers(&mut self) {
        for sa in self.sides.iter_mut().flatten() {
            if sa.poll_timeout().is_some_and(|t| t <= self.now) {
                sa.handle_timeout(self.now);
            }
        }
    }

    /// A message from side `from` sealed with the first IKE SA's keys around `plaintext`.
    fn forged(&mut self, from: usize, input: &mut Input) -> Option<Vec<u8>> {
        let f = self.forge.as_mut()?;
        let exchange = match input.byte() % 5 {
            0 => 35, // IKE_AUTH
            1 => 36, // CREATE_CHILD_SA
            2 => 37, // INFORMATIONAL
            3 => 34, // IKE_SA_INIT
            _ => input.byte(),
        };
        let flags = input.byte();
        let response = flags & 1 == 1;
        let mut flag_octet = if response { 0x20 } else { 0 };
        if (from == 0) != (flags & 2 == 2) {
            flag_octet |= 0x08;
        }
        // Around the Message IDs in use, so that the window checks pass often.
        let base = if response {
            self.last_request[1 - from]
        } else {
            self.last_request[from].wrapping_add(1)
        };
        let message_id = base.wrapping_add(u32::from(flags >> 4)).wrapping_sub(2);
        let first_inner = input.byte();
        let len = usize::from(input.u16() % 1200);
        let plaintext = input.bytes(len);
        let mut bytes = Vec::with_capacity(64 + plaintext.len());
        bytes.extend_from_slice(&f.spi_i.to_be_bytes());
        bytes.extend_from_slice(&f.spi_r.to_be_bytes());
        bytes.extend_from_slice(&[46, 0x20, exchange, flag_octet]);
        bytes.extend_from_slice(&message_id.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&[first_inner, 0, 0, 0]);
        f.ciphers[from]
            .seal_message(&mut bytes, 28, &plaintext, &mut SeededRng(0))
            .ok()?;
        Some(bytes)
    }

    /// Asks the current SA of side `k` for something.
    fn api(&mut self, k: usize, op: u8, index: u8) {
        let now = self.now;
        let Some(sa) = self.sides[k].last_mut() else {
            return;
        };
        let children = sa.child_sas();
        // An SPI it has, or (with none) one it does not.
        let child = if children.is_empty() {
            u32::from(index)
        } else {
            children[usize::from(index) % children.len()].0
        };
        let _ = match op % 5 {
            0 => sa.rekey(now),
            1 => sa.create_child(now),
            2 => sa.delete(now),
            3 => sa.rekey_child(now, child),
            _ => sa.delete_child(now, child),
        };
    }

    fn run(&mut self, input: &mut Input) {
        for _ in 0..MAX_OPS {
            if input.done() {
                break;
            }
            let tag = input.byte();
            let k = usize::from(tag >> 7);
            match tag & 0x0f {
                0 | 1 => {
                    if let Some(d) = self.queues[k].pop_front() {
                        self.deliver(k, &d, None);
                    }
                }
                2 => {
                    self.queues[k].pop_front();
                }
                3 => {
                    if let Some(d) = self.queues[k].front().cloned() {
                        self.send(k, d);
                    }
                }
                4 => {
                    if let Some(d) = self.queues[k].pop_front() {
                        self.queues[k].push_back(d);
                    }
                }
                5 => {
                    if let Some(mut d) = self.queues[k].pop_front() {
                        let at = usize::from(input.u16());
                        let x = input.byte() | 1;
                        if !d.is_empty() {
                            let at = at % d.len();
                            d[at] ^= x;
                        }
                        self.deliver(k, &d, None);
                    }
                }
                6 => {
                    if let Some(mut d) = self.queues[k].pop_front() {
                        d.truncate(usize::from(input.u16()));
                        self.deliver(k, &d, None);
                    }
                }
                7 | 8 => {
                    let len = usize::from(input.u16() % 1500);
                    let mut d = input.bytes(len);
                    if tag & 0x10 != 0 && d.len() >= 16 {
                        if let Some(sa) = self.sides[k].last() {
                            d[..8].copy_from_slice(&sa.spi_i().to_be_bytes());
                            d[8..16].copy_from_slice(&sa.spi_r().to_be_bytes());
                        }
                    }
                    self.deliver(k, &d, None);
                }
                9 => {
                    let ms = u64::from(input.u16()) * u64::from(1 + (tag >> 4 & 7));
                    self.now += Duration::from_millis(ms);
                    self.timers();
                }
                10 | 11 => {
                    let (op, index) = (input.byte(), input.byte());
                    self.api(k, op, index);
                }
                12 | 13 => {
                    if let Some(d) = self.forged(1 - k, input) {
                        self.deliver(k, &d, None);
                    }
                }
                14 => {
                    // From elsewhere: a NAT rebinding, or the NAT-T port.
                    if let Some(d) = self.queues[k].pop_front() {
                        let port = match input.byte() % 3 {
                            0 => 4500,
                            1 => 500,
                            _ => input.u16(),
                        };
                        let (mut local, mut remote) = if k == 0 {
                            (addr(I_ADDR), addr(R_ADDR))
                        } else {
                            (addr(R_ADDR), addr(I_ADDR))
                        };
                        local.set_port(if tag & 0x10 != 0 { 4500 } else { 500 });
                        remote.set_port(port);
                        self.deliver(k, &d, Some(Path { local, remote }));
                    }
                }
                _ => {
                    // Everything in flight arrives.
                    for _ in 0..(2 * MAX_IN_FLIGHT) {
                        let Some(d) = self.queues[k].pop_front() else {
                            break;
                        };
                        self.deliver(k, &d, None);
                        self.drain();
                    }
                }
            }
            self.drain();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let setup = input.byte();
    let nat = match setup >> 2 & 3 {
        1 => NatTraversal::Force,
        2 => NatTraversal::Off,
        _ => NatTraversal::Detect,
    };
    let seed = u64::from(setup >> 4);
    let mut world = World::new(nat, seed << 32);
    if setup & 3 != 0 {
        // A genuine IKE_SA_INIT exchange.
        let fills = Arc::new(Mutex::new(Vec::new()));
        let rng = Recording {
            rng: SeededRng(seed),
            fills: fills.clone(),
        };
        let now = world.now;
        let mut i = IkeSa::initiate(Arc::new(config(true, nat)), now, Box::new(rng)).unwrap();
        let request = i.poll_transmit().unwrap().contents;
        world.sides[0].push(i);
        world.deliver(1, &request, None);
        world.drain();
        if let Some(response) = world.queues[0].front().cloned() {
            let fills = fills.lock().unwrap().clone();
            world.forge = forge(&request, &response, &fills);
        }
        if setup & 3 == 2 {
            // On to an established pair.
            while let Some(k) = (0..2).find(|&k| !world.queues[k].is_empty()) {
                let d = world.queues[k].pop_front().unwrap();
                world.deliver(k, &d, None);
                world.drain();
            }
        }
    }
    world.run(&mut input);
});

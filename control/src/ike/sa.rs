//! [`IkeSa`]: the public surface of one IKE SA, the checks every message goes through (SPIs,
//! flags, Message IDs, §2.1 and §2.2), the responder's response cache, and the dispatch to the
//! current state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::auth::{ExpectAuthRequest, ExpectAuthResponse};
use super::established::{Established, Op};
use super::retransmit::{deadline, Expiry, Retransmit};
use super::sa_init::{self, ExpectSaInitResponse};
use super::{DeleteReason, Error, Event, IkeConfig};
use crate::crypto::{CryptoError, Rng, Role};
use crate::wire::{ExchangeType, Flags, Header, Message, Notify, Payload};

/// Draws before an RNG that keeps producing unusable SPIs is declared broken (a working one
/// needs a second draw with probability below 2^-24).
const SPI_ATTEMPTS: usize = 8;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it (the configured remote address for now; NAT-T will change the port).
    pub destination: SocketAddr,
    /// The local address to send it from.
    pub source: SocketAddr,
    /// The IKE message, without a non-ESP marker.
    pub contents: Vec<u8>,
}

/// The two ends a datagram travelled between: where the daemon received it, or where the
/// IKE SA sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port (after any NAT).
    pub remote: SocketAddr,
}

/// Counters of one IKE SA, for logs and for tests that must see what was (not) processed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams given to [`IkeSa::handle`].
    pub datagrams_in: u64,
    /// Datagrams dropped ([`IkeSa::handle`] returned an error).
    pub dropped: u64,
    /// Requests from the peer processed (not counting retransmissions answered from the cache).
    pub requests_processed: u64,
    /// Retransmitted requests answered with the cached response.
    pub responses_resent: u64,
    /// Our requests sent again after a timeout.
    pub retransmissions: u64,
}

/// What [`IkeSa::respond`] returns when it keeps no state: the error, and the stateless answer
/// to send if RFC 7296 calls for one (NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD, INVALID_SYNTAX).
#[derive(Debug)]
pub struct Rejected {
    /// Why the request was refused.
    pub error: Error,
    /// The answer to send, if any.
    pub reply: Option<Transmit>,
}

/// What every state shares: configuration, randomness, SPIs, Message IDs, the output queues,
/// the outstanding request and the cached response.
pub(crate) struct Context {
    pub config: Arc<IkeConfig>,
    pub rng: Box<dyn Rng + Send>,
    pub role: Role,
    pub spi_i: u64,
    /// Zero until the IKE_SA_INIT response (initiator) or until chosen (responder).
    pub spi_r: u64,
    pub events: VecDeque<Event>,
    pub transmits: VecDeque<Transmit>,
    pub stats: Stats,
    /// Our request that awaits a response (§2.1: one at a time for now).
    pub request: Option<Retransmit>,
    /// The Message ID of our next request.
    pub next_request_id: u32,
    /// The Message ID the peer's next request must carry.
    pub next_peer_request_id: u32,
    /// The last response we sent, for a retransmitted request (§2.1).
    pub last_response: Option<CachedResponse>,
    /// Digest of the request being handled now, kept with its response (§2.1).
    pub request_digest: [u8; 32],
    /// The IKE SAs an IKE SA rekey made, until the daemon takes them: the successor, and
    /// after simultaneous rekeys (§2.8.2) the redundant one, which deletes itself.
    pub rekeyed: VecDeque<IkeSa>,
    /// Where we send to and expect the peer: the configured addresses until a NAT moves
    /// them (§2.23).
    pub path: Path,
    /// Whether ESP goes in UDP: a NAT was detected (or faked) in IKE_SA_INIT.
    pub udp_encap: bool,
    /// A responder's configurations to choose from once IKE_AUTH names the peer
    /// ([`IkeSa::respond_any`]); `config` is `candidates[config_index]`.
    pub candidates: Vec<Arc<IkeConfig>>,
    pub config_index: usize,
    /// Our request and last response as fragments, when they were sent so (RFC 7383).
    pub fragments: super::fragment::Outgoing,
}

/// The last response sent, for answering a retransmission of its request (§2.1). Only a copy
/// of the same request, byte for byte, gets it again: a corrupted or forged datagram that merely
/// reuses the Message ID must not make us send anything (strongSwan keeps a hash the same way).
#[derive(Clone)]
pub(crate) struct CachedResponse {
    pub message_id: u32,
    pub request_digest: [u8; 32],
    pub bytes: Vec<u8>,
}

/// SHA-256 of a datagram: enough to recognise a retransmission without keeping it.
pub(crate) fn digest(datagram: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, datagram).as_ref());
    out
}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("role", &self.role)
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("next_request_id", &self.next_request_id)
            .field("next_peer_request_id", &self.next_peer_request_id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A header for a message of ours.
    pub fn header(&self, exchange_type: ExchangeType, response: bool, message_id: u32) -> Header {
        Header::new(
            self.spi_i,
            self.spi_r,
            exchange_type,
            Flags {
                initiator: self.role == Role::Initiator,
                version: false,
                response,
            },
            message_id,
        )
    }

    fn transmit(&self, contents: Vec<u8>) -> Transmit {
        Transmit {
            destination: self.path.remote,
            source: self.path.local,
            contents,
        }
    }

    /// Acts on the NAT detection of IKE_SA_INIT (§2.23): with a NAT on the way (found, or
    /// faked by us), ESP goes in UDP and the initiator moves both ends to the NAT-T port for
    /// everything after IKE_SA_INIT. The responder follows in [`IkeSa::handle_from`].
    pub fn after_nat_detection(&mut self, nat: &super::NatStatus) {
        use super::NatTraversal;
        self.udp_encap = match self.config.nat_traversal {
            NatTraversal::Off => false,
            NatTraversal::Force => nat.peer_supports,
            NatTraversal::Detect => nat.detected(),
        };
        if self.udp_encap && self.role == Role::Initiator {
            let port = self.config.natt_port;
            self.path.local.set_port(port);
            self.path.remote.set_port(port);
        }
    }

    /// Where this SA's ESP goes now.
    pub fn esp_path(&self) -> super::EspPath {
        super::EspPath {
            local: self.path.local.ip(),
            remote: self.path.remote.ip(),
            udp_encap: self.udp_encap.then_some(super::NattPorts {
                local: self.path.local.port(),
                remote: self.path.remote.port(),
            }),
        }
    }

    /// Sends a request and arms its retransmission timer.
    pub fn send_request(&mut self, now: Instant, message_id: u32, bytes: Vec<u8>) {
        self.fragments.request.clear();
        self.transmits.push_back(self.transmit(bytes.clone()));
        self.request = Some(Retransmit::new(
            message_id,
            bytes,
            now,
            &self.config.retransmit,
        ));
        self.next_request_id = message_id.saturating_add(1);
    }

    /// Sends a response and keeps it for retransmissions of the request being handled.
    pub fn send_response(&mut self, message_id: u32, bytes: Vec<u8>) {
        self.fragments.response.clear();
        self.transmits.push_back(self.transmit(bytes.clone()));
        self.last_response = Some(CachedResponse {
            message_id,
            request_digest: self.request_digest,
            bytes,
        });
        self.next_peer_request_id = message_id.saturating_add(1);
    }

    /// `n` random octets.
    pub fn random(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; n];
        self.rng.fill(&mut out).map_err(Error::Crypto)?;
        Ok(out)
    }

    /// A non-zero IKE SPI.
    pub fn random_ike_spi(&mut self) -> Result<u64, Error> {
        for _ in 0..SPI_ATTEMPTS {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b).map_err(Error::Crypto)?;
            let spi = u64::from_be_bytes(b);
            if spi != 0 {
                return Ok(spi);
            }
        }
        Err(Error::Crypto(CryptoError::Rng))
    }

    /// An ESP SPI outside the reserved range 0–255.
    pub fn random_esp_spi(&mut self) -> Result<u32, Error> {
        for _ in 0..SPI_ATTEMPTS {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b).map_err(Error::Crypto)?;
            let spi = u32::from_be_bytes(b);
            if spi >= super::proposal::MIN_SPI {
                return Ok(spi);
            }
        }
        Err(Error::Crypto(CryptoError::Rng))
    }

    /// Our nonce (§2.10).
    pub fn nonce(&mut self) -> Result<Vec<u8>, Error> {
        self.random(self.config.nonce_len)
    }
}

/// A failed or closed SA. It keeps its last response (an AUTHENTICATION_FAILED, say) until
/// `until`, so that a retransmitted request still gets it.
#[derive(Debug)]
pub(crate) struct Failed {
    pub until: Option<Instant>,
}

/// The state of an IKE SA; each variant's type handles the messages that state expects and
/// consumes itself to produce the next.
#[derive(Debug)]
pub(crate) enum State {
    ExpectSaInitResponse(Box<ExpectSaInitResponse>),
    ExpectAuthRequest(Box<ExpectAuthRequest>),
    ExpectAuthResponse(Box<ExpectAuthResponse>),
    Established(Box<Established>),
    Failed(Failed),
}

/// What a state's `handle` returns: the next state and whether the datagram was accepted.
pub(crate) type Step = (State, Result<(), Error>);

/// Ends the SA: reports `reason` (unless an event was already queued by the caller, `None`),
/// drops the outstanding request, and keeps the last response for a while.
pub(crate) fn fail(ctx: &mut Context, now: Instant, reason: Option<Error>) -> State {
    if let Some(reason) = reason {
        ctx.events.push_back(Event::Failed { reason });
    }
    ctx.request = None;
    let until = ctx
        .last_response
        .as_ref()
        .map(|_| deadline(now, ctx.config.half_open_timeout));
    State::Failed(Failed { until })
}

/// One IKE SA, sans-IO (see the module documentation for the driving loop).
///
/// Methods say when they must be called. None of them blocks, reads a clock or touches a
/// socket; every output is queued until polled.
#[derive(Debug)]
pub struct IkeSa {
    ctx: Context,
    state: State,
}

impl IkeSa {
    /// Starts an IKE SA as initiator: queues the IKE_SA_INIT request (fetch it with
    /// [`IkeSa::poll_transmit`]) and arms its retransmission timer.
    ///
    /// `rng` supplies every random value of this SA (SPIs, nonces, key exchange secrets, CBC
    /// IVs): pass [`crate::crypto::SystemRng`] outside tests.
    pub fn initiate(
        config: Arc<IkeConfig>,
        now: Instant,
        rng: Box<dyn Rng + Send>,
    ) -> Result<IkeSa, Error> {
        config.validate()?;
        let mut ctx = Context::new(config, rng, Role::Initiator);
        ctx.spi_i = ctx.random_ike_spi()?;
        let state = sa_init::initiate(&mut ctx, now)?;
        Ok(IkeSa {
            ctx,
            state: State::ExpectSaInitResponse(Box::new(state)),
        })
    }

    /// Answers a first IKE_SA_INIT request (Message ID 0, responder SPI 0) as responder.
    ///
    /// Call it for a datagram that no existing IKE SA claims (the daemon dispatches on the
    /// initiator's SPI and address). `config.remote_addr` must be the address the datagram came
    /// from. On success the response is queued; when no SA is created, [`Rejected`] carries the
    /// stateless answer to send, if any, and nothing is kept.
    pub fn respond(
        config: Arc<IkeConfig>,
        now: Instant,
        rng: Box<dyn Rng + Send>,
        datagram: &[u8],
    ) -> Result<IkeSa, Box<Rejected>> {
        IkeSa::respond_any(vec![config], now, rng, datagram)
    }

    /// [`IkeSa::respond`] with several configurations that accept this peer's address (a
    /// `%any` responder for many peers, each with its own identity and key): IKE_SA_INIT runs
    /// with the first; when IKE_AUTH names the peer (IDi, and the IDr it asks for), the first
    /// whose `remote_id` and `local_id` fit takes over — its authentication, identities and
    /// Child SAs — as strongSwan switches peer configurations. [`IkeSa::config_index`] says
    /// which one it is.
    pub fn respond_any(
        candidates: Vec<Arc<IkeConfig>>,
        now: Instant,
        rng: Box<dyn Rng + Send>,
        datagram: &[u8],
    ) -> Result<IkeSa, Box<Rejected>> {
        let silently = |error| Box::new(Rejected { error, reply: None });
        let Some(config) = candidates.first().cloned() else {
            return Err(silently(Error::Config(super::ConfigError {
                field: "candidates",
                reason: "no configuration to respond with",
            })));
        };
        for c in &candidates {
            c.validate().map_err(|e| silently(e.into()))?;
        }
        let header = Header::peek(datagram).map_err(|e| silently(e.into()))?;
        if header.exchange_type != ExchangeType::IkeSaInit
            || header.message_id != 0
            || header.flags.response
            || !header.flags.initiator
            || header.responder_spi != 0
            || header.initiator_spi == 0
        {
            return Err(silently(Error::Unexpected {
                what: "not a first IKE_SA_INIT request",
            }));
        }
        let mut ctx = Context::new(config, rng, Role::Responder);
        ctx.spi_i = header.initiator_spi;
        ctx.request_digest = digest(datagram);
        ctx.candidates = candidates;
        let outcome = Message::decode(datagram)
            .map_err(Error::from)
            .and_then(|message| sa_init::respond(&mut ctx, now, datagram, &message));
        match outcome {
            Ok(state) => {
                ctx.stats.datagrams_in = 1;
                ctx.stats.requests_processed = 1;
                Ok(IkeSa {
                    ctx,
                    state: State::ExpectAuthRequest(Box::new(state)),
                })
            }
            Err(error) => {
                let reply = stateless_reply(&ctx, &header, &error);
                Err(Box::new(Rejected { error, reply }))
            }
        }
    }

    /// Processes a datagram that arrived for this SA (the daemon dispatches on the SPIs).
    /// Call [`IkeSa::poll_transmit`], [`IkeSa::poll_event`] and [`IkeSa::poll_timeout`]
    /// afterwards.
    ///
    /// `Err` means the datagram was dropped and changed nothing (count it; [`Error::fault`]
    /// says whom to blame). A datagram that ends the SA returns `Ok` and queues an
    /// [`Event::Failed`] or [`Event::AuthenticationFailed`] (during the handshake) or
    /// [`Event::IkeSaDeleted`] (after it).
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let path = self.ctx.path;
        self.handle_from(now, path, datagram)
    }

    /// [`IkeSa::handle`] for a datagram that travelled along `path` (the daemon's socket
    /// address and the sender's). Once IKE_SA_INIT found a NAT, or when the peer moved to the
    /// NAT-T port, an authentic message from elsewhere moves the SA there (§2.23): replies and
    /// new Child SAs use the new path. A datagram that is dropped moves nothing.
    pub fn handle_from(&mut self, now: Instant, path: Path, datagram: &[u8]) -> Result<(), Error> {
        self.ctx.stats.datagrams_in = self.ctx.stats.datagrams_in.saturating_add(1);
        let previous = self.ctx.path;
        let follow = path != previous
            && !matches!(self.state, State::ExpectSaInitResponse(_))
            && (self.ctx.udp_encap || path.local.port() == self.ctx.config.natt_port)
            && Header::peek(datagram).is_ok_and(|h| h.exchange_type != ExchangeType::IkeSaInit);
        if follow {
            self.ctx.path = path;
        }
        let result = self.handle_inner(now, datagram);
        if result.is_err() {
            self.ctx.path = previous;
            self.ctx.stats.dropped = self.ctx.stats.dropped.saturating_add(1);
        }
        result
    }

    fn handle_inner(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let header = Header::peek(datagram)?;
        let ctx = &mut self.ctx;
        if header.initiator_spi != ctx.spi_i {
            return Err(Error::Unexpected {
                what: "the initiator's SPI is not this SA's",
            });
        }
        let first_init = header.exchange_type == ExchangeType::IkeSaInit
            && header.message_id == 0
            && header.responder_spi == 0;
        if ctx.spi_r != 0 && header.responder_spi != ctx.spi_r && !first_init {
            return Err(Error::Unexpected {
                what: "the responder's SPI is not this SA's",
            });
        }
        // §3.1: the I flag says who sent it, the R flag whether it is a response.
        if header.flags.initiator != (ctx.role == Role::Responder) {
            return Err(Error::Unexpected {
                what: "the Initiator flag is wrong for this sender",
            });
        }
        if header.flags.response {
            match &ctx.request {
                Some(r) if r.message_id == header.message_id => {}
                _ => {
                    return Err(Error::Unexpected {
                        what: "a response to no outstanding request",
                    })
                }
            }
        } else {
            // §2.1: a retransmitted request is answered from the cache, not processed again.
            if let Some(cached) = &ctx.last_response {
                if cached.message_id == header.message_id {
                    if cached.request_digest != digest(datagram) {
                        return Err(Error::Unexpected {
                            what: "a request reusing the last Message ID with other content",
                        });
                    }
                    ctx.resend_response();
                    ctx.stats.responses_resent = ctx.stats.responses_resent.saturating_add(1);
                    return Ok(());
                }
            }
            ctx.request_digest = digest(datagram);
            if header.message_id != ctx.next_peer_request_id {
                return Err(Error::Unexpected {
                    what: "a request with a Message ID outside the window",
                });
            }
        }
        if let State::Failed(_) = self.state {
            return Err(Error::Closed);
        }
        let message = Message::decode(datagram)?;
        let state = std::mem::replace(&mut self.state, State::Failed(Failed { until: None }));
        let (next, result) = match state {
            State::ExpectSaInitResponse(s) => s.handle(&mut self.ctx, now, datagram, &message),
            State::ExpectAuthRequest(s) => s.handle(&mut self.ctx, now, datagram, &message),
            State::ExpectAuthResponse(s) => s.handle(&mut self.ctx, now, datagram, &message),
            State::Established(s) => s.handle(&mut self.ctx, now, datagram, &message),
            failed @ State::Failed(_) => (failed, Err(Error::Closed)),
        };
        self.state = next;
        result
    }

    /// The next datagram to send. Call it until it returns `None` after every call to
    /// [`IkeSa::initiate`], [`IkeSa::respond`], [`IkeSa::handle`] and
    /// [`IkeSa::handle_timeout`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    /// When [`IkeSa::handle_timeout`] must be called next (a retransmission, a half-open SA
    /// expiring, a liveness check due, a cached response expiring), or `None` if no timer
    /// runs. Ask again after every
    /// call that changes the SA.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let request = self.ctx.request.as_ref().map(Retransmit::deadline);
        let state = match &self.state {
            State::ExpectAuthRequest(s) => Some(s.deadline),
            State::Established(s) => s.liveness_deadline(&self.ctx),
            State::Failed(f) => f.until,
            _ => None,
        };
        match (request, state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lets timers that are due at `now` fire: retransmits the outstanding request, gives up on
    /// it ([`Event::Failed`] with [`Error::Timeout`] during the handshake; on an established
    /// SA the peer is dead: [`Event::ChildSaDeleted`] for each Child SA, then
    /// [`Event::IkeSaDeleted`], both with [`DeleteReason::DeadPeer`]), sends a liveness check
    /// (`IkeConfig::dpd_interval`), expires a half-open SA, forgets a failed SA's cached
    /// response. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ctx = &mut self.ctx;
        if let Some(request) = ctx.request.as_mut() {
            match request.on_timeout(now, &ctx.config.retransmit) {
                Expiry::Wait => {}
                Expiry::Resend => {
                    ctx.resend_request();
                    ctx.stats.retransmissions = ctx.stats.retransmissions.saturating_add(1);
                }
                Expiry::GiveUp { transmissions } => {
                    self.state = match &mut self.state {
                        // §2.4: the peer is dead; everything of this IKE SA goes.
                        State::Established(s) => {
                            s.close(ctx, DeleteReason::DeadPeer { transmissions });
                            fail(ctx, now, None)
                        }
                        _ => fail(ctx, now, Some(Error::Timeout { transmissions })),
                    };
                    return;
                }
            }
        }
        match &mut self.state {
            State::ExpectAuthRequest(s) if now >= s.deadline => {
                self.state = fail(ctx, now, Some(Error::HalfOpenTimeout));
            }
            State::Established(s) if s.liveness_deadline(ctx).is_some_and(|t| now >= t) => {
                s.enqueue(ctx, now, Op::Liveness);
            }
            State::Failed(f) if f.until.is_some_and(|t| now >= t) => {
                f.until = None;
                ctx.last_response = None;
            }
            _ => {}
        }
    }

    /// Deletes the Child SA whose inbound SPI is `inbound_spi` (§1.4.1): sends an INFORMATIONAL
    /// Delete (after any request already outstanding) and reports [`Event::ChildSaDeleted`]
    /// when the peer has answered. Call the `poll_*` methods afterwards.
    pub fn delete_child(&mut self, now: Instant, inbound_spi: u32) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        if s.child(inbound_spi).is_none() || s.deleting(inbound_spi) {
            return Err(Error::NoSuchChildSa { spi: inbound_spi });
        }
        s.enqueue(
            ctx,
            now,
            Op::DeleteChildren {
                spis: vec![inbound_spi],
                reason: DeleteReason::Local,
            },
        );
        Ok(())
    }

    /// Deletes the IKE SA and its Child SAs (§1.4.1): sends an INFORMATIONAL Delete as soon as
    /// no other request is outstanding (anything queued is dropped), then reports
    /// [`Event::ChildSaDeleted`] for each Child SA and [`Event::IkeSaDeleted`] when the peer has
    /// answered or the retransmissions gave up.
    pub fn delete(&mut self, now: Instant) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        s.enqueue(ctx, now, Op::DeleteIke);
        Ok(())
    }

    /// Rekeys the IKE SA (CREATE_CHILD_SA, §1.3.2, §2.18): reports [`Event::IkeSaRekeyed`]
    /// when the new IKE SA is up (take it with [`IkeSa::poll_rekeyed`]; the Child SAs move to
    /// it), then deletes this one ([`Event::IkeSaDeleted`] with [`DeleteReason::Rekeyed`]).
    /// A refusal is an [`Event::IkeSaRekeyFailed`] and this SA stays.
    pub fn rekey(&mut self, now: Instant) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        if s.retired {
            return Err(Error::Closed);
        }
        s.enqueue(ctx, now, Op::RekeyIke);
        Ok(())
    }

    /// The IKE SAs a rekey of this one made, after [`Event::IkeSaRekeyed`]: the successor
    /// (its SPIs are the event's, the Child SAs moved to it) and, when both sides rekeyed at
    /// once (§2.8.2), the redundant new IKE SA, which has no Child SA and is deleted by the
    /// side that created it. The daemon dispatches their SPIs to them and drives them like
    /// any other. Call it until `None` after polling the events.
    pub fn poll_rekeyed(&mut self) -> Option<IkeSa> {
        self.ctx.rekeyed.pop_front()
    }

    pub(crate) fn from_parts(ctx: Context, state: State) -> IkeSa {
        IkeSa { ctx, state }
    }

    /// Marks an established SA as replaced (its Delete is all that is left of it).
    pub(crate) fn retire(&mut self) {
        if let State::Established(s) = &mut self.state {
            s.retired = true;
        }
    }

    /// Sends what is queued (the requests a successor inherited).
    pub(crate) fn start_queued(&mut self, now: Instant) {
        if let State::Established(s) = &mut self.state {
            s.start_next(&mut self.ctx, now);
        }
    }

    /// Rekeys the Child SA whose inbound SPI is `inbound_spi` (CREATE_CHILD_SA with REKEY_SA,
    /// §1.3.3, §2.8): reports [`Event::ChildSaRekeyed`] when the new pair is up, then deletes
    /// the old pair ([`Event::ChildSaDeleted`] with [`DeleteReason::Rekeyed`]). A refusal is
    /// an [`Event::ChildSaFailed`] and the old pair stays.
    pub fn rekey_child(&mut self, now: Instant, inbound_spi: u32) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        if s.child(inbound_spi).is_none() || s.deleting(inbound_spi) {
            return Err(Error::NoSuchChildSa { spi: inbound_spi });
        }
        s.enqueue(
            ctx,
            now,
            Op::CreateChild {
                rekey: Some(inbound_spi),
                config: 0,
                resource: None,
            },
        );
        Ok(())
    }

    /// Creates another Child SA with the proposals, selectors and mode of
    /// [`IkeConfig::child`] (CREATE_CHILD_SA, §1.3.1): reports [`Event::ChildSaInstalled`]
    /// or [`Event::ChildSaFailed`].
    pub fn create_child(&mut self, now: Instant) -> Result<(), Error> {
        self.create_child_from(now, 0)
    }

    /// [`IkeSa::create_child`] for child `config` of the connection
    /// ([`IkeConfig::child_config`]).
    pub fn create_child_from(&mut self, now: Instant, config: usize) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        if ctx.config.child_config(config).is_none() {
            return Err(Error::Config(super::ConfigError {
                field: "more_children",
                reason: "no child with that index",
            }));
        }
        s.enqueue(
            ctx,
            now,
            Op::CreateChild {
                rekey: None,
                config,
                resource: None,
            },
        );
        Ok(())
    }

    /// Asks for a per-resource Child SA (RFC 9611) of child `config` for `resource` (0 up to
    /// its [`super::ChildConfig::per_resource_sas`]): CREATE_CHILD_SA with SA_RESOURCE_INFO
    /// and the selectors of the child's fallback (its first Child SA). Reports
    /// [`Event::ChildSaInstalled`] with `resource: Some(resource)` or [`Event::ChildSaFailed`]
    /// — with [`Error::Refused`] TS_MAX_QUEUE when the peer takes no more, after which requests
    /// for this child still queued are dropped and new ones refused. Requests go one at a time
    /// (§2.3); queue as many as wanted.
    ///
    /// Refused (nothing sent) if the peer did not answer the fallback's SA_RESOURCE_INFO with
    /// its own ([`IkeSa::peer_supports_resources`]; [`Error::Unsupported`]), if it answered
    /// TS_MAX_QUEUE before, if `resource` is out of range ([`Error::Config`]), or if a Child SA
    /// for `resource` exists or is on its way ([`Error::TemporaryFailure`]).
    pub fn create_child_for_resource(
        &mut self,
        now: Instant,
        config: usize,
        resource: u32,
    ) -> Result<(), Error> {
        let (s, ctx) = self.established()?;
        let Some(child) = ctx.config.child_config(config) else {
            return Err(Error::Config(super::ConfigError {
                field: "more_children",
                reason: "no child with that index",
            }));
        };
        if resource >= child.per_resource_sas {
            return Err(Error::Config(super::ConfigError {
                field: "child.per_resource_sas",
                reason: "the resource index is not below the configured count",
            }));
        }
        if !s.resources.supports(config) {
            return Err(Error::Unsupported {
                what: "per-resource Child SAs: the peer did not answer SA_RESOURCE_INFO",
            });
        }
        if s.resources.is_full(config) {
            return Err(Error::Refused {
                notify: crate::wire::NotifyType::TsMaxQueue,
            });
        }
        if s.has_resource(config, resource) {
            return Err(Error::TemporaryFailure {
                what: "a Child SA for this resource exists or is being negotiated",
            });
        }
        s.enqueue(
            ctx,
            now,
            Op::CreateChild {
                rekey: None,
                config,
                resource: Some(resource),
            },
        );
        Ok(())
    }

    /// Whether the peer does per-resource Child SAs (RFC 9611) of child `config`: it answered
    /// the SA_RESOURCE_INFO of that child's fallback, which we negotiated (only the side that
    /// created the fallback asks for the others), and has not answered TS_MAX_QUEUE since.
    pub fn peer_supports_resources(&self, config: usize) -> bool {
        match &self.state {
            State::Established(s) => s.resources.supports(config) && !s.resources.is_full(config),
            _ => false,
        }
    }

    /// The Child SAs of this IKE SA as `(inbound SPI, outbound SPI)`, oldest first.
    pub fn child_sas(&self) -> Vec<(u32, u32)> {
        match &self.state {
            State::Established(s) => s
                .children
                .iter()
                .map(|c| (c.inbound_spi, c.outbound_spi))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn established(&mut self) -> Result<(&mut Established, &mut Context), Error> {
        match &mut self.state {
            State::Established(s) => Ok((s, &mut self.ctx)),
            State::Failed(_) => Err(Error::Closed),
            _ => Err(Error::NotEstablished),
        }
    }

    /// The next event. Call it until it returns `None` after every call that may change the
    /// SA (the same ones as [`IkeSa::poll_transmit`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ctx.events.pop_front()
    }

    /// Our role in this IKE SA.
    pub fn role(&self) -> Role {
        self.ctx.role
    }

    /// The initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        self.ctx.spi_i
    }

    /// The responder's SPI (zero while an initiator waits for the IKE_SA_INIT response).
    pub fn spi_r(&self) -> u64 {
        self.ctx.spi_r
    }

    /// Whether IKE_AUTH has completed successfully.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Whether the SA has failed and has nothing left to do: it can be dropped.
    pub fn is_drained(&self) -> bool {
        matches!(self.state, State::Failed(Failed { until: None }))
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.ctx.stats
    }

    /// Which of [`IkeSa::respond_any`]'s configurations this SA runs with (0 otherwise).
    pub fn config_index(&self) -> usize {
        self.ctx.config_index
    }

    /// Where this SA sends now (the configured addresses until NAT traversal moved them).
    pub fn path(&self) -> Path {
        self.ctx.path
    }

    /// Where the ESP of its Child SAs goes now, UDP ports included if encapsulated.
    pub fn esp_path(&self) -> super::EspPath {
        self.ctx.esp_path()
    }
}

impl Context {
    pub(crate) fn new(config: Arc<IkeConfig>, rng: Box<dyn Rng + Send>, role: Role) -> Context {
        Context {
            rng,
            role,
            spi_i: 0,
            spi_r: 0,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: Stats::default(),
            request: None,
            next_request_id: 0,
            next_peer_request_id: 0,
            last_response: None,
            request_digest: [0; 32],
            rekeyed: VecDeque::new(),
            path: Path {
                local: config.local_addr,
                remote: config.remote_addr,
            },
            udp_encap: false,
            candidates: Vec::new(),
            config_index: 0,
            fragments: Default::default(),
            config,
        }
    }
}

/// The unencrypted answer to an IKE_SA_INIT request that creates no state:
/// `HDR(SPIi, 0), N(error)` (§1.2, §2.6).
fn stateless_reply(ctx: &Context, request: &Header, error: &Error) -> Option<Transmit> {
    let notify = match error {
        Error::Malformed(e) => e.to_notify(),
        Error::InvalidKePayload { wanted } => Notify::invalid_ke_payload(*wanted),
        other => Notify::new(other.notify_type()?, Vec::new()),
    };
    let header = Header::new(
        request.initiator_spi,
        0,
        ExchangeType::IkeSaInit,
        Flags {
            initiator: false,
            version: false,
            response: true,
        },
        0,
    );
    let message = Message {
        header,
        payloads: vec![Payload::Notify(notify)],
    };
    Some(ctx.transmit(message.encode()))
}

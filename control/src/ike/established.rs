//! An established IKE SA: its keys, its Child SAs, and the exchanges after IKE_AUTH.
//!
//! Our requests go one at a time (a window of 1, §2.3): what the daemon asks for while one is
//! outstanding waits in a queue. The peer's requests are answered at once, and the answer is
//! cached by `sa.rs` for a retransmission (§2.2). The exchanges themselves are in
//! `informational.rs` (liveness, Delete) and `create_child.rs` (CREATE_CHILD_SA).
//!
//! When both sides announced IKE fragmentation, messages of either direction larger than
//! [`super::IkeConfig::fragment_size`] go as SKF fragments and incoming fragments are
//! reassembled before they are handled (RFC 7383 §2.5, `fragment.rs`).

use std::collections::VecDeque;
use std::time::Instant;

use super::create_child::{self, ChildExchange};
use super::fragment::{self, Incoming};
use super::informational;
use super::rekey_ike::{self, IkeRekeyExchange};
use super::resource::PeerResources;
use super::retransmit::deadline;
use super::sa::{Context, State, Step};
use super::sa_init::Handshake;
use super::{
    ChildSaDeleted, ChildSaInstalled, DeleteReason, Error, EspSuite, Event, IkeSaDeleted, Mode,
};
use crate::crypto::{IkeSaKeys, IkeSuite, SkCipher};
use crate::wire::{ExchangeType, KeMethod, Message, Notify, NotifyType, Payload, TrafficSelector};

/// One Child SA as this IKE SA remembers it (the keys went to the daemon).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChildSa {
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub suite: EspSuite,
    pub esn: bool,
    pub mode: Mode,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// Replaced by a rekeyed successor; its Delete is expected (or due from us).
    pub rekeyed: bool,
    /// The inbound SPI of the Child SA this one rekeyed, if it came from a rekey.
    pub rekey_of: Option<u32>,
    /// The lower nonce of the exchange that created it (§2.8.1 compares them).
    pub lowest_nonce: Vec<u8>,
    /// Which child of the connection (its proposals and PFS serve its rekeys).
    pub config: usize,
    /// The resource of a per-resource Child SA (RFC 9611); `None` for the fallback and
    /// ordinary ones.
    pub resource: Option<u32>,
}

impl ChildSa {
    pub(crate) fn from_installed(c: &ChildSaInstalled) -> ChildSa {
        ChildSa {
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            suite: c.suite,
            esn: c.esn,
            mode: c.mode,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            rekeyed: false,
            rekey_of: None,
            lowest_nonce: Vec::new(),
            config: c.config,
            resource: c.resource,
        }
    }
}

/// A request of ours, queued or outstanding.
#[derive(Debug)]
pub(crate) enum Op {
    /// An empty INFORMATIONAL (§2.4).
    Liveness,
    /// Delete these Child SAs (by inbound SPI).
    DeleteChildren {
        spis: Vec<u32>,
        reason: DeleteReason,
    },
    /// Delete the IKE SA.
    DeleteIke,
    /// CREATE_CHILD_SA: a new Child SA of child `config` of the connection (`rekey` is
    /// `None`; per-resource for `resource`, RFC 9611) or the rekey of this one (inbound SPI).
    CreateChild {
        rekey: Option<u32>,
        config: usize,
        resource: Option<u32>,
    },
    /// CREATE_CHILD_SA rekeying the IKE SA (§1.3.2, §2.18).
    RekeyIke,
}

/// What our outstanding request was, to interpret its response.
#[derive(Debug)]
pub(crate) enum Outstanding {
    Liveness,
    DeleteChildren {
        spis: Vec<u32>,
        reason: DeleteReason,
    },
    DeleteIke,
    CreateChild(Box<ChildExchange>),
    RekeyIke(Box<IkeRekeyExchange>),
}

/// An established IKE SA.
#[derive(Debug)]
pub(crate) struct Established {
    /// The negotiated suite.
    pub suite: IkeSuite,
    /// SK_d and the rest, for CREATE_CHILD_SA.
    pub keys: IkeSaKeys,
    /// Seals what we send.
    pub seal: SkCipher,
    /// Opens what the peer sends.
    pub open: SkCipher,
    /// The Child SAs.
    pub children: Vec<ChildSa>,
    /// When something authentic last came from the peer (for liveness checks).
    pub last_received: Instant,
    /// Our request awaiting its response (its bytes and timer are `ctx.request`).
    pub outstanding: Option<Outstanding>,
    /// Our requests not sent yet.
    pub queue: VecDeque<Op>,
    /// The negotiated key exchange method (an IKE SA rekey uses it again).
    pub ke: KeMethod,
    /// Rekeyed: the Child SAs moved to the successor, only the Delete of this SA is left.
    pub retired: bool,
    /// The peer's IKE SA rekey we answered while ours was outstanding (§2.8.2): decided when
    /// our response arrives.
    pub collision: Option<Box<super::rekey_ike::NewSa>>,
    /// The peer announced IKE fragmentation in IKE_SA_INIT (an IKE SA made by a rekey
    /// inherits it): with our own [`super::IkeConfig::fragmentation`], big messages go as
    /// fragments and fragments are accepted.
    pub peer_fragmentation: bool,
    /// Fragmented messages being reassembled.
    pub incoming: Incoming,
    /// What the peer said about per-resource Child SAs (RFC 9611).
    pub resources: PeerResources,
}

impl Established {
    pub(crate) fn new(hs: Handshake, now: Instant, first: Option<ChildSa>) -> Established {
        Established {
            suite: hs.suite,
            keys: hs.keys,
            seal: hs.seal,
            open: hs.open,
            children: first.into_iter().collect(),
            last_received: now,
            outstanding: None,
            queue: VecDeque::new(),
            ke: hs.choice.ke,
            retired: false,
            collision: None,
            peer_fragmentation: hs.peer.fragmentation,
            incoming: Incoming::default(),
            resources: PeerResources::default(),
        }
    }

    /// The fallback Child SA of child `config` (RFC 9611): one without a resource (the
    /// newest, when a rekey or an ordinary duplicate made several).
    pub(crate) fn fallback(&self, config: usize) -> Option<&ChildSa> {
        self.children
            .iter()
            .rev()
            .find(|c| c.config == config && c.resource.is_none())
    }

    /// Whether child `config` has a Child SA for `resource`, or one is being negotiated or
    /// queued.
    pub(crate) fn has_resource(&self, config: usize, resource: u32) -> bool {
        let wanted = Some((config, resource));
        self.children
            .iter()
            .any(|c| c.config == config && c.resource == Some(resource))
            || matches!(&self.outstanding,
                Some(Outstanding::CreateChild(x)) if x.new_resource() == wanted)
            || self.queue.iter().any(|op| {
                matches!(op, Op::CreateChild { rekey: None, config: c, resource: Some(r) }
                    if (*c, *r) == (config, resource))
            })
    }

    /// The Child SA with this inbound SPI.
    pub(crate) fn child(&self, inbound_spi: u32) -> Option<&ChildSa> {
        self.children.iter().find(|c| c.inbound_spi == inbound_spi)
    }

    /// Whether we are deleting (or about to delete) the Child SA with this inbound SPI.
    pub(crate) fn deleting(&self, inbound_spi: u32) -> bool {
        let outstanding = match &self.outstanding {
            Some(Outstanding::DeleteChildren { spis, .. }) => spis.contains(&inbound_spi),
            Some(Outstanding::DeleteIke) => true,
            _ => false,
        };
        outstanding
            || self.queue.iter().any(|op| match op {
                Op::DeleteChildren { spis, .. } => spis.contains(&inbound_spi),
                Op::DeleteIke => true,
                _ => false,
            })
    }

    /// Whether the Child SA with this inbound SPI is the twin of another successor of the same
    /// Child SA (simultaneous rekeys, §2.8.1).
    pub(crate) fn has_twin(&self, inbound_spi: u32) -> bool {
        let Some(old) = self.child(inbound_spi).and_then(|c| c.rekey_of) else {
            return false;
        };
        self.children
            .iter()
            .any(|c| c.rekey_of == Some(old) && c.inbound_spi != inbound_spi)
    }

    /// Removes the Child SA with this inbound SPI and reports it.
    pub(crate) fn remove_child(
        &mut self,
        ctx: &mut Context,
        inbound_spi: u32,
        reason: DeleteReason,
    ) -> Option<ChildSa> {
        let i = self
            .children
            .iter()
            .position(|c| c.inbound_spi == inbound_spi)?;
        let c = self.children.remove(i);
        ctx.events.push_back(Event::ChildSaDeleted(ChildSaDeleted {
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            reason,
        }));
        Some(c)
    }

    /// Reports every Child SA and then the IKE SA as deleted.
    pub(crate) fn close(&mut self, ctx: &mut Context, reason: DeleteReason) {
        let child_reason = match reason {
            DeleteReason::DeadPeer { .. } => reason,
            _ => DeleteReason::IkeSaGone,
        };
        for c in std::mem::take(&mut self.children) {
            ctx.events.push_back(Event::ChildSaDeleted(ChildSaDeleted {
                inbound_spi: c.inbound_spi,
                outbound_spi: c.outbound_spi,
                reason: child_reason,
            }));
        }
        self.queue.clear();
        self.outstanding = None;
        ctx.events.push_back(Event::IkeSaDeleted(IkeSaDeleted {
            spi_i: ctx.spi_i,
            spi_r: ctx.spi_r,
            reason,
        }));
    }

    /// When a liveness check is due, if one is configured and nothing else is going on.
    pub(crate) fn liveness_deadline(&self, ctx: &Context) -> Option<Instant> {
        let interval = ctx.config.dpd_interval?;
        if ctx.request.is_some() || !self.queue.is_empty() {
            return None;
        }
        Some(deadline(self.last_received, interval))
    }

    /// Queues `op` and sends it if no request is outstanding. Errors of a request that cannot
    /// be built are reported as events (see [`Established::start_next`]).
    pub(crate) fn enqueue(&mut self, ctx: &mut Context, now: Instant, op: Op) {
        match op {
            // Deleting the IKE SA makes everything queued moot (§1.4.1).
            Op::DeleteIke => {
                self.queue.clear();
                self.queue.push_front(Op::DeleteIke);
            }
            op => self.queue.push_back(op),
        }
        self.start_next(ctx, now);
    }

    /// Sends queued requests while none is outstanding.
    pub(crate) fn start_next(&mut self, ctx: &mut Context, now: Instant) {
        while ctx.request.is_none() {
            let Some(op) = self.queue.pop_front() else {
                return;
            };
            let started = match op {
                Op::Liveness => informational::request(self, ctx, now, &[])
                    .map(|()| Some(Outstanding::Liveness)),
                Op::DeleteIke => {
                    informational::request(self, ctx, now, &[informational::delete_ike()])
                        .map(|()| Some(Outstanding::DeleteIke))
                }
                Op::DeleteChildren { spis, reason } => {
                    // Those already gone (the peer deleted them meanwhile) are left out.
                    let spis: Vec<u32> = spis
                        .into_iter()
                        .filter(|s| self.child(*s).is_some())
                        .collect();
                    if spis.is_empty() {
                        Ok(None)
                    } else {
                        let payload = informational::delete_children(&spis);
                        informational::request(self, ctx, now, &[payload])
                            .map(|()| Some(Outstanding::DeleteChildren { spis, reason }))
                    }
                }
                // The peer refused more per-resource Child SAs of this child meanwhile, or one
                // for this resource came about: nothing to ask.
                Op::CreateChild {
                    rekey: None,
                    config,
                    resource: Some(r),
                } if self.resources.is_full(config) || self.has_resource(config, r) => Ok(None),
                Op::CreateChild {
                    rekey,
                    config,
                    resource,
                } => create_child::request(self, ctx, now, rekey, config, resource)
                    .map(|x| Some(Outstanding::CreateChild(Box::new(x)))),
                Op::RekeyIke => match rekey_ike::request(self, ctx, now) {
                    Ok(x) => Ok(Some(Outstanding::RekeyIke(Box::new(x)))),
                    Err(error) => {
                        ctx.events.push_back(Event::IkeSaRekeyFailed { error });
                        Ok(None)
                    }
                },
            };
            match started {
                Ok(outstanding) => self.outstanding = outstanding,
                Err(error) => ctx.events.push_back(Event::ChildSaFailed { error }),
            }
        }
    }

    /// Seals and sends a request of ours.
    pub(crate) fn send_request(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(), Error> {
        let id = ctx.next_request_id;
        let header = ctx.header(exchange, false, id);
        let limit = fragment::limit(ctx, self.peer_fragmentation);
        let datagrams = fragment::seal(header, payloads, &mut self.seal, &mut *ctx.rng, limit)?;
        // Whatever came of the previous request's response is moot now.
        self.incoming.response = Default::default();
        ctx.send_request_datagrams(now, id, datagrams);
        Ok(())
    }

    /// Seals and sends our response to the peer's request `id`.
    pub(crate) fn send_response(
        &mut self,
        ctx: &mut Context,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload],
    ) -> Result<(), Error> {
        let header = ctx.header(exchange, true, id);
        let limit = fragment::limit(ctx, self.peer_fragmentation);
        let datagrams = fragment::seal(header, payloads, &mut self.seal, &mut *ctx.rng, limit)?;
        self.incoming.request = Default::default();
        ctx.send_response_datagrams(id, datagrams);
        Ok(())
    }

    pub(crate) fn handle(
        mut self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        datagram: &[u8],
        message: &Message,
    ) -> Step {
        let header = &message.header;
        let response = header.flags.response;
        let exchange = header.exchange_type;
        if !matches!(
            exchange,
            ExchangeType::Informational | ExchangeType::CreateChildSa
        ) {
            let e = Error::Unexpected {
                what: "an IKE_SA_INIT or IKE_AUTH message on an established SA",
            };
            return (State::Established(self), Err(e));
        }
        if response {
            // Checked before any fragment of it is kept for reassembly.
            let expected = match self.outstanding {
                Some(Outstanding::CreateChild(_) | Outstanding::RekeyIke(_)) => {
                    ExchangeType::CreateChildSa
                }
                _ => ExchangeType::Informational,
            };
            if exchange != expected {
                let e = Error::Unexpected {
                    what: "a response of another exchange than the request's",
                };
                return (State::Established(self), Err(e));
            }
        }
        let reassembly = if response {
            &mut self.incoming.response
        } else {
            &mut self.incoming.request
        };
        let opened = fragment::open_inner(
            ctx,
            now,
            self.peer_fragmentation,
            reassembly,
            &self.open,
            datagram,
            message,
        );
        let inner = match opened {
            Ok(Some(inner)) => Ok(inner),
            // An authentic fragment kept until the rest of its message is in.
            Ok(None) => return (State::Established(self), Ok(())),
            // Authentic but malformed: a request is answered INVALID_SYNTAX (§2.21.2), a
            // response ends our exchange.
            Err(e @ Error::Malformed(_)) => Err(e),
            Err(e) => return (State::Established(self), Err(e)),
        };
        self.last_received = now;
        if response {
            ctx.request = None;
            // An authentic response completes the exchange even if its payloads are broken:
            // the peer did process the request. Only CREATE_CHILD_SA needs them.
            match self.outstanding.take() {
                Some(Outstanding::Liveness) | None => {}
                Some(Outstanding::DeleteIke) => {
                    let reason = if self.retired {
                        DeleteReason::Rekeyed
                    } else {
                        DeleteReason::Local
                    };
                    self.close(ctx, reason);
                    return (super::sa::fail(ctx, now, None), Ok(()));
                }
                Some(Outstanding::DeleteChildren { spis, reason }) => {
                    for spi in spis {
                        self.remove_child(ctx, spi, reason);
                    }
                }
                Some(Outstanding::CreateChild(x)) => match &inner {
                    Ok(inner) => create_child::complete(&mut self, ctx, now, *x, inner),
                    Err(error) => ctx.events.push_back(Event::ChildSaFailed {
                        error: error.clone(),
                    }),
                },
                Some(Outstanding::RekeyIke(x)) => match &inner {
                    Ok(inner) => rekey_ike::complete(&mut self, ctx, now, *x, inner),
                    Err(error) => ctx.events.push_back(Event::IkeSaRekeyFailed {
                        error: error.clone(),
                    }),
                },
            }
            self.start_next(ctx, now);
            return (State::Established(self), Ok(()));
        }
        ctx.stats.requests_processed = ctx.stats.requests_processed.saturating_add(1);
        let id = header.message_id;
        let inner = match inner {
            Ok(inner) => inner,
            Err(e) => {
                let notify = match &e {
                    Error::Malformed(d) => d.to_notify(),
                    _ => Notify::new(NotifyType::InvalidSyntax, Vec::new()),
                };
                // Answered: not a drop, whatever was wrong with it.
                let sent = self.send_response(ctx, exchange, id, &[Payload::Notify(notify)]);
                return (State::Established(self), sent);
            }
        };
        match exchange {
            ExchangeType::Informational => informational::respond(self, ctx, now, id, &inner),
            _ if rekey_ike::is_ike_rekey(&inner) => {
                let result = rekey_ike::respond(&mut self, ctx, now, id, &inner);
                (State::Established(self), result)
            }
            _ => {
                let result = create_child::respond(&mut self, ctx, id, &inner);
                (State::Established(self), result)
            }
        }
    }
}

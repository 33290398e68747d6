//! IKE_AUTH with a pre-shared key or signatures (RFC 7296 §1.2, §2.15, §2.21.2; RFC 7427):
//! both roles. Each side authenticates as its configuration says ([`super::LocalAuth`],
//! [`super::PeerAuth`]); the signature part is in `signature_auth.rs`.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {IDi, [CERT+,] [CERTREQ,] [IDr,] AUTH, SAi2, TSi, TSr}  -->
//!                              <--  HDR, SK {IDr, [CERT+,] AUTH, SAr2, TSi, TSr}
//!                              <--  or HDR, SK {N(AUTHENTICATION_FAILED)}
//!                              <--  or HDR, SK {IDr, AUTH, N(NO_PROPOSAL_CHOSEN | TS_UNACCEPTABLE)}
//! ```
//! A Child SA failure leaves the IKE SA standing (§1.2); an authentication failure ends it with
//! no Child SA on either side.

use super::payloads::{auth_of, idi_of, idr_of};
use std::time::Instant;

use super::child::{self, ChildRequest};
use super::established::{ChildSa, Established};
use super::fragment::{self, Reassembly};
use super::payloads::{first_error, notify, one, optional};
use super::psk::{psk_auth, verify};
use super::sa::{fail, Context, State, Step};
use super::sa_init::Handshake;
use super::signature_auth::{self, cert_payloads, certreq_payload, peer_key, signed_octets};
use super::Side;
use super::{AuthenticationFailed, Error, Event, Identity, IkeSaEstablished, LocalAuth, PeerAuth};
use crate::crypto::Role;
use crate::wire::{
    AuthMethod, Authentication, Codec, ExchangeType, Identification, Message, Notify, NotifyType,
    Payload,
};

/// The IKE_AUTH exchange's Message ID: the first after IKE_SA_INIT.
const AUTH_MESSAGE_ID: u32 = 1;

/// Our AUTH payload, presenting `id`.
fn our_auth(ctx: &Context, hs: &Handshake, id: &Identification) -> Result<Authentication, Error> {
    let (real_message, peer_nonce) = match ctx.role {
        Role::Initiator => (&hs.init_request, &hs.nr),
        Role::Responder => (&hs.init_response, &hs.ni),
    };
    let sk_p = hs.keys.sk_p(ctx.role);
    let id_body = id.to_bytes();
    match &ctx.config.local_auth {
        LocalAuth::Psk => {
            let data = psk_auth(
                hs.suite.prf(),
                &ctx.config.psk,
                sk_p,
                real_message,
                peer_nonce,
                &id_body,
            );
            Ok(Authentication {
                method: AuthMethod::SharedKeyMic,
                data: data.expose().to_vec(),
            })
        }
        LocalAuth::Signature(creds) => {
            let octets = signed_octets(hs.suite.prf(), sk_p, real_message, peer_nonce, &id_body);
            signature_auth::sign(creds, hs.peer.hashes.as_deref(), &octets)
        }
    }
}

/// Our ID-related payloads before AUTH: CERTs (if we sign), then a CERTREQ (if we expect a
/// certificate), in RFC 7296 §1.2's order.
fn cert_and_certreq(ctx: &Context) -> Vec<Payload> {
    let mut out = match &ctx.config.local_auth {
        LocalAuth::Signature(creds) => cert_payloads(creds),
        LocalAuth::Psk => Vec::new(),
    };
    out.extend(certreq_payload(&ctx.config.peer_auth));
    out
}

/// Checks the peer's identity and AUTH payload; `inner` holds its CERT payloads.
/// A responder with several candidate configurations takes the first whose expected peer
/// identity is IDi's and whose own identity is the IDr asked for (if any); without a fit it
/// keeps the current one, which then refuses the peer.
fn choose_config(ctx: &mut Context, idi: &Identification, idr: Option<&Identification>) {
    let fit = ctx.candidates.iter().position(|c| {
        c.remote_id
            .as_ref()
            .is_none_or(|expected| expected.matches(idi))
            && idr.is_none_or(|idr| c.local_id.matches(idr))
    });
    if let Some(index) = fit.filter(|i| *i != ctx.config_index) {
        if let Some(config) = ctx.candidates.get(index) {
            ctx.config = config.clone();
            ctx.config_index = index;
        }
    }
}

fn check_peer(
    ctx: &Context,
    hs: &Handshake,
    id: &Identification,
    auth: &Authentication,
    inner: &[Payload],
) -> Result<(), Error> {
    if let Some(expected) = &ctx.config.remote_id {
        if !expected.matches(id) {
            return Err(Error::AuthenticationFailed {
                what: "the peer's identity is not the configured one",
            });
        }
    }
    let peer = ctx.role.peer();
    let (real_message, nonce) = match peer {
        Role::Initiator => (&hs.init_request, &hs.nr),
        Role::Responder => (&hs.init_response, &hs.ni),
    };
    if !matches!(ctx.config.peer_auth, PeerAuth::Psk) {
        let key = peer_key(&ctx.config.peer_auth, id, inner, (ctx.config.wall_clock)())?;
        let octets = signed_octets(
            hs.suite.prf(),
            hs.keys.sk_p(peer),
            real_message,
            nonce,
            &id.to_bytes(),
        );
        return signature_auth::verify(&key, auth, &octets);
    }
    if auth.method != AuthMethod::SharedKeyMic {
        return Err(Error::AuthenticationFailed {
            what: "the peer does not authenticate with a shared key",
        });
    }
    let expected = psk_auth(
        hs.suite.prf(),
        ctx.config.peer_psk.as_ref().unwrap_or(&ctx.config.psk),
        hs.keys.sk_p(peer),
        real_message,
        nonce,
        &id.to_bytes(),
    );
    if !verify(&expected, &auth.data) {
        return Err(Error::AuthenticationFailed {
            what: "the peer's AUTH payload does not verify",
        });
    }
    Ok(())
}

fn established_event(
    ctx: &Context,
    hs: &Handshake,
    peer: &Identification,
    initial_contact: bool,
) -> Event {
    Event::IkeSaEstablished(IkeSaEstablished {
        role: ctx.role,
        spi_i: ctx.spi_i,
        spi_r: ctx.spi_r,
        suite: hs.suite,
        ke: hs.choice.ke,
        peer_id: Identity::from_wire(peer),
        nat: hs.nat,
        initial_contact,
    })
}

fn auth_failed(ctx: &mut Context, detected_by: Side, peer: Option<&Identification>, error: Error) {
    ctx.events
        .push_back(Event::AuthenticationFailed(AuthenticationFailed {
            detected_by,
            peer_id: peer.map(Identity::from_wire),
            error,
        }));
}

/// The initiator, waiting for the IKE_AUTH response.
#[derive(Debug)]
pub(crate) struct ExpectAuthResponse {
    hs: Handshake,
    child: ChildRequest,
    reassembly: Reassembly,
}

impl ExpectAuthResponse {
    /// Builds and sends the IKE_AUTH request.
    pub(crate) fn start(
        ctx: &mut Context,
        now: Instant,
        mut hs: Handshake,
    ) -> Result<ExpectAuthResponse, Error> {
        let idi = ctx.config.local_id.to_wire();
        let auth = our_auth(ctx, &hs, &idi)?;
        let (child, child_payloads) = child::request(ctx)?;
        let mut payloads = vec![Payload::IdI(idi)];
        // §2.4: this is our only IKE SA with the peer; it may drop any it still holds.
        if ctx.config.initial_contact {
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
        payloads.extend(cert_and_certreq(ctx));
        if let Some(idr) = &ctx.config.remote_id {
            payloads.push(Payload::IdR(idr.to_wire()));
        }
        payloads.push(Payload::Auth(auth));
        payloads.extend(child_payloads);
        let header = ctx.header(ExchangeType::IkeAuth, false, AUTH_MESSAGE_ID);
        let limit = fragment::limit(ctx, hs.peer.fragmentation);
        let datagrams = fragment::seal(header, &payloads, &mut hs.seal, &mut *ctx.rng, limit)?;
        ctx.send_request_datagrams(now, AUTH_MESSAGE_ID, datagrams);
        Ok(ExpectAuthResponse {
            hs,
            child,
            reassembly: Reassembly::default(),
        })
    }

    pub(crate) fn handle(
        mut self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        datagram: &[u8],
        message: &Message,
    ) -> Step {
        if message.header.exchange_type != ExchangeType::IkeAuth || !message.header.flags.response {
            let e = Error::Unexpected {
                what: "anything but the IKE_AUTH response",
            };
            return (State::ExpectAuthResponse(self), Err(e));
        }
        let opened = fragment::open_inner(
            ctx,
            now,
            self.hs.peer.fragmentation,
            &mut self.reassembly,
            &self.hs.open,
            datagram,
            message,
        );
        let inner = match opened {
            Ok(Some(inner)) => inner,
            Ok(None) => return (State::ExpectAuthResponse(self), Ok(())),
            // Not authentic, or something we cannot read: drop, keep waiting.
            Err(
                e
                @ (Error::Undecryptable(_) | Error::Unexpected { .. } | Error::Unsupported { .. }),
            ) => return (State::ExpectAuthResponse(self), Err(e)),
            // Authentic but malformed: the exchange is lost.
            Err(e) => return (fail(ctx, now, Some(e)), Ok(())),
        };
        ctx.request = None;
        let idr = optional(&inner, idr_of, "the IDr payload of the IKE_AUTH response");
        let auth = optional(&inner, auth_of, "the AUTH payload of the IKE_AUTH response");
        let (idr, auth) = match (idr, auth) {
            (Ok(Some(idr)), Ok(Some(auth))) => (idr, auth),
            (Ok(_), Ok(_)) => {
                // No AUTH: the responder refused (§2.21.2), or the answer is broken.
                let reason = match first_error(&inner) {
                    Some(n) if n.notify_type == NotifyType::AuthenticationFailed => {
                        let e = Error::Refused {
                            notify: n.notify_type,
                        };
                        auth_failed(ctx, Side::Peer, None, e);
                        return (fail(ctx, now, None), Ok(()));
                    }
                    Some(n) => Error::Refused {
                        notify: n.notify_type,
                    },
                    None => Error::InvalidSyntax {
                        what: "an IKE_AUTH response without IDr and AUTH",
                    },
                };
                return (fail(ctx, now, Some(reason)), Ok(()));
            }
            (Err(e), _) | (_, Err(e)) => return (fail(ctx, now, Some(e)), Ok(())),
        };
        if let Err(e) = check_peer(ctx, &self.hs, idr, auth, &inner) {
            // §2.21.2 would have us tell the responder in an INFORMATIONAL exchange; not yet.
            auth_failed(ctx, Side::Local, Some(idr), e);
            return (fail(ctx, now, None), Ok(()));
        }
        ctx.events
            .push_back(established_event(ctx, &self.hs, idr, false));
        let child_event = match first_error(&inner) {
            Some(n) => Event::ChildSaFailed {
                error: Error::Refused {
                    notify: n.notify_type,
                },
            },
            None => match child::complete(ctx, &self.hs, &self.child, &inner) {
                Ok(installed) => Event::ChildSaInstalled(Box::new(installed)),
                Err(error) => Event::ChildSaFailed { error },
            },
        };
        let first = match &child_event {
            Event::ChildSaInstalled(c) => Some(ChildSa::from_installed(c)),
            _ => None,
        };
        let resources = first.is_some() && child::peer_supports_resources(&self.child, &inner);
        ctx.events.push_back(child_event);
        let mut next = Established::new(self.hs, now, first);
        if resources {
            next.resources.set_supported(0);
        }
        (State::Established(Box::new(next)), Ok(()))
    }
}

/// The responder, waiting for the IKE_AUTH request (a half-open SA until `deadline`).
#[derive(Debug)]
pub(crate) struct ExpectAuthRequest {
    hs: Handshake,
    pub deadline: Instant,
    reassembly: Reassembly,
}

impl ExpectAuthRequest {
    pub(crate) fn new(hs: Handshake, deadline: Instant) -> ExpectAuthRequest {
        ExpectAuthRequest {
            hs,
            deadline,
            reassembly: Reassembly::default(),
        }
    }

    /// Seals and sends an answer to the IKE_AUTH request.
    fn answer(&mut self, ctx: &mut Context, payloads: &[Payload]) -> Result<(), Error> {
        let header = ctx.header(ExchangeType::IkeAuth, true, AUTH_MESSAGE_ID);
        let limit = fragment::limit(ctx, self.hs.peer.fragmentation);
        let datagrams = fragment::seal(header, payloads, &mut self.hs.seal, &mut *ctx.rng, limit)?;
        ctx.send_response_datagrams(AUTH_MESSAGE_ID, datagrams);
        Ok(())
    }

    /// Answers with one error notification and ends the SA.
    fn refuse(mut self: Box<Self>, ctx: &mut Context, now: Instant, notify: Notify) -> State {
        match self.answer(ctx, &[Payload::Notify(notify)]) {
            Ok(()) => fail(ctx, now, None),
            Err(e) => fail(ctx, now, Some(e)),
        }
    }

    pub(crate) fn handle(
        mut self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        datagram: &[u8],
        message: &Message,
    ) -> Step {
        if message.header.exchange_type != ExchangeType::IkeAuth
            || message.header.message_id != AUTH_MESSAGE_ID
        {
            let e = Error::Unexpected {
                what: "anything but the IKE_AUTH request",
            };
            return (State::ExpectAuthRequest(self), Err(e));
        }
        let opened = fragment::open_inner(
            ctx,
            now,
            self.hs.peer.fragmentation,
            &mut self.reassembly,
            &self.hs.open,
            datagram,
            message,
        );
        let inner = match opened {
            Ok(Some(inner)) => inner,
            Ok(None) => return (State::ExpectAuthRequest(self), Ok(())),
            Err(e @ Error::Malformed(_)) => {
                // Authentic but malformed (§2.21.2): answer, then the SA is gone.
                ctx.stats.requests_processed = ctx.stats.requests_processed.saturating_add(1);
                let notify = match &e {
                    Error::Malformed(d) => d.to_notify(),
                    _ => Notify::new(NotifyType::InvalidSyntax, Vec::new()),
                };
                let next = self.refuse(ctx, now, notify);
                ctx.events.push_back(Event::Failed { reason: e });
                return (next, Ok(()));
            }
            Err(e) => return (State::ExpectAuthRequest(self), Err(e)),
        };
        ctx.stats.requests_processed = ctx.stats.requests_processed.saturating_add(1);
        let idi = one(&inner, idi_of, "the IDi payload of IKE_AUTH");
        let auth = one(&inner, auth_of, "the AUTH payload of IKE_AUTH");
        let idr = optional(&inner, idr_of, "the IDr payload of IKE_AUTH");
        let (idi, auth, idr) = match (idi, auth, idr) {
            (Ok(idi), Ok(auth), Ok(idr)) => (idi, auth, idr),
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                let notify = Notify::new(NotifyType::InvalidSyntax, Vec::new());
                let next = self.refuse(ctx, now, notify);
                ctx.events.push_back(Event::Failed { reason: e });
                return (next, Ok(()));
            }
        };
        choose_config(ctx, idi, idr);
        let wrong_idr = idr
            .filter(|idr| !ctx.config.local_id.matches(idr))
            .map(|_| Error::AuthenticationFailed {
                what: "the initiator asked for an identity that is not ours",
            });
        if let Some(e) =
            wrong_idr.map_or_else(|| check_peer(ctx, &self.hs, idi, auth, &inner).err(), Some)
        {
            let notify = Notify::new(NotifyType::AuthenticationFailed, Vec::new());
            auth_failed(ctx, Side::Local, Some(idi), e);
            return (self.refuse(ctx, now, notify), Ok(()));
        }
        // Authenticated. Our IDr and AUTH, then the Child SA or why there is none.
        let our_id = ctx.config.local_id.to_wire();
        let auth = match our_auth(ctx, &self.hs, &our_id) {
            Ok(auth) => auth,
            Err(e) => {
                // We cannot prove who we are to this peer: it must not wait for us (§2.21.2).
                let notify = Notify::new(NotifyType::AuthenticationFailed, Vec::new());
                let next = self.refuse(ctx, now, notify);
                ctx.events.push_back(Event::Failed { reason: e });
                return (next, Ok(()));
            }
        };
        let mut payloads = vec![Payload::IdR(our_id)];
        if let LocalAuth::Signature(creds) = &ctx.config.local_auth {
            payloads.extend(cert_payloads(creds));
        }
        payloads.push(Payload::Auth(auth));
        let child_event = match child::respond(ctx, &self.hs, &inner) {
            Ok((child_payloads, installed)) => {
                payloads.extend(child_payloads);
                Event::ChildSaInstalled(Box::new(installed))
            }
            Err(error) => {
                let notify = error.notify_type().unwrap_or(NotifyType::NoProposalChosen);
                payloads.push(Payload::Notify(Notify::new(notify, Vec::new())));
                Event::ChildSaFailed { error }
            }
        };
        if let Err(e) = self.answer(ctx, &payloads) {
            return (fail(ctx, now, Some(e)), Ok(()));
        }
        let initial_contact = notify(&inner, NotifyType::InitialContact).is_some();
        ctx.events
            .push_back(established_event(ctx, &self.hs, idi, initial_contact));
        let first = match &child_event {
            Event::ChildSaInstalled(c) => Some(ChildSa::from_installed(c)),
            _ => None,
        };
        ctx.events.push_back(child_event);
        let next = Established::new(self.hs, now, first);
        (State::Established(Box::new(next)), Ok(()))
    }
}

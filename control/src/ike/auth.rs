//! IKE_AUTH with a pre-shared key (RFC 7296 §1.2, §2.15, §2.21.2): both roles.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {IDi, [IDr,] AUTH, SAi2, TSi, TSr}  -->
//!                              <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//!                              <--  or HDR, SK {N(AUTHENTICATION_FAILED)}
//!                              <--  or HDR, SK {IDr, AUTH, N(NO_PROPOSAL_CHOSEN | TS_UNACCEPTABLE)}
//! ```
//! A Child SA failure leaves the IKE SA standing (§1.2); an authentication failure ends it with
//! no Child SA on either side.

use super::payloads::{auth_of, idi_of, idr_of};
use std::time::Instant;

use super::child::{self, ChildRequest};
use super::established::{ChildSa, Established};
use super::payloads::{first_error, one, optional};
use super::protect;
use super::psk::{psk_auth, verify};
use super::sa::{fail, Context, State, Step};
use super::sa_init::Handshake;
use super::{AuthenticationFailed, Error, Event, Identity, IkeSaEstablished, Side};
use crate::crypto::Role;
use crate::wire::{
    AuthMethod, Authentication, Codec, ExchangeType, Identification, Message, Notify, NotifyType,
    Payload,
};

/// The IKE_AUTH exchange's Message ID: the first after IKE_SA_INIT.
const AUTH_MESSAGE_ID: u32 = 1;

/// Our AUTH payload: `signer` sent `real_message`, and presents `id`.
fn our_auth(ctx: &Context, hs: &Handshake, id: &Identification) -> Authentication {
    let (real_message, peer_nonce) = match ctx.role {
        Role::Initiator => (&hs.init_request, &hs.nr),
        Role::Responder => (&hs.init_response, &hs.ni),
    };
    let data = psk_auth(
        hs.suite.prf(),
        &ctx.config.psk,
        hs.keys.sk_p(ctx.role),
        real_message,
        peer_nonce,
        &id.to_bytes(),
    );
    Authentication {
        method: AuthMethod::SharedKeyMic,
        data: data.expose().to_vec(),
    }
}

/// Checks the peer's identity and AUTH payload.
fn check_peer(
    ctx: &Context,
    hs: &Handshake,
    id: &Identification,
    auth: &Authentication,
) -> Result<(), Error> {
    if let Some(expected) = &ctx.config.remote_id {
        if !expected.matches(id) {
            return Err(Error::AuthenticationFailed {
                what: "the peer's identity is not the configured one",
            });
        }
    }
    if auth.method != AuthMethod::SharedKeyMic {
        return Err(Error::AuthenticationFailed {
            what: "the peer does not authenticate with a shared key",
        });
    }
    let peer = ctx.role.peer();
    let (real_message, nonce) = match peer {
        Role::Initiator => (&hs.init_request, &hs.nr),
        Role::Responder => (&hs.init_response, &hs.ni),
    };
    let expected = psk_auth(
        hs.suite.prf(),
        &ctx.config.psk,
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

fn established_event(ctx: &Context, hs: &Handshake, peer: &Identification) -> Event {
    Event::IkeSaEstablished(IkeSaEstablished {
        role: ctx.role,
        spi_i: ctx.spi_i,
        spi_r: ctx.spi_r,
        suite: hs.suite,
        ke: hs.choice.ke,
        peer_id: Identity::from_wire(peer),
        nat: hs.nat,
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
}

impl ExpectAuthResponse {
    /// Builds and sends the IKE_AUTH request.
    pub(crate) fn start(
        ctx: &mut Context,
        now: Instant,
        mut hs: Handshake,
    ) -> Result<ExpectAuthResponse, Error> {
        let idi = ctx.config.local_id.to_wire();
        let auth = our_auth(ctx, &hs, &idi);
        let (child, child_payloads) = child::request(ctx)?;
        let mut payloads = vec![Payload::IdI(idi)];
        if let Some(idr) = &ctx.config.remote_id {
            payloads.push(Payload::IdR(idr.to_wire()));
        }
        payloads.push(Payload::Auth(auth));
        payloads.extend(child_payloads);
        let header = ctx.header(ExchangeType::IkeAuth, false, AUTH_MESSAGE_ID);
        let bytes = protect::seal(header, &payloads, &mut hs.seal, &mut *ctx.rng)?;
        ctx.send_request(now, AUTH_MESSAGE_ID, bytes);
        Ok(ExpectAuthResponse { hs, child })
    }

    pub(crate) fn handle(
        self: Box<Self>,
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
        let inner = match protect::open(datagram, message, &self.hs.open) {
            Ok(inner) => inner,
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
        if let Err(e) = check_peer(ctx, &self.hs, idr, auth) {
            // §2.21.2 would have us tell the responder in an INFORMATIONAL exchange; not yet.
            auth_failed(ctx, Side::Local, Some(idr), e);
            return (fail(ctx, now, None), Ok(()));
        }
        ctx.events.push_back(established_event(ctx, &self.hs, idr));
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
        ctx.events.push_back(child_event);
        let next = Established::new(self.hs, now, first);
        (State::Established(Box::new(next)), Ok(()))
    }
}

/// The responder, waiting for the IKE_AUTH request (a half-open SA until `deadline`).
#[derive(Debug)]
pub(crate) struct ExpectAuthRequest {
    hs: Handshake,
    pub deadline: Instant,
}

impl ExpectAuthRequest {
    pub(crate) fn new(hs: Handshake, deadline: Instant) -> ExpectAuthRequest {
        ExpectAuthRequest { hs, deadline }
    }

    /// Seals and sends an answer to the IKE_AUTH request.
    fn answer(&mut self, ctx: &mut Context, payloads: &[Payload]) -> Result<(), Error> {
        let header = ctx.header(ExchangeType::IkeAuth, true, AUTH_MESSAGE_ID);
        let bytes = protect::seal(header, payloads, &mut self.hs.seal, &mut *ctx.rng)?;
        ctx.send_response(AUTH_MESSAGE_ID, bytes);
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
        let inner = match protect::open(datagram, message, &self.hs.open) {
            Ok(inner) => inner,
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
        let wrong_idr = idr
            .filter(|idr| !ctx.config.local_id.matches(idr))
            .map(|_| Error::AuthenticationFailed {
                what: "the initiator asked for an identity that is not ours",
            });
        if let Some(e) = wrong_idr.map_or_else(|| check_peer(ctx, &self.hs, idi, auth).err(), Some)
        {
            let notify = Notify::new(NotifyType::AuthenticationFailed, Vec::new());
            auth_failed(ctx, Side::Local, Some(idi), e);
            return (self.refuse(ctx, now, notify), Ok(()));
        }
        // Authenticated. Our IDr and AUTH, then the Child SA or why there is none.
        let our_id = ctx.config.local_id.to_wire();
        let mut payloads = vec![
            Payload::IdR(our_id.clone()),
            Payload::Auth(our_auth(ctx, &self.hs, &our_id)),
        ];
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
        ctx.events.push_back(established_event(ctx, &self.hs, idi));
        let first = match &child_event {
            Event::ChildSaInstalled(c) => Some(ChildSa::from_installed(c)),
            _ => None,
        };
        ctx.events.push_back(child_event);
        let next = Established::new(self.hs, now, first);
        (State::Established(Box::new(next)), Ok(()))
    }
}

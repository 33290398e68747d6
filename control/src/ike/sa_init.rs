//! IKE_SA_INIT (RFC 7296 §1.2): both roles.
//!
//! ```text
//! Initiator                         Responder
//! HDR(SPIi, 0), SAi1, KEi, Ni,
//!   N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
//!   [N(SIGNATURE_HASH_ALGORITHMS)], [N(IKEV2_FRAGMENTATION_SUPPORTED)]  -->
//!                              <--  HDR(SPIi, SPIr), SAr1, KEr, Nr, N(NAT_D…), N(NAT_D…),
//!                                   [N(SIGNATURE_HASH_ALGORITHMS)],
//!                                   [N(IKEV2_FRAGMENTATION_SUPPORTED)]
//!                              <--  or HDR(SPIi, 0), N(INVALID_KE_PAYLOAD | NO_PROPOSAL_CHOSEN)
//! ```
//! The responder keeps no state for a request it refuses. The initiator follows an
//! INVALID_KE_PAYLOAD naming a group it offered (a new KE payload, same SA payload, nonce and
//! Message ID 0, §1.2), up to `max_invalid_ke_retries` times, and a COOKIE (the same request
//! with the cookie first, §2.6) up to `max_cookie_retries` times; see `cookie.rs` for the
//! responder's side.
//!
//! SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) goes out when our configuration uses signatures on
//! either side, and in answer to the initiator's; what the peer announced decides whether
//! IKE_AUTH signs with method 14 (`Handshake::peer`).

use super::payloads::{ke_of, nonce_of, sa_of};
use std::time::Instant;

use super::auth::{ExpectAuthRequest, ExpectAuthResponse};
use super::payloads::{first_error, notify, one};
use super::proposal::{check_ike_answer, ike_offer, select_ike, IkeChoice};
use super::retransmit::deadline;
use super::sa::{fail, Context, State, Step};
use super::{nat, Error, NatStatus};
use crate::crypto::{
    skeyseed, HashAlgorithm, IkeSaKeys, IkeSuite, KeyExchange, SharedSecret, SkCipher,
};
use crate::wire::{
    ExchangeType, KeyExchange as KePayload, Message, Nonce, Notify, NotifyType, Payload,
    SecurityAssociation,
};

/// What IKE_SA_INIT produced: the keys, and everything IKE_AUTH signs.
#[derive(Debug)]
pub(crate) struct Handshake {
    pub choice: IkeChoice,
    pub suite: IkeSuite,
    pub keys: IkeSaKeys,
    /// Seals what we send.
    pub seal: SkCipher,
    /// Opens what the peer sends.
    pub open: SkCipher,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// RealMessage1: the IKE_SA_INIT request as sent.
    pub init_request: Vec<u8>,
    /// RealMessage2: the IKE_SA_INIT response as sent.
    pub init_response: Vec<u8>,
    pub nat: NatStatus,
    /// What the peer announced in IKE_SA_INIT.
    pub peer: PeerFeatures,
}

/// Extensions the peer announced in its IKE_SA_INIT message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerFeatures {
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): `None` if absent (then only the classic
    /// signature methods may be used towards it).
    pub hashes: Option<Vec<HashAlgorithm>>,
    /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub fragmentation: bool,
}

impl PeerFeatures {
    /// Reads the notifications of an IKE_SA_INIT message. A malformed hash list counts as
    /// none (RFC 7427 gives no error for it).
    pub fn of(payloads: &[Payload]) -> PeerFeatures {
        PeerFeatures {
            hashes: notify(payloads, NotifyType::SignatureHashAlgorithms)
                .and_then(|n| HashAlgorithm::decode_list(&n.data)),
            fragmentation: notify(payloads, NotifyType::Ikev2FragmentationSupported).is_some(),
        }
    }
}

/// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3): no data.
fn fragmentation_supported() -> Payload {
    Payload::Notify(Notify::new(
        NotifyType::Ikev2FragmentationSupported,
        Vec::new(),
    ))
}

/// Our SIGNATURE_HASH_ALGORITHMS notification.
fn signature_hashes() -> Payload {
    Payload::Notify(Notify::new(
        NotifyType::SignatureHashAlgorithms,
        HashAlgorithm::encode_list(&HashAlgorithm::ANNOUNCED),
    ))
}

impl Handshake {
    /// SKEYSEED and the seven keys (§2.14), once both SPIs are known.
    #[allow(clippy::too_many_arguments)]
    fn derive(
        ctx: &Context,
        choice: IkeChoice,
        g_ir: &SharedSecret,
        ni: Vec<u8>,
        nr: Vec<u8>,
        init_request: Vec<u8>,
        init_response: Vec<u8>,
        nat: NatStatus,
        peer: PeerFeatures,
    ) -> Result<Handshake, Error> {
        let suite = choice.suite()?;
        let seed = skeyseed(suite.prf(), &ni, &nr, g_ir);
        let keys = IkeSaKeys::derive(
            &suite,
            &seed,
            &ni,
            &nr,
            &ctx.spi_i.to_be_bytes(),
            &ctx.spi_r.to_be_bytes(),
        )
        .map_err(Error::Crypto)?;
        let seal = keys.sk_cipher(ctx.role).map_err(Error::Crypto)?;
        let open = keys.sk_cipher(ctx.role.peer()).map_err(Error::Crypto)?;
        Ok(Handshake {
            choice,
            suite,
            keys,
            seal,
            open,
            ni,
            nr,
            init_request,
            init_response,
            nat,
            peer,
        })
    }
}

/// §2.10: at least 128 bits, and at least half the negotiated PRF's key size.
fn check_nonce(nonce: &[u8], choice: &IkeChoice) -> Result<(), Error> {
    let min = Nonce::MIN_LEN.max(choice.prf.key_len().div_ceil(2));
    if nonce.len() < min {
        return Err(Error::InvalidSyntax {
            what: "the nonce is shorter than half the PRF's key size",
        });
    }
    Ok(())
}

/// The initiator, waiting for the IKE_SA_INIT response.
#[derive(Debug)]
pub(crate) struct ExpectSaInitResponse {
    offer: SecurityAssociation,
    ke: KeyExchange,
    ni: Vec<u8>,
    /// The request as last sent (RealMessage1 if it is answered).
    request: Vec<u8>,
    ke_retries: u8,
    /// The responder's COOKIE, sent first in every retry once it asked for one (§2.6).
    cookie: Option<Vec<u8>>,
    cookie_retries: u8,
}

/// Builds and sends the first IKE_SA_INIT request.
pub(crate) fn initiate(ctx: &mut Context, now: Instant) -> Result<ExpectSaInitResponse, Error> {
    let group = ctx
        .config
        .ike_proposals
        .first()
        .and_then(|p| p.ke.first())
        .copied()
        .ok_or(Error::Config(super::ConfigError {
            field: "ike_proposals",
            reason: "no key exchange method",
        }))?;
    let ke = KeyExchange::generate(group, &mut *ctx.rng).map_err(Error::Crypto)?;
    let ni = ctx.nonce()?;
    let mut state = ExpectSaInitResponse {
        offer: ike_offer(&ctx.config.ike_proposals),
        ke,
        ni,
        request: Vec::new(),
        ke_retries: 0,
        cookie: None,
        cookie_retries: 0,
    };
    state.send(ctx, now);
    Ok(state)
}

impl ExpectSaInitResponse {
    fn send(&mut self, ctx: &mut Context, now: Instant) {
        let header = ctx.header(ExchangeType::IkeSaInit, false, 0);
        let mut payloads = Vec::new();
        if let Some(cookie) = &self.cookie {
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::Cookie,
                cookie.clone(),
            )));
        }
        payloads.extend([
            Payload::Sa(self.offer.clone()),
            Payload::Ke(KePayload {
                group: self.ke.method(),
                data: self.ke.public_value().to_vec(),
            }),
            Payload::Nonce(Nonce(self.ni.clone())),
        ]);
        payloads.extend(nat::notifications(
            &header,
            ctx.config.local_addr,
            ctx.config.remote_addr,
            ctx.config.nat_traversal,
        ));
        if ctx.config.uses_signatures() {
            payloads.push(signature_hashes());
        }
        if ctx.config.fragmentation {
            payloads.push(fragmentation_supported());
        }
        self.request = Message { header, payloads }.encode();
        ctx.send_request(now, 0, self.request.clone());
    }

    pub(crate) fn handle(
        self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        datagram: &[u8],
        message: &Message,
    ) -> Step {
        if message.header.exchange_type != ExchangeType::IkeSaInit || !message.header.flags.response
        {
            let e = Error::Unexpected {
                what: "anything but the IKE_SA_INIT response",
            };
            return (State::ExpectSaInitResponse(self), Err(e));
        }
        let payloads = &message.payloads;
        if let Some(n) = first_error(payloads) {
            // Unauthenticated: RFC 7296 §2.21 would let us wait for a genuine answer; like
            // strongSwan we act on it, but only on INVALID_KE_PAYLOAD for a group we offered.
            if n.notify_type == NotifyType::InvalidKePayload {
                return self.retry_with(ctx, now, n.requested_group());
            }
            let reason = Error::Refused {
                notify: n.notify_type,
            };
            return (fail(ctx, now, Some(reason)), Ok(()));
        }
        if let Some(n) = notify(payloads, NotifyType::Cookie) {
            return self.retry_with_cookie(ctx, now, n.data.clone());
        }
        match self.complete(ctx, datagram, message) {
            Ok(handshake) => {
                ctx.request = None;
                match ExpectAuthResponse::start(ctx, now, handshake) {
                    Ok(next) => (State::ExpectAuthResponse(Box::new(next)), Ok(())),
                    Err(e) => (fail(ctx, now, Some(e)), Ok(())),
                }
            }
            // A broken answer may be a forgery: keep waiting for the genuine one (§2.4); the
            // retransmission timer gives up eventually. Local failures end the SA.
            Err(e @ Error::Crypto(_)) => (fail(ctx, now, Some(e)), Ok(())),
            Err(e) => (State::ExpectSaInitResponse(self), Err(e)),
        }
    }

    /// INVALID_KE_PAYLOAD: retry with the group the responder wants, if we offered it.
    fn retry_with(
        mut self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        group: Option<crate::wire::KeMethod>,
    ) -> Step {
        let offered = |g| ctx.config.ike_proposals.iter().any(|p| p.ke.contains(&g));
        let usable = group.filter(|&g| offered(g) && g != self.ke.method());
        let Some(group) = usable.filter(|_| self.ke_retries < ctx.config.max_invalid_ke_retries)
        else {
            let reason = Error::Refused {
                notify: NotifyType::InvalidKePayload,
            };
            return (fail(ctx, now, Some(reason)), Ok(()));
        };
        match KeyExchange::generate(group, &mut *ctx.rng) {
            Ok(ke) => {
                self.ke = ke;
                self.ke_retries = self.ke_retries.saturating_add(1);
                self.send(ctx, now);
                (State::ExpectSaInitResponse(self), Ok(()))
            }
            Err(e) => (fail(ctx, now, Some(Error::Crypto(e))), Ok(())),
        }
    }

    /// COOKIE (§2.6): the same request again (same SPI, nonce and KE), the cookie first.
    fn retry_with_cookie(
        mut self: Box<Self>,
        ctx: &mut Context,
        now: Instant,
        cookie: Vec<u8>,
    ) -> Step {
        // §3.10.1: a COOKIE is 1 to 64 octets.
        if cookie.is_empty() || cookie.len() > 64 {
            let e = Error::InvalidSyntax {
                what: "a COOKIE notification of the wrong length",
            };
            return (State::ExpectSaInitResponse(self), Err(e));
        }
        if self.cookie_retries >= ctx.config.max_cookie_retries {
            let reason = Error::Refused {
                notify: NotifyType::Cookie,
            };
            return (fail(ctx, now, Some(reason)), Ok(()));
        }
        self.cookie_retries = self.cookie_retries.saturating_add(1);
        self.cookie = Some(cookie);
        self.send(ctx, now);
        (State::ExpectSaInitResponse(self), Ok(()))
    }

    /// Checks the response and derives the keys.
    fn complete(
        &self,
        ctx: &mut Context,
        datagram: &[u8],
        message: &Message,
    ) -> Result<Handshake, Error> {
        let payloads = &message.payloads;
        let spi_r = message.header.responder_spi;
        if spi_r == 0 {
            return Err(Error::InvalidSyntax {
                what: "an IKE_SA_INIT response without the responder's SPI",
            });
        }
        let sa = one(payloads, sa_of, "the SA payload of IKE_SA_INIT")?;
        let ke = one(payloads, ke_of, "the KE payload of IKE_SA_INIT")?;
        let nr = one(payloads, nonce_of, "the Nonce payload of IKE_SA_INIT")?;
        let choice = check_ike_answer(sa, &ctx.config.ike_proposals)?;
        if ke.group != choice.ke || ke.group != self.ke.method() {
            return Err(Error::InvalidSyntax {
                what: "the responder's KE group is not the one of our KE payload",
            });
        }
        check_nonce(&nr.0, &choice)?;
        let g_ir = self.ke.agree(&ke.data).map_err(Error::agreeing)?;
        ctx.spi_r = spi_r;
        let nat = nat::evaluate(message, ctx.config.local_addr, ctx.config.remote_addr);
        ctx.after_nat_detection(&nat);
        Handshake::derive(
            ctx,
            choice,
            &g_ir,
            self.ni.clone(),
            nr.0.clone(),
            self.request.clone(),
            datagram.to_vec(),
            nat,
            PeerFeatures::of(payloads),
        )
        .inspect_err(|_| ctx.spi_r = 0)
    }
}

/// The responder's side: selects a proposal, answers, derives the keys. An `Err` keeps no
/// state; its [`Error::notify_type`] is the stateless answer.
pub(crate) fn respond(
    ctx: &mut Context,
    now: Instant,
    datagram: &[u8],
    message: &Message,
) -> Result<ExpectAuthRequest, Error> {
    let payloads = &message.payloads;
    let sa = one(payloads, sa_of, "the SA payload of IKE_SA_INIT")?;
    let ke = one(payloads, ke_of, "the KE payload of IKE_SA_INIT")?;
    let ni = one(payloads, nonce_of, "the Nonce payload of IKE_SA_INIT")?;
    // A COOKIE (§2.6) was checked by the daemon's `CookieJar` before we were called.
    let config = ctx.config.clone();
    let choice = select_ike(sa, &config.ike_proposals, config.selection, ke.group)?;
    if ke.group != choice.ke {
        return Err(Error::InvalidKePayload { wanted: choice.ke });
    }
    check_nonce(&ni.0, &choice)?;
    let ours = KeyExchange::generate(choice.ke, &mut *ctx.rng).map_err(Error::Crypto)?;
    let g_ir = ours.agree(&ke.data).map_err(Error::agreeing)?;
    let nat = nat::evaluate(message, config.local_addr, config.remote_addr);
    ctx.spi_r = ctx.random_ike_spi()?;
    let nr = ctx.nonce()?;
    let header = ctx.header(ExchangeType::IkeSaInit, true, 0);
    let mut answer = vec![
        Payload::Sa(choice.to_sa()),
        Payload::Ke(KePayload {
            group: choice.ke,
            data: ours.public_value().to_vec(),
        }),
        Payload::Nonce(Nonce(nr.clone())),
    ];
    // §2.23: NAT_DETECTION_* only answer the initiator's.
    if nat.peer_supports {
        answer.extend(nat::notifications(
            &header,
            config.local_addr,
            config.remote_addr,
            config.nat_traversal,
        ));
    }
    let peer = PeerFeatures::of(payloads);
    if peer.hashes.is_some() || config.uses_signatures() {
        answer.push(signature_hashes());
    }
    // RFC 7383 §2.3: only in answer to the initiator's.
    if peer.fragmentation && config.fragmentation {
        answer.push(fragmentation_supported());
    }
    let response = Message {
        header,
        payloads: answer,
    }
    .encode();
    let handshake = Handshake::derive(
        ctx,
        choice,
        &g_ir,
        ni.0.clone(),
        nr,
        datagram.to_vec(),
        response.clone(),
        nat,
        peer,
    )?;
    ctx.after_nat_detection(&nat);
    ctx.send_response(0, response);
    Ok(ExpectAuthRequest::new(
        handshake,
        deadline(now, config.half_open_timeout),
    ))
}

//! The IKE SA rekey (RFC 7296 §1.3.2, §2.18): CREATE_CHILD_SA with an IKE proposal. Either
//! side may start it.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {SA(IKE, new SPIi), Ni, KEi}  -->
//!                              <--  HDR, SK {SA(IKE, new SPIr), Nr, KEr}
//! SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr)
//! {SK_d | SK_ai | …} = prf+_new(SKEYSEED, Ni | Nr | SPIi | SPIr)
//! ```
//! The initiator of the rekey is the original initiator of the new IKE SA, whose Message IDs
//! start at 0. Both sides move their Child SAs (and queued requests) to the new IKE SA, which
//! the daemon takes with [`super::IkeSa::poll_rekeyed`] after [`super::Event::IkeSaRekeyed`];
//! the initiator of the rekey then deletes the old IKE SA (INFORMATIONAL Delete on it), and
//! both old SAs report [`super::Event::IkeSaDeleted`] with
//! [`super::DeleteReason::Rekeyed`].
//!
//! Simultaneous IKE SA rekeys (§2.8.2): a peer's rekey request that arrives while ours is
//! outstanding is answered, and its new SA kept aside; when our response comes, both sides
//! compare the four nonces alike: the new IKE SA whose exchange has the lowest nonce is
//! redundant and is deleted by the side that created it, the other inherits the Child SAs,
//! and the old IKE SA is deleted by the initiator of the surviving exchange. A rekey request
//! that arrives while a Child SA exchange or Delete of ours is outstanding is refused with
//! TEMPORARY_FAILURE (its outcome must land on this SA), and an old SA refuses new Child SAs.
//! Not yet here: the retry after INVALID_KE_PAYLOAD.

use super::payloads::{ke_of, nonce_of, sa_of};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::established::{ChildSa, Established, Op, Outstanding};
use super::payloads::{first_error, one};
use super::proposal::{check_ike_answer, ike_offer, select_ike, IkeChoice};
use super::sa::{Context, IkeSa, State};
use super::{Error, Event, IkeSaRekeyed};
use crate::crypto::{
    skeyseed_rekey, CryptoError, IkeSaKeys, IkeSuite, KeyExchange, Rng, Role, SharedSecret,
    SkCipher,
};
use crate::wire::{
    ExchangeType, KeyExchange as KePayload, Nonce, Payload, ProtocolId, SecurityAssociation,
};

/// One generator shared by the old and the new IKE SA (both may still need randomness: the
/// old one to seal its Delete exchange).
struct SharedRng(Arc<Mutex<Box<dyn Rng + Send>>>);

impl Rng for SharedRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        self.0.lock().map_err(|_| CryptoError::Rng)?.fill(dest)
    }
}

/// A generator that always fails: only a placeholder while the real one is moved.
struct NoRng;

impl Rng for NoRng {
    fn fill(&mut self, _: &mut [u8]) -> Result<(), CryptoError> {
        Err(CryptoError::Rng)
    }
}

/// Makes `ctx.rng` shared and returns a second handle on it for the new SA.
fn share_rng(ctx: &mut Context) -> Box<dyn Rng + Send> {
    let rng = std::mem::replace(&mut ctx.rng, Box::new(NoRng));
    let shared = Arc::new(Mutex::new(rng));
    ctx.rng = Box::new(SharedRng(shared.clone()));
    Box::new(SharedRng(shared))
}

/// Our outstanding IKE SA rekey request.
#[derive(Debug)]
pub(crate) struct IkeRekeyExchange {
    spi: u64,
    ni: Vec<u8>,
    ke: KeyExchange,
}

/// Whether a CREATE_CHILD_SA request rekeys the IKE SA (its SA payload offers IKE).
pub(crate) fn is_ike_rekey(request: &[Payload]) -> bool {
    request.iter().any(|p| match p {
        Payload::Sa(sa) => sa
            .proposals
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::Ike),
        _ => false,
    })
}

/// A non-zero 8-octet IKE SPI from a proposal.
fn ike_spi(spi: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(spi)
        .ok()
        .map(u64::from_be_bytes)
        .filter(|&s| s != 0)
}

/// The SA payload without SPIs, as the IKE_SA_INIT selection expects it.
fn without_spis(sa: &SecurityAssociation) -> SecurityAssociation {
    let mut out = sa.clone();
    for p in &mut out.proposals {
        p.spi.clear();
    }
    out
}

/// §2.10 against the new PRF.
fn check_nonce(nonce: &[u8], choice: &IkeChoice) -> Result<(), Error> {
    let min = Nonce::MIN_LEN.max(choice.prf.key_len().div_ceil(2));
    if nonce.len() < min {
        return Err(Error::InvalidSyntax {
            what: "the nonce is shorter than half the PRF's key size",
        });
    }
    Ok(())
}

/// Builds and sends our request.
pub(crate) fn request(
    sa: &mut Established,
    ctx: &mut Context,
    now: Instant,
) -> Result<IkeRekeyExchange, Error> {
    let spi = ctx.random_ike_spi()?;
    let ni = ctx.nonce()?;
    let ke = KeyExchange::generate(sa.ke, &mut *ctx.rng).map_err(Error::Crypto)?;
    let mut offer = ike_offer(&ctx.config.ike_proposals);
    for p in &mut offer.proposals {
        p.spi = spi.to_be_bytes().to_vec();
    }
    let payloads = [
        Payload::Sa(offer),
        Payload::Nonce(Nonce(ni.clone())),
        Payload::Ke(KePayload {
            group: ke.method(),
            data: ke.public_value().to_vec(),
        }),
    ];
    sa.send_request(ctx, now, ExchangeType::CreateChildSa, &payloads)?;
    Ok(IkeRekeyExchange { spi, ni, ke })
}

/// Everything the new IKE SA is made of.
#[derive(Debug)]
pub(crate) struct NewSa {
    role: Role,
    spi_i: u64,
    spi_r: u64,
    choice: IkeChoice,
    g_ir: SharedSecret,
    ni: Vec<u8>,
    nr: Vec<u8>,
}

/// A new IKE SA's keys, derived from the old SA's SK_d (§2.18).
struct NewKeys {
    suite: IkeSuite,
    keys: IkeSaKeys,
    seal: SkCipher,
    open: SkCipher,
}

fn derive(sa: &Established, new: &NewSa) -> Result<NewKeys, Error> {
    let suite = new.choice.suite()?;
    let seed = skeyseed_rekey(sa.suite.prf(), &sa.keys.sk_d, &new.g_ir, &new.ni, &new.nr);
    let keys = IkeSaKeys::derive(
        &suite,
        &seed,
        &new.ni,
        &new.nr,
        &new.spi_i.to_be_bytes(),
        &new.spi_r.to_be_bytes(),
    )
    .map_err(Error::Crypto)?;
    let seal = keys.sk_cipher(new.role).map_err(Error::Crypto)?;
    let open = keys.sk_cipher(new.role.peer()).map_err(Error::Crypto)?;
    Ok(NewKeys {
        suite,
        keys,
        seal,
        open,
    })
}

/// The new IKE SA around its keys, with these Child SAs and queued requests. It keeps what
/// `old` negotiated in IKE_SA_INIT beyond the proposal (IKE fragmentation): the rekey's
/// CREATE_CHILD_SA announces no such extension again.
fn assemble(
    ctx: &mut Context,
    old: &Established,
    new: &NewSa,
    keys: NewKeys,
    children: Vec<ChildSa>,
    queue: VecDeque<Op>,
    now: Instant,
) -> IkeSa {
    let rng = share_rng(ctx);
    let mut new_ctx = Context::new(ctx.config.clone(), rng, new.role);
    new_ctx.spi_i = new.spi_i;
    new_ctx.spi_r = new.spi_r;
    // The new SA lives where the old one does (§2.18), NAT traversal included.
    new_ctx.path = ctx.path;
    new_ctx.udp_encap = ctx.udp_encap;
    let established = Established {
        suite: keys.suite,
        keys: keys.keys,
        seal: keys.seal,
        open: keys.open,
        ke: new.choice.ke,
        children,
        last_received: now,
        outstanding: None,
        queue,
        retired: false,
        collision: None,
        peer_fragmentation: old.peer_fragmentation,
        incoming: Default::default(),
        resources: old.resources.clone(),
    };
    IkeSa::from_parts(new_ctx, State::Established(Box::new(established)))
}

/// Builds the successor, moves the Child SAs and queued requests into it, reports
/// [`Event::IkeSaRekeyed`] and leaves the new SA for [`IkeSa::poll_rekeyed`].
fn install(sa: &mut Established, ctx: &mut Context, now: Instant, new: NewSa) -> Result<(), Error> {
    let keys = derive(sa, &new)?;
    let suite = keys.suite;
    let children = std::mem::take(&mut sa.children);
    let queue = std::mem::take(&mut sa.queue);
    let mut next = assemble(ctx, sa, &new, keys, children, queue, now);
    next.start_queued(now);
    sa.retired = true;
    ctx.events.push_back(Event::IkeSaRekeyed(IkeSaRekeyed {
        old_spi_i: ctx.spi_i,
        old_spi_r: ctx.spi_r,
        new_spi_i: new.spi_i,
        new_spi_r: new.spi_r,
        suite,
        ke: new.choice.ke,
    }));
    ctx.rekeyed.push_back(next);
    Ok(())
}

/// The redundant new IKE SA of simultaneous rekeys (§2.8.2): no Child SA; if we created it
/// (`ours`), it deletes itself at once, otherwise it waits for the peer's Delete. The daemon
/// takes it with [`IkeSa::poll_rekeyed`] after the successor.
fn set_aside(sa: &Established, ctx: &mut Context, now: Instant, new: &NewSa, ours: bool) {
    let queue = if ours {
        VecDeque::from([Op::DeleteIke])
    } else {
        VecDeque::new()
    };
    match derive(sa, new) {
        Ok(keys) => {
            let mut redundant = assemble(ctx, sa, new, keys, Vec::new(), queue, now);
            redundant.retire();
            redundant.start_queued(now);
            ctx.rekeyed.push_back(redundant);
        }
        // Its keys could not be made: the peer's copy goes when its lifetime or liveness
        // checks end it.
        Err(error) => ctx.events.push_back(Event::IkeSaRekeyFailed { error }),
    }
}

/// The lower of an exchange's two nonces (§2.8.2 compares the lowest of all four).
fn lowest_nonce(new: &NewSa) -> &[u8] {
    new.ni.as_slice().min(new.nr.as_slice())
}

/// The initiator's side: the response to our request. On success the old IKE SA is deleted
/// next.
pub(crate) fn complete(
    sa: &mut Established,
    ctx: &mut Context,
    now: Instant,
    x: IkeRekeyExchange,
    response: &[Payload],
) {
    let ours = check_response(ctx, &x, response);
    let theirs = sa.collision.take();
    let result = match (ours, theirs) {
        (Ok(ours), None) => install(sa, ctx, now, ours).map(|()| true),
        (Err(error), None) => Err(error),
        // Ours was refused but we accepted the peer's: that one stands, and the peer, its
        // initiator, deletes this SA.
        (Err(_), Some(theirs)) => install(sa, ctx, now, *theirs).map(|()| false),
        (Ok(ours), Some(theirs)) => {
            if lowest_nonce(&ours) < lowest_nonce(&theirs) {
                // Ours is redundant: we delete it; the peer deletes this old SA.
                let result = install(sa, ctx, now, *theirs).map(|()| false);
                set_aside(sa, ctx, now, &ours, true);
                result
            } else {
                let result = install(sa, ctx, now, ours).map(|()| true);
                set_aside(sa, ctx, now, &theirs, false);
                result
            }
        }
    };
    match result {
        // We initiated the surviving exchange: the old IKE SA is ours to delete.
        Ok(true) => sa.queue = VecDeque::from([Op::DeleteIke]),
        Ok(false) => sa.queue.clear(),
        Err(error) => ctx.events.push_back(Event::IkeSaRekeyFailed { error }),
    }
}

fn check_response(
    ctx: &Context,
    x: &IkeRekeyExchange,
    response: &[Payload],
) -> Result<NewSa, Error> {
    if let Some(n) = first_error(response) {
        return Err(Error::Refused {
            notify: n.notify_type,
        });
    }
    let answer = one(response, sa_of, "the SA payload of CREATE_CHILD_SA")?;
    let nr = one(response, nonce_of, "the Nonce payload of CREATE_CHILD_SA")?;
    let ker = one(response, ke_of, "the KE payload of CREATE_CHILD_SA")?;
    let spi_r = match answer.proposals.as_slice() {
        [p] => ike_spi(&p.spi),
        _ => None,
    }
    .ok_or(Error::InvalidSyntax {
        what: "the responder's IKE proposal lacks a valid SPI",
    })?;
    let choice = check_ike_answer(&without_spis(answer), &ctx.config.ike_proposals)?;
    if ker.group != choice.ke || ker.group != x.ke.method() {
        return Err(Error::InvalidSyntax {
            what: "the responder's KE group is not the one of our KE payload",
        });
    }
    check_nonce(&nr.0, &choice)?;
    let g_ir = x.ke.agree(&ker.data).map_err(Error::agreeing)?;
    Ok(NewSa {
        role: Role::Initiator,
        spi_i: x.spi,
        spi_r,
        choice,
        g_ir,
        ni: x.ni.clone(),
        nr: nr.0.clone(),
    })
}

/// The responder's side: answers the peer's request `id` and installs the new IKE SA, or
/// answers with an error notification. `Err` only if the answer could not be sent.
pub(crate) fn respond(
    sa: &mut Established,
    ctx: &mut Context,
    now: Instant,
    id: u32,
    request: &[Payload],
) -> Result<(), Error> {
    // An outstanding Delete of Child SAs counts too: its response must find them here, not
    // on a successor. Our own IKE SA rekey does not: that is §2.8.2's collision.
    let busy = matches!(
        sa.outstanding,
        Some(Outstanding::CreateChild(_) | Outstanding::DeleteChildren { .. })
    );
    let colliding = matches!(sa.outstanding, Some(Outstanding::RekeyIke(_)));
    let answered = if sa.retired {
        Err(Error::TemporaryFailure {
            what: "this IKE SA was rekeyed already",
        })
    } else if busy {
        // Our own Child SA exchange is in flight: moving the Child SAs now would lose its
        // outcome. The peer may try again later.
        Err(Error::TemporaryFailure {
            what: "a Child SA exchange of ours is in progress",
        })
    } else if colliding && sa.collision.is_some() {
        Err(Error::TemporaryFailure {
            what: "two IKE SA rekeys of the peer's during ours",
        })
    } else {
        answer(ctx, request)
    };
    match answered {
        Ok((payloads, new)) => {
            sa.send_response(ctx, ExchangeType::CreateChildSa, id, &payloads)?;
            if colliding {
                // Decided when our own response arrives (`complete`).
                sa.collision = Some(Box::new(new));
            } else if let Err(error) = install(sa, ctx, now, new) {
                ctx.events.push_back(Event::IkeSaRekeyFailed { error });
            }
            Ok(())
        }
        Err(error) => {
            let notify = super::create_child::error_notify(&error);
            sa.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::Notify(notify)],
            )?;
            ctx.events.push_back(Event::IkeSaRekeyFailed { error });
            Ok(())
        }
    }
}

fn answer(ctx: &mut Context, request: &[Payload]) -> Result<(Vec<Payload>, NewSa), Error> {
    let offer = one(request, sa_of, "the SA payload of CREATE_CHILD_SA")?;
    let ni = one(request, nonce_of, "the Nonce payload of CREATE_CHILD_SA")?;
    let kei = one(request, ke_of, "the KE payload of CREATE_CHILD_SA")?;
    let config = ctx.config.clone();
    let choice = select_ike(
        &without_spis(offer),
        &config.ike_proposals,
        config.selection,
        kei.group,
    )?;
    let spi_i = offer
        .proposals
        .iter()
        .find(|p| p.number == choice.number)
        .and_then(|p| ike_spi(&p.spi))
        .ok_or(Error::InvalidSyntax {
            what: "the initiator's IKE proposal lacks a valid SPI",
        })?;
    if kei.group != choice.ke {
        return Err(Error::InvalidKePayload { wanted: choice.ke });
    }
    check_nonce(&ni.0, &choice)?;
    let ours = KeyExchange::generate(choice.ke, &mut *ctx.rng).map_err(Error::Crypto)?;
    let g_ir = ours.agree(&kei.data).map_err(Error::agreeing)?;
    let spi_r = ctx.random_ike_spi()?;
    let nr = ctx.nonce()?;
    let mut sa_answer = choice.to_sa();
    for p in &mut sa_answer.proposals {
        p.spi = spi_r.to_be_bytes().to_vec();
    }
    let payloads = vec![
        Payload::Sa(sa_answer),
        Payload::Nonce(Nonce(nr.clone())),
        Payload::Ke(KePayload {
            group: choice.ke,
            data: ours.public_value().to_vec(),
        }),
    ];
    Ok((
        payloads,
        NewSa {
            role: Role::Responder,
            spi_i,
            spi_r,
            choice,
            g_ir,
            ni: ni.0.clone(),
            nr,
        },
    ))
}

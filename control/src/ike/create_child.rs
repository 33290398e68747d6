//! CREATE_CHILD_SA for Child SAs (RFC 7296 §1.3.1, §1.3.2, §1.3.3, §2.8, §2.17): a new Child
//! SA, or the rekey of one. Either side of the IKE SA may start it.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {[N(REKEY_SA)], [N(USE_TRANSPORT_MODE)], [N(SA_RESOURCE_INFO)], SA, Ni, [KEi],
//!          TSi, TSr}  -->
//!                              <--  HDR, SK {[N(USE_TRANSPORT_MODE)], [N(SA_RESOURCE_INFO)],
//!                                     SA, Nr, [KEr], TSi, TSr}
//!                              <--  or HDR, SK {N(NO_PROPOSAL_CHOSEN | TS_UNACCEPTABLE |
//!                                     INVALID_KE_PAYLOAD | CHILD_SA_NOT_FOUND |
//!                                     TEMPORARY_FAILURE | INVALID_SYNTAX | TS_MAX_QUEUE)}
//! KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)
//! ```
//! REKEY_SA carries the SPI the initiator of the rekey receives on (its inbound SPI of the old
//! pair); the responder finds it among its outbound SPIs. "Initiator" in the key derivation is
//! the initiator of this exchange, not of the IKE SA. With PFS (`ChildConfig::pfs`) the SA
//! payload offers the KE transform and a KE payload is sent. Make-before-break (§2.8): after a
//! successful rekey its initiator deletes the old pair with an INFORMATIONAL Delete.
//! SA_RESOURCE_INFO and TS_MAX_QUEUE are RFC 9611's per-resource Child SAs (`resource.rs`).
//!
//! Simultaneous rekeys of one Child SA (§2.8.1): both exchanges complete; when the second
//! response arrives each side knows the four nonces, and the initiator of the exchange with the
//! lowest one deletes its redundant pair ([`DeleteReason::Redundant`]) while the other deletes
//! the old pair. A rekey request that arrives after the old pair's Delete was sent gets
//! TEMPORARY_FAILURE, which the initiator ignores if the old pair was replaced meanwhile.
//!
//! Not yet: the retry after INVALID_KE_PAYLOAD or TEMPORARY_FAILURE, IKE SA rekey.

use super::payloads::{ke_of, nonce_of, sa_of, tsi_of, tsr_of};
use std::time::Instant;

use super::established::{ChildSa, Established, Op};
use super::payloads::{first_error, notify, one, optional};
use super::proposal::{check_esp_answer, esp_offer, select_esp, EspChoice};
use super::resource;
use super::sa::Context;
use super::ts::{narrow, within};
use super::{
    ChildConfig, ChildSaInstalled, ChildSaRekeyed, ConfigError, DeleteReason, Error, Event, Fault,
    Mode, SelectionOrder,
};
use crate::crypto::{ChildKeyLengths, ChildSaKeys, KeyExchange, Role, SecretBytes, SharedSecret};
use crate::wire::{
    ExchangeType, KeMethod, KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload,
    ProtocolId, SecurityAssociation, TrafficSelector, TrafficSelectors, Transform, TransformId,
};

/// Our CREATE_CHILD_SA request, to check its response against.
#[derive(Debug)]
pub(crate) struct ChildExchange {
    /// The inbound SPI of the Child SA being rekeyed, if this is a rekey.
    rekey: Option<u32>,
    /// Our inbound SPI of the new pair.
    spi: u32,
    ni: Vec<u8>,
    /// Our key exchange, with PFS.
    ke: Option<KeyExchange>,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
    /// Which child of the connection.
    config: usize,
    /// The resource the new pair serves (RFC 9611): the one asked for, or the rekeyed pair's.
    resource: Option<u32>,
    /// We sent SA_RESOURCE_INFO: for a fallback, the peer's answer says whether it supports
    /// per-resource Child SAs.
    resource_info: bool,
    /// SPIs the peer deleted while this request was out that matched none of our Child SAs:
    /// if one is the pair our response brings, the peer installed and deleted it before the
    /// response reached us (a lost response, then a retransmission answered from the cache).
    pub(crate) deleted_meanwhile: Vec<u32>,
}

fn transport_notify() -> Payload {
    Payload::Notify(Notify::new(NotifyType::UseTransportMode, Vec::new()))
}

fn mode(transport: bool) -> Mode {
    if transport {
        Mode::Transport
    } else {
        Mode::Tunnel
    }
}

/// §2.10: at least 128 bits (the codec checks that) and half the PRF's key size.
fn check_nonce(sa: &Established, nonce: &Nonce) -> Result<(), Error> {
    if nonce.0.len() < sa.suite.prf().key_len().div_ceil(2) {
        return Err(Error::InvalidSyntax {
            what: "the nonce is shorter than half the PRF's key size",
        });
    }
    Ok(())
}

/// The SA payload without its KE transforms, and the groups those named.
fn split_ke(sa: &SecurityAssociation) -> (SecurityAssociation, Vec<KeMethod>) {
    let mut groups = Vec::new();
    let mut stripped = sa.clone();
    for p in &mut stripped.proposals {
        p.transforms.retain(|t| match t.id {
            TransformId::Ke(KeMethod::None) => false,
            TransformId::Ke(m) => {
                groups.push(m);
                false
            }
            _ => true,
        });
    }
    (stripped, groups)
}

/// KEYMAT split into (inbound, outbound) for `role` in this exchange.
fn keymat(
    sa: &Established,
    role: Role,
    suite: super::EspSuite,
    pfs: Option<&SharedSecret>,
    ni: &[u8],
    nr: &[u8],
) -> Result<(SecretBytes, SecretBytes), Error> {
    let lengths = ChildKeyLengths::for_esp(suite.encr(), None);
    let ChildSaKeys { encr_i, encr_r, .. } =
        ChildSaKeys::derive(sa.suite.prf(), &sa.keys.sk_d, pfs, ni, nr, lengths)
            .map_err(Error::Crypto)?;
    Ok(match role {
        Role::Initiator => (encr_r, encr_i),
        Role::Responder => (encr_i, encr_r),
    })
}

impl ChildExchange {
    /// The child and resource of a new per-resource Child SA (RFC 9611) this asks for.
    pub(crate) fn new_resource(&self) -> Option<(usize, u32)> {
        match (self.rekey, self.resource) {
            (None, Some(r)) => Some((self.config, r)),
            _ => None,
        }
    }
}

/// Builds and sends our CREATE_CHILD_SA request: a new Child SA with the configured selectors
/// (per-resource for `resource`, RFC 9611, with its fallback's selectors), or the rekey of the
/// Child SA with inbound SPI `rekey` (same selectors, mode and resource).
pub(crate) fn request(
    sa: &mut Established,
    ctx: &mut Context,
    now: Instant,
    rekey: Option<u32>,
    index: usize,
    resource: Option<u32>,
) -> Result<ChildExchange, Error> {
    let config = ctx.config.clone();
    let (tsi, tsr, transport, index, resource) = match rekey {
        Some(spi) => {
            let old = sa.child(spi).ok_or(Error::NoSuchChildSa { spi })?;
            (
                old.local_ts.clone(),
                old.remote_ts.clone(),
                old.mode == Mode::Transport,
                old.config,
                old.resource,
            )
        }
        None => {
            let child = config
                .child_config(index)
                .ok_or(Error::Config(ConfigError {
                    field: "more_children",
                    reason: "no child with that index",
                }))?;
            // Every per-resource Child SA must have exactly the fallback's (narrowed)
            // selectors, or the data plane would not see them as one set.
            let (tsi, tsr) = match sa.fallback(index).filter(|_| resource.is_some()) {
                Some(f) => (f.local_ts.clone(), f.remote_ts.clone()),
                None => (child.local_ts.clone(), child.remote_ts.clone()),
            };
            (tsi, tsr, child.mode == Mode::Transport, index, resource)
        }
    };
    let child = config.child_config(index).unwrap_or(&config.child);
    // Per-resource Child SAs and their rekeys say so; so does a would-be fallback (the first
    // of its child) and its rekeys when we do per-resource Child SAs of that child.
    let resource_info = resource.is_some()
        || (child.per_resource_sas > 0 && (rekey.is_some() || sa.fallback(index).is_none()));
    let spi = ctx.random_esp_spi()?;
    let ni = ctx.nonce()?;
    let ke = match child.pfs {
        Some(m) => Some(KeyExchange::generate(m, &mut *ctx.rng).map_err(Error::Crypto)?),
        None => None,
    };
    let mut offer = esp_offer(&child.proposals, spi);
    if let Some(ke) = &ke {
        for p in &mut offer.proposals {
            p.transforms
                .push(Transform::new(TransformId::Ke(ke.method())));
        }
    }
    let mut payloads = Vec::new();
    if let Some(old) = rekey {
        payloads.push(Payload::Notify(Notify {
            protocol: ProtocolId::Esp,
            spi: old.to_be_bytes().to_vec(),
            notify_type: NotifyType::RekeySa,
            data: Vec::new(),
        }));
    }
    if transport {
        payloads.push(transport_notify());
    }
    if resource_info {
        payloads.push(resource::info(resource));
    }
    payloads.push(Payload::Sa(offer));
    payloads.push(Payload::Nonce(Nonce(ni.clone())));
    if let Some(ke) = &ke {
        payloads.push(Payload::Ke(KePayload {
            group: ke.method(),
            data: ke.public_value().to_vec(),
        }));
    }
    payloads.push(Payload::TsI(TrafficSelectors {
        selectors: tsi.clone(),
    }));
    payloads.push(Payload::TsR(TrafficSelectors {
        selectors: tsr.clone(),
    }));
    sa.send_request(ctx, now, ExchangeType::CreateChildSa, &payloads)?;
    Ok(ChildExchange {
        rekey,
        spi,
        ni,
        ke,
        tsi,
        tsr,
        transport,
        config: index,
        resource,
        resource_info,
        deleted_meanwhile: Vec::new(),
    })
}

/// Reports a Child SA the exchange produced, as installed or as the successor of `old`;
/// `lowest_nonce` is the lower of the exchange's two nonces.
fn record(
    sa: &mut Established,
    ctx: &mut Context,
    old: Option<u32>,
    new: ChildSaInstalled,
    lowest_nonce: Vec<u8>,
) {
    let old = old.filter(|spi| sa.child(*spi).is_some());
    let mut child = ChildSa::from_installed(&new);
    child.rekey_of = old;
    child.lowest_nonce = lowest_nonce;
    sa.children.push(child);
    let old = old.and_then(|spi| sa.children.iter_mut().find(|c| c.inbound_spi == spi));
    let event = match old {
        Some(old) => {
            old.rekeyed = true;
            Event::ChildSaRekeyed(Box::new(ChildSaRekeyed {
                old_inbound_spi: old.inbound_spi,
                old_outbound_spi: old.outbound_spi,
                new,
            }))
        }
        // A new Child SA, or the old one vanished meanwhile: the new pair simply stands.
        None => Event::ChildSaInstalled(Box::new(new)),
    };
    ctx.events.push_back(event);
}

/// The initiator's side: the response to our request.
pub(crate) fn complete(
    sa: &mut Established,
    ctx: &mut Context,
    _now: Instant,
    x: ChildExchange,
    response: &[Payload],
) {
    match check_response(sa, ctx, &x, response) {
        // Installing it would leave us a pair the peer no longer has, for good.
        Ok((installed, _)) if x.deleted_meanwhile.contains(&installed.outbound_spi) => {
            ctx.events.push_back(Event::ChildSaFailed {
                error: Error::TemporaryFailure {
                    what: "the peer deleted the new Child SA before its response arrived",
                },
            });
        }
        Ok((installed, nr)) => {
            // The peer answered the fallback we marked: it does per-resource Child SAs too.
            if x.resource_info
                && x.rekey.is_none()
                && x.resource.is_none()
                && resource::present(response)
            {
                sa.resources.set_supported(x.config);
            }
            let new_spi = installed.inbound_spi;
            let lowest = x.ni.clone().min(nr);
            let rekeyed = x.rekey.filter(|spi| sa.child(*spi).is_some());
            record(sa, ctx, x.rekey, installed, lowest.clone());
            let Some(old) = rekeyed else {
                return;
            };
            // §2.8.1: if the peer rekeyed the same Child SA meanwhile, the exchange with the
            // lowest of the four nonces made a redundant pair, which its initiator deletes;
            // the other initiator deletes the old pair. Both sides decide alike.
            let lost = sa
                .children
                .iter()
                .find(|c| c.rekey_of == Some(old) && c.inbound_spi != new_spi)
                .is_some_and(|twin| lowest < twin.lowest_nonce);
            let op = if lost {
                Op::DeleteChildren {
                    spis: vec![new_spi],
                    reason: DeleteReason::Redundant,
                }
            } else {
                // Make-before-break: the new pair is up, now the old one goes (§2.8).
                Op::DeleteChildren {
                    spis: vec![old],
                    reason: DeleteReason::Rekeyed,
                }
            };
            sa.queue.push_front(op);
        }
        // RFC 9611: the peer takes no more per-resource Child SAs of this child; we stop
        // asking (queued requests are dropped when their turn comes). The IKE SA stays.
        Err(
            error @ Error::Refused {
                notify: NotifyType::TsMaxQueue,
            },
        ) if x.rekey.is_none() => {
            sa.resources.set_full(x.config);
            ctx.events.push_back(Event::ChildSaFailed { error });
        }
        // The peer's rekey of the same Child SA got there first and replaced it: nothing lost.
        Err(Error::Refused {
            notify: NotifyType::TemporaryFailure,
        }) if x
            .rekey
            .and_then(|spi| sa.child(spi))
            .is_some_and(|c| c.rekeyed) => {}
        Err(error) => ctx.events.push_back(Event::ChildSaFailed { error }),
    }
}

fn check_response(
    sa: &Established,
    ctx: &Context,
    x: &ChildExchange,
    response: &[Payload],
) -> Result<(ChildSaInstalled, Vec<u8>), Error> {
    if let Some(n) = first_error(response) {
        return Err(Error::Refused {
            notify: n.notify_type,
        });
    }
    let answer = one(response, sa_of, "the SA payload of CREATE_CHILD_SA")?;
    let nr = one(response, nonce_of, "the Nonce payload of CREATE_CHILD_SA")?;
    let ker = optional(response, ke_of, "the KE payload of CREATE_CHILD_SA")?;
    let tsi = one(response, tsi_of, "the TSi payload of CREATE_CHILD_SA")?;
    let tsr = one(response, tsr_of, "the TSr payload of CREATE_CHILD_SA")?;
    check_nonce(sa, nr)?;
    let (stripped, groups) = split_ke(answer);
    let proposals = &ctx
        .config
        .child_config(x.config)
        .unwrap_or(&ctx.config.child)
        .proposals;
    let choice = check_esp_answer(&stripped, proposals)?;
    let shared = match (&x.ke, ker) {
        (Some(ours), Some(theirs))
            if theirs.group == ours.method() && groups.iter().all(|g| *g == ours.method()) =>
        {
            Some(ours.agree(&theirs.data).map_err(Error::agreeing)?)
        }
        (None, None) if groups.is_empty() => None,
        _ => {
            return Err(Error::InvalidSyntax {
                what: "the responder's KE payload does not match our PFS offer",
            })
        }
    };
    if tsi.selectors.is_empty()
        || tsr.selectors.is_empty()
        || !within(&tsi.selectors, &x.tsi)
        || !within(&tsr.selectors, &x.tsr)
    {
        return Err(Error::InvalidSyntax {
            what: "the responder's traffic selectors are not within ours",
        });
    }
    let transport = notify(response, NotifyType::UseTransportMode).is_some();
    if transport && !x.transport {
        return Err(Error::InvalidSyntax {
            what: "USE_TRANSPORT_MODE in an answer to a tunnel-mode request",
        });
    }
    let (inbound_keymat, outbound_keymat) = keymat(
        sa,
        Role::Initiator,
        choice.suite,
        shared.as_ref(),
        &x.ni,
        &nr.0,
    )?;
    let installed = ChildSaInstalled {
        inbound_spi: x.spi,
        outbound_spi: choice.peer_spi,
        suite: choice.suite,
        esn: choice.esn,
        inbound_keymat,
        outbound_keymat,
        local_ts: tsi.selectors.clone(),
        remote_ts: tsr.selectors.clone(),
        mode: mode(transport),
        path: ctx.esp_path(),
        config: x.config,
        resource: x.resource,
    };
    Ok((installed, nr.0.clone()))
}

/// The responder's side: answers the peer's request `id` with a new pair or an error
/// notification. `Err` only if the answer could not be sent.
pub(crate) fn respond(
    sa: &mut Established,
    ctx: &mut Context,
    id: u32,
    request: &[Payload],
) -> Result<(), Error> {
    match answer(sa, ctx, request) {
        Ok((payloads, old, installed, lowest)) => {
            sa.send_response(ctx, ExchangeType::CreateChildSa, id, &payloads)?;
            record(sa, ctx, old, installed, lowest);
            Ok(())
        }
        Err(error) => {
            let notify = error_notify(&error);
            sa.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::Notify(notify)],
            )?;
            ctx.events.push_back(Event::ChildSaFailed { error });
            Ok(())
        }
    }
}

/// The notification that refuses a CREATE_CHILD_SA request for `error`.
pub(crate) fn error_notify(error: &Error) -> Notify {
    match error {
        Error::InvalidKePayload { wanted } => Notify::invalid_ke_payload(*wanted),
        e => Notify::new(
            e.notify_type().unwrap_or(if e.fault() == Fault::Local {
                NotifyType::TemporaryFailure
            } else {
                NotifyType::NoProposalChosen
            }),
            Vec::new(),
        ),
    }
}

/// The response payloads, the inbound SPI of the Child SA being rekeyed (if any), the new
/// pair and the lower of the two nonces.
type Answer = (Vec<Payload>, Option<u32>, ChildSaInstalled, Vec<u8>);

/// The answer to a CREATE_CHILD_SA request, or why it is refused.
fn answer(sa: &Established, ctx: &mut Context, request: &[Payload]) -> Result<Answer, Error> {
    if sa.retired {
        return Err(Error::TemporaryFailure {
            what: "this IKE SA was rekeyed: Child SAs go to its successor",
        });
    }
    let old = match notify(request, NotifyType::RekeySa) {
        None => None,
        Some(n) => {
            let spi = <[u8; 4]>::try_from(n.spi.as_slice())
                .ok()
                .filter(|_| n.protocol == ProtocolId::Esp)
                .map(u32::from_be_bytes)
                .ok_or(Error::InvalidSyntax {
                    what: "REKEY_SA without a 4-octet ESP SPI",
                })?;
            let child = sa
                .children
                .iter()
                .find(|c| c.outbound_spi == spi)
                .ok_or(Error::NoSuchChildSa { spi })?;
            if sa.deleting(child.inbound_spi) {
                return Err(Error::TemporaryFailure {
                    what: "the Child SA to rekey is being deleted",
                });
            }
            Some(child.inbound_spi)
        }
    };
    let offer = one(request, sa_of, "the SA payload of CREATE_CHILD_SA")?;
    let ni = one(request, nonce_of, "the Nonce payload of CREATE_CHILD_SA")?;
    let kei = optional(request, ke_of, "the KE payload of CREATE_CHILD_SA")?;
    let tsi = one(request, tsi_of, "the TSi payload of CREATE_CHILD_SA")?;
    let tsr = one(request, tsr_of, "the TSr payload of CREATE_CHILD_SA")?;
    check_nonce(sa, ni)?;
    let config = ctx.config.clone();
    // A rekey keeps its child's configuration; a new Child SA takes the first child of the
    // connection whose proposals and selectors fit (the first child's refusal is reported).
    let candidates: Vec<usize> = match old.and_then(|spi| sa.child(spi)) {
        Some(c) => vec![c.config],
        None => config.child_configs().map(|(i, _)| i).collect(),
    };
    let mut refusal = None;
    let mut chosen = None;
    for index in candidates {
        let Some(child) = config.child_config(index) else {
            continue;
        };
        match negotiate(child, config.selection, offer, kei, tsi, tsr, request) {
            Ok(n) => {
                chosen = Some((index, n));
                break;
            }
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    let (index, (choice, group, remote_ts, local_ts, transport)) = match chosen {
        Some(c) => c,
        None => return Err(refusal.unwrap_or(Error::NoProposalChosen)),
    };
    // RFC 9611: a rekey keeps its pair's resource; a new Child SA marked with SA_RESOURCE_INFO
    // is the fallback or gets a resource, if this child does per-resource Child SAs at all.
    // Otherwise the notification is an unknown status one, and ignored.
    let limit = config.child_config(index).map_or(0, |c| c.per_resource_sas);
    let resource_info = resource::present(request) && limit > 0;
    let resource = match old.and_then(|spi| sa.child(spi)) {
        Some(c) => c.resource,
        None if resource_info => resource::assign(&sa.children, index, limit)?,
        None => None,
    };
    let (ker, shared) = match group {
        Some(kei) => {
            let ours = KeyExchange::generate(kei.group, &mut *ctx.rng).map_err(Error::Crypto)?;
            let shared = ours.agree(&kei.data).map_err(Error::agreeing)?;
            (Some(ours), Some(shared))
        }
        None => (None, None),
    };
    let spi = ctx.random_esp_spi()?;
    let nr = ctx.nonce()?;
    let lowest = ni.0.clone().min(nr.clone());
    let (inbound_keymat, outbound_keymat) = keymat(
        sa,
        Role::Responder,
        choice.suite,
        shared.as_ref(),
        &ni.0,
        &nr,
    )?;
    let mut sa_answer = choice.to_sa(spi);
    let mut payloads = Vec::new();
    if transport {
        payloads.push(transport_notify());
    }
    if resource_info {
        payloads.push(resource::info(resource));
    }
    if let (Some(ke), Some(p)) = (&ker, sa_answer.proposals.first_mut()) {
        p.transforms
            .push(Transform::new(TransformId::Ke(ke.method())));
    }
    payloads.push(Payload::Sa(sa_answer));
    payloads.push(Payload::Nonce(Nonce(nr)));
    if let Some(ke) = &ker {
        payloads.push(Payload::Ke(KePayload {
            group: ke.method(),
            data: ke.public_value().to_vec(),
        }));
    }
    payloads.push(Payload::TsI(TrafficSelectors {
        selectors: remote_ts.clone(),
    }));
    payloads.push(Payload::TsR(TrafficSelectors {
        selectors: local_ts.clone(),
    }));
    let installed = ChildSaInstalled {
        inbound_spi: spi,
        outbound_spi: choice.peer_spi,
        suite: choice.suite,
        esn: choice.esn,
        inbound_keymat,
        outbound_keymat,
        local_ts,
        remote_ts,
        mode: mode(transport),
        path: ctx.esp_path(),
        config: index,
        resource,
    };
    Ok((payloads, old, installed, lowest))
}

/// What a responder agrees to for one child of the connection: the ESP choice, the peer's KE
/// payload if PFS applies, the narrowed selectors (theirs, ours) and transport mode.
type Negotiated<'a> = (
    EspChoice,
    Option<&'a KePayload>,
    Vec<TrafficSelector>,
    Vec<TrafficSelector>,
    bool,
);

fn negotiate<'a>(
    child: &ChildConfig,
    selection: SelectionOrder,
    offer: &SecurityAssociation,
    kei: Option<&'a KePayload>,
    tsi: &TrafficSelectors,
    tsr: &TrafficSelectors,
    request: &[Payload],
) -> Result<Negotiated<'a>, Error> {
    let choice = select_esp(offer, &child.proposals, selection)?;
    let offered_groups: Vec<KeMethod> = offer
        .proposals
        .iter()
        .filter(|p| p.number == choice.number)
        .flat_map(|p| p.transforms.iter())
        .filter_map(|t| match t.id {
            TransformId::Ke(m) if m != KeMethod::None => Some(m),
            _ => None,
        })
        .collect();
    let group = match (kei, child.pfs) {
        (Some(kei), Some(ours)) if kei.group == ours && offered_groups.contains(&ours) => Some(kei),
        (Some(_), Some(ours)) if offered_groups.contains(&ours) => {
            return Err(Error::InvalidKePayload { wanted: ours })
        }
        (Some(kei), None)
            if offered_groups.contains(&kei.group) && KeyExchange::supports(kei.group) =>
        {
            Some(kei)
        }
        (None, None) => None,
        _ => return Err(Error::NoProposalChosen),
    };
    let remote_ts = narrow(&tsi.selectors, &child.remote_ts);
    let local_ts = narrow(&tsr.selectors, &child.local_ts);
    if remote_ts.is_empty() || local_ts.is_empty() {
        return Err(Error::TsUnacceptable);
    }
    let transport =
        notify(request, NotifyType::UseTransportMode).is_some() && child.mode == Mode::Transport;
    Ok((choice, group, remote_ts, local_ts, transport))
}

//! The first Child SA, negotiated inside IKE_AUTH (RFC 7296 §1.2, §1.3.1, §2.9, §2.17).
//!
//! ```text
//! request:  [N(USE_TRANSPORT_MODE)], [N(SA_RESOURCE_INFO)], SAi2 (ESP, our inbound SPI), TSi, TSr
//! response: [N(USE_TRANSPORT_MODE)], [N(SA_RESOURCE_INFO)], SAr2 (ESP, the responder's inbound
//!           SPI), TSi, TSr narrowed
//!       or: N(NO_PROPOSAL_CHOSEN | TS_UNACCEPTABLE | …) — the IKE SA stands without a child
//! KEYMAT = prf+(SK_d, Ni | Nr): initiator→responder key | salt, then responder→initiator
//! ```
//! The nonces are IKE_SA_INIT's (no PFS in IKE_AUTH, §1.2). Each side picks the SPI it wants on
//! inbound packets; the peer's is the SPI of our outbound SA. This Child SA is the fallback of
//! per-resource Child SAs (RFC 9611, `resource.rs`): SA_RESOURCE_INFO both ways says both
//! sides do them.

use super::payloads::{notify, one};
use super::payloads::{sa_of, tsi_of, tsr_of};
use super::proposal::{check_esp_answer, esp_offer, select_esp, EspChoice};
use super::resource;
use super::sa::Context;
use super::sa_init::Handshake;
use super::ts::{narrow, within};
use super::{ChildSaInstalled, Error, Mode};
use crate::crypto::{ChildKeyLengths, ChildSaKeys, Role};
use crate::wire::{Notify, NotifyType, Payload, TrafficSelector, TrafficSelectors};

/// What the initiator asked for, to check the answer against.
#[derive(Debug)]
pub(crate) struct ChildRequest {
    /// Our inbound SPI.
    spi: u32,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
    /// We sent SA_RESOURCE_INFO (RFC 9611).
    resource_info: bool,
}

/// The initiator's Child SA payloads for the IKE_AUTH request.
pub(crate) fn request(ctx: &mut Context) -> Result<(ChildRequest, Vec<Payload>), Error> {
    let spi = ctx.random_esp_spi()?;
    let child = &ctx.config.child;
    let transport = child.mode == Mode::Transport;
    let mut payloads = Vec::new();
    if transport {
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::UseTransportMode,
            Vec::new(),
        )));
    }
    let resource_info = child.per_resource_sas > 0;
    if resource_info {
        payloads.push(resource::info(None));
    }
    payloads.push(Payload::Sa(esp_offer(&child.proposals, spi)));
    payloads.push(Payload::TsI(TrafficSelectors {
        selectors: child.local_ts.clone(),
    }));
    payloads.push(Payload::TsR(TrafficSelectors {
        selectors: child.remote_ts.clone(),
    }));
    let request = ChildRequest {
        spi,
        tsi: child.local_ts.clone(),
        tsr: child.remote_ts.clone(),
        transport,
        resource_info,
    };
    Ok((request, payloads))
}

/// The keying material of our inbound and outbound SAs (§2.17).
fn keymat(
    hs: &Handshake,
    role: Role,
    choice: &EspChoice,
) -> Result<(crate::crypto::SecretBytes, crate::crypto::SecretBytes), Error> {
    let lengths = ChildKeyLengths::for_esp(choice.suite.encr(), None);
    let ChildSaKeys { encr_i, encr_r, .. } =
        ChildSaKeys::derive(hs.suite.prf(), &hs.keys.sk_d, None, &hs.ni, &hs.nr, lengths)
            .map_err(Error::Crypto)?;
    Ok(match role {
        Role::Initiator => (encr_r, encr_i),
        Role::Responder => (encr_i, encr_r),
    })
}

/// The responder's side: selects a proposal and narrows the selectors. Returns the payloads of
/// the answer and the Child SA; an `Err` is answered with its notification instead.
pub(crate) fn respond(
    ctx: &mut Context,
    hs: &Handshake,
    request: &[Payload],
) -> Result<(Vec<Payload>, ChildSaInstalled), Error> {
    let sa = one(request, sa_of, "the SA payload of IKE_AUTH")?;
    let tsi = one(request, tsi_of, "the TSi payload of IKE_AUTH")?;
    let tsr = one(request, tsr_of, "the TSr payload of IKE_AUTH")?;
    let config = ctx.config.clone();
    // The first child of the connection whose proposals and selectors fit; the first child's
    // refusal is the one reported.
    let mut refusal = None;
    let mut chosen = None;
    for (index, child) in config.child_configs() {
        let fit = select_esp(sa, &child.proposals, config.selection).and_then(|choice| {
            // TSi is the initiator's side: our remote; TSr ours.
            let remote_ts = narrow(&tsi.selectors, &child.remote_ts);
            let local_ts = narrow(&tsr.selectors, &child.local_ts);
            if remote_ts.is_empty() || local_ts.is_empty() {
                return Err(Error::TsUnacceptable);
            }
            Ok((choice, remote_ts, local_ts))
        });
        match fit {
            Ok(fit) => {
                chosen = Some((index, child, fit));
                break;
            }
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    let Some((index, child, (choice, remote_ts, local_ts))) = chosen else {
        return Err(refusal.unwrap_or(Error::NoProposalChosen));
    };
    let transport =
        notify(request, NotifyType::UseTransportMode).is_some() && child.mode == Mode::Transport;
    let spi = ctx.random_esp_spi()?;
    let (inbound_keymat, outbound_keymat) = keymat(hs, Role::Responder, &choice)?;
    let mut payloads = Vec::new();
    if transport {
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::UseTransportMode,
            Vec::new(),
        )));
    }
    // The fallback: echoed when this child does per-resource Child SAs, ignored otherwise.
    if resource::present(request) && child.per_resource_sas > 0 {
        payloads.push(resource::info(None));
    }
    payloads.push(Payload::Sa(choice.to_sa(spi)));
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
        mode: if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        },
        path: ctx.esp_path(),
        config: index,
        resource: None,
    };
    Ok((payloads, installed))
}

/// The initiator's side: checks the answer against the request.
pub(crate) fn complete(
    ctx: &Context,
    hs: &Handshake,
    request: &ChildRequest,
    response: &[Payload],
) -> Result<ChildSaInstalled, Error> {
    let sa = one(response, sa_of, "the SA payload of the IKE_AUTH response")?;
    let tsi = one(response, tsi_of, "the TSi payload of the IKE_AUTH response")?;
    let tsr = one(response, tsr_of, "the TSr payload of the IKE_AUTH response")?;
    let choice = check_esp_answer(sa, &ctx.config.child.proposals)?;
    if tsi.selectors.is_empty()
        || tsr.selectors.is_empty()
        || !within(&tsi.selectors, &request.tsi)
        || !within(&tsr.selectors, &request.tsr)
    {
        return Err(Error::InvalidSyntax {
            what: "the responder's traffic selectors are not within ours",
        });
    }
    let transport = notify(response, NotifyType::UseTransportMode).is_some();
    if transport && !request.transport {
        return Err(Error::InvalidSyntax {
            what: "USE_TRANSPORT_MODE in an answer to a tunnel-mode request",
        });
    }
    let (inbound_keymat, outbound_keymat) = keymat(hs, Role::Initiator, &choice)?;
    Ok(ChildSaInstalled {
        inbound_spi: request.spi,
        outbound_spi: choice.peer_spi,
        suite: choice.suite,
        esn: choice.esn,
        inbound_keymat,
        outbound_keymat,
        local_ts: tsi.selectors.clone(),
        remote_ts: tsr.selectors.clone(),
        mode: if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        },
        path: ctx.esp_path(),
        config: 0,
        resource: None,
    })
}

/// Whether the IKE_AUTH response says the peer does per-resource Child SAs of the first
/// child (RFC 9611): it answered our SA_RESOURCE_INFO with its own.
pub(crate) fn peer_supports_resources(request: &ChildRequest, response: &[Payload]) -> bool {
    request.resource_info && resource::present(response)
}

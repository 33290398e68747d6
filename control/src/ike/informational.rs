//! INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5, §2.4): liveness checks and Delete.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {}                   -->                       liveness check (§2.4)
//!                              <--  HDR, SK {}
//! HDR, SK {D(ESP, SPIs)}       -->                       delete Child SAs (§1.4.1)
//!                              <--  HDR, SK {D(ESP, the matching inbound SPIs)}
//! HDR, SK {D(IKE)}             -->                       delete the IKE SA (§1.4.1)
//!                              <--  HDR, SK {}
//! ```
//! Either side may start any of them. A Delete names the SPIs the sender expects on inbound
//! packets: the receiver looks them up among its outbound SPIs and answers with its own
//! inbound ones. Notifications in an INFORMATIONAL request are ignored for now.

use std::time::Instant;

use super::established::{Established, Outstanding};
use super::sa::{fail, Context, State, Step};
use super::{DeleteReason, Error};
use crate::wire::{Delete, ExchangeType, Payload, ProtocolId};

/// `D(IKE)`.
pub(crate) fn delete_ike() -> Payload {
    Payload::Delete(Delete::ike())
}

/// `D(ESP, spis)`: our inbound SPIs.
pub(crate) fn delete_children(spis: &[u32]) -> Payload {
    Payload::Delete(Delete::child(ProtocolId::Esp, spis))
}

/// Sends an INFORMATIONAL request with these payloads.
pub(crate) fn request(
    sa: &mut Established,
    ctx: &mut Context,
    now: Instant,
    payloads: &[Payload],
) -> Result<(), Error> {
    sa.send_request(ctx, now, ExchangeType::Informational, payloads)
}

/// Answers the peer's INFORMATIONAL request `id`.
pub(crate) fn respond(
    mut sa: Box<Established>,
    ctx: &mut Context,
    now: Instant,
    id: u32,
    request: &[Payload],
) -> Step {
    let deletes = request.iter().filter_map(|p| match p {
        Payload::Delete(d) => Some(d),
        _ => None,
    });
    let mut delete_ike = false;
    let mut peer_spis = Vec::new();
    for d in deletes {
        match d.protocol {
            ProtocolId::Ike => delete_ike = true,
            ProtocolId::Esp => peer_spis.extend(d.spis_u32()),
            // AH is not negotiated here: nothing of ours can match.
            _ => {}
        }
    }
    if delete_ike {
        // §1.4.1: the IKE SA and all its Child SAs go; the answer is empty.
        let sent = sa.send_response(ctx, ExchangeType::Informational, id, &[]);
        let reason = if sa.retired {
            DeleteReason::Rekeyed
        } else {
            DeleteReason::Peer
        };
        sa.close(ctx, reason);
        return (fail(ctx, now, sent.err()), Ok(()));
    }
    let mut ours = Vec::new();
    for peer_spi in peer_spis {
        let found = sa
            .children
            .iter()
            .find(|c| c.outbound_spi == peer_spi)
            .map(|c| (c.inbound_spi, c.rekeyed));
        // An unknown SPI is one we deleted already (simultaneous deletes, §1.4.1): no answer.
        // Or the pair our outstanding CREATE_CHILD_SA is about to bring: remember it.
        if found.is_none() {
            if let Some(Outstanding::CreateChild(x)) = &mut sa.outstanding {
                x.deleted_meanwhile.push(peer_spi);
            }
        }
        if let Some((inbound, rekeyed)) = found {
            let reason = if rekeyed {
                DeleteReason::Rekeyed
            } else if sa.has_twin(inbound) {
                DeleteReason::Redundant
            } else {
                DeleteReason::Peer
            };
            sa.remove_child(ctx, inbound, reason);
            ours.push(inbound);
        }
    }
    let payloads = if ours.is_empty() {
        Vec::new()
    } else {
        vec![delete_children(&ours)]
    };
    let sent = sa.send_response(ctx, ExchangeType::Informational, id, &payloads);
    (State::Established(sa), sent)
}

//! An established IKE SA. For now it only keeps the keys and answers nothing new: the
//! responder's cache (in `sa.rs`) still answers a retransmitted IKE_AUTH request.
//! CREATE_CHILD_SA and INFORMATIONAL will be handled here.

use std::time::Instant;

use super::sa::{Context, State, Step};
use super::sa_init::Handshake;
use super::Error;
use crate::crypto::{IkeSaKeys, IkeSuite, SkCipher};
use crate::wire::Message;

/// An established IKE SA.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the keys serve CREATE_CHILD_SA and INFORMATIONAL, next"
)]
pub(crate) struct Established {
    /// The negotiated suite.
    pub suite: IkeSuite,
    /// SK_d and the rest, for CREATE_CHILD_SA.
    pub keys: IkeSaKeys,
    /// Seals what we send.
    pub seal: SkCipher,
    /// Opens what the peer sends.
    pub open: SkCipher,
}

impl Established {
    pub(crate) fn new(hs: Handshake) -> Established {
        Established {
            suite: hs.suite,
            keys: hs.keys,
            seal: hs.seal,
            open: hs.open,
        }
    }

    pub(crate) fn handle(
        self: Box<Self>,
        _ctx: &mut Context,
        _now: Instant,
        _datagram: &[u8],
        message: &Message,
    ) -> Step {
        let e = if message.header.flags.response {
            Error::Unexpected {
                what: "a response to no outstanding request",
            }
        } else {
            Error::Unsupported {
                what: "requests after IKE_AUTH (CREATE_CHILD_SA, INFORMATIONAL)",
            }
        };
        (State::Established(self), Err(e))
    }
}

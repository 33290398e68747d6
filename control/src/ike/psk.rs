//! The AUTH payload for a pre-shared key (RFC 7296 §2.15).
//!
//! ```text
//! AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> )
//! InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
//! ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
//! ```
//! RealMessage1/2 is the IKE_SA_INIT message the signer sent, exactly as sent; the nonce is the
//! *peer's*; RestOf…IDPayload is the ID payload's body (ID Type, three reserved octets, data).

use super::Psk;
use crate::crypto::{Prf, SecretBytes};

/// The key pad of §2.15 (17 ASCII octets, no terminator).
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The AUTH data of a signer that sent `real_message` (its IKE_SA_INIT message), received
/// `peer_nonce` and presents the ID payload body `id_body`; `sk_p` is its SK_pi or SK_pr.
pub fn psk_auth(
    prf: Prf,
    psk: &Psk,
    sk_p: &SecretBytes,
    real_message: &[u8],
    peer_nonce: &[u8],
    id_body: &[u8],
) -> SecretBytes {
    let maced_id = prf.prf(sk_p.expose(), &[id_body]);
    let key = prf.prf(psk.expose(), &[KEY_PAD]);
    prf.prf(key.expose(), &[real_message, peer_nonce, maced_id.expose()])
}

/// Checks a received AUTH value in constant time.
pub(crate) fn verify(expected: &SecretBytes, received: &[u8]) -> bool {
    *expected == SecretBytes::from_slice(received)
}

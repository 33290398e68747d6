//! Messages protected by the SK payload (RFC 7296 §3.14): every exchange after IKE_SA_INIT.

use super::Error;
use crate::crypto::{Rng, SkCipher};
use crate::wire::{decode_chain, encode_chain, Encrypted, Header, Message, Payload};

/// Encodes `inner` and seals it into a message with header `header` whose only payload is SK.
pub(crate) fn seal(
    header: Header,
    inner: &[Payload],
    cipher: &mut SkCipher,
    rng: &mut dyn Rng,
) -> Result<Vec<u8>, Error> {
    let mut plaintext = Vec::new();
    let first = encode_chain(inner, &mut plaintext);
    let outer = Message {
        header,
        payloads: vec![Payload::Sk(Encrypted {
            next_payload: first,
            data: Vec::new(),
        })],
    };
    let mut bytes = outer.encode();
    cipher
        .seal_message(&mut bytes, Header::LEN, &plaintext, rng)
        .map_err(Error::Crypto)?;
    Ok(bytes)
}

/// Checks that `message` is nothing but an SK payload (§3.14: anything before it would be
/// unauthenticated), opens it and decodes the inner payloads.
///
/// A failed integrity check is [`Error::Undecryptable`] (drop silently); an authenticated but
/// malformed inner chain is [`Error::Malformed`] (answer INVALID_SYNTAX).
pub(crate) fn open(
    datagram: &[u8],
    message: &Message,
    cipher: &SkCipher,
) -> Result<Vec<Payload>, Error> {
    match message.payloads.as_slice() {
        [Payload::Sk(_)] => {}
        [.., Payload::Skf(_)] => {
            return Err(Error::Unsupported {
                what: "IKE fragmentation (SKF)",
            })
        }
        _ => {
            return Err(Error::Unexpected {
                what: "a message after IKE_SA_INIT without (only) an SK payload",
            })
        }
    }
    let opened = cipher.open_message(datagram).map_err(Error::opening)?;
    Ok(decode_chain(opened.first_inner, &opened.plaintext)?)
}

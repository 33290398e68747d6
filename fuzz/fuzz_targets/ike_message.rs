//! Fuzzes the IKEv2 message decoder (xipsec_control::wire).
//!
//! Properties checked on every input:
//! - `Message::decode` never panics; whatever it accepts re-encodes to something that decodes
//!   to the same message (decode ∘ encode is the identity on decoded messages).
//! - `locate_encrypted` never panics, and agrees with `Message::decode` about the SK/SKF payload.
//! - The same for a bare payload chain (`decode_chain`, as used on decrypted SK contents),
//!   with the first input octet as the first payload type.
//!
//! Run with `cargo fuzz run ike_message` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xipsec_control::wire::{
    decode_chain, encode_chain, locate_encrypted, Message, Payload, PayloadType,
};

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    if let Ok(message) = &decoded {
        let bytes = message.encode();
        let again = Message::decode(&bytes).expect("a re-encoded message decodes");
        assert_eq!(&again, message, "decode(encode(m)) == m");
        assert_eq!(again.encode(), bytes, "encoding is deterministic");
    }

    let located = locate_encrypted(data);
    if let Ok(message) = &decoded {
        let has_encrypted = matches!(
            message.payloads.last(),
            Some(Payload::Sk(_) | Payload::Skf(_))
        );
        let location = located.expect("locate succeeds where decode does");
        assert_eq!(location.is_some(), has_encrypted);
    }

    if let Some((&first, rest)) = data.split_first() {
        if let Ok(chain) = decode_chain(PayloadType::from(first), rest) {
            let mut out = Vec::new();
            let first = encode_chain(&chain, &mut out);
            let again = decode_chain(first, &out).expect("a re-encoded chain decodes");
            assert_eq!(again, chain, "decode_chain(encode_chain(c)) == c");
        }
    }
});

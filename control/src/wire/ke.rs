//! The Key Exchange payload (KE, RFC 7296 §3.4).
//!
//! ```text
//! body = Key Exchange Method Num(2) RESERVED(2) | Key Exchange Data
//! ```

use super::codec::put_u16;
use super::{Codec, DecodeError, KeMethod, Reader};

/// The body of a KE payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExchange {
    /// The Diffie-Hellman group / key exchange method (RFC 9370's name for the field).
    pub group: KeMethod,
    /// The public value (or ML-KEM encapsulation key / ciphertext).
    pub data: Vec<u8>,
}

impl Codec for KeyExchange {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.group.value());
        put_u16(out, 0);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = KeMethod::from(r.u16("KE group")?);
        r.skip(2, "KE reserved")?;
        Ok(KeyExchange {
            group,
            data: r.rest().to_vec(),
        })
    }
}

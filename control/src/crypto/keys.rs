//! The key schedule: SKEYSEED and the seven IKE SA keys (RFC 7296 §2.14), the rekeyed IKE SA's
//! SKEYSEED (§2.18), and Child SA keying material with and without PFS (§2.17).

use core::fmt;

use super::{CryptoError, Encr, IkeSuite, Integ, Prf, SecretBytes, SharedSecret, SkCipher};

/// Which end of an IKE SA: the original initiator or responder (RFC 7296 §2.14 — unchanged by
/// who starts a later exchange, and by rekeying: the new SA's initiator is whoever rekeyed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The IKE SA initiator (SK_ei, SK_ai, SK_pi are its keys).
    Initiator,
    /// The IKE SA responder.
    Responder,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}

/// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14). The nonces are the whole Nonce payload
/// data, and for the HMAC PRFs they form the key at any length.
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &SharedSecret) -> SecretBytes {
    // The key is Ni | Nr; HMAC hashes keys longer than a block, so build it contiguously.
    let mut key = SecretBytes::new(Vec::with_capacity(ni.len().saturating_add(nr.len())));
    key.extend_within_capacity(ni);
    key.extend_within_capacity(nr);
    prf.prf(key.expose(), &[g_ir.expose()])
}

/// The rekeyed IKE SA's `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` (RFC 7296 §2.18).
/// `old_prf` is the PRF of the IKE SA being rekeyed, not the new one; the nonces are those of
/// the CREATE_CHILD_SA exchange.
pub fn skeyseed_rekey(
    old_prf: Prf,
    old_sk_d: &SecretBytes,
    g_ir: &SharedSecret,
    ni: &[u8],
    nr: &[u8],
) -> SecretBytes {
    old_prf.prf(old_sk_d.expose(), &[g_ir.expose(), ni, nr])
}

/// The seven secrets of an IKE SA (RFC 7296 §2.14), in the order `prf+` produces them.
#[derive(Clone, PartialEq, Eq)]
pub struct IkeSaKeys {
    suite: IkeSuite,
    /// SK_d: keys Child SAs and the next IKE SA.
    pub sk_d: SecretBytes,
    /// SK_ai: integrity of the initiator's messages (empty for an AEAD).
    pub sk_ai: SecretBytes,
    /// SK_ar: integrity of the responder's messages (empty for an AEAD).
    pub sk_ar: SecretBytes,
    /// SK_ei: encryption of the initiator's messages (key | salt for an AEAD).
    pub sk_ei: SecretBytes,
    /// SK_er: encryption of the responder's messages.
    pub sk_er: SecretBytes,
    /// SK_pi: the initiator's AUTH payload (§2.15).
    pub sk_pi: SecretBytes,
    /// SK_pr: the responder's AUTH payload.
    pub sk_pr: SecretBytes,
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkeSaKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl IkeSaKeys {
    /// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi
    /// | SPIr)`, each key as long as its transform needs. `spi_i` / `spi_r` are the IKE
    /// header's SPIs of the new SA (for a rekey: the SPIs carried in the rekey's SA payloads).
    pub fn derive(
        suite: &IkeSuite,
        skeyseed: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeSaKeys, CryptoError> {
        let prf_len = suite.prf().key_len();
        let integ_len = suite.integ_key_len();
        let encr_len = suite.encr_key_len();
        let total = prf_len
            .saturating_mul(3)
            .saturating_add(integ_len.saturating_mul(2))
            .saturating_add(encr_len.saturating_mul(2));
        let mut stream = suite.prf().prf_plus(
            skeyseed.expose(),
            &[ni, nr, spi_i.as_slice(), spi_r.as_slice()],
            total,
        )?;
        let mut next = |len: usize| {
            stream.take_front(len).ok_or(CryptoError::Internal {
                what: "splitting prf+ output",
            })
        };
        Ok(IkeSaKeys {
            suite: *suite,
            sk_d: next(prf_len)?,
            sk_ai: next(integ_len)?,
            sk_ar: next(integ_len)?,
            sk_ei: next(encr_len)?,
            sk_er: next(encr_len)?,
            sk_pi: next(prf_len)?,
            sk_pr: next(prf_len)?,
        })
    }

    /// The suite the keys were derived for.
    pub fn suite(&self) -> &IkeSuite {
        &self.suite
    }

    /// The [`SkCipher`] that protects the messages `sender` sends: an endpoint seals with
    /// `sk_cipher(its_role)` and opens with `sk_cipher(its_role.peer())`.
    pub fn sk_cipher(&self, sender: Role) -> Result<SkCipher, CryptoError> {
        let (encr, integ) = match sender {
            Role::Initiator => (&self.sk_ei, &self.sk_ai),
            Role::Responder => (&self.sk_er, &self.sk_ar),
        };
        SkCipher::new(&self.suite, encr, integ)
    }

    /// SK_pi or SK_pr: the key for the AUTH payload `sender` computes (RFC 7296 §2.15).
    pub fn sk_p(&self, sender: Role) -> &SecretBytes {
        match sender {
            Role::Initiator => &self.sk_pi,
            Role::Responder => &self.sk_pr,
        }
    }
}

/// The key lengths of one Child SA direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildKeyLengths {
    /// Encryption key, salt included for an AEAD.
    pub encr: usize,
    /// Integrity key (0 for an AEAD).
    pub integ: usize,
}

impl ChildKeyLengths {
    /// The lengths for an ESP SA with these transforms.
    pub fn for_esp(encr: Encr, integ: Option<Integ>) -> ChildKeyLengths {
        ChildKeyLengths {
            encr: encr.keymat_len(),
            integ: integ.map_or(0, Integ::key_len),
        }
    }
}

/// The keying material of an ESP Child SA, split as RFC 7296 §2.17 orders it: first the
/// initiator-to-responder SA's keys (encryption, then integrity), then the reverse direction's.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildSaKeys {
    /// Encryption key (| salt) of the SA carrying initiator-to-responder traffic.
    pub encr_i: SecretBytes,
    /// Its integrity key (empty for an AEAD).
    pub integ_i: SecretBytes,
    /// Encryption key (| salt) of the SA carrying responder-to-initiator traffic.
    pub encr_r: SecretBytes,
    /// Its integrity key (empty for an AEAD).
    pub integ_r: SecretBytes,
}

impl fmt::Debug for ChildSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSaKeys")
            .field("encr_len", &self.encr_i.len())
            .field("integ_len", &self.integ_i.len())
            .finish_non_exhaustive()
    }
}

impl ChildSaKeys {
    /// `KEYMAT = prf+(SK_d, Ni | Nr)`, or with PFS `prf+(SK_d, g^ir (new) | Ni | Nr)`
    /// (RFC 7296 §2.17). The nonces are those of the exchange that creates the Child SA (for the
    /// first Child SA, IKE_SA_INIT's), and "initiator" means the initiator of that exchange.
    pub fn derive(
        prf: Prf,
        sk_d: &SecretBytes,
        pfs: Option<&SharedSecret>,
        ni: &[u8],
        nr: &[u8],
        lengths: ChildKeyLengths,
    ) -> Result<ChildSaKeys, CryptoError> {
        let one = lengths.encr.saturating_add(lengths.integ);
        let total = one.saturating_mul(2);
        let mut stream = match pfs {
            Some(g_ir) => prf.prf_plus(sk_d.expose(), &[g_ir.expose(), ni, nr], total)?,
            None => prf.prf_plus(sk_d.expose(), &[ni, nr], total)?,
        };
        let mut next = |len: usize| {
            stream.take_front(len).ok_or(CryptoError::Internal {
                what: "splitting prf+ output",
            })
        };
        Ok(ChildSaKeys {
            encr_i: next(lengths.encr)?,
            integ_i: next(lengths.integ)?,
            encr_r: next(lengths.encr)?,
            integ_r: next(lengths.integ)?,
        })
    }
}

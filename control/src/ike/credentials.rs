//! What an IKE SA authenticates with besides a PSK: our [`Credentials`] (a private key and the
//! certificates that go with it, or a bare key for RFC 7670 raw public keys), and how the peer
//! must authenticate ([`PeerAuth`]). The loaders take bytes; reading files is the daemon's job
//! (`crate::config` has the helpers that do it with file:line:col errors).

use core::fmt;
use std::sync::Arc;

use crate::crypto::{CertError, Certificate, KeyError, PublicKey, SigningKey, TrustAnchors};

/// How we authenticate ourselves (our AUTH payload).
#[derive(Clone, Debug, Default)]
pub enum LocalAuth {
    /// With [`super::IkeConfig::psk`] (the default).
    #[default]
    Psk,
    /// With a signature by these credentials (RFC 7427, or RFC 4754 for peers that do not
    /// announce SIGNATURE_HASH_ALGORITHMS).
    Signature(Arc<Credentials>),
}

/// How the peer must authenticate (its AUTH payload).
#[derive(Clone, Debug, Default)]
pub enum PeerAuth {
    /// With [`super::IkeConfig::psk`] (the default).
    #[default]
    Psk,
    /// With a signature by the key of an X.509 certificate it sends (CERT, encoding 4) that
    /// chains to one of these anchors, and that names its IDi / IDr (the subject DN, or a
    /// subjectAltName). We send a CERTREQ naming the anchors.
    Certificate(Arc<TrustAnchors>),
    /// With a signature by one of these keys (RFC 7670 raw public keys; a CERT payload with
    /// encoding 15 is optional). The identity is not bound to the key: configure
    /// [`super::IkeConfig::remote_id`].
    PublicKeys(Arc<Vec<PublicKey>>),
}

/// Our private key and, unless it is a raw public key, our certificate followed by the
/// intermediates the peer needs to reach its trust anchor.
pub struct Credentials {
    key: SigningKey,
    chain: Vec<Certificate>,
    /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 (RSA keys only; strongSwan's
    /// `rsa_pss = yes`).
    pub rsa_pss: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("chain", &self.chain)
            .field("rsa_pss", &self.rsa_pss)
            .finish()
    }
}

/// Why credentials did not load. Always this side's (the configuration's) fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialError {
    /// A certificate does not parse or cannot be used.
    Certificate(CertError),
    /// The private key does not load.
    Key(KeyError),
    /// The private key is not the one of the (first) certificate.
    KeyMismatch,
    /// Our certificate's keyUsage forbids signatures.
    NotForSigning,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::Certificate(e) => write!(f, "{e}"),
            CredentialError::Key(e) => write!(f, "{e}"),
            CredentialError::KeyMismatch => {
                f.write_str("the private key does not match the certificate")
            }
            CredentialError::NotForSigning => {
                f.write_str("the certificate's key usage does not allow signatures")
            }
        }
    }
}

impl std::error::Error for CredentialError {}

impl Credentials {
    /// A key and its certificate chain (ours first, then intermediates towards the root).
    /// Checks that the key is the certificate's and that its keyUsage allows signing.
    pub fn new(key: SigningKey, chain: Vec<Certificate>) -> Result<Credentials, CredentialError> {
        let Some(ours) = chain.first() else {
            return Err(CredentialError::Certificate(CertError::NoCertificate));
        };
        if ours.public_key() != key.public_key() {
            return Err(CredentialError::KeyMismatch);
        }
        // Validity is checked at use, against the caller's clock; key usage now.
        if !ours.allows_signatures() {
            return Err(CredentialError::NotForSigning);
        }
        Ok(Credentials {
            key,
            chain,
            rsa_pss: false,
        })
    }

    /// A bare key: we send it as an RFC 7670 raw public key.
    pub fn raw_public_key(key: SigningKey) -> Credentials {
        Credentials {
            key,
            chain: Vec::new(),
            rsa_pss: false,
        }
    }

    /// Loads PEM (or DER) files' contents: `certs` holds our certificate first, then any
    /// intermediates; `key` our private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(certs: &[u8], key: &[u8]) -> Result<Credentials, CredentialError> {
        let chain = Certificate::from_pem_or_der(certs).map_err(CredentialError::Certificate)?;
        let key = SigningKey::from_pem_or_der(key).map_err(CredentialError::Key)?;
        Credentials::new(key, chain)
    }

    /// The private key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Our certificate and the intermediates; empty for a raw public key.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }
}

/// Loads trust anchors from the contents of PEM (or DER) files, one element per file.
pub fn trust_anchors_from_pem<'a>(
    files: impl IntoIterator<Item = &'a [u8]>,
) -> Result<TrustAnchors, CertError> {
    let mut certs = Vec::new();
    for f in files {
        certs.extend(Certificate::from_pem_or_der(f)?);
    }
    Ok(TrustAnchors::new(certs))
}

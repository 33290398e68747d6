//! The AUTH payload for signatures (RFC 7296 §2.15, RFC 7427, RFC 4754) and the CERT /
//! CERTREQ payloads that go with it (§3.6, §3.7; RFC 7670 raw public keys).
//!
//! ```text
//! SignedOctets = RealMessage | NonceData(peer's) | prf(SK_p, RestOfIDPayload)   (as for PSK)
//! method 14 : AUTH data = len(1) | AlgorithmIdentifier (DER) | signature       (RFC 7427 §3)
//! method 9/10/11: AUTH data = r | s, ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512
//! ```
//! We sign with method 14 when the peer announced SIGNATURE_HASH_ALGORITHMS with a hash our
//! key can use, else with the RFC 4754 method of an ECDSA key; RSA method 1 (SHA-1) is
//! neither sent nor accepted (RFC 8247 §3.2).

use super::credentials::{Credentials, PeerAuth};
use super::Error;
use crate::crypto::{
    Certificate, Curve, HashAlgorithm, Prf, PublicKey, SecretBytes, SignatureError,
};
use crate::wire::{
    AuthMethod, Authentication, CertEncoding, Certificate as CertPayload, CertificateRequest,
    Identification, Payload,
};
use std::time::SystemTime;

/// The octets a signature covers: `real_message | peer_nonce | prf(SK_p, id_body)`.
pub(crate) fn signed_octets(
    prf: Prf,
    sk_p: &SecretBytes,
    real_message: &[u8],
    peer_nonce: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p.expose(), &[id_body]);
    [real_message, peer_nonce, maced_id.expose()].concat()
}

fn signing_failed(e: SignatureError) -> Error {
    Error::Config(super::ConfigError {
        field: "local_auth",
        reason: match e {
            SignatureError::SigningFailed => "signing with our private key failed",
            _ => "our private key cannot make the chosen signature",
        },
    })
}

/// Our AUTH payload for `octets`, in the method the peer can verify.
pub(crate) fn sign(
    creds: &Credentials,
    peer_hashes: Option<&[HashAlgorithm]>,
    octets: &[u8],
) -> Result<Authentication, Error> {
    let key = creds.key();
    if let Some(scheme) = peer_hashes.and_then(|h| key.scheme_for(h, creds.rsa_pss)) {
        let alg = scheme.algorithm_identifier();
        let signature = key.sign(scheme, octets).map_err(signing_failed)?;
        let mut data =
            Vec::with_capacity(alg.len().saturating_add(signature.len()).saturating_add(1));
        data.push(u8::try_from(alg.len()).unwrap_or(u8::MAX));
        data.extend_from_slice(alg);
        data.extend_from_slice(&signature);
        return Ok(Authentication {
            method: AuthMethod::DigitalSignature,
            data,
        });
    }
    let method = match key.curve() {
        Some(Curve::P256) => AuthMethod::EcdsaSha256P256,
        Some(Curve::P384) => AuthMethod::EcdsaSha384P384,
        Some(Curve::P521) => AuthMethod::EcdsaSha512P521,
        None => {
            return Err(Error::Unsupported {
                what: "the peer announced no RFC 7427 hash our (RSA or Ed25519) key can sign with",
            })
        }
    };
    let data = match key.sign_ecdsa_fixed(octets) {
        Some(r) => r.map_err(signing_failed)?,
        None => return Err(signing_failed(SignatureError::WrongKeyType)),
    };
    Ok(Authentication { method, data })
}

/// Verifies the peer's AUTH payload over `octets` with `key`.
pub(crate) fn verify(key: &PublicKey, auth: &Authentication, octets: &[u8]) -> Result<(), Error> {
    let failed = |what| Error::AuthenticationFailed { what };
    let result = match auth.method {
        AuthMethod::DigitalSignature => {
            let (alg, signature) = auth
                .signature_parts()
                .ok_or(failed("the AUTH payload's AlgorithmIdentifier overruns it"))?;
            key.verify(alg, octets, signature)
        }
        AuthMethod::EcdsaSha256P256 => {
            key.verify_ecdsa_fixed(HashAlgorithm::Sha256, octets, &auth.data)
        }
        AuthMethod::EcdsaSha384P384 => {
            key.verify_ecdsa_fixed(HashAlgorithm::Sha384, octets, &auth.data)
        }
        AuthMethod::EcdsaSha512P521 => {
            key.verify_ecdsa_fixed(HashAlgorithm::Sha512, octets, &auth.data)
        }
        AuthMethod::RsaDigitalSignature => {
            return Err(failed("RSA with SHA-1 (AUTH method 1) is not accepted"))
        }
        _ => return Err(failed("the peer does not authenticate with a signature")),
    };
    result.map_err(|e| {
        failed(match e {
            SignatureError::BadSignature => "the peer's signature does not verify",
            SignatureError::WrongKeyType => "the peer's signature algorithm does not fit its key",
            SignatureError::MalformedAlgorithm => "the peer's AlgorithmIdentifier is malformed",
            _ => "the peer's signature algorithm is not supported",
        })
    })
}

/// Our CERT payloads: the certificate chain, or the raw public key.
pub(crate) fn cert_payloads(creds: &Credentials) -> Vec<Payload> {
    if creds.chain().is_empty() {
        return vec![Payload::Cert(CertPayload {
            encoding: CertEncoding::RawPublicKey,
            data: creds.key().public_key().spki().to_vec(),
        })];
    }
    creds
        .chain()
        .iter()
        .map(|c| {
            Payload::Cert(CertPayload {
                encoding: CertEncoding::X509Signature,
                data: c.der().to_vec(),
            })
        })
        .collect()
}

/// Our CERTREQ, when we expect a certificate: the SHA-1 of our anchors' keys (§3.7).
pub(crate) fn certreq_payload(peer_auth: &PeerAuth) -> Option<Payload> {
    match peer_auth {
        PeerAuth::Certificate(anchors) => Some(Payload::CertReq(CertificateRequest {
            encoding: CertEncoding::X509Signature,
            authorities: anchors.certreq_hashes(),
        })),
        _ => None,
    }
}

/// The key the peer's AUTH must verify with, after checking its certificates (or raw key)
/// against `peer_auth` and its identity against the certificate.
pub(crate) fn peer_key(
    peer_auth: &PeerAuth,
    id: &Identification,
    payloads: &[Payload],
    now: SystemTime,
) -> Result<PublicKey, Error> {
    let failed = |what| Error::AuthenticationFailed { what };
    let certs = payloads.iter().filter_map(|p| match p {
        Payload::Cert(c) => Some(c),
        _ => None,
    });
    match peer_auth {
        PeerAuth::Psk => Err(failed("the peer must authenticate with the shared key")),
        PeerAuth::Certificate(anchors) => {
            // §3.6: the first certificate holds the key that verifies AUTH.
            let mut x509 = certs.filter(|c| c.encoding == CertEncoding::X509Signature);
            let end_entity = x509
                .next()
                .ok_or(failed("the peer sent no X.509 certificate"))?;
            let end_entity =
                Certificate::from_der(&end_entity.data).map_err(|e| failed(e.what()))?;
            // Intermediates that do not parse cannot be on the path; skip them.
            let intermediates: Vec<Certificate> = x509
                .take(crate::crypto::MAX_INTERMEDIATES.saturating_mul(2))
                .filter_map(|c| Certificate::from_der(&c.data).ok())
                .collect();
            anchors
                .verify(&end_entity, &intermediates, now)
                .map_err(|e| failed(e.what()))?;
            if !end_entity.matches_identity(id) {
                return Err(failed(
                    "the peer's identity is neither its certificate's subject nor in its subjectAltName",
                ));
            }
            Ok(end_entity.public_key().clone())
        }
        PeerAuth::PublicKeys(keys) => {
            let sent = certs
                .filter(|c| c.encoding == CertEncoding::RawPublicKey)
                .map(|c| PublicKey::from_spki(&c.data))
                .next();
            match sent {
                Some(Ok(k)) if keys.contains(&k) => Ok(k),
                Some(Ok(_)) => Err(failed("the peer's raw public key is not a configured one")),
                Some(Err(_)) => Err(failed("the peer's raw public key does not parse")),
                // Without a CERT the AUTH must verify with one of the configured keys.
                None => match keys.as_slice() {
                    [only] => Ok(only.clone()),
                    _ => Err(failed(
                        "the peer sent no raw public key and several keys are configured",
                    )),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    fn key(alg: &'static rcgen::SignatureAlgorithm) -> SigningKey {
        let k = rcgen::KeyPair::generate_for(alg).unwrap();
        SigningKey::from_pem_or_der(k.serialize_pem().as_bytes()).unwrap()
    }

    #[test]
    fn method_follows_what_the_peer_announced() {
        let octets = b"RealMessage | Nonce | prf(SK_p, ID')";
        let creds = Credentials::raw_public_key(key(&rcgen::PKCS_ECDSA_P256_SHA256));
        let public = creds.key().public_key().clone();
        let all = HashAlgorithm::ANNOUNCED;
        // RFC 7427 when announced, RFC 4754 (r | s, 64 octets) when not.
        let a = sign(&creds, Some(&all), octets).unwrap();
        assert_eq!(a.method, AuthMethod::DigitalSignature);
        assert_eq!(
            a.signature_parts().unwrap().0,
            crate::crypto::SignatureScheme::EcdsaP256Sha256.algorithm_identifier()
        );
        verify(&public, &a, octets).unwrap();
        let b = sign(&creds, None, octets).unwrap();
        assert_eq!((b.method, b.data.len()), (AuthMethod::EcdsaSha256P256, 64));
        verify(&public, &b, octets).unwrap();
        // A peer that announced only SHA-512 gets RFC 4754 too: P-256 signs with SHA-256.
        let c = sign(&creds, Some(&[HashAlgorithm::Sha512]), octets).unwrap();
        assert_eq!(c.method, AuthMethod::EcdsaSha256P256);
        // Other octets, another method number, a truncated AlgorithmIdentifier: refused.
        assert!(verify(&public, &a, b"other octets").is_err());
        let wrong = Authentication {
            method: AuthMethod::EcdsaSha384P384,
            data: b.data.clone(),
        };
        assert!(verify(&public, &wrong, octets).is_err());
        let mut cut = a.clone();
        cut.data.truncate(5);
        assert!(verify(&public, &cut, octets).is_err());

        // Ed25519 needs the peer's Identity hash (RFC 8420); there is no classic method.
        let ed = Credentials::raw_public_key(key(&rcgen::PKCS_ED25519));
        assert!(matches!(
            sign(&ed, Some(&[HashAlgorithm::Sha256]), octets),
            Err(Error::Unsupported { .. })
        ));
        let e = sign(&ed, Some(&all), octets).unwrap();
        verify(ed.key().public_key(), &e, octets).unwrap();
        // A signature by one key does not verify with another.
        assert!(verify(&public, &e, octets).is_err());
    }
}

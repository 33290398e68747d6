//! X.509 certificates for IKE authentication (RFC 7296 §3.6, RFC 4945's profile as strongSwan
//! applies it): parsing (with `x509-parser`), the facts IKE needs (subject, subjectAltName,
//! public key, validity, CA flags), and path validation from a peer's end-entity certificate
//! through the intermediates it sent to a configured trust anchor (RFC 5280 §6, reduced:
//! no policies, no name constraints, no revocation).
//!
//! The time a certificate is checked at comes from the caller ([`std::time::SystemTime`]):
//! this module reads no clock.

use core::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::der::{tag, Der};
use super::signature::{PublicKey, SignatureError};
use crate::wire::{IdType, Identification};

/// The longest chain accepted: end entity, up to this many intermediates, trust anchor.
pub const MAX_INTERMEDIATES: usize = 8;

/// Why a certificate, or a chain, was refused. Whose fault it is depends on where it came from:
/// the peer's CERT payloads, or our configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// Not a DER (or PEM) X.509 certificate.
    Malformed,
    /// A PEM file with no CERTIFICATE block.
    NoCertificate,
    /// The public key is of a type we do not verify with.
    UnsupportedKey,
    /// A critical extension we do not understand (RFC 5280 §4.2: must be rejected).
    UnknownCriticalExtension,
    /// Outside its validity period at the time of the check.
    Expired,
    /// Not valid yet at the time of the check.
    NotYetValid,
    /// No issuer among the intermediates and trust anchors verifies its signature.
    UnknownIssuer,
    /// A certificate in the chain is signed with an algorithm we refuse (SHA-1, …).
    UnsupportedSignature,
    /// An issuing certificate is not a CA (basicConstraints), may not sign certificates
    /// (keyUsage), or its pathLenConstraint is exceeded.
    NotACa,
    /// The end-entity certificate's keyUsage forbids digital signatures.
    KeyUsage,
    /// More than [`MAX_INTERMEDIATES`] intermediates would be needed.
    ChainTooLong,
}

impl CertError {
    /// A fixed description (for [`crate::ike::Error`]'s `&'static str` fields).
    pub fn what(self) -> &'static str {
        match self {
            CertError::Malformed => "a certificate does not parse",
            CertError::NoCertificate => "no certificate found",
            CertError::UnsupportedKey => "a certificate's public key is of an unsupported type",
            CertError::UnknownCriticalExtension => {
                "a certificate has an unknown critical extension"
            }
            CertError::Expired => "a certificate has expired",
            CertError::NotYetValid => "a certificate is not valid yet",
            CertError::UnknownIssuer => "the certificate does not chain to a trusted CA",
            CertError::UnsupportedSignature => {
                "a certificate is signed with an unsupported algorithm"
            }
            CertError::NotACa => "an issuer in the chain is not allowed to sign certificates",
            CertError::KeyUsage => "the certificate's key usage forbids signatures",
            CertError::ChainTooLong => "the certificate chain is too long",
        }
    }
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what())
    }
}

impl std::error::Error for CertError {}

/// keyUsage bits (RFC 5280 §4.2.1.3), as x509-parser numbers them.
const KU_DIGITAL_SIGNATURE: u16 = 1;
const KU_NON_REPUDIATION: u16 = 1 << 1;
const KU_KEY_CERT_SIGN: u16 = 1 << 5;

/// A parsed X.509 certificate: its DER and the facts IKE needs, copied out once.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    /// The tbsCertificate TLV, the signatureAlgorithm TLV, the signature.
    tbs: Vec<u8>,
    signature_algorithm: Vec<u8>,
    signature: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_text: String,
    /// Seconds since the epoch.
    not_before: i64,
    not_after: i64,
    public_key: PublicKey,
    /// `Some(pathLenConstraint)` when basicConstraints says CA.
    ca: Option<Option<u32>>,
    key_usage: Option<u16>,
    dns_names: Vec<String>,
    emails: Vec<String>,
    addresses: Vec<IpAddr>,
    unknown_critical: bool,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({})", self.subject_text)
    }
}

impl Certificate {
    /// Parses one DER certificate (nothing may follow it).
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let bad = |_| CertError::Malformed;
        // The three parts the signature check needs, as sent.
        let mut outer = Der::new(der);
        let seq = outer.expect(tag::SEQUENCE).map_err(bad)?;
        outer.finish().map_err(bad)?;
        let mut d = Der::new(seq);
        let (t, _, tbs) = d.any().map_err(bad)?;
        let (a, _, signature_algorithm) = d.any().map_err(bad)?;
        let bits = d.expect(tag::BIT_STRING).map_err(bad)?;
        d.finish().map_err(bad)?;
        let signature = match bits {
            [0, s @ ..] => s,
            _ => return Err(CertError::Malformed),
        };
        if t != tag::SEQUENCE || a != tag::SEQUENCE {
            return Err(CertError::Malformed);
        }

        let (rest, x) = X509Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
        if !rest.is_empty() {
            return Err(CertError::Malformed);
        }
        let public_key = PublicKey::from_spki(x.public_key().raw).map_err(|e| match e {
            SignatureError::BadPublicKey => CertError::UnsupportedKey,
            _ => CertError::Malformed,
        })?;
        let ca = match x.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => Some(bc.value.path_len_constraint),
            Ok(_) => None,
            Err(_) => return Err(CertError::Malformed),
        };
        let key_usage = match x.key_usage() {
            Ok(ku) => ku.map(|k| k.value.flags),
            Err(_) => return Err(CertError::Malformed),
        };
        let (mut dns_names, mut emails, mut addresses) = (Vec::new(), Vec::new(), Vec::new());
        match x.subject_alternative_name() {
            Ok(Some(san)) => {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::DNSName(n) => dns_names.push((*n).to_string()),
                        GeneralName::RFC822Name(n) => emails.push((*n).to_string()),
                        GeneralName::IPAddress(b) => match b.len() {
                            4 => addresses.extend(<[u8; 4]>::try_from(*b).ok().map(IpAddr::from)),
                            16 => addresses.extend(<[u8; 16]>::try_from(*b).ok().map(IpAddr::from)),
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(_) => return Err(CertError::Malformed),
        }
        let unknown_critical = x.extensions().iter().any(|e| {
            e.critical
                && matches!(
                    e.parsed_extension(),
                    ParsedExtension::UnsupportedExtension { .. }
                        | ParsedExtension::ParseError { .. }
                )
        });
        Ok(Certificate {
            der: der.to_vec(),
            tbs: tbs.to_vec(),
            signature_algorithm: signature_algorithm.to_vec(),
            signature: signature.to_vec(),
            subject: x.subject().as_raw().to_vec(),
            issuer: x.issuer().as_raw().to_vec(),
            subject_text: x.subject().to_string(),
            not_before: x.validity().not_before.timestamp(),
            not_after: x.validity().not_after.timestamp(),
            public_key,
            ca,
            key_usage,
            dns_names,
            emails,
            addresses,
            unknown_critical,
        })
    }

    /// Every certificate of a PEM file (`CERTIFICATE` blocks; others are skipped), or the one
    /// certificate of a DER file.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Vec<Certificate>, CertError> {
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Certificate::from_der(bytes).map(|c| vec![c]);
        }
        let blocks = super::pem::blocks(bytes).map_err(|_| CertError::Malformed)?;
        let certs = blocks
            .iter()
            .filter(|b| b.label == "CERTIFICATE" || b.label == "X509 CERTIFICATE")
            .map(|b| Certificate::from_der(&b.der))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(CertError::NoCertificate);
        }
        Ok(certs)
    }

    /// The DER encoding (the data of a CERT payload with encoding 4).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's DER Name (what an ID_DER_ASN1_DN identity holds).
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject in RFC 4514-like text, for logs.
    pub fn subject(&self) -> &str {
        &self.subject_text
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Whether basicConstraints makes it a CA.
    pub fn is_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// SHA-1 of the DER SubjectPublicKeyInfo: how a CERTREQ names a CA (RFC 7296 §3.7).
    pub fn spki_sha1(&self) -> [u8; 20] {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            self.public_key.spki(),
        );
        let mut out = [0u8; 20];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Whether the identity `id` is bound to this certificate (strongSwan's rule): an
    /// ID_DER_ASN1_DN equal to the subject, or an ID_FQDN / ID_RFC822_ADDR / ID_IPV*_ADDR
    /// listed in subjectAltName.
    pub fn matches_identity(&self, id: &Identification) -> bool {
        let text = || core::str::from_utf8(&id.data).ok();
        match id.id_type {
            IdType::DerAsn1Dn => dn_equal(&id.data, &self.subject),
            IdType::Fqdn => {
                text().is_some_and(|t| self.dns_names.iter().any(|n| n.eq_ignore_ascii_case(t)))
            }
            IdType::Rfc822Addr => text().is_some_and(|t| {
                self.emails
                    .iter()
                    .any(|e| match (e.rsplit_once('@'), t.rsplit_once('@')) {
                        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
                        _ => e == t,
                    })
            }),
            IdType::Ipv4Addr | IdType::Ipv6Addr => {
                id.ip_addr().is_some_and(|a| self.addresses.contains(&a))
            }
            _ => false,
        }
    }

    fn check_time(&self, at: i64) -> Result<(), CertError> {
        if at < self.not_before {
            return Err(CertError::NotYetValid);
        }
        if at > self.not_after {
            return Err(CertError::Expired);
        }
        Ok(())
    }

    /// Whether `issuer`'s key made this certificate's signature.
    fn signed_by(&self, issuer: &Certificate) -> Result<(), CertError> {
        issuer
            .public_key
            .verify(&self.signature_algorithm, &self.tbs, &self.signature)
            .map_err(|e| match e {
                SignatureError::BadSignature => CertError::UnknownIssuer,
                _ => CertError::UnsupportedSignature,
            })
    }

    /// The checks of an end-entity certificate on its own: validity at `at`, no unknown
    /// critical extension, a keyUsage (if any) that allows signatures.
    pub fn check_end_entity(&self, at: SystemTime) -> Result<(), CertError> {
        if self.unknown_critical {
            return Err(CertError::UnknownCriticalExtension);
        }
        self.check_time(unix(at))?;
        if !self.allows_signatures() {
            return Err(CertError::KeyUsage);
        }
        Ok(())
    }

    /// Whether keyUsage, if present, allows signatures (digitalSignature or nonRepudiation).
    pub fn allows_signatures(&self) -> bool {
        self.key_usage
            .is_none_or(|ku| ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) != 0)
    }
}

/// A DN attribute's short name, its OID's contents octets, and the string type we encode it
/// with (PrintableString 0x13, IA5String 0x16, UTF8String 0x0c), as RFC 5280 Appendix A
/// wants them.
const DN_ATTRIBUTES: &[(&str, &[u8], u8)] = &[
    ("C", &[0x55, 0x04, 0x06], 0x13),
    ("ST", &[0x55, 0x04, 0x08], 0x0c),
    ("L", &[0x55, 0x04, 0x07], 0x0c),
    ("O", &[0x55, 0x04, 0x0a], 0x0c),
    ("OU", &[0x55, 0x04, 0x0b], 0x0c),
    ("CN", &[0x55, 0x04, 0x03], 0x0c),
    ("SN", &[0x55, 0x04, 0x04], 0x0c),
    ("serialNumber", &[0x55, 0x04, 0x05], 0x13),
    (
        "DC",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        0x16,
    ),
    (
        "UID",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        0x0c,
    ),
    (
        "E",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        0x16,
    ),
];

fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    let octets = len.to_be_bytes();
    let significant = octets.iter().skip_while(|&&b| b == 0).count();
    if len < 0x80 {
        out.extend(octets.last());
    } else {
        out.push(0x80 | u8::try_from(significant).unwrap_or(0));
        out.extend(octets.iter().skip(octets.len().saturating_sub(significant)));
    }
    out.extend_from_slice(contents);
    out
}

/// The DER Name (an ID_DER_ASN1_DN identity) of a DN written as `(attribute, value)` pairs
/// in order, e.g. `[("C", "CH"), ("O", "xipsec"), ("CN", "gw")]`; attributes by their short
/// names (C, ST, L, O, OU, CN, SN, serialNumber, DC, UID, E). `None` for an unknown attribute.
/// [`dn_equal`] compares names regardless of their string types, so this matches a
/// certificate's subject written with other string types.
pub fn encode_dn<'a>(rdns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Vec<u8>> {
    let mut seq = Vec::new();
    for (attr, value) in rdns {
        let &(_, oid, string_tag) = DN_ATTRIBUTES
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(attr))?;
        let pair = [
            der_tlv(tag::OID, oid),
            der_tlv(string_tag, value.as_bytes()),
        ]
        .concat();
        seq.extend(der_tlv(0x31, &der_tlv(tag::SEQUENCE, &pair)));
    }
    Some(der_tlv(tag::SEQUENCE, &seq))
}

/// The attributes of a DER Name as (OID, value) in order, or `None` if it does not parse or
/// holds a value that is not a string.
fn dn_attributes(der: &[u8]) -> Option<Vec<(Vec<u8>, String)>> {
    let (rest, name) = X509Name::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    name.iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .map(|a| {
            let value = a.as_str().ok()?;
            Some((a.attr_type().as_bytes().to_vec(), value.to_string()))
        })
        .collect()
}

/// Whether two DER Names are the same DN: equal octets, or the same attributes in the same
/// order with values that differ at most in ASCII case and string type (PrintableString
/// against UTF8String, as different tools encode them; strongSwan compares the same way).
pub fn dn_equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match (dn_attributes(a), dn_attributes(b)) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|((oa, va), (ob, vb))| oa == ob && va.eq_ignore_ascii_case(vb))
        }
        _ => false,
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| s.saturating_neg()),
    }
}

/// The CAs a peer's certificate must chain to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    certs: Vec<Certificate>,
}

impl TrustAnchors {
    /// Trusts these certificates (normally self-signed CA certificates; an intermediate CA
    /// works too, and so does a peer's own end-entity certificate).
    pub fn new(certs: Vec<Certificate>) -> TrustAnchors {
        TrustAnchors { certs }
    }

    /// The trusted certificates.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    /// The Certification Authority field of a CERTREQ: the SHA-1 hashes of the anchors'
    /// public keys, concatenated (RFC 7296 §3.7).
    pub fn certreq_hashes(&self) -> Vec<u8> {
        self.certs.iter().flat_map(|c| c.spki_sha1()).collect()
    }

    /// Validates `end_entity` at `at`: its own checks, then a path through `intermediates`
    /// (in any order, unused ones ignored) to one of the anchors. Each issuer must be a CA
    /// (basicConstraints; keyCertSign if keyUsage is present), within its validity and its
    /// pathLenConstraint, and its key must verify the signature below it.
    pub fn verify(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        at: SystemTime,
    ) -> Result<(), CertError> {
        end_entity.check_end_entity(at)?;
        if self.certs.iter().any(|a| a.der == end_entity.der) {
            return Ok(());
        }
        let mut path = Vec::new();
        self.extend(end_entity, intermediates, unix(at), &mut path)
    }

    /// Depth-first search for an issuer of `cert`; `path` holds the intermediates used above
    /// the end entity so far. The error of the most promising branch is kept.
    fn extend<'a>(
        &self,
        cert: &Certificate,
        intermediates: &'a [Certificate],
        at: i64,
        path: &mut Vec<&'a Certificate>,
    ) -> Result<(), CertError> {
        let mut error = CertError::UnknownIssuer;
        let usable = |issuer: &Certificate, below: usize| -> Result<(), CertError> {
            if issuer.unknown_critical {
                return Err(CertError::UnknownCriticalExtension);
            }
            let Some(path_len) = issuer.ca else {
                return Err(CertError::NotACa);
            };
            if issuer
                .key_usage
                .is_some_and(|ku| ku & KU_KEY_CERT_SIGN == 0)
                || path_len.is_some_and(|n| usize::try_from(n).unwrap_or(usize::MAX) < below)
            {
                return Err(CertError::NotACa);
            }
            issuer.check_time(at)?;
            cert.signed_by(issuer)
        };
        for anchor in self.certs.iter().filter(|a| a.subject == cert.issuer) {
            match usable(anchor, path.len()) {
                Ok(()) => return Ok(()),
                Err(e) => error = e,
            }
        }
        if path.len() >= MAX_INTERMEDIATES {
            return Err(CertError::ChainTooLong);
        }
        for next in intermediates.iter().filter(|c| c.subject == cert.issuer) {
            if path.iter().any(|p| p.der == next.der) || next.der == cert.der {
                continue;
            }
            if let Err(e) = usable(next, path.len()) {
                error = e;
                continue;
            }
            path.push(next);
            match self.extend(next, intermediates, at, path) {
                Ok(()) => return Ok(()),
                Err(e) => error = e,
            }
            path.pop();
        }
        Err(error)
    }
}

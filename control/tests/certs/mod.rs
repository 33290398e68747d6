//! A test PKI made with rcgen: CAs, intermediates and end-entity certificates for the Pair
//! harness, with every key type we sign with.
#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use xipsec_control::crypto::{Certificate, TrustAnchors};
use xipsec_control::ike::{Credentials, LocalAuth, PeerAuth};

/// The key types of the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    P256,
    P384,
    Rsa,
    Ed25519,
}

impl Alg {
    pub fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Alg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Alg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Alg::Rsa => &rcgen::PKCS_RSA_SHA256,
            Alg::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    pub fn key(self) -> KeyPair {
        KeyPair::generate_for(self.rcgen()).unwrap()
    }
}

/// A CA that can issue certificates.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub cert: rcgen::Certificate,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "xipsec tests");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl Ca {
    /// A self-signed root.
    pub fn root(cn: &str, alg: Alg) -> Ca {
        let key = alg.key();
        let params = ca_params(cn);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, cn: &str, alg: Alg) -> Ca {
        let key = alg.key();
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    pub fn parsed(&self) -> Certificate {
        Certificate::from_der(self.cert.der()).unwrap()
    }

    pub fn anchors(&self) -> PeerAuth {
        PeerAuth::Certificate(Arc::new(TrustAnchors::new(vec![self.parsed()])))
    }

    /// An end-entity certificate for `sans` (an `@` makes an rfc822Name, an address an
    /// iPAddress, anything else a dNSName).
    pub fn issue(&self, cn: &str, sans: &[&str], alg: Alg) -> EndEntity {
        self.issue_with(cn, sans, alg, |_| {})
    }

    pub fn issue_with(
        &self,
        cn: &str,
        sans: &[&str],
        alg: Alg,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> EndEntity {
        let key = alg.key();
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.subject_alt_names = sans
            .iter()
            .map(|s| {
                if let Ok(ip) = s.parse() {
                    SanType::IpAddress(ip)
                } else if s.contains('@') {
                    SanType::Rfc822Name((*s).try_into().unwrap())
                } else {
                    SanType::DnsName((*s).try_into().unwrap())
                }
            })
            .collect();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        tweak(&mut p);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        EndEntity { key, cert }
    }
}

/// An end entity's key and certificate.
pub struct EndEntity {
    pub key: KeyPair,
    pub cert: rcgen::Certificate,
}

impl EndEntity {
    /// Credentials with the certificate and `intermediates` (nearest first).
    pub fn credentials(&self, intermediates: &[&Ca]) -> Credentials {
        let mut pem = self.cert.pem();
        for i in intermediates {
            pem.push_str(&i.cert.pem());
        }
        Credentials::from_pem(pem.as_bytes(), self.key.serialize_pem().as_bytes()).unwrap()
    }

    pub fn local_auth(&self, intermediates: &[&Ca]) -> LocalAuth {
        LocalAuth::Signature(Arc::new(self.credentials(intermediates)))
    }

    pub fn parsed(&self) -> Certificate {
        Certificate::from_der(self.cert.der()).unwrap()
    }
}

/// Makes a certificate that expired in 2001.
pub fn expired(p: &mut CertificateParams) {
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2001, 1, 1);
}

/// Makes a certificate that becomes valid in 4000.
pub fn not_yet_valid(p: &mut CertificateParams) {
    p.not_before = rcgen::date_time_ymd(4000, 1, 1);
}

//! The IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registries the codec needs, as
//! enums named after the registry entries.
//!
//! Every enum keeps values it has no name for in an `Unknown(n)` variant, so that a message
//! carrying a value registered after this code was written (or a private-use value) still
//! decodes and re-encodes byte for byte. `Unknown(n)` is only produced for values without a
//! name: build named values with the named variant (or `from(n)`), never `Unknown(34)`.
//! The Notify Message Types registry lives in `notify.rs`, next to the payload that carries it.

/// Declares a registry enum: named variants with their wire values and IANA names, plus an
/// `Unknown` fallback, with lossless conversions to and from the wire representation.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ty {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $label:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", $label, "` (", stringify!($value), ").")]
                $(#[$vmeta])*
                $variant,
            )*
            /// A value this registry has no name for, kept as received.
            Unknown($repr),
        }

        impl $name {
            /// Every named value, in registry order.
            pub const NAMED: &'static [$name] = &[$($name::$variant,)*];

            /// The value as it is sent on the wire.
            pub const fn value(self) -> $repr {
                match self {
                    $($name::$variant => $value,)*
                    $name::Unknown(v) => v,
                }
            }

            /// The enum for a wire value; values without a name become `Unknown`.
            pub const fn from_value(v: $repr) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }

            /// The IANA registry name (as in the RFCs), or `None` for `Unknown`.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $($name::$variant => Some($label),)*
                    $name::Unknown(_) => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                Self::from_value(v)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.value()
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.value()),
                }
            }
        }
    };
}
pub(crate) use registry;

registry! {
    /// Exchange Types (RFC 7296 §3.1; IKE_INTERMEDIATE from RFC 9242, IKE_FOLLOWUP_KE from
    /// RFC 9370, IKE_SESSION_RESUME from RFC 5723).
    pub enum ExchangeType: u8 {
        IkeSaInit = 34 => "IKE_SA_INIT",
        IkeAuth = 35 => "IKE_AUTH",
        CreateChildSa = 36 => "CREATE_CHILD_SA",
        Informational = 37 => "INFORMATIONAL",
        IkeSessionResume = 38 => "IKE_SESSION_RESUME",
        IkeIntermediate = 43 => "IKE_INTERMEDIATE",
        IkeFollowupKe = 44 => "IKE_FOLLOWUP_KE",
    }
}

registry! {
    /// Payload Types (RFC 7296 §3.2; SKF from RFC 7383, GSPM from RFC 6467, IDg/GSA/KD from
    /// G-IKEv2, PS from RFC 8019). The codec understands 33–48 and 53; the others are carried
    /// as [`super::UnknownPayload`].
    pub enum PayloadType: u8 {
        NoNextPayload = 0 => "No Next Payload",
        /// Security Association.
        Sa = 33 => "SA",
        /// Key Exchange.
        Ke = 34 => "KE",
        /// Identification - Initiator.
        IdI = 35 => "IDi",
        /// Identification - Responder.
        IdR = 36 => "IDr",
        /// Certificate.
        Cert = 37 => "CERT",
        /// Certificate Request.
        CertReq = 38 => "CERTREQ",
        /// Authentication.
        Auth = 39 => "AUTH",
        /// Nonce.
        Nonce = 40 => "Ni, Nr",
        /// Notify.
        Notify = 41 => "N",
        /// Delete.
        Delete = 42 => "D",
        /// Vendor ID.
        VendorId = 43 => "V",
        /// Traffic Selector - Initiator.
        TsI = 44 => "TSi",
        /// Traffic Selector - Responder.
        TsR = 45 => "TSr",
        /// Encrypted and Authenticated.
        Sk = 46 => "SK",
        /// Configuration.
        Cp = 47 => "CP",
        /// Extensible Authentication.
        Eap = 48 => "EAP",
        /// Generic Secure Password Method (RFC 6467).
        Gspm = 49 => "GSPM",
        /// Group Identification (G-IKEv2).
        IdG = 50 => "IDg",
        /// Group Security Association (G-IKEv2).
        Gsa = 51 => "GSA",
        /// Key Download (G-IKEv2).
        Kd = 52 => "KD",
        /// Encrypted and Authenticated Fragment (RFC 7383).
        Skf = 53 => "SKF",
        /// Puzzle Solution (RFC 8019).
        Ps = 54 => "PS",
    }
}

registry! {
    /// Security Protocol Identifiers (RFC 7296 §3.3.1), used in proposals, Notify and Delete.
    pub enum ProtocolId: u8 {
        /// Zero: no protocol (a Notify not about an SA, RFC 7296 §3.10).
        Unspecified = 0 => "NONE",
        Ike = 1 => "IKE",
        Ah = 2 => "AH",
        Esp = 3 => "ESP",
        FcEspHeader = 4 => "FC_ESP_HEADER",
        FcCtAuthentication = 5 => "FC_CT_AUTHENTICATION",
    }
}

registry! {
    /// Transform Type Values (RFC 7296 §3.3.2; ADDKE1–7 from RFC 9370, which also renamed type 4
    /// from "Diffie-Hellman Group" to "Key Exchange Method").
    pub enum TransformType: u8 {
        /// Encryption Algorithm.
        Encr = 1 => "ENCR",
        /// Pseudorandom Function.
        Prf = 2 => "PRF",
        /// Integrity Algorithm.
        Integ = 3 => "INTEG",
        /// Key Exchange Method (formerly Diffie-Hellman Group).
        Ke = 4 => "KE",
        /// Extended Sequence Numbers.
        Esn = 5 => "ESN",
        AddKe1 = 6 => "ADDKE1",
        AddKe2 = 7 => "ADDKE2",
        AddKe3 = 8 => "ADDKE3",
        AddKe4 = 9 => "ADDKE4",
        AddKe5 = 10 => "ADDKE5",
        AddKe6 = 11 => "ADDKE6",
        AddKe7 = 12 => "ADDKE7",
    }
}

registry! {
    /// Transform Type 1 – Encryption Algorithm Transform IDs.
    pub enum EncrId: u16 {
        DesIv64 = 1 => "ENCR_DES_IV64",
        Des = 2 => "ENCR_DES",
        TripleDes = 3 => "ENCR_3DES",
        Rc5 = 4 => "ENCR_RC5",
        Idea = 5 => "ENCR_IDEA",
        Cast = 6 => "ENCR_CAST",
        Blowfish = 7 => "ENCR_BLOWFISH",
        TripleIdea = 8 => "ENCR_3IDEA",
        DesIv32 = 9 => "ENCR_DES_IV32",
        Null = 11 => "ENCR_NULL",
        /// AES-CBC (RFC 3602); key length attribute required.
        AesCbc = 12 => "ENCR_AES_CBC",
        AesCtr = 13 => "ENCR_AES_CTR",
        AesCcm8 = 14 => "ENCR_AES_CCM_8",
        AesCcm12 = 15 => "ENCR_AES_CCM_12",
        AesCcm16 = 16 => "ENCR_AES_CCM_16",
        /// AES-GCM with an 8-octet ICV (RFC 4106, RFC 5282).
        AesGcm8 = 18 => "ENCR_AES_GCM_8",
        /// AES-GCM with a 12-octet ICV.
        AesGcm12 = 19 => "ENCR_AES_GCM_12",
        /// AES-GCM with a 16-octet ICV.
        AesGcm16 = 20 => "ENCR_AES_GCM_16",
        NullAuthAesGmac = 21 => "ENCR_NULL_AUTH_AES_GMAC",
        CamelliaCbc = 23 => "ENCR_CAMELLIA_CBC",
        CamelliaCtr = 24 => "ENCR_CAMELLIA_CTR",
        CamelliaCcm8 = 25 => "ENCR_CAMELLIA_CCM_8",
        CamelliaCcm12 = 26 => "ENCR_CAMELLIA_CCM_12",
        CamelliaCcm16 = 27 => "ENCR_CAMELLIA_CCM_16",
        /// ChaCha20-Poly1305 (RFC 7634).
        Chacha20Poly1305 = 28 => "ENCR_CHACHA20_POLY1305",
        AesCcm8Iiv = 29 => "ENCR_AES_CCM_8_IIV",
        AesGcm16Iiv = 30 => "ENCR_AES_GCM_16_IIV",
        Chacha20Poly1305Iiv = 31 => "ENCR_CHACHA20_POLY1305_IIV",
        KuznyechikMgmKtree = 32 => "ENCR_KUZNYECHIK_MGM_KTREE",
        MagmaMgmKtree = 33 => "ENCR_MAGMA_MGM_KTREE",
        KuznyechikMgmMacKtree = 34 => "ENCR_KUZNYECHIK_MGM_MAC_KTREE",
        MagmaMgmMacKtree = 35 => "ENCR_MAGMA_MGM_MAC_KTREE",
    }
}

registry! {
    /// Transform Type 2 – Pseudorandom Function Transform IDs.
    pub enum PrfId: u16 {
        HmacMd5 = 1 => "PRF_HMAC_MD5",
        HmacSha1 = 2 => "PRF_HMAC_SHA1",
        HmacTiger = 3 => "PRF_HMAC_TIGER",
        Aes128Xcbc = 4 => "PRF_AES128_XCBC",
        HmacSha2_256 = 5 => "PRF_HMAC_SHA2_256",
        HmacSha2_384 = 6 => "PRF_HMAC_SHA2_384",
        HmacSha2_512 = 7 => "PRF_HMAC_SHA2_512",
        Aes128Cmac = 8 => "PRF_AES128_CMAC",
        HmacStreebog512 = 9 => "PRF_HMAC_STREEBOG_512",
    }
}

registry! {
    /// Transform Type 3 – Integrity Algorithm Transform IDs.
    pub enum IntegId: u16 {
        None = 0 => "NONE",
        HmacMd5_96 = 1 => "AUTH_HMAC_MD5_96",
        HmacSha1_96 = 2 => "AUTH_HMAC_SHA1_96",
        DesMac = 3 => "AUTH_DES_MAC",
        KpdkMd5 = 4 => "AUTH_KPDK_MD5",
        AesXcbc96 = 5 => "AUTH_AES_XCBC_96",
        HmacMd5_128 = 6 => "AUTH_HMAC_MD5_128",
        HmacSha1_160 = 7 => "AUTH_HMAC_SHA1_160",
        AesCmac96 = 8 => "AUTH_AES_CMAC_96",
        Aes128Gmac = 9 => "AUTH_AES_128_GMAC",
        Aes192Gmac = 10 => "AUTH_AES_192_GMAC",
        Aes256Gmac = 11 => "AUTH_AES_256_GMAC",
        HmacSha2_256_128 = 12 => "AUTH_HMAC_SHA2_256_128",
        HmacSha2_384_192 = 13 => "AUTH_HMAC_SHA2_384_192",
        HmacSha2_512_256 = 14 => "AUTH_HMAC_SHA2_512_256",
    }
}

registry! {
    /// Transform Type 4 – Key Exchange Method Transform IDs (the Diffie-Hellman groups of
    /// RFC 7296 §3.3.2 and the registry as renamed by RFC 9370; ML-KEM from
    /// draft-ietf-ipsecme-ikev2-mlkem). Also the IDs of the ADDKE1–7 transform types and the
    /// group of the KE payload (§3.4).
    #[doc(alias = "DhGroup")]
    pub enum KeMethod: u16 {
        None = 0 => "NONE",
        Modp768 = 1 => "768-bit MODP Group",
        Modp1024 = 2 => "1024-bit MODP Group",
        Modp1536 = 5 => "1536-bit MODP Group",
        /// Group 14.
        Modp2048 = 14 => "2048-bit MODP Group",
        /// Group 15.
        Modp3072 = 15 => "3072-bit MODP Group",
        Modp4096 = 16 => "4096-bit MODP Group",
        Modp6144 = 17 => "6144-bit MODP Group",
        Modp8192 = 18 => "8192-bit MODP Group",
        /// Group 19 (NIST P-256, RFC 5903).
        Ecp256 = 19 => "256-bit random ECP group",
        /// Group 20 (NIST P-384).
        Ecp384 = 20 => "384-bit random ECP group",
        /// Group 21 (NIST P-521).
        Ecp521 = 21 => "521-bit random ECP group",
        Modp1024S160 = 22 => "1024-bit MODP Group with 160-bit Prime Order Subgroup",
        Modp2048S224 = 23 => "2048-bit MODP Group with 224-bit Prime Order Subgroup",
        Modp2048S256 = 24 => "2048-bit MODP Group with 256-bit Prime Order Subgroup",
        Ecp192 = 25 => "192-bit Random ECP Group",
        Ecp224 = 26 => "224-bit Random ECP Group",
        BrainpoolP224r1 = 27 => "brainpoolP224r1",
        BrainpoolP256r1 = 28 => "brainpoolP256r1",
        BrainpoolP384r1 = 29 => "brainpoolP384r1",
        BrainpoolP512r1 = 30 => "brainpoolP512r1",
        /// Group 31 (X25519, RFC 8031).
        Curve25519 = 31 => "Curve25519",
        /// Group 32 (X448, RFC 8031).
        Curve448 = 32 => "Curve448",
        Gost3410_2012_256 = 33 => "GOST3410_2012_256",
        Gost3410_2012_512 = 34 => "GOST3410_2012_512",
        /// ML-KEM-512 (FIPS 203).
        MlKem512 = 35 => "ml-kem-512",
        /// ML-KEM-768 (FIPS 203).
        MlKem768 = 36 => "ml-kem-768",
        /// ML-KEM-1024 (FIPS 203).
        MlKem1024 = 37 => "ml-kem-1024",
    }
}

registry! {
    /// Transform Type 5 – Extended Sequence Numbers Transform IDs.
    pub enum EsnId: u16 {
        NoEsn = 0 => "No Extended Sequence Numbers",
        Esn = 1 => "Extended Sequence Numbers",
    }
}

registry! {
    /// IKEv2 Identification Payload ID Types (RFC 7296 §3.5; ID_NULL from RFC 7619).
    pub enum IdType: u8 {
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        Fqdn = 2 => "ID_FQDN",
        Rfc822Addr = 3 => "ID_RFC822_ADDR",
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        KeyId = 11 => "ID_KEY_ID",
        FcName = 12 => "ID_FC_NAME",
        Null = 13 => "ID_NULL",
    }
}

registry! {
    /// IKEv2 Authentication Method (RFC 7296 §3.8; RFC 4754 ECDSA, RFC 6467, RFC 7619,
    /// RFC 7427 Digital Signature).
    pub enum AuthMethod: u8 {
        RsaDigitalSignature = 1 => "RSA Digital Signature",
        SharedKeyMic = 2 => "Shared Key Message Integrity Code",
        DssDigitalSignature = 3 => "DSS Digital Signature",
        EcdsaSha256P256 = 9 => "ECDSA with SHA-256 on the P-256 curve",
        EcdsaSha384P384 = 10 => "ECDSA with SHA-384 on the P-384 curve",
        EcdsaSha512P521 = 11 => "ECDSA with SHA-512 on the P-521 curve",
        GenericSecurePassword = 12 => "Generic Secure Password Authentication Method",
        NullAuthentication = 13 => "NULL Authentication",
        /// RFC 7427: the AUTH data starts with an AlgorithmIdentifier.
        DigitalSignature = 14 => "Digital Signature",
    }
}

registry! {
    /// IKEv2 Certificate Encodings (RFC 7296 §3.6; OCSP Content from RFC 4806, Raw Public Key
    /// from RFC 7670).
    pub enum CertEncoding: u8 {
        Pkcs7WrappedX509 = 1 => "PKCS #7 wrapped X.509 certificate",
        Pgp = 2 => "PGP Certificate",
        DnsSignedKey = 3 => "DNS Signed Key",
        X509Signature = 4 => "X.509 Certificate - Signature",
        KerberosToken = 6 => "Kerberos Token",
        Crl = 7 => "Certificate Revocation List (CRL)",
        Arl = 8 => "Authority Revocation List (ARL)",
        Spki = 9 => "SPKI Certificate",
        X509Attribute = 10 => "X.509 Certificate - Attribute",
        RawRsaKey = 11 => "Raw RSA Key",
        HashUrlX509Cert = 12 => "Hash and URL of X.509 certificate",
        HashUrlX509Bundle = 13 => "Hash and URL of X.509 bundle",
        OcspContent = 14 => "OCSP Content",
        RawPublicKey = 15 => "Raw Public Key",
    }
}

registry! {
    /// IKEv2 Traffic Selector Types (RFC 7296 §3.13.1; TS_FC_ADDR_RANGE from RFC 4595,
    /// TS_SECLABEL from RFC 9478).
    pub enum TsType: u8 {
        Ipv4AddrRange = 7 => "TS_IPV4_ADDR_RANGE",
        Ipv6AddrRange = 8 => "TS_IPV6_ADDR_RANGE",
        FcAddrRange = 9 => "TS_FC_ADDR_RANGE",
        SecLabel = 10 => "TS_SECLABEL",
    }
}

registry! {
    /// IKEv2 Configuration Payload CFG Types (RFC 7296 §3.15).
    pub enum CfgType: u8 {
        Request = 1 => "CFG_REQUEST",
        Reply = 2 => "CFG_REPLY",
        Set = 3 => "CFG_SET",
        Ack = 4 => "CFG_ACK",
    }
}

registry! {
    /// IKEv2 Configuration Payload Attribute Types (RFC 7296 §3.15.1; RFC 4306, RFC 5739,
    /// RFC 5555, RFC 7651, 3GPP TS 24.302, RFC 8598). The wire field is 15 bits wide.
    pub enum CfgAttributeType: u16 {
        InternalIp4Address = 1 => "INTERNAL_IP4_ADDRESS",
        InternalIp4Netmask = 2 => "INTERNAL_IP4_NETMASK",
        InternalIp4Dns = 3 => "INTERNAL_IP4_DNS",
        InternalIp4Nbns = 4 => "INTERNAL_IP4_NBNS",
        InternalIp4Dhcp = 6 => "INTERNAL_IP4_DHCP",
        ApplicationVersion = 7 => "APPLICATION_VERSION",
        InternalIp6Address = 8 => "INTERNAL_IP6_ADDRESS",
        InternalIp6Dns = 10 => "INTERNAL_IP6_DNS",
        InternalIp6Dhcp = 12 => "INTERNAL_IP6_DHCP",
        InternalIp4Subnet = 13 => "INTERNAL_IP4_SUBNET",
        SupportedAttributes = 14 => "SUPPORTED_ATTRIBUTES",
        InternalIp6Subnet = 15 => "INTERNAL_IP6_SUBNET",
        Mip6HomePrefix = 16 => "MIP6_HOME_PREFIX",
        InternalIp6Link = 17 => "INTERNAL_IP6_LINK",
        InternalIp6Prefix = 18 => "INTERNAL_IP6_PREFIX",
        HomeAgentAddress = 19 => "HOME_AGENT_ADDRESS",
        PCscfIp4Address = 20 => "P_CSCF_IP4_ADDRESS",
        PCscfIp6Address = 21 => "P_CSCF_IP6_ADDRESS",
        FttKat = 22 => "FTT_KAT",
        ExternalSourceIp4NatInfo = 23 => "EXTERNAL_SOURCE_IP4_NAT_INFO",
        TimeoutPeriodForLivenessCheck = 24 => "TIMEOUT_PERIOD_FOR_LIVENESS_CHECK",
        InternalDnsDomain = 25 => "INTERNAL_DNS_DOMAIN",
        InternalDnssecTa = 26 => "INTERNAL_DNSSEC_TA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every named value maps back to itself and that no two names share a value
    /// (a typo in a table would otherwise make decode→encode silently lossy).
    macro_rules! check_registry {
        ($name:ident, $repr:ty) => {{
            let mut seen = std::collections::HashSet::new();
            for &v in $name::NAMED {
                assert_eq!($name::from_value(v.value()), v, "{v}");
                assert!(
                    seen.insert(v.value()),
                    "duplicate value in {}",
                    stringify!($name)
                );
                assert!(v.name().is_some());
            }
            let unknown = (0..=<$repr>::MAX)
                .find(|n| !seen.contains(n))
                .map($name::from_value);
            assert!(matches!(unknown, Some($name::Unknown(_))));
        }};
    }

    #[test]
    fn registries_round_trip_and_have_unique_values() {
        check_registry!(ExchangeType, u8);
        check_registry!(PayloadType, u8);
        check_registry!(ProtocolId, u8);
        check_registry!(TransformType, u8);
        check_registry!(EncrId, u16);
        check_registry!(PrfId, u16);
        check_registry!(IntegId, u16);
        check_registry!(KeMethod, u16);
        check_registry!(EsnId, u16);
        check_registry!(IdType, u8);
        check_registry!(AuthMethod, u8);
        check_registry!(CertEncoding, u8);
        check_registry!(TsType, u8);
        check_registry!(CfgType, u8);
        check_registry!(CfgAttributeType, u16);
    }

    #[test]
    fn display_uses_rfc_names() {
        assert_eq!(ExchangeType::IkeSaInit.to_string(), "IKE_SA_INIT");
        assert_eq!(EncrId::AesGcm16.to_string(), "ENCR_AES_GCM_16");
        assert_eq!(KeMethod::from(31).to_string(), "Curve25519");
        assert_eq!(ExchangeType::from(200).to_string(), "ExchangeType(200)");
        assert_eq!(AuthMethod::DigitalSignature.value(), 14);
    }
}

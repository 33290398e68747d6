//! The Notify payload (N, RFC 7296 §3.10) and the Notify Message Types registry (§3.10.1).

use super::codec::{put_u16, put_u8};
use super::types::registry;
use super::{Codec, DecodeError, KeMethod, ProtocolId, Reader};

registry! {
    /// IKEv2 Notify Message Types: errors (0–16383) and status types (16384–65535).
    ///
    /// Every type IANA has registered up to SA_RESOURCE_INFO and beyond, from RFC 7296 itself,
    /// RFC 4555 (MOBIKE), RFC 5685 (redirect), RFC 6311 (message-ID sync), RFC 7383
    /// (fragmentation), RFC 7427 (signature hash algorithms), RFC 9370 (multiple key
    /// exchanges), RFC 9611 (per-resource Child SAs) and the other registrations in between.
    #[doc(alias = "Notify Message Type")]
    pub enum NotifyType: u16 {
        // Error types (RFC 7296 §3.10.1 unless noted).
        UnsupportedCriticalPayload = 1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        InvalidIkeSpi = 4 => "INVALID_IKE_SPI",
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        InvalidSyntax = 7 => "INVALID_SYNTAX",
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        InvalidSpi = 11 => "INVALID_SPI",
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        InvalidKePayload = 17 => "INVALID_KE_PAYLOAD",
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        SinglePairRequired = 34 => "SINGLE_PAIR_REQUIRED",
        NoAdditionalSas = 35 => "NO_ADDITIONAL_SAS",
        InternalAddressFailure = 36 => "INTERNAL_ADDRESS_FAILURE",
        FailedCpRequired = 37 => "FAILED_CP_REQUIRED",
        TsUnacceptable = 38 => "TS_UNACCEPTABLE",
        InvalidSelectors = 39 => "INVALID_SELECTORS",
        /// RFC 4555 (MOBIKE).
        UnacceptableAddresses = 40 => "UNACCEPTABLE_ADDRESSES",
        /// RFC 4555 (MOBIKE).
        UnexpectedNatDetected = 41 => "UNEXPECTED_NAT_DETECTED",
        /// RFC 5026.
        UseAssignedHoA = 42 => "USE_ASSIGNED_HoA",
        TemporaryFailure = 43 => "TEMPORARY_FAILURE",
        ChildSaNotFound = 44 => "CHILD_SA_NOT_FOUND",
        /// G-IKEv2.
        InvalidGroupId = 45 => "INVALID_GROUP_ID",
        /// G-IKEv2.
        AuthorizationFailed = 46 => "AUTHORIZATION_FAILED",
        /// RFC 9370.
        StateNotFound = 47 => "STATE_NOT_FOUND",
        /// RFC 9611.
        TsMaxQueue = 48 => "TS_MAX_QUEUE",
        /// G-IKEv2.
        RegistrationFailed = 49 => "REGISTRATION_FAILED",
        // Status types.
        InitialContact = 16384 => "INITIAL_CONTACT",
        SetWindowSize = 16385 => "SET_WINDOW_SIZE",
        AdditionalTsPossible = 16386 => "ADDITIONAL_TS_POSSIBLE",
        IpcompSupported = 16387 => "IPCOMP_SUPPORTED",
        NatDetectionSourceIp = 16388 => "NAT_DETECTION_SOURCE_IP",
        NatDetectionDestinationIp = 16389 => "NAT_DETECTION_DESTINATION_IP",
        Cookie = 16390 => "COOKIE",
        UseTransportMode = 16391 => "USE_TRANSPORT_MODE",
        HttpCertLookupSupported = 16392 => "HTTP_CERT_LOOKUP_SUPPORTED",
        RekeySa = 16393 => "REKEY_SA",
        EspTfcPaddingNotSupported = 16394 => "ESP_TFC_PADDING_NOT_SUPPORTED",
        NonFirstFragmentsAlso = 16395 => "NON_FIRST_FRAGMENTS_ALSO",
        /// RFC 4555 (MOBIKE).
        MobikeSupported = 16396 => "MOBIKE_SUPPORTED",
        /// RFC 4555 (MOBIKE).
        AdditionalIp4Address = 16397 => "ADDITIONAL_IP4_ADDRESS",
        /// RFC 4555 (MOBIKE).
        AdditionalIp6Address = 16398 => "ADDITIONAL_IP6_ADDRESS",
        /// RFC 4555 (MOBIKE).
        NoAdditionalAddresses = 16399 => "NO_ADDITIONAL_ADDRESSES",
        /// RFC 4555 (MOBIKE).
        UpdateSaAddresses = 16400 => "UPDATE_SA_ADDRESSES",
        /// RFC 4555 (MOBIKE).
        Cookie2 = 16401 => "COOKIE2",
        /// RFC 4555 (MOBIKE).
        NoNatsAllowed = 16402 => "NO_NATS_ALLOWED",
        /// RFC 4478.
        AuthLifetime = 16403 => "AUTH_LIFETIME",
        /// RFC 4739.
        MultipleAuthSupported = 16404 => "MULTIPLE_AUTH_SUPPORTED",
        /// RFC 4739.
        AnotherAuthFollows = 16405 => "ANOTHER_AUTH_FOLLOWS",
        /// RFC 5685.
        RedirectSupported = 16406 => "REDIRECT_SUPPORTED",
        /// RFC 5685.
        Redirect = 16407 => "REDIRECT",
        /// RFC 5685.
        RedirectedFrom = 16408 => "REDIRECTED_FROM",
        /// RFC 5723.
        TicketLtOpaque = 16409 => "TICKET_LT_OPAQUE",
        /// RFC 5723.
        TicketRequest = 16410 => "TICKET_REQUEST",
        /// RFC 5723.
        TicketAck = 16411 => "TICKET_ACK",
        /// RFC 5723.
        TicketNack = 16412 => "TICKET_NACK",
        /// RFC 5723.
        TicketOpaque = 16413 => "TICKET_OPAQUE",
        /// RFC 5739.
        LinkId = 16414 => "LINK_ID",
        /// RFC 5840.
        UseWespMode = 16415 => "USE_WESP_MODE",
        /// RFC 5857.
        RohcSupported = 16416 => "ROHC_SUPPORTED",
        /// RFC 5998.
        EapOnlyAuthentication = 16417 => "EAP_ONLY_AUTHENTICATION",
        /// RFC 6023.
        ChildlessIkev2Supported = 16418 => "CHILDLESS_IKEV2_SUPPORTED",
        /// RFC 6290.
        QuickCrashDetection = 16419 => "QUICK_CRASH_DETECTION",
        /// RFC 6311.
        Ikev2MessageIdSyncSupported = 16420 => "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
        /// RFC 6311.
        IpsecReplayCounterSyncSupported = 16421 => "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
        /// RFC 6311.
        Ikev2MessageIdSync = 16422 => "IKEV2_MESSAGE_ID_SYNC",
        /// RFC 6311.
        IpsecReplayCounterSync = 16423 => "IPSEC_REPLAY_COUNTER_SYNC",
        /// RFC 6467.
        SecurePasswordMethods = 16424 => "SECURE_PASSWORD_METHODS",
        /// RFC 6631.
        PskPersist = 16425 => "PSK_PERSIST",
        /// RFC 6631.
        PskConfirm = 16426 => "PSK_CONFIRM",
        /// RFC 6867.
        ErxSupported = 16427 => "ERX_SUPPORTED",
        /// 3GPP TS 24.303.
        IfomCapability = 16428 => "IFOM_CAPABILITY",
        /// G-IKEv2.
        GroupSender = 16429 => "GROUP_SENDER",
        /// RFC 7383.
        Ikev2FragmentationSupported = 16430 => "IKEV2_FRAGMENTATION_SUPPORTED",
        /// RFC 7427.
        SignatureHashAlgorithms = 16431 => "SIGNATURE_HASH_ALGORITHMS",
        /// RFC 7791.
        CloneIkeSaSupported = 16432 => "CLONE_IKE_SA_SUPPORTED",
        /// RFC 7791.
        CloneIkeSa = 16433 => "CLONE_IKE_SA",
        /// RFC 8019.
        Puzzle = 16434 => "PUZZLE",
        /// RFC 8784.
        UsePpk = 16435 => "USE_PPK",
        /// RFC 8784.
        PpkIdentity = 16436 => "PPK_IDENTITY",
        /// RFC 8784.
        NoPpkAuth = 16437 => "NO_PPK_AUTH",
        /// RFC 9242.
        IntermediateExchangeSupported = 16438 => "INTERMEDIATE_EXCHANGE_SUPPORTED",
        /// RFC 8983.
        Ip4Allowed = 16439 => "IP4_ALLOWED",
        /// RFC 8983.
        Ip6Allowed = 16440 => "IP6_ALLOWED",
        /// RFC 9370.
        AdditionalKeyExchange = 16441 => "ADDITIONAL_KEY_EXCHANGE",
        /// RFC 9347.
        UseAggfrag = 16442 => "USE_AGGFRAG",
        /// RFC 9593.
        SupportedAuthMethods = 16443 => "SUPPORTED_AUTH_METHODS",
        /// RFC 9611.
        SaResourceInfo = 16444 => "SA_RESOURCE_INFO",
        /// RFC 9867.
        UsePpkInt = 16445 => "USE_PPK_INT",
        /// RFC 9867.
        PpkIdentityKey = 16446 => "PPK_IDENTITY_KEY",
        IkeSaInitFullTranscriptAuth = 16447 => "IKE_SA_INIT_FULL_TRANSCRIPT_AUTH",
    }
}

impl NotifyType {
    /// Whether this is an error type (0–16383). RFC 7296 §3.10.1: an unrecognised error type in
    /// a response means the request failed; an unrecognised status type is ignored.
    pub const fn is_error(self) -> bool {
        self.value() < 16384
    }
}

/// The Notify payload (N, RFC 7296 §3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// The protocol of the SA this notification is about, or [`ProtocolId::Unspecified`].
    pub protocol: ProtocolId,
    /// The SPI of that SA (its length is the SPI Size field); empty if none.
    pub spi: Vec<u8>,
    /// The Notify Message Type.
    pub notify_type: NotifyType,
    /// The Notification Data, opaque here; its format depends on the type.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification not about any SA (protocol 0, no SPI), as most are.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Notify {
            protocol: ProtocolId::Unspecified,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// UNSUPPORTED_CRITICAL_PAYLOAD, whose data is the one-octet payload type (RFC 7296 §3.10.1).
    pub fn unsupported_critical_payload(payload_type: u8) -> Self {
        Notify::new(NotifyType::UnsupportedCriticalPayload, vec![payload_type])
    }

    /// INVALID_KE_PAYLOAD, whose data is the two-octet group the responder wants (§1.2, §3.10.1).
    pub fn invalid_ke_payload(group: KeMethod) -> Self {
        Notify::new(
            NotifyType::InvalidKePayload,
            group.value().to_be_bytes().to_vec(),
        )
    }

    /// The group an INVALID_KE_PAYLOAD asks for, if this is one with well-formed data.
    pub fn requested_group(&self) -> Option<KeMethod> {
        if self.notify_type != NotifyType::InvalidKePayload {
            return None;
        }
        let bytes = <[u8; 2]>::try_from(self.data.as_slice()).ok()?;
        Some(KeMethod::from(u16::from_be_bytes(bytes)))
    }
}

impl Codec for Notify {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.protocol.value());
        put_u8(out, u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        put_u16(out, self.notify_type.value());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from(r.u8("Notify Protocol ID")?);
        let spi_size = r.u8("Notify SPI Size")?;
        let notify_type = NotifyType::from(r.u16("Notify Message Type")?);
        let spi = r.take(usize::from(spi_size), "Notify SPI")?.to_vec();
        let data = r.rest().to_vec();
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_with_spi_round_trips() -> Result<(), DecodeError> {
        let n = Notify {
            protocol: ProtocolId::Esp,
            spi: vec![1, 2, 3, 4],
            notify_type: NotifyType::RekeySa,
            data: vec![],
        };
        let bytes = n.to_bytes();
        assert_eq!(bytes, [3, 4, 0x40, 0x09, 1, 2, 3, 4]);
        assert_eq!(Notify::read(&mut Reader::new(&bytes))?, n);
        Ok(())
    }

    #[test]
    fn spi_size_beyond_payload_is_truncation() {
        let r = Notify::read(&mut Reader::new(&[3, 4, 0x40, 0x09, 1, 2]));
        assert_eq!(r, Err(DecodeError::Truncated { what: "Notify SPI" }));
    }

    #[test]
    fn error_and_status_ranges() {
        assert!(NotifyType::InvalidSyntax.is_error());
        assert!(NotifyType::from(16383).is_error());
        assert!(!NotifyType::Cookie.is_error());
        assert_eq!(
            Notify::invalid_ke_payload(KeMethod::Curve25519).requested_group(),
            Some(KeMethod::Curve25519)
        );
    }
}

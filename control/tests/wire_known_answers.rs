//! Known answers: IKEv2 messages captured from real implementations, decoded field by field
//! and re-encoded byte for byte.
//!
//! Sources:
//! - `ANDROID_*`: the Android IKE library's unit tests (AOSP `packages/modules/IPsec`,
//!   `tests/iketests/src/java/com/android/internal/net/ipsec/ike/message/IkeMessageTest.java`,
//!   Apache-2.0), which replay packets from its interop testing: an IKE_SA_INIT request, the
//!   IKE_AUTH request that followed it (SK), its decrypted inner payloads, an SKF fragment and
//!   an empty INFORMATIONAL (liveness check).
//! - `WINDOWS_STYLE_INIT`: sample 1 of a public TypeScript IKEv2 parser's test suite: an
//!   IKE_SA_INIT request with the Microsoft vendor IDs, ECP-256, AES-GCM-16-256, and the
//!   IKEV2_FRAGMENTATION_SUPPORTED / REDIRECT_SUPPORTED / SIGNATURE_HASH_ALGORITHMS notifies.
//!   Its exact origin is not documented there; the byte layout is what Windows clients send.

mod common;

use std::net::Ipv4Addr;

use common::hex;
use xipsec_control::wire::*;

const ANDROID_IKE_SA_INIT: &str = "
    8f54bf6d8b48e6e10000000000000000212022080000000000000150
    220000300000002c010100040300000c0100000c
    800e00800300000803000002030000080400000200000008
    020000022800008800020000b4a2faf4bb54878ae21d6385
    12ece55d9236fc5046ab6cef82220f421f3ce6361faf3656
    4ecb6d28798a94aad7b2b4b603ddeaaa5630adb9ece8ac37
    534036040610ebdd92f46bef84f0be7db860351843858f8a
    cf87056e272377f70c9f2d81e29c7b0ce4f291a3a72476bb
    0b278fd4b7b0a4c26bbeb08214c707137607958729000024
    c39b7f368f4681b89fa9b7be6465abd7c5f68b6ed5d3b4c7
    2cb4240eb5c464122900001c00004004e54f73b7d83f6beb
    881eab2051d8663f421d10b02b00001c00004005d915368c
    a036004cb578ae3e3fb268509aeab1900000002069936922
    8741c6d4ca094c93e242c9de19e7b7c60000000500000500";

const ANDROID_IKE_AUTH: &str = "
    5f54bf6d8b48e6e1909232b3d1edcb5c2e20230800000001000000ec
    230000d0b9132b7bb9f658dfdc648e5017a6322a030c316c
    e55f365760d46426ce5cfc78bd1ed9abff63eb9594c1bd58
    46de333ecd3ea2b705d18293b130395300ba92a351041345
    0a10525cea51b2753b4e92b081fd78d995659a98f742278f
    f9b8fd3e21554865c15c79a5134d66b2744966089e416c60
    a274e44a9a3f084eb02f3bdce1e7de9de8d9a62773ab563b
    9a69ba1db03c752acb6136452b8a86c41addb4210d68c423
    efed80e26edca5fa3fe5d0a5ca9375ce332c474b93fb1fa3
    59eb4e81ae6e0f22abdad69ba8007d50";

/// The plaintext of `ANDROID_IKE_AUTH`'s SK payload: inner payloads, 11 octets of padding and
/// the Pad Length octet (0x0b).
const ANDROID_IKE_AUTH_PLAINTEXT: &str = "
    2400000c010000000a50500d2700000c010000000a505050
    2100001c02000000df7c038aefaaa32d3f44b228b52a3327
    44dfb2c12c00002c00000028010304032ad4c0a20300000c
    0100000c800e008003000008030000020000000805000000
    2d00001801000000070000100000ffff00000000ffffffff
    2900001801000000070000100000ffff00000000ffffffff
    29000008000040000000000c000040010000000100000000
    000000000000000b";

const ANDROID_SKF: &str = "
    939ae1251d18eb9077a99551b15c6e9335202320000000010000
    00c0000000a400020002fd7c7931705af184b7be76bbd45a
    8ecbb3ffd58b9438b93f67e9fe86b06229f80e9b52d2ff6a
    fde3f2c13ae93ce55a801f62e1a818c9003880a36bbe986f
    e6979ba233b9f4f0ddc992d06dbad5a2b998be18fae947e5
    ccfb37775d069344e711fbf499bb289cf4cca245bd450ad8
    9d18689207759507ba18d47247e920b9e000a25a7596e413
    0929e5cdc37d5c1b0d90bbaae946c260f4d3cf815f6d";

const ANDROID_EMPTY_INFORMATIONAL: &str = "
    5f54bf6d8b48e6e1909232b3d1edcb5c2e20252800000000
    0000004c00000030e376871750fdba9f7012446c5dc3f97a
    f83b48ba0dbc68bcc4a78136832100aa4192f251cd4d1b97
    d298e550";

const WINDOWS_STYLE_INIT: &str = "
    89922c915f35570e000000000000000021202208000000000000012c
    2200002800000024010100030300000c01000014800e01000300000802000005000000080400001328000048
    00130000db253178440ce776a794133cb8b69e5eb074733536570c64d7b630549c899c0712d828b371685008
    85e051024578afc75c101f73b8943cad62d74a30f2be1fca2b00002c09cb538b2c3dbd4d0bb0eec8d318cb80
    1a9b4715b207828d9b5ff1f4ec64ed58863707bcf14ccf052b000014eb4c1b788afd4a9cb7730a68d56c5321
    2b000014c61baca1f1a60cc108000000000000002b0000184048b7d56ebce88525e7de7f00d6c2d3c0000000
    290000144048b7d56ebce88525e7de7f00d6c2d3290000080000402e2900000800004016000000100000402f
    0001000200030004";

fn round_trip(bytes: &[u8]) -> Message {
    let msg = Message::decode(bytes).expect("decodes");
    assert_eq!(msg.encode(), bytes, "re-encoding is byte-exact");
    msg
}

#[test]
fn android_ike_sa_init_request() {
    let bytes = hex(ANDROID_IKE_SA_INIT);
    assert_eq!(bytes.len(), 336);
    let msg = round_trip(&bytes);

    let h = &msg.header;
    assert_eq!(h.initiator_spi, 0x8f54_bf6d_8b48_e6e1);
    assert_eq!(h.responder_spi, 0);
    assert_eq!((h.major_version, h.minor_version), (2, 0));
    assert_eq!(h.exchange_type, ExchangeType::IkeSaInit);
    assert_eq!(
        h.flags,
        Flags {
            initiator: true,
            version: false,
            response: false
        }
    );
    assert_eq!(h.message_id, 0);

    let types: Vec<_> = msg.payloads.iter().map(Payload::payload_type).collect();
    assert_eq!(
        types,
        [
            PayloadType::Sa,
            PayloadType::Ke,
            PayloadType::Nonce,
            PayloadType::Notify,
            PayloadType::Notify,
            PayloadType::VendorId
        ]
    );

    let Payload::Sa(sa) = &msg.payloads[0] else {
        panic!("SA")
    };
    assert_eq!(sa.proposals.len(), 1);
    let p = &sa.proposals[0];
    assert_eq!((p.number, p.protocol, p.spi.len()), (1, ProtocolId::Ike, 0));
    assert_eq!(
        p.transforms,
        [
            Transform::with_key_length(TransformId::Encr(EncrId::AesCbc), 128),
            Transform::new(TransformId::Integ(IntegId::HmacSha1_96)),
            Transform::new(TransformId::Ke(KeMethod::Modp1024)),
            Transform::new(TransformId::Prf(PrfId::HmacSha1)),
        ]
    );

    let Payload::Ke(ke) = &msg.payloads[1] else {
        panic!("KE")
    };
    assert_eq!(ke.group, KeMethod::Modp1024);
    assert_eq!(ke.data.len(), 128);
    assert_eq!(&ke.data[..4], &[0xb4, 0xa2, 0xfa, 0xf4]);

    let Payload::Nonce(nonce) = &msg.payloads[2] else {
        panic!("Nonce")
    };
    assert_eq!(nonce.0.len(), 32);

    let Payload::Notify(n) = &msg.payloads[3] else {
        panic!("N")
    };
    assert_eq!(n.notify_type, NotifyType::NatDetectionSourceIp);
    assert_eq!(
        (n.protocol, n.spi.len(), n.data.len()),
        (ProtocolId::Unspecified, 0, 20)
    );
    let Payload::Notify(n) = &msg.payloads[4] else {
        panic!("N")
    };
    assert_eq!(n.notify_type, NotifyType::NatDetectionDestinationIp);

    let Payload::VendorId(v) = &msg.payloads[5] else {
        panic!("V")
    };
    assert_eq!(v.0.len(), 28);

    assert_eq!(locate_encrypted(&bytes), Ok(None));
}

#[test]
fn windows_style_ike_sa_init_request() {
    let bytes = hex(WINDOWS_STYLE_INIT);
    assert_eq!(bytes.len(), 300);
    let msg = round_trip(&bytes);
    assert_eq!(msg.header.initiator_spi, 0x8992_2c91_5f35_570e);
    assert_eq!(msg.header.exchange_type, ExchangeType::IkeSaInit);

    let Payload::Sa(sa) = &msg.payloads[0] else {
        panic!("SA")
    };
    assert_eq!(
        sa.proposals[0].transforms,
        [
            Transform::with_key_length(TransformId::Encr(EncrId::AesGcm16), 256),
            Transform::new(TransformId::Prf(PrfId::HmacSha2_256)),
            Transform::new(TransformId::Ke(KeMethod::Ecp256)),
        ]
    );
    let Payload::Ke(ke) = &msg.payloads[1] else {
        panic!("KE")
    };
    assert_eq!((ke.group, ke.data.len()), (KeMethod::Ecp256, 64));
    let Payload::Nonce(nonce) = &msg.payloads[2] else {
        panic!("Nonce")
    };
    assert_eq!(nonce.0.len(), 40);
    assert_eq!(msg.payloads_of(PayloadType::VendorId).count(), 4);

    let notifies: Vec<_> = msg
        .payloads_of(PayloadType::Notify)
        .map(|p| match p {
            Payload::Notify(n) => n.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        notifies.iter().map(|n| n.notify_type).collect::<Vec<_>>(),
        [
            NotifyType::Ikev2FragmentationSupported,
            NotifyType::RedirectSupported,
            NotifyType::SignatureHashAlgorithms
        ]
    );
    // RFC 7427 §4: SHA1, SHA2-256, SHA2-384, SHA2-512.
    assert_eq!(notifies[2].data, [0, 1, 0, 2, 0, 3, 0, 4]);
}

#[test]
fn android_ike_auth_request_is_one_sk_payload() {
    let bytes = hex(ANDROID_IKE_AUTH);
    assert_eq!(bytes.len(), 236);
    let msg = round_trip(&bytes);
    assert_eq!(msg.header.exchange_type, ExchangeType::IkeAuth);
    assert_eq!(msg.header.responder_spi, 0x9092_32b3_d1ed_cb5c);
    assert_eq!(msg.header.message_id, 1);
    let [Payload::Sk(sk)] = msg.payloads.as_slice() else {
        panic!("one SK")
    };
    assert_eq!(sk.next_payload, PayloadType::IdI);
    assert_eq!(sk.data.len(), 0xd0 - 4);

    let loc = locate_encrypted(&bytes).unwrap().expect("has SK");
    assert_eq!(loc.payload_type, PayloadType::Sk);
    assert_eq!(loc.payload_offset, 28);
    assert_eq!(
        bytes[loc.payload_offset], 35,
        "the inner first-payload type lives here"
    );
    assert_eq!(loc.first_inner, PayloadType::IdI);
    assert_eq!(loc.aad_end, 32);
    assert_eq!(loc.encrypted, 32..236);
    assert_eq!(&bytes[loc.encrypted.clone()], sk.data.as_slice());
    // The 16-octet AES-CBC IV the Android test names, then ciphertext, then the 12-octet ICV.
    assert_eq!(
        &bytes[loc.encrypted.start..][..4],
        &[0xb9, 0x13, 0x2b, 0x7b]
    );
    assert_eq!(
        &bytes[loc.encrypted.end - 12..],
        hex("ae6e0f22abdad69ba8007d50").as_slice()
    );
    assert_eq!(loc.fragment, None);
}

#[test]
fn android_ike_auth_plaintext_inner_chain() {
    let plaintext = hex(ANDROID_IKE_AUTH_PLAINTEXT);
    // The crypto layer strips padding: Pad Length is the last octet, plus itself.
    let pad = usize::from(*plaintext.last().unwrap()) + 1;
    let inner = &plaintext[..plaintext.len() - pad];
    let chain = decode_chain(PayloadType::IdI, inner).expect("inner payloads decode");

    let mut out = Vec::new();
    assert_eq!(encode_chain(&chain, &mut out), PayloadType::IdI);
    assert_eq!(out, inner, "byte-exact");

    assert_eq!(
        chain[0],
        Payload::IdI(Identification::ip(Ipv4Addr::new(10, 80, 80, 13).into()))
    );
    assert_eq!(
        chain[1],
        Payload::IdR(Identification::ip(Ipv4Addr::new(10, 80, 80, 80).into()))
    );
    let Payload::Auth(auth) = &chain[2] else {
        panic!("AUTH")
    };
    assert_eq!(auth.method, AuthMethod::SharedKeyMic);
    assert_eq!(auth.data.len(), 20);
    let Payload::Sa(sa) = &chain[3] else {
        panic!("SA")
    };
    let p = &sa.proposals[0];
    assert_eq!(p.protocol, ProtocolId::Esp);
    assert_eq!(p.spi, [0x2a, 0xd4, 0xc0, 0xa2]);
    assert_eq!(
        p.transforms,
        [
            Transform::with_key_length(TransformId::Encr(EncrId::AesCbc), 128),
            Transform::new(TransformId::Integ(IntegId::HmacSha1_96)),
            Transform::new(TransformId::Esn(EsnId::NoEsn)),
        ]
    );
    let any = TrafficSelectors {
        selectors: vec![TrafficSelector::ipv4_any()],
    };
    assert_eq!(chain[4], Payload::TsI(any.clone()));
    assert_eq!(chain[5], Payload::TsR(any));
    assert_eq!(
        chain[6],
        Payload::Notify(Notify::new(NotifyType::InitialContact, vec![]))
    );
    assert_eq!(
        chain[7],
        Payload::Notify(Notify::new(NotifyType::SetWindowSize, vec![0, 0, 0, 1]))
    );
    assert_eq!(chain.len(), 8);
}

#[test]
fn android_encrypted_fragment() {
    let bytes = hex(ANDROID_SKF);
    assert_eq!(bytes.len(), 192);
    let msg = round_trip(&bytes);
    assert_eq!(msg.header.exchange_type, ExchangeType::IkeAuth);
    assert!(msg.header.flags.response);
    let [Payload::Skf(skf)] = msg.payloads.as_slice() else {
        panic!("one SKF")
    };
    assert_eq!(
        skf.next_payload,
        PayloadType::NoNextPayload,
        "not the first fragment"
    );
    assert_eq!((skf.fragment_number, skf.total_fragments), (2, 2));
    assert_eq!(skf.data.len(), 0xa4 - 8);

    let loc = locate_encrypted(&bytes).unwrap().expect("has SKF");
    assert_eq!(loc.payload_type, PayloadType::Skf);
    assert_eq!(loc.fragment, Some((2, 2)));
    assert_eq!(
        loc.aad_end, 36,
        "IKE header, SKF header, Fragment Number, Total Fragments"
    );
    assert_eq!(loc.encrypted, 36..192);
}

#[test]
fn android_empty_informational() {
    let bytes = hex(ANDROID_EMPTY_INFORMATIONAL);
    let msg = round_trip(&bytes);
    assert_eq!(msg.header.exchange_type, ExchangeType::Informational);
    // Flags 0x28: the original initiator (I) answering the responder's liveness check (R).
    assert!(msg.header.flags.response && msg.header.flags.initiator);
    let [Payload::Sk(sk)] = msg.payloads.as_slice() else {
        panic!("one SK")
    };
    assert_eq!(
        sk.next_payload,
        PayloadType::NoNextPayload,
        "nothing inside: a liveness check"
    );
    assert_eq!(sk.data.len(), 16 + 16 + 12, "IV, one block, ICV");
}

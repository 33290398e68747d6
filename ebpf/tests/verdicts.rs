//! Deterministic verdict tests: hand-built frames through BPF_PROG_TEST_RUN, checking the
//! action the program returns and the counter it increments. Need root (CAP_BPF).

mod common;

use common::*;
use xipsec_ebpf::{Classifier, ClassifierConfig, Fault, IpNet, VerdictCounters, XdpAction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    EspToXsk,
    EspInUdpToXsk,
    PolicyToXsk,
    IkePass,
    KeepaliveDrop,
    FragmentPass,
    PassOther,
    MalformedPass,
}

impl Verdict {
    fn to_xsk(self) -> bool {
        matches!(
            self,
            Verdict::EspToXsk | Verdict::EspInUdpToXsk | Verdict::PolicyToXsk
        )
    }

    /// The counters one frame of this verdict moves, with no socket in the XSKMAP.
    fn counters(self) -> VerdictCounters {
        let mut counters = VerdictCounters::default();
        match self {
            Verdict::EspToXsk => counters.esp_to_xsk = 1,
            Verdict::EspInUdpToXsk => counters.esp_in_udp_to_xsk = 1,
            Verdict::PolicyToXsk => counters.policy_to_xsk = 1,
            Verdict::IkePass => counters.ike_pass = 1,
            Verdict::KeepaliveDrop => counters.keepalive_drop = 1,
            Verdict::FragmentPass => counters.fragment_pass = 1,
            Verdict::PassOther => counters.pass_other = 1,
            Verdict::MalformedPass => counters.malformed_pass = 1,
        }
        if self.to_xsk() {
            counters.xsk_fallback_pass = 1;
        }
        counters
    }

    /// The action with no socket in the XSKMAP: `bpf_redirect_map(..., XDP_PASS)` finds no
    /// entry and returns its fallback, so XSK candidates come back as XDP_PASS (checked on
    /// kernel 6.18; `xsk_fallback_pass` tells them apart).
    fn action(self) -> XdpAction {
        match self {
            Verdict::KeepaliveDrop => XdpAction::Drop,
            _ => XdpAction::Pass,
        }
    }
}

fn load(test: &str) -> Option<Classifier> {
    load_with(test, ClassifierConfig::default())
}

fn load_with(test: &str, config: ClassifierConfig) -> Option<Classifier> {
    if !have_root(test) {
        return None;
    }
    Some(Classifier::load(config).unwrap_or_else(|error| panic!("{test}: load: {error}")))
}

/// Runs `frame` once and checks the action and exactly which counters moved.
#[track_caller]
fn check(classifier: &Classifier, what: &str, frame: &[u8], verdict: Verdict) {
    let before = classifier.counters().unwrap();
    let action = classifier
        .test_run(frame)
        .unwrap_or_else(|error| panic!("{what}: test_run: {error}"));
    let delta = classifier.counters().unwrap().since(&before);
    assert_eq!(action, verdict.action(), "{what}: action ({verdict:?})");
    assert_eq!(delta, verdict.counters(), "{what}: counters ({verdict:?})");
}

fn esp_v4() -> Vec<u8> {
    ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_ESP,
            v4(198, 51, 100, 1),
            Frag::default(),
            &esp(0x7001, &[0xab; 32]),
        ),
    )
}

fn esp_v6() -> Vec<u8> {
    ethernet(
        &[],
        ETH_P_IPV6,
        &ipv6(PROTO_ESP, v6("2001:db8::1"), &esp(0x7001, &[0xab; 32])),
    )
}

fn udp_v4(dport: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_UDP,
            v4(198, 51, 100, 1),
            Frag::default(),
            &udp(dport, payload),
        ),
    )
}

fn udp_v6(dport: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        &[],
        ETH_P_IPV6,
        &ipv6(PROTO_UDP, v6("2001:db8::1"), &udp(dport, payload)),
    )
}

#[test]
fn esp_goes_to_the_socket() {
    let Some(c) = load("esp_goes_to_the_socket") else {
        return;
    };
    check(&c, "ESP v4", &esp_v4(), Verdict::EspToXsk);
    check(&c, "ESP v6", &esp_v6(), Verdict::EspToXsk);
    // Just the ESP header, nothing after it.
    let bare = ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_ESP,
            v4(198, 51, 100, 1),
            Frag::default(),
            &esp(1, &[]),
        ),
    );
    check(&c, "ESP v4, header only", &bare, Verdict::EspToXsk);
    // IPv4 options move the ESP header.
    let options = ethernet(
        &[],
        ETH_P_IP,
        &ipv4_with_options(
            PROTO_ESP,
            v4(198, 51, 100, 1),
            Frag::default(),
            &[1, 1, 1, 0, 1, 1, 1, 0],
            &esp(1, &[0; 16]),
        ),
    );
    check(&c, "ESP v4 with options", &options, Verdict::EspToXsk);
}

#[test]
fn an_empty_xskmap_falls_back_to_pass() {
    let Some(c) = load("an_empty_xskmap_falls_back_to_pass") else {
        return;
    };
    // What the kernel does: with no socket for queue 0 the redirect's fallback, XDP_PASS,
    // is returned (not XDP_REDIRECT), and the program counts it.
    assert_eq!(c.test_run(&esp_v4()).unwrap(), XdpAction::Pass);
    let counters = c.counters().unwrap();
    assert_eq!((counters.esp_to_xsk, counters.xsk_fallback_pass), (1, 1));
}

#[test]
fn esp_in_udp_goes_to_the_socket() {
    let Some(c) = load("esp_in_udp_goes_to_the_socket") else {
        return;
    };
    check(
        &c,
        "ESP in UDP v4",
        &udp_v4(4500, &esp(0x7001, &[0xab; 32])),
        Verdict::EspInUdpToXsk,
    );
    check(
        &c,
        "ESP in UDP v6",
        &udp_v6(4500, &esp(0x7001, &[0xab; 32])),
        Verdict::EspInUdpToXsk,
    );
    check(
        &c,
        "ESP in UDP, header only",
        &udp_v4(4500, &esp(1, &[])),
        Verdict::EspInUdpToXsk,
    );
    // A non-zero SPI in any byte of the first word.
    check(
        &c,
        "SPI 0x01000000",
        &udp_v4(4500, &esp(0x0100_0000, &[0; 8])),
        Verdict::EspInUdpToXsk,
    );
}

#[test]
fn keepalives_are_dropped() {
    let Some(c) = load("keepalives_are_dropped") else {
        return;
    };
    check(
        &c,
        "keepalive v4",
        &udp_v4(4500, &KEEPALIVE),
        Verdict::KeepaliveDrop,
    );
    check(
        &c,
        "keepalive v6",
        &udp_v6(4500, &KEEPALIVE),
        Verdict::KeepaliveDrop,
    );
    // A short frame padded to the Ethernet minimum: the UDP length decides, not the frame's.
    let mut padded = udp_v4(4500, &KEEPALIVE);
    assert_eq!(padded.len(), 43);
    padded.resize(60, 0);
    check(
        &c,
        "keepalive with Ethernet padding",
        &padded,
        Verdict::KeepaliveDrop,
    );
    // One byte that is not 0xFF is neither a keepalive nor ESP.
    check(
        &c,
        "one byte 0xFE",
        &udp_v4(4500, &[0xfe]),
        Verdict::MalformedPass,
    );
    // A keepalive on another port is just UDP.
    check(
        &c,
        "0xFF to port 4501",
        &udp_v4(4501, &KEEPALIVE),
        Verdict::PassOther,
    );
}

#[test]
fn ike_passes_to_the_kernel() {
    let Some(c) = load("ike_passes_to_the_kernel") else {
        return;
    };
    check(&c, "IKE on 500 v4", &udp_v4(500, &ike()), Verdict::IkePass);
    check(&c, "IKE on 500 v6", &udp_v6(500, &ike()), Verdict::IkePass);
    check(
        &c,
        "IKE on 4500 with marker v4",
        &udp_v4(4500, &ike_with_marker()),
        Verdict::IkePass,
    );
    check(
        &c,
        "IKE on 4500 with marker v6",
        &udp_v6(4500, &ike_with_marker()),
        Verdict::IkePass,
    );
    // The marker alone (four zero bytes) is still not ESP.
    check(
        &c,
        "marker only",
        &udp_v4(4500, &[0, 0, 0, 0]),
        Verdict::IkePass,
    );
    // Port 500 is IKE whatever it carries.
    check(
        &c,
        "ESP-looking payload on 500",
        &udp_v4(500, &esp(0x7001, &[0; 8])),
        Verdict::IkePass,
    );
}

#[test]
fn short_nat_t_payloads_are_malformed() {
    let Some(c) = load("short_nat_t_payloads_are_malformed") else {
        return;
    };
    check(
        &c,
        "empty payload",
        &udp_v4(4500, &[]),
        Verdict::MalformedPass,
    );
    check(
        &c,
        "two bytes",
        &udp_v4(4500, &[1, 2]),
        Verdict::MalformedPass,
    );
    check(
        &c,
        "three bytes",
        &udp_v4(4500, &[1, 2, 3]),
        Verdict::MalformedPass,
    );
    // A non-zero first word but no room for the sequence number.
    check(
        &c,
        "SPI without sequence number",
        &udp_v4(4500, &[0, 0, 0x70, 1, 0, 0, 0]),
        Verdict::MalformedPass,
    );
    // UDP length below the header size.
    let mut bad_length = udp_v4(4500, &esp(1, &[0; 8]));
    bad_length[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&7u16.to_be_bytes());
    check(&c, "UDP length 7", &bad_length, Verdict::MalformedPass);
    // UDP length longer than the frame: the ESP header must be in the frame.
    let mut long = udp_v4(4500, &[0, 0, 0x70, 1]);
    long[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&200u16.to_be_bytes());
    check(
        &c,
        "UDP length beyond the frame",
        &long,
        Verdict::MalformedPass,
    );
}

#[test]
fn the_nat_t_port_is_configurable() {
    let config = ClassifierConfig {
        natt_port: 4501,
        ..ClassifierConfig::default()
    };
    let Some(c) = load_with("the_nat_t_port_is_configurable", config) else {
        return;
    };
    assert_eq!(c.config().natt_port, 4501);
    check(
        &c,
        "ESP in UDP to 4501",
        &udp_v4(4501, &esp(0x7001, &[0; 16])),
        Verdict::EspInUdpToXsk,
    );
    check(
        &c,
        "keepalive to 4501",
        &udp_v4(4501, &KEEPALIVE),
        Verdict::KeepaliveDrop,
    );
    check(
        &c,
        "IKE with marker to 4501",
        &udp_v4(4501, &ike_with_marker()),
        Verdict::IkePass,
    );
    check(
        &c,
        "ESP in UDP to 4500",
        &udp_v4(4500, &esp(0x7001, &[0; 16])),
        Verdict::PassOther,
    );
    check(&c, "IKE on 500", &udp_v4(500, &ike()), Verdict::IkePass);
}

#[test]
fn invalid_configurations_are_refused() {
    for (config, what) in [
        (
            ClassifierConfig {
                natt_port: 0,
                ..ClassifierConfig::default()
            },
            "natt_port 0",
        ),
        (
            ClassifierConfig {
                natt_port: 500,
                ..ClassifierConfig::default()
            },
            "natt_port 500",
        ),
        (
            ClassifierConfig {
                max_queues: 0,
                ..ClassifierConfig::default()
            },
            "max_queues 0",
        ),
        (
            ClassifierConfig {
                max_policies: 0,
                ..ClassifierConfig::default()
            },
            "max_policies 0",
        ),
    ] {
        // Validated before the kernel is asked: no root needed.
        let error = Classifier::load(config).expect_err(what);
        assert_eq!(error.fault(), Fault::Config, "{what}: {error}");
    }
}

#[test]
fn vlan_tags_are_skipped() {
    let Some(c) = load("vlan_tags_are_skipped") else {
        return;
    };
    let esp4 = ipv4(
        PROTO_ESP,
        v4(198, 51, 100, 1),
        Frag::default(),
        &esp(1, &[0; 16]),
    );
    let esp6 = ipv6(PROTO_ESP, v6("2001:db8::1"), &esp(1, &[0; 16]));
    let ike4 = ipv4(
        PROTO_UDP,
        v4(198, 51, 100, 1),
        Frag::default(),
        &udp(500, &ike()),
    );
    let natt6 = ipv6(PROTO_UDP, v6("2001:db8::1"), &udp(4500, &esp(1, &[0; 16])));
    for (vlans, what) in [
        (&[(ETH_P_8021Q, 10)][..], "802.1Q"),
        (&[(ETH_P_8021AD, 100)][..], "802.1ad"),
        (
            &[(ETH_P_8021AD, 100), (ETH_P_8021Q, 10)][..],
            "QinQ 88a8+8100",
        ),
        (
            &[(ETH_P_8021Q, 100), (ETH_P_8021Q, 10)][..],
            "QinQ 8100+8100",
        ),
    ] {
        check(
            &c,
            &format!("{what} ESP v4"),
            &ethernet(vlans, ETH_P_IP, &esp4),
            Verdict::EspToXsk,
        );
        check(
            &c,
            &format!("{what} ESP v6"),
            &ethernet(vlans, ETH_P_IPV6, &esp6),
            Verdict::EspToXsk,
        );
        check(
            &c,
            &format!("{what} IKE v4"),
            &ethernet(vlans, ETH_P_IP, &ike4),
            Verdict::IkePass,
        );
        check(
            &c,
            &format!("{what} NAT-T v6"),
            &ethernet(vlans, ETH_P_IPV6, &natt6),
            Verdict::EspInUdpToXsk,
        );
    }
    // A third tag is beyond the bound: the frame is not looked into.
    let three = [(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)];
    check(
        &c,
        "three tags",
        &ethernet(&three, ETH_P_IP, &esp4),
        Verdict::PassOther,
    );
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let Some(c) = load("ipv6_extension_headers_are_walked") else {
        return;
    };
    let dst = v6("2001:db8::1");
    let esp_payload = esp(0x7001, &[0; 16]);
    let chain = ext(
        PROTO_ROUTING,
        0,
        &ext(PROTO_DSTOPTS, 2, &ext(PROTO_ESP, 1, &esp_payload)),
    );
    check(
        &c,
        "hop-by-hop, routing, dest-opts, ESP",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_HOPOPTS, dst, &chain)),
        Verdict::EspToXsk,
    );

    let ike_chain = ext(PROTO_UDP, 0, &udp(500, &ike()));
    check(
        &c,
        "dest-opts, IKE",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_DSTOPTS, dst, &ike_chain)),
        Verdict::IkePass,
    );

    let natt_chain = ext(PROTO_UDP, 3, &udp(4500, &esp(9, &[0; 8])));
    check(
        &c,
        "hop-by-hop (32 bytes), ESP in UDP",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_HOPOPTS, dst, &natt_chain)),
        Verdict::EspInUdpToXsk,
    );

    let keepalive_chain = ext(PROTO_UDP, 0, &udp(4500, &KEEPALIVE));
    check(
        &c,
        "routing, keepalive",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_ROUTING, dst, &keepalive_chain)),
        Verdict::KeepaliveDrop,
    );

    // Six extension headers is the bound; a seventh leaves ESP unseen.
    let mut six = esp_payload.clone();
    let mut next = PROTO_ESP;
    for _ in 0..6 {
        six = ext(next, 0, &six);
        next = PROTO_DSTOPTS;
    }
    check(
        &c,
        "six dest-opts, ESP",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_DSTOPTS, dst, &six)),
        Verdict::EspToXsk,
    );
    let seven = ext(PROTO_DSTOPTS, 0, &six);
    check(
        &c,
        "seven dest-opts, ESP",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_DSTOPTS, dst, &seven)),
        Verdict::PassOther,
    );

    // No Next Header, ICMPv6, TCP: other.
    check(
        &c,
        "no next header",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_NONE, dst, &[])),
        Verdict::PassOther,
    );
    check(
        &c,
        "ICMPv6",
        &ethernet(
            &[],
            ETH_P_IPV6,
            &ipv6(PROTO_ICMPV6, dst, &[128, 0, 0, 0, 0, 1, 0, 1]),
        ),
        Verdict::PassOther,
    );

    // An extension header claiming more bytes than the frame has.
    let mut long = ext(PROTO_ESP, 0, &esp_payload);
    long[1] = 200;
    check(
        &c,
        "extension header past the end",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_DSTOPTS, dst, &long)),
        Verdict::MalformedPass,
    );
}

#[test]
fn fragments_pass_to_the_kernel() {
    let Some(c) = load("fragments_pass_to_the_kernel") else {
        return;
    };
    let dst4 = v4(198, 51, 100, 1);
    let first = Frag {
        more: true,
        offset: 0,
    };
    let later = Frag {
        more: true,
        offset: 185,
    };
    let last = Frag {
        more: false,
        offset: 370,
    };
    for (frag, what) in [(first, "first"), (later, "middle"), (last, "last")] {
        let esp_frag = ethernet(
            &[],
            ETH_P_IP,
            &ipv4(PROTO_ESP, dst4, frag, &esp(1, &[0; 32])),
        );
        check(
            &c,
            &format!("IPv4 {what} fragment of ESP"),
            &esp_frag,
            Verdict::FragmentPass,
        );
        let udp_frag = ethernet(
            &[],
            ETH_P_IP,
            &ipv4(PROTO_UDP, dst4, frag, &udp(4500, &esp(1, &[0; 32]))),
        );
        check(
            &c,
            &format!("IPv4 {what} fragment of UDP 4500"),
            &udp_frag,
            Verdict::FragmentPass,
        );
    }
    // A later fragment whose bytes happen to be shorter than an ESP header.
    let tiny = ethernet(&[], ETH_P_IP, &ipv4(PROTO_ESP, dst4, last, &[1, 2]));
    check(
        &c,
        "IPv4 tiny last fragment of ESP",
        &tiny,
        Verdict::FragmentPass,
    );

    let dst6 = v6("2001:db8::1");
    for (offset, more, what) in [
        (0, true, "first"),
        (185, true, "middle"),
        (370, false, "last"),
    ] {
        let frag = fragment_header(PROTO_ESP, offset, more, &esp(1, &[0; 32]));
        check(
            &c,
            &format!("IPv6 {what} fragment of ESP"),
            &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_FRAGMENT, dst6, &frag)),
            Verdict::FragmentPass,
        );
    }
    let behind_ext = ext(
        PROTO_FRAGMENT,
        0,
        &fragment_header(PROTO_UDP, 0, true, &udp(4500, &esp(1, &[0; 8]))),
    );
    check(
        &c,
        "IPv6 fragment behind hop-by-hop",
        &ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_HOPOPTS, dst6, &behind_ext)),
        Verdict::FragmentPass,
    );
}

#[test]
fn outbound_policies_match_destination_prefixes() {
    let Some(mut c) = load("outbound_policies_match_destination_prefixes") else {
        return;
    };
    let tcp = [0u8; 20];
    let v4_to = |dst| ethernet(&[], ETH_P_IP, &ipv4(PROTO_TCP, dst, Frag::default(), &tcp));
    let v6_to = |dst: &str| ethernet(&[], ETH_P_IPV6, &ipv6(PROTO_TCP, v6(dst), &tcp));

    check(
        &c,
        "v4 before any policy",
        &v4_to(v4(10, 2, 0, 5)),
        Verdict::PassOther,
    );
    c.add_policy("10.2.0.0/24".parse().unwrap()).unwrap();
    c.add_policy("192.0.2.77/32".parse().unwrap()).unwrap();
    // Host bits are ignored.
    c.add_policy("172.16.9.9/12".parse().unwrap()).unwrap();
    c.add_policy("2001:db8:2::/48".parse().unwrap()).unwrap();
    c.add_policy("2001:db8:3::1/128".parse().unwrap()).unwrap();
    // Twice is fine.
    c.add_policy("10.2.0.0/24".parse().unwrap()).unwrap();

    let mut listed = c.policies().unwrap();
    listed.sort();
    let mut expected: Vec<IpNet> = [
        "10.2.0.0/24",
        "192.0.2.77/32",
        "172.16.0.0/12",
        "2001:db8:2::/48",
        "2001:db8:3::1/128",
    ]
    .iter()
    .map(|p| p.parse().unwrap())
    .collect();
    expected.sort();
    assert_eq!(listed, expected);

    check(
        &c,
        "v4 in /24",
        &v4_to(v4(10, 2, 0, 5)),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v4 /24 edge",
        &v4_to(v4(10, 2, 0, 255)),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v4 next to /24",
        &v4_to(v4(10, 2, 1, 0)),
        Verdict::PassOther,
    );
    check(
        &c,
        "v4 /32 hit",
        &v4_to(v4(192, 0, 2, 77)),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v4 /32 miss",
        &v4_to(v4(192, 0, 2, 78)),
        Verdict::PassOther,
    );
    check(
        &c,
        "v4 in /12",
        &v4_to(v4(172, 31, 255, 1)),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v4 past /12",
        &v4_to(v4(172, 32, 0, 1)),
        Verdict::PassOther,
    );
    check(
        &c,
        "v6 in /48",
        &v6_to("2001:db8:2:ffff::9"),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v6 past /48",
        &v6_to("2001:db8:4::1"),
        Verdict::PassOther,
    );
    check(
        &c,
        "v6 /128 hit",
        &v6_to("2001:db8:3::1"),
        Verdict::PolicyToXsk,
    );
    check(
        &c,
        "v6 /128 miss",
        &v6_to("2001:db8:3::2"),
        Verdict::PassOther,
    );
    // IPv4-mapped addresses are not IPv4 prefixes.
    check(
        &c,
        "v6 mapped 10.2.0.5",
        &v6_to("::ffff:10.2.0.5"),
        Verdict::PassOther,
    );

    // The policy comes before UDP classification and fragments: no plaintext leaks through.
    let ike_to_protected = ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_UDP,
            v4(10, 2, 0, 5),
            Frag::default(),
            &udp(500, &ike()),
        ),
    );
    check(
        &c,
        "IKE to a protected address",
        &ike_to_protected,
        Verdict::PolicyToXsk,
    );
    let fragment = ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_UDP,
            v4(10, 2, 0, 5),
            Frag {
                more: true,
                offset: 0,
            },
            &udp(53, &[0; 16]),
        ),
    );
    check(
        &c,
        "v4 fragment to a protected address",
        &fragment,
        Verdict::PolicyToXsk,
    );
    let fragment6 = ethernet(
        &[],
        ETH_P_IPV6,
        &ipv6(
            PROTO_FRAGMENT,
            v6("2001:db8:2::5"),
            &fragment_header(PROTO_TCP, 0, true, &tcp),
        ),
    );
    check(
        &c,
        "v6 fragment to a protected address",
        &fragment6,
        Verdict::PolicyToXsk,
    );
    // VLAN-tagged plaintext.
    let tagged = ethernet(
        &[(ETH_P_8021Q, 7)],
        ETH_P_IP,
        &ipv4(PROTO_TCP, v4(10, 2, 0, 5), Frag::default(), &tcp),
    );
    check(
        &c,
        "802.1Q plaintext to a protected address",
        &tagged,
        Verdict::PolicyToXsk,
    );
    // ESP itself is ESP, whatever its destination.
    let esp_to_protected = ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_ESP,
            v4(10, 2, 0, 5),
            Frag::default(),
            &esp(1, &[0; 8]),
        ),
    );
    check(
        &c,
        "ESP to a protected address",
        &esp_to_protected,
        Verdict::EspToXsk,
    );

    assert!(c.remove_policy("10.2.0.0/24".parse().unwrap()).unwrap());
    assert!(!c.remove_policy("10.2.0.0/24".parse().unwrap()).unwrap());
    assert!(!c.remove_policy("10.9.0.0/16".parse().unwrap()).unwrap());
    assert!(
        c.remove_policy("2001:db8:2::1/48".parse().unwrap())
            .unwrap(),
        "host bits ignored"
    );
    check(
        &c,
        "v4 after removal",
        &v4_to(v4(10, 2, 0, 5)),
        Verdict::PassOther,
    );
    check(
        &c,
        "v6 after removal",
        &v6_to("2001:db8:2:ffff::9"),
        Verdict::PassOther,
    );
    check(
        &c,
        "v4 /32 still there",
        &v4_to(v4(192, 0, 2, 77)),
        Verdict::PolicyToXsk,
    );
}

#[test]
fn a_full_policy_table_is_a_config_error() {
    let config = ClassifierConfig {
        max_policies: 2,
        ..ClassifierConfig::default()
    };
    let Some(mut c) = load_with("a_full_policy_table_is_a_config_error", config) else {
        return;
    };
    c.add_policy("10.1.0.0/16".parse().unwrap()).unwrap();
    c.add_policy("10.2.0.0/16".parse().unwrap()).unwrap();
    let error = c.add_policy("10.3.0.0/16".parse().unwrap()).unwrap_err();
    assert_eq!(error.fault(), Fault::Config, "{error}");
    assert!(
        matches!(
            error,
            xipsec_ebpf::Error::PolicyTableFull {
                max_policies: 2,
                ..
            }
        ),
        "{error:?}"
    );
    // The IPv6 table is separate.
    c.add_policy("2001:db8::/32".parse().unwrap()).unwrap();
}

#[test]
fn other_traffic_passes() {
    let Some(c) = load("other_traffic_passes") else {
        return;
    };
    let arp = ethernet(
        &[],
        ETH_P_ARP,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2,
        ],
    );
    check(&c, "ARP", &arp, Verdict::PassOther);
    check(
        &c,
        "TCP v4",
        &ethernet(
            &[],
            ETH_P_IP,
            &ipv4(PROTO_TCP, v4(198, 51, 100, 1), Frag::default(), &[0; 20]),
        ),
        Verdict::PassOther,
    );
    check(&c, "UDP 53 v4", &udp_v4(53, &[0; 12]), Verdict::PassOther);
    check(&c, "UDP 53 v6", &udp_v6(53, &[0; 12]), Verdict::PassOther);
    check(
        &c,
        "Ethernet header only, unknown type",
        &ethernet(&[], 0x88b5, &[]),
        Verdict::PassOther,
    );
}

#[test]
fn invalid_ip_headers_are_malformed() {
    let Some(c) = load("invalid_ip_headers_are_malformed") else {
        return;
    };
    let mut ihl4 = esp_v4();
    ihl4[14] = 0x44;
    check(&c, "IPv4 IHL 4", &ihl4, Verdict::MalformedPass);
    let mut version6 = esp_v4();
    version6[14] = 0x65;
    check(
        &c,
        "version 6 in an IPv4 ethertype",
        &version6,
        Verdict::MalformedPass,
    );
    let mut version4 = esp_v6();
    version4[14] = 0x45;
    check(
        &c,
        "version 4 in an IPv6 ethertype",
        &version4,
        Verdict::MalformedPass,
    );
    // IHL 15 (60 bytes) past the end of a short frame.
    let mut ihl15 = ethernet(
        &[],
        ETH_P_IP,
        &ipv4(
            PROTO_ESP,
            v4(198, 51, 100, 1),
            Frag::default(),
            &esp(1, &[]),
        ),
    );
    ihl15[14] = 0x4f;
    check(
        &c,
        "IPv4 IHL 15 past the end",
        &ihl15,
        Verdict::MalformedPass,
    );
}

/// Every frame cut short inside a header the program needs is "malformed" and passes; the
/// kernel refuses (EINVAL) to run frames shorter than an Ethernet header.
#[test]
fn truncated_headers_pass_as_malformed_at_every_length() {
    let Some(c) = load("truncated_headers_pass_as_malformed_at_every_length") else {
        return;
    };
    let dst6 = v6("2001:db8::1");
    let frames: Vec<(&str, Vec<u8>, Verdict)> = vec![
        ("ESP v4", esp_v4(), Verdict::EspToXsk),
        ("ESP v6", esp_v6(), Verdict::EspToXsk),
        (
            "ESP in UDP v4",
            udp_v4(4500, &esp(7, &[0; 8])),
            Verdict::EspInUdpToXsk,
        ),
        (
            "ESP in UDP v6",
            udp_v6(4500, &esp(7, &[0; 8])),
            Verdict::EspInUdpToXsk,
        ),
        (
            "keepalive v4",
            udp_v4(4500, &KEEPALIVE),
            Verdict::KeepaliveDrop,
        ),
        (
            "IKE marker v6",
            udp_v6(4500, &ike_with_marker()),
            Verdict::IkePass,
        ),
        ("IKE on 500 v4", udp_v4(500, &ike()), Verdict::IkePass),
        (
            "QinQ ESP v4",
            ethernet(
                &[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2)],
                ETH_P_IP,
                &ipv4(
                    PROTO_ESP,
                    v4(198, 51, 100, 1),
                    Frag::default(),
                    &esp(1, &[0; 8]),
                ),
            ),
            Verdict::EspToXsk,
        ),
        (
            "v6 ext chain ESP",
            ethernet(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    PROTO_HOPOPTS,
                    dst6,
                    &ext(PROTO_DSTOPTS, 1, &ext(PROTO_ESP, 0, &esp(1, &[0; 8]))),
                ),
            ),
            Verdict::EspToXsk,
        ),
        (
            "v6 fragment",
            ethernet(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    PROTO_FRAGMENT,
                    dst6,
                    &fragment_header(PROTO_ESP, 0, true, &esp(1, &[0; 8])),
                ),
            ),
            Verdict::FragmentPass,
        ),
    ];
    for (what, frame, verdict) in &frames {
        let needed = needed_length(frame, *verdict);
        check(&c, &format!("{what}, whole"), frame, *verdict);
        check(
            &c,
            &format!("{what}, {needed} bytes"),
            &frame[..needed],
            *verdict,
        );
        for length in 14..needed {
            check(
                &c,
                &format!("{what} cut to {length} bytes"),
                &frame[..length],
                Verdict::MalformedPass,
            );
        }
        for length in 0..14 {
            let before = c.counters().unwrap();
            let error = c.test_run(&frame[..length]).unwrap_err();
            assert_eq!(
                (error.fault(), error.os_error()),
                (Fault::Local, Some(22)),
                "{error}"
            );
            assert_eq!(c.counters().unwrap(), before, "the program did not run");
        }
    }
}

/// The bytes the program must see to reach `verdict` on `frame`: every header up to the
/// ESP header (8 bytes), the NAT-T payload it inspects, or the UDP header.
fn needed_length(frame: &[u8], verdict: Verdict) -> usize {
    // Skip the Ethernet header and tags.
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        at += 4;
        ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    }
    at += 2;
    let l4 = if ethertype == ETH_P_IP {
        at + usize::from(frame[at] & 0x0f) * 4
    } else {
        let mut next = frame[at + 6];
        let mut l4 = at + 40;
        while matches!(
            next,
            PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS | PROTO_FRAGMENT
        ) {
            let length = if next == PROTO_FRAGMENT {
                8
            } else {
                8 * (usize::from(frame[l4 + 1]) + 1)
            };
            if next == PROTO_FRAGMENT {
                // The program needs the whole Fragment header, nothing after.
                return l4 + length;
            }
            next = frame[l4];
            l4 += length;
        }
        l4
    };
    match verdict {
        Verdict::EspToXsk | Verdict::EspInUdpToXsk => {
            l4 + if verdict == Verdict::EspInUdpToXsk {
                8 + 8
            } else {
                8
            }
        }
        Verdict::KeepaliveDrop => l4 + 8 + 1,
        Verdict::IkePass => {
            let dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
            l4 + 8 + if dport == 500 { 0 } else { 4 }
        }
        Verdict::FragmentPass => unreachable!("handled above for IPv6"),
        _ => unreachable!(),
    }
}

#[test]
fn register_xsk_checks_the_queue_and_the_socket() {
    let Some(mut c) = load("register_xsk_checks_the_queue_and_the_socket") else {
        return;
    };
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let error = c.register_xsk(64, &udp).unwrap_err();
    assert!(
        matches!(
            error,
            xipsec_ebpf::Error::QueueOutOfRange {
                queue: 64,
                max_queues: 64
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.fault(), Fault::Config);
    // A UDP socket is not an AF_XDP socket: the kernel says no.
    let error = c.register_xsk(0, &udp).unwrap_err();
    assert!(
        matches!(error, xipsec_ebpf::Error::RegisterXsk { queue: 0, .. }),
        "{error:?}"
    );
    assert_eq!(error.fault(), Fault::Local);
    assert!(error.os_error().is_some(), "{error}");
    c.unregister_xsk(0).unwrap();
    assert!(c.unregister_xsk(64).is_err());
}

#[test]
fn counters_start_at_zero_and_sum_over_cpus() {
    let Some(c) = load("counters_start_at_zero_and_sum_over_cpus") else {
        return;
    };
    assert_eq!(c.counters().unwrap(), VerdictCounters::default());
    for _ in 0..5 {
        c.test_run(&esp_v4()).unwrap();
        c.test_run(&udp_v4(500, &ike())).unwrap();
    }
    let counters = c.counters().unwrap();
    assert_eq!(
        (counters.esp_to_xsk, counters.ike_pass, counters.frames()),
        (5, 5, 10)
    );
    // A second classifier has its own maps.
    let other = Classifier::load(ClassifierConfig::default()).unwrap();
    assert_eq!(other.counters().unwrap(), VerdictCounters::default());
}

//! The configuration files the harness writes for the two xipsecd gateways, read back by
//! xipsecd's own parser and validator: they must be valid, and mirror each other.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use xipsec_bench::dut::{gateway_configs, DataplaneBackend, NET_A, NET_B, WAN_A, WAN_B};
use xipsec_control::config::{Backend, Config, Direction, StartAction};

fn parse(text: &str, name: &str) -> Config {
    Config::parse(text, name, Path::new("/nonexistent"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{name} does not validate: {e:?}\n{text}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn ike_configs_validate_and_mirror_each_other_with_one_initiator() {
    let (a, b) = gateway_configs(false, DataplaneBackend::Portable);
    let (a, b) = (parse(&a, "a.toml"), parse(&b, "b.toml"));
    assert_eq!(a.daemon.listen, vec![ip(WAN_A)]);
    assert_eq!(b.daemon.listen, vec![ip(WAN_B)]);
    let (ca, cb) = (&a.connections[0], &b.connections[0]);
    let (child_a, child_b) = (&ca.children[0], &cb.children[0]);
    assert_eq!(child_a.local_ts, child_b.remote_ts);
    assert_eq!(child_a.remote_ts, child_b.local_ts);
    assert_eq!(child_a.local_ts[0].to_string(), NET_A);
    assert_eq!(child_b.local_ts[0].to_string(), NET_B);
    assert_eq!(child_a.start_action, StartAction::Start);
    assert_eq!(child_b.start_action, StartAction::None);
    assert!(a.manual_sas.is_empty() && b.manual_sas.is_empty());
}

#[test]
fn manual_configs_validate_and_each_outbound_sa_is_the_peers_inbound() {
    let (a, b) = gateway_configs(true, DataplaneBackend::Portable);
    let (a, b) = (parse(&a, "a.toml"), parse(&b, "b.toml"));
    assert!(a.connections.is_empty() && b.connections.is_empty());
    for (from, to) in [(&a, &b), (&b, &a)] {
        let out = from
            .manual_sas
            .iter()
            .find(|sa| sa.direction == Direction::Out)
            .expect("an outbound SA");
        let inbound = to
            .manual_sas
            .iter()
            .find(|sa| sa.direction == Direction::In)
            .expect("an inbound SA");
        assert_eq!(out.spi, inbound.spi);
        assert_eq!(out.key.expose(), inbound.key.expose());
        assert_eq!(out.cipher, inbound.cipher);
        assert_eq!((out.local, out.remote), (inbound.remote, inbound.local));
        assert_eq!(out.local_ts, inbound.remote_ts);
        assert_eq!(out.remote_ts, inbound.local_ts);
    }
    // Different keys and SPIs each way.
    assert_ne!(a.manual_sas[0].spi, b.manual_sas[0].spi);
}

#[test]
fn the_data_plane_section_names_the_backend_both_interfaces_and_one_worker() {
    for (ours, theirs) in [
        (DataplaneBackend::Portable, Backend::Portable),
        (DataplaneBackend::Afxdp, Backend::Afxdp),
    ] {
        for manual in [false, true] {
            let (a, b) = gateway_configs(manual, ours);
            for (text, name) in [(a, "a.toml"), (b, "b.toml")] {
                let config = parse(&text, name);
                assert_eq!(config.dataplane.backend, theirs, "{text}");
                assert_eq!(config.dataplane.interfaces, vec!["lan", "wan"]);
                assert_eq!(config.dataplane.workers, Some(1));
            }
        }
    }
}

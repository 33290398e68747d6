//! NAT traversal (RFC 7296 §2.23): detection, the initiator's move to the NAT-T port, the
//! responder following the latest authentic message, UDP encapsulation of ESP, the forced and
//! the disabled modes, and the path surviving an IKE SA rekey.

mod ike_pair;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ike_pair::*;
use xipsec_control::ike::{
    ChildSaInstalled, EspPath, Event, IkeConfig, IkeSa, NatTraversal, NattPorts, Path, Transmit,
};
use xipsec_control::wire::{Message, NotifyType, Payload};

const PRIVATE: &str = "10.0.0.2:500";
const NAT_PUBLIC_IP: &str = "203.0.113.7";
const RESPONDER: &str = "198.51.100.1:500";

/// A network between one initiator and one responder, optionally with a NAT in front of the
/// initiator that maps each of its source ports to a public port of its own (like nftables
/// masquerade with random ports).
struct Net {
    nat: bool,
    mappings: Vec<(SocketAddr, SocketAddr)>,
}

impl Net {
    /// The path the responder sees a datagram from the initiator arrive on.
    fn arriving_at_responder(&mut self, t: &Transmit) -> Path {
        let remote = if self.nat {
            self.public_of(t.source)
        } else {
            t.source
        };
        Path {
            local: t.destination,
            remote,
        }
    }

    /// The path the initiator sees a datagram from the responder arrive on; `None` if the NAT
    /// has no mapping for it (dropped).
    fn arriving_at_initiator(&self, t: &Transmit) -> Option<Path> {
        let local = if self.nat {
            self.mappings
                .iter()
                .find(|(_, public)| *public == t.destination)
                .map(|(private, _)| *private)?
        } else {
            t.destination
        };
        Some(Path {
            local,
            remote: t.source,
        })
    }

    fn public_of(&mut self, private: SocketAddr) -> SocketAddr {
        if let Some((_, public)) = self.mappings.iter().find(|(p, _)| *p == private) {
            return *public;
        }
        let port = 31000 + self.mappings.len() as u16;
        let public = SocketAddr::new(NAT_PUBLIC_IP.parse().unwrap(), port);
        self.mappings.push((private, public));
        public
    }
}

struct Run {
    initiator: IkeSa,
    responder: IkeSa,
    initiator_events: Vec<Event>,
    responder_events: Vec<Event>,
    /// Every datagram the initiator sent, as sent.
    initiator_sent: Vec<Transmit>,
    /// Every datagram the responder sent, as sent.
    responder_sent: Vec<Transmit>,
    net: Net,
    now: Instant,
}

impl Run {
    /// Starts the initiator and lets the responder answer its first request, the way the
    /// daemon does: the responder's configured remote address is where the request came from.
    fn start(mut i_config: IkeConfig, mut r_config: IkeConfig, nat: bool) -> Run {
        let now = Instant::now();
        let mut net = Net {
            nat,
            mappings: Vec::new(),
        };
        if nat {
            i_config.local_addr = addr(PRIVATE);
        }
        i_config.remote_addr = addr(RESPONDER);
        r_config.local_addr = addr(RESPONDER);
        let mut initiator = IkeSa::initiate(Arc::new(i_config), now, rng(1)).unwrap();
        let first = initiator.poll_transmit().unwrap();
        let path = net.arriving_at_responder(&first);
        r_config.remote_addr = path.remote;
        let responder =
            IkeSa::respond(Arc::new(r_config), now, rng(2), &first.contents).expect("accepted");
        Run {
            initiator,
            responder,
            initiator_events: Vec::new(),
            responder_events: Vec::new(),
            initiator_sent: vec![first],
            responder_sent: Vec::new(),
            net,
            now,
        }
    }

    /// Delivers everything queued, both ways, until both sides are quiet.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.responder.poll_transmit() {
                moved = true;
                if let Some(path) = self.net.arriving_at_initiator(&t) {
                    let _ = self.initiator.handle_from(self.now, path, &t.contents);
                }
                self.responder_sent.push(t);
            }
            while let Some(t) = self.initiator.poll_transmit() {
                moved = true;
                let path = self.net.arriving_at_responder(&t);
                let _ = self.responder.handle_from(self.now, path, &t.contents);
                self.initiator_sent.push(t);
            }
            while let Some(e) = self.initiator.poll_event() {
                self.initiator_events.push(e);
            }
            while let Some(e) = self.responder.poll_event() {
                self.responder_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn installed(events: &[Event]) -> Vec<&ChildSaInstalled> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaInstalled(c) => Some(&**c),
                Event::ChildSaRekeyed(r) => Some(&r.new),
                _ => None,
            })
            .collect()
    }
}

fn ports(local: u16, remote: u16) -> Option<NattPorts> {
    Some(NattPorts { local, remote })
}

#[test]
fn without_a_nat_everything_stays_on_500_and_esp_is_not_encapsulated() {
    let mut run = Run::start(initiator_config(), responder_config(), false);
    run.settle();
    assert!(run.initiator.is_established() && run.responder.is_established());
    assert!(run
        .initiator_sent
        .iter()
        .chain(&run.responder_sent)
        .all(|t| t.source.port() == 500 && t.destination.port() == 500));
    let i = Run::installed(&run.initiator_events)[0];
    let r = Run::installed(&run.responder_events)[0];
    assert_eq!(i.path.udp_encap, None);
    assert_eq!(r.path.udp_encap, None);
    assert_eq!(i.path.remote, r.path.local);
    assert_eq!(r.path.remote, i.path.local);
}

#[test]
fn a_nat_in_front_of_the_initiator_moves_ike_to_4500_and_encapsulates_esp() {
    let mut run = Run::start(initiator_config(), responder_config(), true);
    run.settle();
    assert!(run.initiator.is_established() && run.responder.is_established());

    // Both sides saw the NAT from their own point of view.
    let nat_of = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::IkeSaEstablished(e) => Some(e.nat),
            _ => None,
        })
    };
    let i_nat = nat_of(&run.initiator_events).unwrap();
    let r_nat = nat_of(&run.responder_events).unwrap();
    assert!(i_nat.local_behind_nat && !i_nat.remote_behind_nat);
    assert!(r_nat.remote_behind_nat && !r_nat.local_behind_nat);

    // IKE_SA_INIT on 500, everything after it on 4500, both ways.
    let (init, rest) = run.initiator_sent.split_first().unwrap();
    assert_eq!((init.source.port(), init.destination.port()), (500, 500));
    assert!(!rest.is_empty());
    assert!(rest
        .iter()
        .all(|t| t.source.port() == 4500 && t.destination.port() == 4500));
    let (init, rest) = run.responder_sent.split_first().unwrap();
    assert_eq!(init.destination, addr("203.0.113.7:31000"));
    // The responder answers IKE_AUTH where it came from: the NAT's mapping of port 4500.
    assert!(rest.iter().all(
        |t| t.source == addr("198.51.100.1:4500") && t.destination == addr("203.0.113.7:31001")
    ));
    assert_eq!(
        run.responder.path(),
        Path {
            local: addr("198.51.100.1:4500"),
            remote: addr("203.0.113.7:31001"),
        }
    );

    let i = Run::installed(&run.initiator_events)[0];
    let r = Run::installed(&run.responder_events)[0];
    assert_eq!(
        i.path,
        EspPath {
            local: "10.0.0.2".parse().unwrap(),
            remote: "198.51.100.1".parse().unwrap(),
            udp_encap: ports(4500, 4500),
        }
    );
    assert_eq!(
        r.path,
        EspPath {
            local: "198.51.100.1".parse().unwrap(),
            remote: NAT_PUBLIC_IP.parse().unwrap(),
            udp_encap: ports(4500, 31001),
        }
    );
}

#[test]
fn a_datagram_from_elsewhere_that_is_not_authentic_does_not_move_the_responder() {
    let mut run = Run::start(initiator_config(), responder_config(), true);
    run.settle();
    let before = run.responder.path();
    // An IKE_AUTH copy with a flipped byte in the encrypted part, from an attacker's address.
    let mut forged = run.initiator_sent[1].contents.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let attacker = Path {
        local: addr("198.51.100.1:4500"),
        remote: addr("192.0.2.66:4500"),
    };
    assert!(run
        .responder
        .handle_from(run.now, attacker, &forged)
        .is_err());
    assert_eq!(run.responder.path(), before);
    assert!(run.responder.poll_transmit().is_none());
}

#[test]
fn forced_encapsulation_fakes_a_nat_so_both_sides_use_udp_4500() {
    let mut i_config = initiator_config();
    i_config.nat_traversal = NatTraversal::Force;
    let mut run = Run::start(i_config, responder_config(), false);
    run.settle();
    assert!(run.responder.is_established());
    // The faked source hash matches no address of ours: the responder believes we are behind
    // a NAT, as with strongSwan's encap = yes.
    let nat = run
        .responder_events
        .iter()
        .find_map(|e| match e {
            Event::IkeSaEstablished(e) => Some(e.nat),
            _ => None,
        })
        .unwrap();
    assert!(nat.remote_behind_nat && !nat.local_behind_nat);
    let i = Run::installed(&run.initiator_events)[0];
    let r = Run::installed(&run.responder_events)[0];
    assert_eq!(i.path.udp_encap, ports(4500, 4500));
    assert_eq!(r.path.udp_encap, ports(4500, 4500));
    assert!(run.initiator_sent[1..]
        .iter()
        .all(|t| t.destination.port() == 4500));
}

#[test]
fn the_responder_can_be_the_one_forcing_encapsulation() {
    let mut r_config = responder_config();
    r_config.nat_traversal = NatTraversal::Force;
    let mut run = Run::start(initiator_config(), r_config, false);
    run.settle();
    let i = Run::installed(&run.initiator_events)[0];
    let r = Run::installed(&run.responder_events)[0];
    assert_eq!(i.path.udp_encap, ports(4500, 4500));
    assert_eq!(r.path.udp_encap, ports(4500, 4500));
}

#[test]
fn with_nat_traversal_off_no_detection_is_sent_or_answered_and_nothing_moves() {
    let mut i_config = initiator_config();
    i_config.nat_traversal = NatTraversal::Off;
    // Even a real NAT in between does not make us move when we do not look for it.
    let mut run = Run::start(i_config, responder_config(), true);
    run.settle();
    let has_nat_d = |t: &Transmit| {
        Message::decode(&t.contents)
            .unwrap()
            .payloads
            .iter()
            .any(|p| {
                matches!(p, Payload::Notify(n) if matches!(n.notify_type,
                NotifyType::NatDetectionSourceIp | NotifyType::NatDetectionDestinationIp))
            })
    };
    assert!(!has_nat_d(&run.initiator_sent[0]));
    assert!(!has_nat_d(&run.responder_sent[0]));
    assert!(run.responder.is_established());
    assert!(run
        .initiator_sent
        .iter()
        .all(|t| t.destination.port() == 500));
    let r = Run::installed(&run.responder_events)[0];
    assert_eq!(r.path.udp_encap, None);
}

#[test]
fn the_nat_t_path_survives_an_ike_sa_rekey_and_reaches_new_child_sas() {
    let mut run = Run::start(initiator_config(), responder_config(), true);
    run.settle();
    run.now += Duration::from_secs(1);
    run.initiator.rekey(run.now).unwrap();
    run.settle();
    let mut new_i = run.initiator.poll_rekeyed().expect("rekeyed");
    let mut new_r = run.responder.poll_rekeyed().expect("rekeyed");
    assert_eq!(new_i.path(), run.initiator.path());
    assert_eq!(new_r.path(), run.responder.path());
    std::mem::swap(&mut run.initiator, &mut new_i);
    std::mem::swap(&mut run.responder, &mut new_r);
    run.settle();
    run.initiator.create_child(run.now).unwrap();
    run.settle();
    let i = *Run::installed(&run.initiator_events).last().unwrap();
    let r = *Run::installed(&run.responder_events).last().unwrap();
    assert_ne!(
        i.inbound_spi,
        Run::installed(&run.initiator_events)[0].inbound_spi
    );
    assert_eq!(i.path.udp_encap, ports(4500, 4500));
    assert_eq!(r.path.udp_encap, ports(4500, 31001));
    assert_eq!(i.outbound_spi, r.inbound_spi);
}

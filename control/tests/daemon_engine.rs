//! The daemon's engine without sockets: two engines joined in memory, each writing its own SA
//! table, checked through the data plane's reader — what a worker would see.

use std::net::{IpAddr, SocketAddr};
use std::path::Path as FsPath;
use std::time::{Duration, Instant};

use xipsec_control::config::{Config, Macros};
use xipsec_control::daemon::{prepare, Defaults, Engine, Plane, RouteChange, REKEYED_GRACE};
use xipsec_control::ike::{NatTraversal, Path};
use xipsec_dataplane::esp::UdpEncap;
use xipsec_dataplane::table::{Direction, Policy, TableReader, ANY_WORKER};

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

fn config_text(local: &str, remote: &str, local_id: &str, remote_id: &str, start: bool) -> String {
    let (local_ts, remote_ts) = if local == A {
        ("10.1.0.0/24", "10.2.0.0/24")
    } else {
        ("10.2.0.0/24", "10.1.0.0/24")
    };
    let start_action = if start { "start" } else { "none" };
    format!(
        r#"
[[connection]]
name = "site"
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
rekey_time = 3600
  [connection.local]
  auth = "psk"
  id = "{local_id}"
  psk = "a shared secret long enough"
  [connection.remote]
  auth = "psk"
  id = "{remote_id}"
  [[connection.child]]
  name = "net"
  local_ts = ["{local_ts}"]
  remote_ts = ["{remote_ts}"]
  esp_proposals = ["aes256gcm16"]
  start_action = "{start_action}"
  rekey_time = 600
  replay_window = 2048
"#
    )
}

struct Side {
    engine: Engine,
    addr: IpAddr,
    table: std::path::PathBuf,
}

fn side(dir: &FsPath, name: &str, text: &str, addr: &str, nat: NatTraversal) -> Side {
    let config = Config::parse(text, name, dir, &Macros::new()).expect("valid config");
    let defaults = Defaults {
        natt_port: 4500,
        nat_traversal: nat,
        retransmit: Default::default(),
    };
    let conns = config
        .connections
        .iter()
        .map(|c| prepare(c, defaults).expect("runnable"))
        .collect();
    let table = dir.join(format!("{name}.table"));
    let plane = Plane::create(&table, 1024).unwrap();
    let addr: IpAddr = addr.parse().unwrap();
    Side {
        engine: Engine::new(conns, plane, vec![addr]),
        addr,
        table,
    }
}

/// Moves every queued datagram to the other side until both are quiet.
fn exchange(a: &mut Side, b: &mut Side, now: Instant) {
    while deliver(a, b, now) | deliver(b, a, now) {}
}

/// Delivers what `from` queued; whether there was anything.
fn deliver(from: &mut Side, to: &mut Side, now: Instant) -> bool {
    let mut moved = false;
    while let Some(t) = from.engine.poll_transmit() {
        moved = true;
        assert_eq!(t.source.ip(), from.addr);
        assert_eq!(t.destination.ip(), to.addr);
        let path = Path {
            local: t.destination,
            remote: t.source,
        };
        to.engine.datagram(now, path, &t.contents);
    }
    moved
}

/// Runs both engines' timers up to `until`, exchanging after each.
fn run_until(a: &mut Side, b: &mut Side, now: &mut Instant, until: Instant) {
    while let Some(next) = [a.engine.next_timeout(), b.engine.next_timeout()]
        .into_iter()
        .flatten()
        .min()
        .filter(|t| *t <= until)
    {
        *now = next.max(*now);
        a.engine.timeout(*now);
        b.engine.timeout(*now);
        exchange(a, b, *now);
    }
    *now = until;
}

/// The table as a worker sees it: (inbound SPI, keymat) and (outbound SPI, keymat, policy).
struct Seen {
    inbound: Vec<(u32, Vec<u8>, u32)>,
    outbound: Vec<(u32, Vec<u8>, Option<UdpEncap>)>,
    policies: Vec<Policy>,
}

fn seen(side: &Side) -> Seen {
    let reader = TableReader::open(&side.table).unwrap();
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    for slot in 0..reader.capacity() {
        if let Ok(s) = reader.read(xipsec_dataplane::table::SlotId(slot)) {
            let r = &s.record;
            match r.direction {
                Direction::Inbound => inbound.push((
                    r.params.spi,
                    r.keymat.as_bytes().to_vec(),
                    r.params.replay_window,
                )),
                Direction::Outbound => outbound.push((
                    r.params.spi,
                    r.keymat.as_bytes().to_vec(),
                    r.params.udp_encap,
                )),
            }
        }
    }
    let mut policies = Vec::new();
    reader.read_policies(&mut policies).unwrap();
    Seen {
        inbound,
        outbound,
        policies,
    }
}

fn pair(dir: &FsPath, nat: NatTraversal) -> (Side, Side) {
    let a = side(
        dir,
        "a",
        &config_text(A, B, "a.example", "b.example", true),
        A,
        nat,
    );
    let b = side(
        dir,
        "b",
        &config_text(B, A, "b.example", "a.example", false),
        B,
        NatTraversal::Detect,
    );
    (a, b)
}

/// Every outbound SA of one side is an inbound SA of the other with the same keys.
fn assert_mirrored(a: &Seen, b: &Seen) {
    for (spi, key, _) in &a.outbound {
        assert!(
            b.inbound.iter().any(|(s, k, _)| s == spi && k == key),
            "outbound {spi:08x} has no matching inbound SA on the peer"
        );
    }
}

#[test]
fn a_started_connection_installs_mirrored_child_sas_and_policies_in_both_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (1, 1));
    assert_eq!((sb.inbound.len(), sb.outbound.len()), (1, 1));
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    assert_eq!(sa.inbound[0].1.len(), 36, "AES-256-GCM key and salt");
    assert_eq!(sa.inbound[0].2, 2048, "the child's replay_window");
    // The inbound SA names its outbound twin, which the inbound policy check needs.
    let reader = TableReader::open(&a.table).unwrap();
    let (_, inbound) = reader.read_inbound(sa.inbound[0].0).unwrap();
    let twin = inbound.record.pair.expect("a pair");
    assert_eq!(
        reader.read(twin).unwrap().record.params.spi,
        sa.outbound[0].0
    );
    assert_eq!(sa.policies[0].outbound, twin);
    assert_eq!(sa.outbound[0].2, None, "no NAT, no encapsulation");
    // A's policy sends 10.1.0.0/24 -> 10.2.0.0/24 into its outbound SA.
    let flow = xipsec_dataplane::table::Flow {
        source: "10.1.0.7".parse().unwrap(),
        destination: "10.2.0.9".parse().unwrap(),
        protocol: 17,
        ports: Some((1000, 2000)),
    };
    assert_eq!(sa.policies.len(), 1);
    assert!(sa.policies[0].matches(&flow));
    let back = xipsec_dataplane::table::Flow {
        source: "10.2.0.9".parse().unwrap(),
        destination: "10.1.0.7".parse().unwrap(),
        ..flow
    };
    assert!(sb.policies[0].matches(&back));
    assert!(!sa.policies[0].matches(&back));
    assert_eq!(a.engine.counters().child_installed, 1);
    assert_eq!(b.engine.counters().ike_established, 1);
}

#[test]
fn forced_encapsulation_reaches_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Force);
    let now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let (sa, sb) = (seen(&a), seen(&b));
    let natt = Some(UdpEncap {
        local_port: 4500,
        remote_port: 4500,
    });
    assert_eq!(sa.outbound[0].2, natt);
    assert_eq!(sb.outbound[0].2, natt);
}

#[test]
fn child_sas_are_rekeyed_on_time_make_before_break_and_the_old_ones_leave_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let mut now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let first = seen(&a).outbound[0].0;
    let route = RouteChange::Add("10.2.0.0/24".parse().unwrap());
    assert_eq!(a.engine.poll_route_change(), Some(route));
    assert_eq!(a.engine.poll_route_change(), None);
    // The child's rekey_time is 600 s (jittered down by at most a tenth); one side rekeys,
    // and the old pair goes after its grace.
    let until = now + Duration::from_secs(601) + REKEYED_GRACE;
    run_until(&mut a, &mut b, &mut now, until);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!(sa.outbound.len(), 1, "the old pair is gone");
    assert_ne!(sa.outbound[0].0, first);
    assert_eq!(sa.inbound.len(), 1);
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    // The SPD follows the new outbound SA.
    let reader = TableReader::open(&a.table).unwrap();
    let mut policies = Vec::new();
    reader.read_policies(&mut policies).unwrap();
    assert_eq!(policies.len(), 1);
    let snap = reader.read(policies[0].outbound).unwrap();
    assert_eq!(snap.record.params.spi, sa.outbound[0].0);
    // The route stayed through the rekey (never a moment without it), and goes with the
    // last Child SA.
    assert_eq!(a.engine.poll_route_change(), None);
    a.engine.terminate(now, "site").unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(
        a.engine.poll_route_change(),
        Some(RouteChange::Remove("10.2.0.0/24".parse().unwrap()))
    );
    assert_eq!(
        b.engine.poll_route_change(),
        Some(RouteChange::Add("10.1.0.0/24".parse().unwrap()))
    );
}

/// The outbound slot of `side`'s only Child SA, as a worker finds it (through the SPD).
fn outbound_slot(side: &Side) -> xipsec_dataplane::table::SlotId {
    let reader = TableReader::open(&side.table).unwrap();
    let mut policies = Vec::new();
    reader.read_policies(&mut policies).unwrap();
    assert_eq!(policies.len(), 1);
    policies[0].outbound
}

/// What a worker does when an SA reaches a lifetime: raises the flag in its worker area.
fn raise(side: &Side, slot: xipsec_dataplane::table::SlotId, flag: u64) {
    let reader = TableReader::open(&side.table).unwrap();
    reader.worker_area(slot).unwrap().raise(flag);
}

#[test]
fn what_the_workers_report_rekeys_or_deletes_the_child_sa() {
    use xipsec_dataplane::table::layout::flags;
    let dir = tempfile::tempdir().unwrap();
    let volume = "  rekey_bytes = 1000000000\n  rekey_packets = 5000000\n  life_packets = 6000000";
    let text = config_text(A, B, "a.example", "b.example", true).replace(
        "  replay_window = 2048",
        &format!("  replay_window = 2048\n{volume}"),
    );
    let text_b = config_text(B, A, "b.example", "a.example", false);
    let now = Instant::now();
    let (mut a, mut b) = started(dir.path(), &text, &text_b, now);
    // The configured volume lifetimes are in both of A's records, life_bytes a tenth past.
    let slot = outbound_slot(&a);
    let reader = TableReader::open(&a.table).unwrap();
    let lifetimes = reader.read(slot).unwrap().record.lifetimes;
    assert_eq!(
        (lifetimes.soft_bytes, lifetimes.hard_bytes),
        (1_000_000_000, 1_100_000_000)
    );
    assert_eq!(
        (lifetimes.soft_packets, lifetimes.hard_packets),
        (5_000_000, 6_000_000)
    );
    // Nothing reported: nothing done.
    assert_eq!(a.engine.data_plane_lifetimes(now), 0);

    // A soft expiry of the outbound SA: a rekey, make-before-break; the old pair goes.
    let first = seen(&a).outbound[0].0;
    raise(&a, slot, flags::SOFT_EXPIRED);
    assert_eq!(a.engine.data_plane_lifetimes(now), 1);
    // Still rekeying: asked once, not again each second.
    assert_eq!(a.engine.data_plane_lifetimes(now), 0);
    exchange(&mut a, &mut b, now);
    let mut now = now;
    let until = now + REKEYED_GRACE;
    run_until(&mut a, &mut b, &mut now, until);
    let after = seen(&a);
    assert_eq!(after.outbound.len(), 1);
    assert_ne!(after.outbound[0].0, first, "rekeyed");
    assert_mirrored(&after, &seen(&b));

    // The sequence space of the new one nearly used up: rekeyed again.
    let second = after.outbound[0].0;
    raise(&a, outbound_slot(&a), flags::REKEY_SOON);
    assert_eq!(a.engine.data_plane_lifetimes(now), 1);
    exchange(&mut a, &mut b, now);
    let until = now + REKEYED_GRACE;
    run_until(&mut a, &mut b, &mut now, until);
    assert_ne!(seen(&a).outbound[0].0, second);

    // A hard expiry (the worker stopped using it): the Child SA is deleted on both sides,
    // at once.
    raise(&a, outbound_slot(&a), flags::HARD_EXPIRED);
    assert_eq!(a.engine.data_plane_lifetimes(now), 1);
    exchange(&mut a, &mut b, now);
    assert_eq!(a.engine.plane().installed(), 0);
    assert_eq!(b.engine.plane().installed(), 0);
}

#[test]
fn a_rekeyed_child_sa_stays_in_the_table_for_a_grace_period_behind_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let mut now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let (old_out, old_in) = (seen(&a).outbound[0].0, seen(&a).inbound[0].0);
    a.engine.rekey(now, "site", true).unwrap();
    exchange(&mut a, &mut b, now);
    // Both sides keep the old pair, its policy behind the new one's: packets sent with it
    // before the switch still decrypt and pass the inbound policy check.
    for side in [&a, &b] {
        let seen = seen(side);
        assert_eq!(seen.outbound.len(), 2);
        assert_eq!(seen.inbound.len(), 2);
        let reader = TableReader::open(&side.table).unwrap();
        let spi_of = |policy: &Policy| reader.read(policy.outbound).unwrap().record.params.spi;
        assert_eq!(seen.policies.len(), 2);
        assert_ne!(spi_of(&seen.policies[0]), spi_of(&seen.policies[1]));
    }
    let reader = TableReader::open(&a.table).unwrap();
    let first = reader.read(seen(&a).policies[0].outbound).unwrap();
    assert_ne!(first.record.params.spi, old_out, "the new SA comes first");
    assert!(seen(&a).inbound.iter().any(|(spi, _, _)| *spi == old_in));
    // After the grace, only the new pair.
    let until = now + REKEYED_GRACE;
    run_until(&mut a, &mut b, &mut now, until);
    for side in [&a, &b] {
        let seen = seen(side);
        assert_eq!((seen.outbound.len(), seen.inbound.len()), (1, 1));
        assert_ne!(seen.outbound[0].0, old_out);
        assert_eq!(seen.policies.len(), 1);
    }
}

#[test]
fn an_ike_sa_rekey_keeps_the_child_sas_and_their_table_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let mut now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let ids: Vec<u64> = a.engine.ike_sas().map(|e| e.id).collect();
    // Past the IKE rekey_time (3600 s) but not a child's (rekeyed at 540..600 s, and then
    // again): compare SPIs of IKE SAs instead of children.
    let spis_before: Vec<(u64, u64)> = a
        .engine
        .ike_sas()
        .map(|e| (e.sa.spi_i(), e.sa.spi_r()))
        .collect();
    // The rekey comes within the last tenth of 3600 s; the old SA keeps its cached response
    // 30 s longer.
    let until = now + Duration::from_secs(3601 + 31);
    run_until(&mut a, &mut b, &mut now, until);
    let spis_after: Vec<(u64, u64)> = a
        .engine
        .ike_sas()
        .map(|e| (e.sa.spi_i(), e.sa.spi_r()))
        .collect();
    assert_eq!(spis_after.len(), 1, "one IKE SA: the successor");
    assert_ne!(spis_after, spis_before);
    assert!(a.engine.ike_sas().all(|e| !ids.contains(&e.id)));
    let entry = a.engine.ike_sas().next().unwrap();
    assert_eq!(
        entry.children.len(),
        1,
        "the Child SA moved to the successor"
    );
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (1, 1));
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    // And the successor still works: terminating it removes everything on both sides.
    a.engine.terminate(now, "site").unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(a.engine.plane().installed(), 0);
    assert_eq!(b.engine.plane().installed(), 0);
}

#[test]
fn terminate_by_id_deletes_on_both_sides_and_empties_both_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let id = b.engine.ike_sas().next().unwrap().id;
    assert_eq!(b.engine.terminate(now, &id.to_string()), Ok(1));
    exchange(&mut a, &mut b, now);
    // Gone from the tables at once; the IKE SAs keep their last response for a
    // retransmitted request a little longer (half_open_timeout), then go.
    assert_eq!(a.engine.plane().installed(), 0);
    assert_eq!(b.engine.plane().installed(), 0);
    let mut now = now;
    let until = now + Duration::from_secs(31);
    run_until(&mut a, &mut b, &mut now, until);
    assert!(a.engine.is_empty() && b.engine.is_empty());
    assert_eq!(seen(&a).policies.len(), 0);
    assert_eq!(seen(&b).inbound.len(), 0);
    assert!(a.engine.terminate(now, "site").is_err());
    assert!(a.engine.initiate(now, "nope").is_err());
}

#[test]
fn a_peer_no_connection_accepts_and_garbage_are_counted_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let now = Instant::now();
    a.engine.start(now);
    let first = a.engine.poll_transmit().unwrap();
    let stranger = Path {
        local: SocketAddr::new(b.addr, 500),
        remote: "203.0.113.9:500".parse().unwrap(),
    };
    b.engine.datagram(now, stranger, &first.contents);
    assert_eq!(b.engine.counters().dropped_no_connection, 1);
    assert!(b.engine.poll_transmit().is_none());
    b.engine.datagram(now, stranger, &[1, 2, 3]);
    assert_eq!(b.engine.counters().dropped_malformed, 1);
    let mut unknown = first.contents.clone();
    unknown[8..16].copy_from_slice(&[9; 8]); // a responder SPI nobody has
    unknown[19] |= 0x20; // a response
    b.engine.datagram(now, stranger, &unknown);
    assert_eq!(b.engine.counters().dropped_unknown_spi, 1);
    assert!(b.engine.is_empty());
}

fn prepared(dir: &FsPath, text: &str) -> Vec<xipsec_control::daemon::Prepared> {
    let config = Config::parse(text, "reload", dir, &Macros::new()).unwrap();
    let defaults = Defaults {
        natt_port: 4500,
        nat_traversal: NatTraversal::Detect,
        retransmit: Default::default(),
    };
    config
        .connections
        .iter()
        .map(|c| prepare(c, defaults).unwrap())
        .collect()
}

#[test]
fn reload_keeps_unchanged_connections_restarts_changed_ones_and_deletes_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let spis = |s: &Side| -> Vec<(u64, u64)> {
        s.engine
            .ike_sas()
            .filter(|e| e.sa.is_established())
            .map(|e| (e.sa.spi_i(), e.sa.spi_r()))
            .collect()
    };
    let before = spis(&a);

    // The same file again: nothing moves.
    let same = config_text(A, B, "a.example", "b.example", true);
    assert_eq!(
        a.engine.reload(now, prepared(dir.path(), &same), true),
        (1, 0, 0, 0)
    );
    exchange(&mut a, &mut b, now);
    assert_eq!(spis(&a), before);

    // Another replay window: the old IKE SA goes, a new one comes up with it.
    let changed = same.replace("replay_window = 2048", "replay_window = 4096");
    assert_eq!(
        a.engine.reload(now, prepared(dir.path(), &changed), true),
        (0, 1, 0, 0)
    );
    exchange(&mut a, &mut b, now);
    let after = spis(&a);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (1, 1));
    assert_eq!(sa.inbound[0].2, 4096, "the new replay window");
    assert_mirrored(&sa, &sb);

    // No connection left: everything is deleted.
    assert_eq!(a.engine.reload(now, Vec::new(), true), (0, 0, 1, 0));
    exchange(&mut a, &mut b, now);
    assert_eq!(a.engine.plane().installed(), 0);
    assert_eq!(b.engine.plane().installed(), 0);
    assert!(a.engine.initiate(now, "site").is_err());
}

#[test]
fn manual_sas_reach_the_table_with_their_policies() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[[manual_sa]]
name = "a-to-b"
direction = "out"
spi = 0x7001
cipher = "aes256gcm16"
key = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
local = "198.51.100.1"
remote = "198.51.100.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
encap = { sport = 4500, dport = 4501 }

[[manual_sa]]
name = "b-to-a"
direction = "in"
spi = 0x7002
cipher = "aes128gcm16"
key = "hex:000102030405060708090a0b0c0d0e0f10111213"
local = "198.51.100.1"
remote = "198.51.100.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
replay_window = 64
"#;
    let config = Config::parse(text, "manual", dir.path(), &Macros::new()).unwrap();
    let table = dir.path().join("manual.table");
    let mut plane = Plane::create(&table, 64).unwrap();
    for sa in &config.manual_sas {
        plane.install_manual(sa).unwrap();
    }
    let reader = TableReader::open(&table).unwrap();
    let (_, inbound) = reader.read_inbound(0x7002).expect("inbound by SPI");
    assert_eq!(inbound.record.params.replay_window, 64);
    assert_eq!(inbound.record.keymat.as_bytes().len(), 20);
    let mut policies = Vec::new();
    reader.read_policies(&mut policies).unwrap();
    assert_eq!(policies.len(), 1);
    let out = reader.read(policies[0].outbound).unwrap().record;
    assert_eq!(out.params.spi, 0x7001);
    assert_eq!(
        out.params.udp_encap,
        Some(UdpEncap {
            local_port: 4500,
            remote_port: 4501
        })
    );
    assert!(
        reader.read_inbound(0x7001).is_none(),
        "outbound SAs are not in the SPI index"
    );
    // The same SPI twice inbound is refused, not silently replaced.
    assert!(plane.install_manual(&config.manual_sas[1]).is_err());
}

#[test]
fn behind_a_nat_keepalives_go_out_every_20_seconds_and_only_from_the_side_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    const PRIVATE: &str = "10.0.0.2";
    const PUBLIC: &str = "203.0.113.7";
    let mut a = side(
        dir.path(),
        "a",
        &config_text(A, B, "a.example", "b.example", true).replace(A, PRIVATE),
        PRIVATE,
        NatTraversal::Detect,
    );
    let mut b = side(
        dir.path(),
        "b",
        &config_text(B, A, "b.example", "a.example", false).replace(
            &format!("remote_addrs = [\"{A}\"]"),
            "remote_addrs = [\"%any\"]",
        ),
        B,
        NatTraversal::Detect,
    );
    // A NAT maps A's ports 500 and 4500 to 31000 and 31001 on its public address.
    let public = |port: u16| -> SocketAddr {
        SocketAddr::new(
            PUBLIC.parse().unwrap(),
            if port == 500 { 31000 } else { 31001 },
        )
    };
    let mut now = Instant::now();
    a.engine.start(now);
    for _ in 0..10 {
        while let Some(t) = a.engine.poll_transmit() {
            let path = Path {
                local: t.destination,
                remote: public(t.source.port()),
            };
            b.engine.datagram(now, path, &t.contents);
        }
        while let Some(t) = b.engine.poll_transmit() {
            assert_eq!(t.destination.ip(), PUBLIC.parse::<IpAddr>().unwrap());
            let local = SocketAddr::new(
                PRIVATE.parse().unwrap(),
                if t.destination.port() == 31000 {
                    500
                } else {
                    4500
                },
            );
            let path = Path {
                local,
                remote: t.source,
            };
            a.engine.datagram(now, path, &t.contents);
        }
    }
    assert_eq!(
        seen(&a).outbound.len(),
        1,
        "the tunnel is up through the NAT"
    );
    assert_eq!(
        seen(&b).outbound[0].2,
        Some(UdpEncap {
            local_port: 4500,
            remote_port: 31001
        })
    );
    assert_eq!(a.engine.poll_keepalive(), None);
    for _ in 0..3 {
        let next = now + Duration::from_secs(20);
        while let Some(t) = a.engine.next_timeout().filter(|t| *t <= next) {
            now = t;
            a.engine.timeout(now);
        }
        now = next;
        assert_eq!(
            a.engine.poll_keepalive(),
            Some(Path {
                local: SocketAddr::new(PRIVATE.parse().unwrap(), 4500),
                remote: SocketAddr::new(B.parse().unwrap(), 4500),
            })
        );
        assert_eq!(a.engine.poll_keepalive(), None, "one per interval");
        b.engine.timeout(now);
        assert_eq!(b.engine.poll_keepalive(), None, "B is not behind a NAT");
        // Keep B's side of the exchange quiet: drop what the timers sent.
        while a.engine.poll_transmit().is_some() {}
        while b.engine.poll_transmit().is_some() {}
    }
}

#[test]
fn simultaneous_ike_rekeys_from_both_daemons_leave_one_ike_sa_with_the_child_sas() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), NatTraversal::Detect);
    let mut now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let before = seen(&a).outbound[0].0;
    assert_eq!(a.engine.rekey(now, "site", false), Ok(1));
    assert_eq!(b.engine.rekey(now, "site", false), Ok(1));
    exchange(&mut a, &mut b, now);
    // The redundant SA and the old one go at once; their cached responses a bit later.
    let until = now + Duration::from_secs(31);
    run_until(&mut a, &mut b, &mut now, until);
    for side in [&a, &b] {
        let sas: Vec<_> = side.engine.ike_sas().collect();
        assert_eq!(sas.len(), 1, "one IKE SA left");
        assert!(sas[0].sa.is_established());
        assert_eq!(sas[0].children.len(), 1, "it has the Child SA");
    }
    let (x, y) = (
        a.engine.ike_sas().next().unwrap(),
        b.engine.ike_sas().next().unwrap(),
    );
    assert_eq!((x.sa.spi_i(), x.sa.spi_r()), (y.sa.spi_i(), y.sa.spi_r()));
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!(sa.outbound.len(), 1);
    assert_eq!(
        sa.outbound[0].0, before,
        "an IKE SA rekey leaves the Child SA alone"
    );
    assert_mirrored(&sa, &sb);
}

#[test]
fn key_renewal_reauth_brings_up_a_new_ike_sa_before_the_old_one_goes() {
    let dir = tempfile::tempdir().unwrap();
    // Only A renews, by reauthentication, after an hour; nothing else rekeys.
    let never = "rekey_time = 214783647";
    let text = config_text(A, B, "a.example", "b.example", true)
        .replace("rekey_time = 600", never)
        .replace(
            "rekey_time = 3600",
            "rekey_time = 3600\nkey_renewal = \"reauth\"",
        );
    let mut a = side(dir.path(), "a", &text, A, NatTraversal::Detect);
    let text = config_text(B, A, "b.example", "a.example", false)
        .replace("rekey_time = 600", never)
        .replace("rekey_time = 3600", never);
    let mut b = side(dir.path(), "b", &text, B, NatTraversal::Detect);
    let mut now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let first = a.engine.ike_sas().next().unwrap().id;
    let child_before = seen(&a).outbound[0].0;
    let until = now + Duration::from_secs(3601);
    run_until(&mut a, &mut b, &mut now, until);
    let until = now + Duration::from_secs(31);
    run_until(&mut a, &mut b, &mut now, until);
    let sas: Vec<_> = a.engine.ike_sas().collect();
    assert_eq!(sas.len(), 1, "the old IKE SA is gone");
    assert_ne!(sas[0].id, first, "a new IKE SA, not the old one");
    assert!(sas[0].established.is_some());
    assert_eq!(sas[0].replaces, Some(first));
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (1, 1));
    assert_ne!(
        sa.outbound[0].0, child_before,
        "a new Child SA came with it"
    );
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    assert_eq!(b.engine.ike_sas().count(), 1);
}

fn unique_ids_pair(dir: &FsPath, policy: &str) -> (Side, Side) {
    let a = side(
        dir,
        "a",
        &config_text(A, B, "a.example", "b.example", false),
        A,
        NatTraversal::Detect,
    );
    let b = side(
        dir,
        "b",
        &config_text(B, A, "b.example", "a.example", false).replace(
            "rekey_time = 3600",
            &format!("rekey_time = 3600\nunique_ids = \"{policy}\""),
        ),
        B,
        NatTraversal::Detect,
    );
    (a, b)
}

#[test]
fn unique_ids_replace_deletes_the_older_ike_sa_of_the_same_peer_keep_the_newer() {
    for (policy, survivor_is_newer, count) in [
        ("replace", Some(true), 1),
        ("keep", Some(false), 1),
        ("never", None, 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b) = unique_ids_pair(dir.path(), policy);
        let mut now = Instant::now();
        let first = a.engine.initiate(now, "site").unwrap();
        exchange(&mut a, &mut b, now);
        let second = a.engine.initiate(now, "site").unwrap();
        exchange(&mut a, &mut b, now);
        let until = now + Duration::from_secs(31);
        run_until(&mut a, &mut b, &mut now, until);
        let ids: Vec<u64> = a.engine.ike_sas().map(|e| e.id).collect();
        assert_eq!(ids.len(), count, "{policy}: {ids:?}");
        assert_eq!(b.engine.ike_sas().count(), count, "{policy}");
        match survivor_is_newer {
            Some(true) => assert_eq!(ids, [second], "{policy}"),
            Some(false) => assert_eq!(ids, [first], "{policy}"),
            None => {}
        }
        assert_eq!(a.engine.plane().installed(), 2 * count, "{policy}");
        assert_mirrored(&seen(&a), &seen(&b));
    }
}

#[test]
fn every_child_of_a_connection_is_negotiated_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let second = |local: &str, remote: &str| {
        format!(
            "  [[connection.child]]\n  name = \"second\"\n  local_ts = [\"{local}\"]\n  \
             remote_ts = [\"{remote}\"]\n  esp_proposals = [\"aes128gcm16\"]\n  replay_window = 64\n"
        )
    };
    let text_a =
        config_text(A, B, "a.example", "b.example", true) + &second("10.3.0.0/24", "10.4.0.0/24");
    let text_b =
        config_text(B, A, "b.example", "a.example", false) + &second("10.4.0.0/24", "10.3.0.0/24");
    let now = Instant::now();
    let (mut a, b) = started(dir.path(), &text_a, &text_b, now);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (2, 2));
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    let mut windows: Vec<u32> = sa.inbound.iter().map(|(_, _, w)| *w).collect();
    windows.sort();
    assert_eq!(windows, [64, 2048], "each child's own replay window");
    assert_eq!(sa.policies.len(), 2);
    let flow = |s: &str, d: &str| xipsec_dataplane::table::Flow {
        source: s.parse().unwrap(),
        destination: d.parse().unwrap(),
        protocol: 17,
        ports: Some((1, 2)),
    };
    for (s, d) in [("10.1.0.1", "10.2.0.1"), ("10.3.0.1", "10.4.0.1")] {
        assert_eq!(
            sa.policies
                .iter()
                .filter(|p| p.matches(&flow(s, d)))
                .count(),
            1,
            "{s} -> {d}"
        );
    }
    let mut routes = Vec::new();
    while let Some(r) = a.engine.poll_route_change() {
        routes.push(r);
    }
    assert_eq!(routes.len(), 2, "{routes:?}");
    let names: Vec<String> = a
        .engine
        .ike_sas()
        .flat_map(|e| e.children.iter().map(|c| c.sa.config))
        .map(|i| ["net", "second"][i].to_string())
        .collect();
    assert_eq!(names, ["net", "second"]);
}

#[test]
fn a_responder_with_several_any_connections_picks_the_peers_by_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let responder = |name: &str, id: &str, psk: &str, ts: &str| {
        format!(
            r#"
[[connection]]
name = "{name}"
local_addrs = ["{B}"]
remote_addrs = ["%any"]
  [connection.local]
  auth = "psk"
  id = "b.example"
  psk = "{psk}"
  [connection.remote]
  auth = "psk"
  id = "{id}"
  [[connection.child]]
  name = "net"
  local_ts = ["10.2.0.0/24"]
  remote_ts = ["{ts}"]
"#
        )
    };
    let text_b = responder(
        "alice",
        "alice.example",
        "alice's own long secret",
        "10.5.0.0/24",
    ) + &responder(
        "bob",
        "bob.example",
        "bob's own long secret!!",
        "10.1.0.0/24",
    );
    let mut b = side(dir.path(), "b", &text_b, B, NatTraversal::Detect);
    let text_a = config_text(A, B, "bob.example", "b.example", true)
        .replace("a shared secret long enough", "bob's own long secret!!")
        .replace(
            "esp_proposals = [\"aes256gcm16\"]",
            "esp_proposals = [\"aes128gcm16\"]",
        );
    let mut a = side(dir.path(), "a", &text_a, A, NatTraversal::Detect);
    let now = Instant::now();
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    let entry = b.engine.ike_sas().next().expect("an IKE SA");
    assert!(entry.sa.is_established());
    assert_eq!(entry.conn.conn.name, "bob");
    assert_eq!(entry.children.len(), 1);
    assert_mirrored(&seen(&a), &seen(&b));
}

#[test]
fn a_child_sa_whose_rekeys_keep_failing_goes_at_its_hard_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let never = "rekey_time = 214783647";
    // B insists on PFS for every rekey, A offers none: A's rekeys (600 s) are all refused.
    let text_a =
        config_text(A, B, "a.example", "b.example", true).replace("rekey_time = 3600", never);
    let text_b = config_text(B, A, "b.example", "a.example", false)
        .replace("rekey_time = 600", never)
        .replace("rekey_time = 3600", never)
        .replace(
            "esp_proposals = [\"aes256gcm16\"]",
            "esp_proposals = [\"aes256gcm16-modp2048\"]",
        );
    let mut now = Instant::now();
    let (mut a, mut b) = started(dir.path(), &text_a, &text_b, now);
    assert_eq!(a.engine.plane().installed(), 2);
    let until = now + Duration::from_secs(599);
    run_until(&mut a, &mut b, &mut now, until);
    assert_eq!(
        a.engine.plane().installed(),
        2,
        "still there before its hard lifetime"
    );
    let until = now + Duration::from_secs(62);
    run_until(&mut a, &mut b, &mut now, until);
    assert_eq!(a.engine.plane().installed(), 0, "gone at 660 s");
    assert_eq!(
        b.engine.plane().installed(),
        0,
        "and at the peer, told by a Delete"
    );
    assert!(
        a.engine.counters().child_installed == 1,
        "no rekey ever succeeded"
    );
}

#[test]
fn initial_contact_from_a_restarted_peer_clears_its_stale_ike_sas() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = unique_ids_pair(dir.path(), "no");
    let mut now = Instant::now();
    a.engine.initiate(now, "site").unwrap();
    exchange(&mut a, &mut b, now);
    // A second IKE SA while the first stands: no INITIAL_CONTACT, so "no" keeps both.
    a.engine.initiate(now, "site").unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(b.engine.ike_sas().count(), 2);
    // A restarts (its state is gone) and comes back: INITIAL_CONTACT, B drops the old ones.
    let text = config_text(A, B, "a.example", "b.example", false);
    let mut a2 = side(dir.path(), "a2", &text, A, NatTraversal::Detect);
    a2.engine.initiate(now, "site").unwrap();
    exchange(&mut a2, &mut b, now);
    // B's Deletes for the old SAs go to A (the restarted one does not know them).
    while b.engine.poll_transmit().is_some() {}
    let until = now + Duration::from_secs(200);
    run_until(&mut a2, &mut b, &mut now, until);
    let left: Vec<_> = b
        .engine
        .ike_sas()
        .filter(|e| e.sa.is_established())
        .collect();
    assert_eq!(left.len(), 1, "only the new IKE SA");
    assert_eq!(b.engine.plane().installed(), 2);
    assert_mirrored(&seen(&a2), &seen(&b));
}

/// The SPD as a worker reads it.
fn spd_of(reader: &TableReader) -> Vec<Policy> {
    let mut policies = Vec::new();
    reader.read_policies(&mut policies).unwrap();
    policies
}

/// Side A with `text_a`, side B with `text_b`; A starts and both exchange until quiet.
fn started(dir: &FsPath, text_a: &str, text_b: &str, now: Instant) -> (Side, Side) {
    let mut a = side(dir, "a", text_a, A, NatTraversal::Detect);
    let mut b = side(dir, "b", text_b, B, NatTraversal::Detect);
    a.engine.start(now);
    exchange(&mut a, &mut b, now);
    (a, b)
}

/// `config_text` with `per_cpu_sas = n` in the child.
fn per_cpu_text(
    local: &str,
    remote: &str,
    local_id: &str,
    remote_id: &str,
    start: bool,
    n: u32,
) -> String {
    config_text(local, remote, local_id, remote_id, start).replace(
        "replay_window = 2048",
        &format!("replay_window = 2048\n  per_cpu_sas = {n}"),
    )
}

/// Each side's Child SAs by resource (RFC 9611), in order.
fn resources(side: &Side) -> Vec<Option<u32>> {
    let mut r: Vec<Option<u32>> = side
        .engine
        .ike_sas()
        .flat_map(|e| e.children.iter().map(|c| c.sa.resource))
        .collect();
    r.sort();
    r
}

#[test]
fn per_cpu_sas_bring_a_fallback_and_per_resource_child_sas_into_both_tables() {
    let dir = tempfile::tempdir().unwrap();
    let text_a = per_cpu_text(A, B, "a.example", "b.example", true, 2);
    let text_b = per_cpu_text(B, A, "b.example", "a.example", false, 2);
    let mut now = Instant::now();
    let (mut a, mut b) = started(dir.path(), &text_a, &text_b, now);
    let check = |a: &Side, b: &Side| {
        let (sa, sb) = (seen(a), seen(b));
        for s in [&sa, &sb] {
            assert_eq!((s.inbound.len(), s.outbound.len()), (3, 3));
            let mut spis: Vec<u32> = s.inbound.iter().map(|x| x.0).collect();
            spis.extend(s.outbound.iter().map(|x| x.0));
            spis.sort();
            spis.dedup();
            assert_eq!(spis.len(), 6, "distinct SPIs");
            // Three policies with the same selectors, one per outbound SA.
            assert_eq!(s.policies.len(), 3);
            let selectors =
                |p: &Policy| (p.local, p.remote, p.protocol, p.local_ports, p.remote_ports);
            assert!(s
                .policies
                .iter()
                .all(|p| selectors(p) == selectors(&s.policies[0])));
            let mut slots: Vec<u32> = s.policies.iter().map(|p| p.outbound.0).collect();
            slots.sort();
            slots.dedup();
            assert_eq!(slots.len(), 3);
        }
        assert_mirrored(&sa, &sb);
        assert_mirrored(&sb, &sa);
        assert_eq!(resources(a), [None, Some(0), Some(1)]);
        assert_eq!(resources(b), [None, Some(0), Some(1)]);
        // In the table: the fallback's outbound SA belongs to any worker, each per-resource
        // one to its resource's worker (the data plane sends from there without a hand-off).
        for side in [a, b] {
            let reader = TableReader::open(&side.table).unwrap();
            let mut owners: Vec<u16> = spd_of(&reader)
                .iter()
                .map(|p| reader.read(p.outbound).unwrap().record.owner_worker)
                .collect();
            owners.sort();
            assert_eq!(owners, [0, 1, ANY_WORKER]);
        }
    };
    check(&a, &b);
    assert_eq!(a.engine.counters().child_installed, 3);
    assert_eq!(b.engine.counters().child_installed, 3);
    // Past the children's rekey time and the old pairs' grace: every pair was replaced, each
    // keeping its resource.
    let first: Vec<u32> = seen(&a).outbound.iter().map(|x| x.0).collect();
    let until = now + Duration::from_secs(601) + REKEYED_GRACE;
    run_until(&mut a, &mut b, &mut now, until);
    check(&a, &b);
    assert!(seen(&a).outbound.iter().all(|x| !first.contains(&x.0)));
}

#[test]
fn a_per_resource_child_sa_the_peer_deleted_is_asked_for_again() {
    use xipsec_dataplane::table::layout::flags;
    let dir = tempfile::tempdir().unwrap();
    let text_a = per_cpu_text(A, B, "a.example", "b.example", true, 2);
    let text_b = per_cpu_text(B, A, "b.example", "a.example", false, 2);
    let mut now = Instant::now();
    let (mut a, mut b) = started(dir.path(), &text_a, &text_b, now);
    assert_eq!(resources(&a), [None, Some(0), Some(1)]);
    // B's data plane stops resource 0's SA (its hard lifetime): B deletes that Child SA.
    let reader = TableReader::open(&b.table).unwrap();
    let slot = spd_of(&reader)
        .into_iter()
        .map(|p| p.outbound)
        .find(|&slot| reader.read(slot).unwrap().record.owner_worker == 0)
        .unwrap();
    raise(&b, slot, flags::HARD_EXPIRED);
    assert_eq!(b.engine.data_plane_lifetimes(now), 1);
    exchange(&mut a, &mut b, now);
    assert_eq!(resources(&a), [None, Some(1)]);
    assert_eq!(resources(&b), [None, Some(1)]);
    // A, which asked for the resources, asks for the missing one again after a pause.
    let until = now + Duration::from_secs(30);
    run_until(&mut a, &mut b, &mut now, until);
    assert_eq!(resources(&a), [None, Some(0), Some(1)]);
    assert_eq!(resources(&b), [None, Some(0), Some(1)]);
    assert_mirrored(&seen(&a), &seen(&b));
}

#[test]
fn per_cpu_sas_against_a_peer_without_them_leave_the_fallback_only() {
    let dir = tempfile::tempdir().unwrap();
    let text_a = per_cpu_text(A, B, "a.example", "b.example", true, 2);
    let text_b = config_text(B, A, "b.example", "a.example", false);
    let now = Instant::now();
    let (a, b) = started(dir.path(), &text_a, &text_b, now);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (1, 1));
    assert_eq!((sb.inbound.len(), sb.outbound.len()), (1, 1));
    assert_mirrored(&sa, &sb);
    assert_eq!(resources(&a), [None]);
    assert_eq!(resources(&b), [None]);
}

#[test]
fn a_peer_that_takes_fewer_per_cpu_sas_stops_the_initiator_at_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let text_a = per_cpu_text(A, B, "a.example", "b.example", true, 3);
    let text_b = per_cpu_text(B, A, "b.example", "a.example", false, 1);
    let now = Instant::now();
    let (a, b) = started(dir.path(), &text_a, &text_b, now);
    assert_eq!(resources(&a), [None, Some(0)]);
    assert_eq!(resources(&b), [None, Some(0)]);
    let (sa, sb) = (seen(&a), seen(&b));
    assert_eq!((sa.inbound.len(), sa.outbound.len()), (2, 2));
    assert_mirrored(&sa, &sb);
    assert_mirrored(&sb, &sa);
    assert!(a.engine.ike_sas().all(|e| e.sa.is_established()));
}

#[test]
fn per_cpu_sas_out_of_range_or_not_an_integer_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (value, wanted) in [
        ("1025", "out of range"),
        ("-1", "out of range"),
        ("\"4\"", "integer"),
    ] {
        let text = config_text(A, B, "a.example", "b.example", true).replace(
            "replay_window = 2048",
            &format!("replay_window = 2048\n  per_cpu_sas = {value}"),
        );
        let errors = Config::parse(&text, "t.conf", dir.path(), &Macros::new())
            .expect_err("refused")
            .to_string();
        assert!(
            errors.contains("connection[0].child[0].per_cpu_sas"),
            "{errors}"
        );
        assert!(errors.contains(wanted), "{value}: {errors}");
    }
    let text = per_cpu_text(A, B, "a.example", "b.example", true, 1024);
    let config = Config::parse(&text, "t.conf", dir.path(), &Macros::new()).unwrap();
    assert_eq!(config.connections[0].children[0].per_cpu_sas, 1024);
}

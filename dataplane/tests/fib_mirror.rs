//! The FIB mirror against the kernel, in network namespaces: two namespaces joined by a veth
//! pair, addresses and routes set with `ip`, and every answer checked against what `ip -j`
//! says the kernel has (MACs, interface indexes, neighbour entries, routes). Needs root.

#![cfg(target_os = "linux")]

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use xipsec_dataplane::fib::{FibMirror, MirrorConfig, NextHop, NextHops, RouteTarget};
use xipsec_testkit::netns::{veth_pair, wait_for, Netns};
use xipsec_testkit::process::{run_bounded, tool};
use xipsec_testkit::{require, Need};

/// Long enough for ARP/ND on a veth and a netlink round trip on a loaded machine; the
/// tests take milliseconds when things work.
const WAIT: Duration = Duration::from_secs(5);

fn can_run(test: &str) -> bool {
    require(test, &[Need::Root, Need::Ip])
}

/// `ip -j -n <ns> args…`, parsed.
fn ip_json(ns: &Netns, args: &[&str]) -> Value {
    let output = run_bounded(
        Command::new(tool("ip"))
            .args(["-j", "-n", ns.name()])
            .args(args),
        Duration::from_secs(10),
    )
    .expect("running ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {}: {e}: {text}", args.join(" ")))
}

fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    assert_eq!(parts.len(), 6, "a MAC: {text}");
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    mac
}

/// What the kernel says about an interface: (index, MAC, MTU).
fn kernel_link(ns: &Netns, dev: &str) -> (u32, [u8; 6], u32) {
    let links = ip_json(ns, &["link", "show", "dev", dev]);
    let link = &links[0];
    (
        link["ifindex"].as_u64().expect("ifindex") as u32,
        parse_mac(link["address"].as_str().expect("address")),
        link["mtu"].as_u64().expect("mtu") as u32,
    )
}

/// The kernel's neighbour entry for `address` on `dev`: (MAC if it has one, states).
fn kernel_neighbour(ns: &Netns, dev: &str, address: IpAddr) -> Option<(Option<[u8; 6]>, String)> {
    let all = ip_json(ns, &["neigh", "show", "dev", dev]);
    all.as_array()?
        .iter()
        .find(|entry| entry["dst"].as_str().and_then(|d| d.parse().ok()) == Some(address))
        .map(|entry| {
            (
                entry["lladdr"].as_str().map(parse_mac),
                entry["state"].to_string(),
            )
        })
}

/// The link-local address of `dev`, once it has one.
fn link_local(ns: &Netns, dev: &str) -> Option<IpAddr> {
    let all = ip_json(ns, &["-6", "addr", "show", "dev", dev]);
    all[0]["addr_info"]
        .as_array()?
        .iter()
        .find(|a| a["scope"] == "link")?["local"]
        .as_str()?
        .parse()
        .ok()
}

/// Two namespaces joined by `wan` (both ends), up, with the given addresses (with prefix
/// length); no duplicate address detection, so IPv6 addresses, link-local ones included, are
/// usable at once.
fn wired(a_address: &str, b_address: &str) -> (Netns, Netns) {
    let (a, b) = veth_pair("wan", "wan");
    for (ns, address) in [(&a, a_address), (&b, b_address)] {
        // Before the link comes up, so that its link-local address is never tentative (the
        // kernel sends no neighbour solicitation from a tentative address).
        ns.sysctl("net/ipv6/conf/wan/accept_dad", "0");
        ns.ip(&["addr", "add", address, "dev", "wan", "nodad"]);
        ns.ip(&["link", "set", "wan", "up"]);
    }
    // The kernel adds the link-local addresses when it notices the carrier, a moment later.
    for ns in [&a, &b] {
        assert!(
            wait_for(WAIT, || link_local(ns, "wan").is_some()),
            "no link-local address on wan in {}",
            ns.name()
        );
    }
    (a, b)
}

fn addr(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// Looks `destination` up in a new batch until `done` likes the answer or [`WAIT`] passes;
/// returns the last answer.
fn settle(
    hops: &mut impl NextHops,
    destination: IpAddr,
    mut done: impl FnMut(&NextHop) -> bool,
) -> NextHop {
    let mut last = NextHop::Unreachable;
    wait_for(WAIT, || {
        hops.begin_batch();
        last = hops.lookup(destination);
        done(&last)
    });
    last
}

/// Checks one family end to end: `gateway` (b's address) reached through a route to
/// `remote` (a prefix behind b), resolved by the kernel on our request; on-link, unknown and
/// reject destinations; a route added and removed while the mirror runs.
struct Family {
    a_address: &'static str,
    b_address: &'static str,
    gateway: &'static str,
    remote_prefix: &'static str,
    remote_host: &'static str,
    on_link_unknown: &'static str,
    added_prefix: &'static str,
    added_host: &'static str,
    reject_prefix: &'static str,
    reject_host: &'static str,
    default_route: &'static str,
    nowhere: &'static str,
}

fn next_hops_come_from_the_kernel(family: &Family) {
    let (a, b) = wired(family.a_address, family.b_address);
    a.ip(&["route", "add", family.remote_prefix, "via", family.gateway]);
    let (wan, own_mac, mtu) = kernel_link(&a, "wan");
    let (_, peer_mac, _) = kernel_link(&b, "wan");
    let gateway = addr(family.gateway);
    let resolved = NextHop::Resolved {
        ifindex: wan,
        src_mac: own_mac,
        dst_mac: peer_mac,
        mtu,
    };
    a.run(|| {
        let mirror = FibMirror::start().expect("starting the mirror");
        let snapshot = mirror.snapshot();
        let link = snapshot.link(wan).expect("the mirror knows wan");
        assert_eq!(
            (link.name.as_str(), link.mac, link.mtu),
            ("wan", Some(own_mac), mtu)
        );
        assert!(link.up && link.running);

        // Nobody has talked to the gateway yet: the kernel has no entry for it.
        assert_eq!(kernel_neighbour(&a, "wan", gateway), None);
        let mut handle = mirror.handle();
        handle.begin_batch();
        assert_eq!(
            handle.lookup(addr(family.remote_host)),
            NextHop::Unresolved {
                ifindex: wan,
                address: gateway
            }
        );
        // The handle asked; the kernel resolves it; the mirror hears and publishes.
        let answer = settle(&mut handle, addr(family.remote_host), |hop| {
            matches!(hop, NextHop::Resolved { .. })
        });
        assert_eq!(answer, resolved, "stats: {:?}", mirror.stats());
        let (kernel_mac, state) = kernel_neighbour(&a, "wan", gateway).expect("a kernel entry");
        assert_eq!(kernel_mac, Some(peer_mac), "kernel entry state {state}");
        let stats = mirror.stats();
        assert!(stats.resolve_sent >= 1, "{stats:?}");
        assert_eq!(stats.resolve_refused, 0, "{stats:?}");

        // On-link: the destination itself is the next hop.
        handle.begin_batch();
        assert_eq!(handle.lookup(gateway), resolved);
        assert_eq!(
            handle.lookup(addr(family.on_link_unknown)),
            NextHop::Unresolved {
                ifindex: wan,
                address: addr(family.on_link_unknown)
            }
        );
        // No route at all.
        assert_eq!(handle.lookup(addr(family.nowhere)), NextHop::Unreachable);

        // A route added while the mirror runs shows up, and goes again.
        let added = addr(family.added_host);
        assert_eq!(handle.lookup(added), NextHop::Unreachable);
        a.ip(&["route", "add", family.added_prefix, "via", family.gateway]);
        assert_eq!(settle(&mut handle, added, |hop| *hop == resolved), resolved);
        a.ip(&["route", "del", family.added_prefix, "via", family.gateway]);
        assert_eq!(
            settle(&mut handle, added, |hop| *hop == NextHop::Unreachable),
            NextHop::Unreachable
        );

        // Reject routes override a default route that would carry the packet.
        a.ip(&["route", "add", "default", "via", family.gateway]);
        let reject = addr(family.reject_host);
        assert_eq!(
            settle(&mut handle, reject, |hop| *hop == resolved),
            resolved
        );
        for kind in ["blackhole", "unreachable", "prohibit"] {
            a.ip(&["route", "replace", kind, family.reject_prefix]);
            assert_eq!(
                settle(&mut handle, reject, |hop| *hop == NextHop::Unreachable),
                NextHop::Unreachable,
                "{kind}"
            );
            assert_eq!(
                mirror.snapshot().route(reject).map(|r| r.target),
                Some(RouteTarget::Reject),
                "{kind}"
            );
            a.ip(&["route", "del", family.reject_prefix]);
            assert_eq!(
                settle(&mut handle, reject, |hop| *hop == resolved),
                resolved
            );
        }
        assert_eq!(
            mirror
                .snapshot()
                .route(addr(family.nowhere))
                .map(|r| r.prefix),
            Some(family.default_route.parse().unwrap())
        );

        // A link taken down carries nothing.
        a.ip(&["link", "set", "wan", "down"]);
        assert_eq!(
            settle(&mut handle, addr(family.remote_host), |hop| {
                *hop == NextHop::Unreachable
            }),
            NextHop::Unreachable
        );
        stops_promptly(mirror);
    });
}

/// Dropping the mirror stops its thread within the wait (it is woken, not polled for).
fn stops_promptly(mirror: FibMirror) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let dropper = std::thread::spawn(move || {
        drop(mirror);
        flag.store(true, std::sync::atomic::Ordering::Release);
    });
    assert!(
        wait_for(WAIT, || done.load(std::sync::atomic::Ordering::Acquire)),
        "dropping the mirror did not stop its thread"
    );
    dropper.join().expect("dropping the mirror panicked");
}

#[test]
fn ipv4_next_hops_come_from_the_kernel() {
    if !can_run("ipv4_next_hops_come_from_the_kernel") {
        return;
    }
    next_hops_come_from_the_kernel(&Family {
        a_address: "10.77.0.1/24",
        b_address: "10.77.0.2/24",
        gateway: "10.77.0.2",
        remote_prefix: "10.99.0.0/24",
        remote_host: "10.99.0.7",
        on_link_unknown: "10.77.0.3",
        added_prefix: "10.88.0.0/16",
        added_host: "10.88.1.1",
        reject_prefix: "10.66.0.0/16",
        reject_host: "10.66.1.1",
        default_route: "0.0.0.0/0",
        nowhere: "192.0.2.1",
    });
}

#[test]
fn ipv6_next_hops_come_from_the_kernel() {
    if !can_run("ipv6_next_hops_come_from_the_kernel") {
        return;
    }
    next_hops_come_from_the_kernel(&Family {
        a_address: "fd00:77::1/64",
        b_address: "fd00:77::2/64",
        gateway: "fd00:77::2",
        remote_prefix: "fd00:99::/64",
        remote_host: "fd00:99::7",
        on_link_unknown: "fd00:77::3",
        added_prefix: "fd00:88::/48",
        added_host: "fd00:88:0:1::1",
        reject_prefix: "fd00:66::/48",
        reject_host: "fd00:66::1",
        default_route: "::/0",
        nowhere: "2001:db8::1",
    });
}

/// IPv6 routers are usually named by their link-local address: the neighbour is found by
/// (interface, address).
#[test]
fn an_ipv6_link_local_gateway_is_resolved_on_its_interface() {
    if !can_run("an_ipv6_link_local_gateway_is_resolved_on_its_interface") {
        return;
    }
    let (a, b) = wired("fd00:77::1/64", "fd00:77::2/64");
    let gateway = link_local(&b, "wan").expect("a link-local address");
    a.ip(&[
        "route",
        "add",
        "fd00:98::/64",
        "via",
        &gateway.to_string(),
        "dev",
        "wan",
    ]);
    let (wan, own_mac, mtu) = kernel_link(&a, "wan");
    let (_, peer_mac, _) = kernel_link(&b, "wan");
    a.run(|| {
        let mirror = FibMirror::start().expect("starting the mirror");
        let mut handle = mirror.handle();
        handle.begin_batch();
        assert_eq!(
            handle.lookup(addr("fd00:98::1")),
            NextHop::Unresolved {
                ifindex: wan,
                address: gateway
            }
        );
        let answer = settle(&mut handle, addr("fd00:98::1"), |hop| {
            matches!(hop, NextHop::Resolved { .. })
        });
        assert_eq!(
            answer,
            NextHop::Resolved {
                ifindex: wan,
                src_mac: own_mac,
                dst_mac: peer_mac,
                mtu
            }
        );
        assert_eq!(
            kernel_neighbour(&a, "wan", gateway).and_then(|n| n.0),
            Some(peer_mac)
        );
    });
}

/// A netlink socket of the calling thread's namespace, to send the kernel a burst of route
/// additions in one datagram: the kernel applies them all, and multicasts their
/// notifications, within one system call.
fn route_burst(first: u32, count: u32, gateway: [u8; 4]) {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) };
    assert!(
        fd >= 0,
        "netlink socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut datagram = Vec::new();
    for i in 0..count {
        let destination = (0x0ac8_0000u32 + first + i).to_be_bytes(); // 10.200.x.y
        let mut message = Vec::new();
        message.extend(44u32.to_ne_bytes());
        message.extend(24u16.to_ne_bytes()); // RTM_NEWROUTE
        message.extend(0x0601u16.to_ne_bytes()); // REQUEST | CREATE | EXCL, no ACK
        message.extend((i + 1).to_ne_bytes());
        message.extend(0u32.to_ne_bytes());
        // rtmsg: inet, /32, main table, static, universe, unicast
        message.extend([2, 32, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]);
        message.extend([8, 0, 1, 0]); // RTA_DST
        message.extend(destination);
        message.extend([8, 0, 5, 0]); // RTA_GATEWAY
        message.extend(gateway);
        assert_eq!(message.len(), 44);
        datagram.extend(message);
    }
    // SAFETY: the kernel reads `datagram.len()` bytes of `datagram`.
    let sent = unsafe { libc::send(fd.as_raw_fd(), datagram.as_ptr().cast(), datagram.len(), 0) };
    assert_eq!(
        sent,
        datagram.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// The kernel's main-table IPv4 routes under 10.200.0.0/16, by `ip -j route`.
fn kernel_burst_routes(ns: &Netns) -> Vec<IpAddr> {
    let all = ip_json(
        ns,
        &[
            "-4",
            "route",
            "show",
            "table",
            "main",
            "root",
            "10.200.0.0/16",
        ],
    );
    let mut routes: Vec<IpAddr> = all
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| addr(r["dst"].as_str().expect("dst")))
        .collect();
    routes.sort();
    routes
}

/// With a receive buffer of a few messages, a burst of route additions overruns the
/// notification socket (ENOBUFS); the mirror must then read the tables again and end up
/// with every route the kernel has, not just the ones whose notifications fitted.
#[test]
fn after_an_overrun_the_mirror_reads_everything_again() {
    if !can_run("after_an_overrun_the_mirror_reads_everything_again") {
        return;
    }
    let (a, _b) = wired("10.77.0.1/24", "10.77.0.2/24");
    a.run(|| {
        let config = MirrorConfig {
            // The kernel's minimum: a handful of notifications.
            receive_buffer: 1,
            ..MirrorConfig::default()
        };
        let mirror = FibMirror::start_with(config).expect("starting the mirror");
        const BURST: u32 = 1000;
        // A burst normally overruns at once; a few more make that certain enough, and the
        // test says so plainly if the kernel kept up every time.
        let mut bursts = 0;
        while mirror.stats().overruns == 0 && bursts < 10 {
            route_burst(bursts * BURST, BURST, [10, 77, 0, 2]);
            bursts += 1;
            wait_for(Duration::from_millis(200), || mirror.stats().overruns > 0);
        }
        assert!(
            mirror.stats().overruns > 0,
            "{bursts} bursts of {BURST} routes never overran a minimal buffer: {:?}",
            mirror.stats()
        );
        let kernel = kernel_burst_routes(&a);
        assert_eq!(kernel.len(), (bursts * BURST) as usize);
        let mirrored = || {
            let snapshot = mirror.snapshot();
            let mut routes: Vec<IpAddr> = snapshot
                .routes()
                .filter(
                    |r| matches!(r.prefix.addr(), IpAddr::V4(v4) if v4.octets()[..2] == [10, 200]),
                )
                .map(|r| r.prefix.addr())
                .collect();
            routes.sort();
            routes
        };
        assert!(
            wait_for(WAIT, || mirrored() == kernel),
            "the mirror has {} of the kernel's {} routes; {:?}",
            mirrored().len(),
            kernel.len(),
            mirror.stats()
        );
        let stats = mirror.stats();
        eprintln!("overran after {bursts} burst(s) of {BURST}: {stats:?}");
        // The initial five dumps and at least one full round after the overrun.
        assert!(stats.dumps >= 10, "{stats:?}");
    });
}

/// A neighbour the kernel gave up on (FAILED) is asked for again by later packets, so it is
/// found once it answers: an unresolved next hop is not dropped for ever.
#[test]
fn a_failed_neighbour_is_asked_for_again() {
    if !can_run("a_failed_neighbour_is_asked_for_again") {
        return;
    }
    let (a, b) = wired("10.77.0.1/24", "10.77.0.2/24");
    // One solicitation, 100 ms for the answer: an absent neighbour fails at once.
    a.sysctl("net/ipv4/neigh/wan/mcast_solicit", "1");
    a.sysctl("net/ipv4/neigh/wan/retrans_time_ms", "100");
    let (wan, own_mac, mtu) = kernel_link(&a, "wan");
    let (_, peer_mac, _) = kernel_link(&b, "wan");
    let late = addr("10.77.0.3");
    a.run(|| {
        let mirror = FibMirror::start().expect("starting the mirror");
        let mut handle = mirror.handle();
        handle.begin_batch();
        assert_eq!(
            handle.lookup(late),
            NextHop::Unresolved {
                ifindex: wan,
                address: late
            }
        );
        assert!(
            wait_for(WAIT, || {
                kernel_neighbour(&a, "wan", late).is_some_and(|n| n.1.contains("FAILED"))
            }),
            "the kernel never tried and failed: {:?}",
            kernel_neighbour(&a, "wan", late)
        );
        // Now it exists; nothing but the mirror's next request makes the kernel look again.
        b.ip(&["addr", "add", "10.77.0.3/24", "dev", "wan"]);
        let answer = settle(&mut handle, late, |hop| {
            matches!(hop, NextHop::Resolved { .. })
        });
        assert_eq!(
            answer,
            NextHop::Resolved {
                ifindex: wan,
                src_mac: own_mac,
                dst_mac: peer_mac,
                mtu
            },
            "{:?}",
            mirror.stats()
        );
        assert!(mirror.stats().resolve_sent >= 2, "{:?}", mirror.stats());
    });
}

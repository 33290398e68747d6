//! Network namespaces for system tests: created with unique names, torn down by a guard on
//! every exit path, entered per thread with setns(2), and a packet capture on a veth, so the
//! tests need nothing but iproute2 and root.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{process, require, Need};

/// Whether a test that needs root, iproute2 and `/dev/net/tun` can run. When it cannot, it says
/// so loudly and the test returns, unless `XIPSEC_REQUIRE_ALL` is set: then it fails. The same
/// as `require(test, &[Need::Root, Need::Ip, Need::Tun])`.
pub fn can_run(test: &str) -> bool {
    require(test, &[Need::Root, Need::Ip, Need::Tun])
}

/// A prefix no other test run or test of this run uses: the pid and a counter.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "xpt{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ip` with `args`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A network namespace that exists as long as this guard does.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (see [`unique_prefix`]) with `lo` up; panics when `ip` fails.
    pub fn new(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        // From here on the guard deletes it, even if the next step panics.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <this namespace> args…`
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `f` on a thread that has entered this namespace, and returns what it returns.
    /// Sockets and devices it opens belong to the namespace for their whole life.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter().expect("entering the namespace");
                    f()
                })
                .join()
                .expect("the thread in the namespace panicked")
        })
    }

    /// Runs `program args…` inside this namespace (`ip netns exec`) for at most `timeout`;
    /// see [`process::run_bounded`]. A non-zero exit is not an error: look at `status`.
    pub fn exec(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
        process::run_bounded(
            Command::new(process::tool("ip"))
                .args(["netns", "exec", &self.name])
                .arg(process::tool(program))
                .args(args),
            timeout,
        )
    }

    /// Moves the calling thread into this namespace.
    fn enter(&self) -> io::Result<()> {
        let file = File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: setns takes an fd we own for the duration of the call and a flag.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes a sysctl under /proc/sys of this namespace, e.g. `net/ipv4/ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{key}");
        self.run(|| std::fs::write(&path, value))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", self.name));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The namespace (and the veths in it) goes when its last fd closes.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Host A -- gateway A == gateway B -- host B. The hosts are 10.1.0.2 and 10.2.0.2 behind
/// gateways whose LAN sides are 10.1.0.1 and 10.2.0.1; the gateways' WAN link ("wan" in both)
/// carries `wan_a` and `wan_b`. Each namespace is deleted when its guard drops.
#[derive(Debug)]
pub struct Topology {
    /// Host A: 10.1.0.2 on `eth0`, default route via gateway A.
    pub host_a: Netns,
    /// Gateway A: 10.1.0.1 on `lan`, `wan_a` on `wan`, forwarding.
    pub gw_a: Netns,
    /// Gateway B: 10.2.0.1 on `lan`, `wan_b` on `wan`, forwarding.
    pub gw_b: Netns,
    /// Host B: 10.2.0.2 on `eth0`, default route via gateway B.
    pub host_b: Netns,
}

/// Host A's address in a [`Topology`].
pub const HOST_A: &str = "10.1.0.2";
/// Host B's address in a [`Topology`].
pub const HOST_B: &str = "10.2.0.2";

impl Topology {
    /// Builds the namespaces and links. `wan_a` and `wan_b` are addresses with prefix length
    /// ("192.0.2.1/24", "2001:db8:ffff::1/64").
    pub fn new(wan_a: &str, wan_b: &str) -> Topology {
        let prefix = unique_prefix();
        let host_a = Netns::new(format!("{prefix}-ha"));
        let gw_a = Netns::new(format!("{prefix}-ga"));
        let gw_b = Netns::new(format!("{prefix}-gb"));
        let host_b = Netns::new(format!("{prefix}-hb"));
        // Every link is made inside the namespaces: nothing appears in the caller's.
        host_a.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "lan",
            "netns",
            gw_a.name(),
        ]);
        gw_a.ip(&[
            "link",
            "add",
            "wan",
            "type",
            "veth",
            "peer",
            "name",
            "wan",
            "netns",
            gw_b.name(),
        ]);
        gw_b.ip(&[
            "link",
            "add",
            "lan",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host_b.name(),
        ]);
        let v6 = wan_a.contains(':');
        for (ns, dev, addr) in [
            (&host_a, "eth0", "10.1.0.2/24"),
            (&gw_a, "lan", "10.1.0.1/24"),
            (&gw_a, "wan", wan_a),
            (&gw_b, "wan", wan_b),
            (&gw_b, "lan", "10.2.0.1/24"),
            (&host_b, "eth0", "10.2.0.2/24"),
        ] {
            if v6 && dev == "wan" {
                ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
            } else {
                ns.ip(&["addr", "add", addr, "dev", dev]);
            }
            ns.ip(&["link", "set", dev, "up"]);
        }
        host_a.ip(&["route", "add", "default", "via", "10.1.0.1"]);
        host_b.ip(&["route", "add", "default", "via", "10.2.0.1"]);
        gw_a.sysctl("net/ipv4/ip_forward", "1");
        gw_b.sysctl("net/ipv4/ip_forward", "1");
        Topology {
            host_a,
            gw_a,
            gw_b,
            host_b,
        }
    }
}

/// Frames seen on one interface by an AF_PACKET socket, read on a thread of its own until
/// [`stop`](Capture::stop).
#[derive(Debug)]
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing every frame on `interface` of `netns`, in both directions.
    pub fn start(netns: &Netns, interface: &str) -> Capture {
        let fd = netns
            .run(|| packet_socket(interface))
            .expect("an AF_PACKET socket");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let frames = frames.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Acquire) {
                    let mut pollfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one live pollfd, count 1.
                    if unsafe { libc::poll(&mut pollfd, 1, 20) } <= 0 {
                        continue;
                    }
                    loop {
                        // SAFETY: the kernel writes at most buf.len() bytes into buf.
                        let n = unsafe {
                            libc::recv(
                                fd.as_raw_fd(),
                                buf.as_mut_ptr().cast(),
                                buf.len(),
                                libc::MSG_DONTWAIT,
                            )
                        };
                        if n <= 0 {
                            break;
                        }
                        frames.lock().unwrap().push(buf[..n as usize].to_vec());
                    }
                }
            })
        };
        Capture {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    /// Stops, after a moment for frames in flight, and returns every frame seen.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the capture thread panicked");
        }
        std::mem::take(&mut *self.frames.lock().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn packet_socket(interface: &str) -> io::Result<OwnedFd> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol),
        )
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(interface).expect("no NUL in the name");
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain integers; zero is valid.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = index as i32;
    // SAFETY: a live sockaddr_ll and its exact size.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound == -1 {
        return Err(io::Error::last_os_error());
    }
    // Room for a whole burst should the reading thread fall behind.
    let bytes: libc::c_int = 16 << 20;
    // SAFETY: a live int and its size.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// What an Ethernet frame on the WAN link carries, as far as the tests care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WanFrame {
    /// IP protocol 50, and its SPI.
    Esp { spi: u32 },
    /// UDP with port 4500 on either side, and its first payload word.
    NattUdp { first_word: u32 },
    /// ARP, ICMPv6 (neighbour discovery, MLD): link housekeeping.
    Housekeeping,
    /// Anything else: IP protocol and, for UDP, the ports.
    Other { protocol: u8, ports: (u16, u16) },
}

/// What `frame` (Ethernet) carries; anything too short or unknown is `Other`.
pub fn classify_wan_frame(frame: &[u8]) -> WanFrame {
    let other = WanFrame::Other {
        protocol: 0,
        ports: (0, 0),
    };
    if frame.len() < 14 {
        return other;
    }
    let ip = &frame[14..];
    let (protocol, payload) = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0806 => return WanFrame::Housekeeping,
        0x0800 if ip.len() >= 20 => {
            let header_len = usize::from(ip[0] & 0x0F) * 4;
            (ip[9], ip.get(header_len..).unwrap_or_default())
        }
        // A hop-by-hop options header (MLD has one) before the upper layer.
        0x86DD if ip.len() >= 48 && ip[6] == 0 => {
            let length = (usize::from(ip[41]) + 1) * 8;
            (ip[40], ip.get(40 + length..).unwrap_or_default())
        }
        0x86DD if ip.len() >= 40 => (ip[6], &ip[40..]),
        _ => return other,
    };
    match protocol {
        50 if payload.len() >= 4 => WanFrame::Esp {
            spi: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
        },
        58 => WanFrame::Housekeeping,
        17 if payload.len() >= 8 => {
            let ports = (
                u16::from_be_bytes([payload[0], payload[1]]),
                u16::from_be_bytes([payload[2], payload[3]]),
            );
            if ports.0 == 4500 || ports.1 == 4500 {
                let word = payload.get(8..12).unwrap_or(&[0, 0, 0, 0]);
                WanFrame::NattUdp {
                    first_word: u32::from_be_bytes([word[0], word[1], word[2], word[3]]),
                }
            } else {
                WanFrame::Other { protocol, ports }
            }
        }
        _ => WanFrame::Other {
            protocol,
            ports: (0, 0),
        },
    }
}

/// Waits until `done` says yes or `timeout` passes; returns whether it said yes.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The TOS byte / traffic class of an IPv4 or IPv6 Ethernet frame.
pub fn traffic_class(frame: &[u8]) -> Option<u8> {
    match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        0x0800 => frame.get(15).copied(),
        0x86DD => Some((frame.get(14)? << 4) | (frame.get(15)? >> 4)),
        _ => None,
    }
}

/// The MAC address of `interface` in `netns`, from `ip -o link`.
pub fn mac_of(netns: &Netns, interface: &str) -> [u8; 6] {
    let output = std::process::Command::new("ip")
        .args(["-n", netns.name(), "-o", "link", "show", "dev", interface])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&output.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|word| *word != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {text}"));
    let mut bytes = [0u8; 6];
    for (byte, part) in bytes.iter_mut().zip(mac.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    bytes
}

/// Switches off transmit checksum offload on a host's veth. With it on, the kernel leaves the
/// UDP checksum for the "hardware" to finish, veth never does, and AF_XDP hands the frame over
/// as it is; the tunnel then carries a datagram that the far host's stack rightly drops. A real
/// NIC's frames on the wire always carry finished checksums.
pub fn finish_checksums_in_software(netns: &Netns, interface: &str) {
    let status = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            netns.name(),
            "ethtool",
            "-K",
            interface,
            "tx",
            "off",
        ])
        .output()
        .expect("running ethtool (tools/setup installs it)");
    assert!(
        status.status.success(),
        "ethtool -K {interface} tx off: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Two fresh namespaces joined by a veth pair named `wan` on both sides, up, with addresses
/// `a` in the first and `b` in the second (with prefix length: "10.0.0.1/24", "fd00::1/64";
/// IPv6 without duplicate address detection, so it is usable at once).
pub fn wired_pair(a: &str, b: &str) -> (Netns, Netns) {
    let (ns_a, ns_b) = veth_pair("wan", "wan");
    for (ns, address) in [(&ns_a, a), (&ns_b, b)] {
        if address.contains(':') {
            ns.ip(&["addr", "add", address, "dev", "wan", "nodad"]);
        } else {
            ns.ip(&["addr", "add", address, "dev", "wan"]);
        }
        ns.ip(&["link", "set", "wan", "up"]);
    }
    (ns_a, ns_b)
}

/// Two fresh namespaces joined by a veth pair: `a_end` in the first, `b_end` in the second,
/// neither up yet.
pub fn veth_pair(a_end: &str, b_end: &str) -> (Netns, Netns) {
    let prefix = unique_prefix();
    let a = Netns::new(format!("{prefix}-a"));
    let b = Netns::new(format!("{prefix}-b"));
    a.ip(&[
        "link",
        "add",
        a_end,
        "type",
        "veth",
        "peer",
        "name",
        b_end,
        "netns",
        b.name(),
    ]);
    (a, b)
}

//! The classifier attached to a veth pair between two network namespaces this test creates
//! (and deletes on every exit path): real frames, real counters, detach on drop. Needs root.
//! No traffic leaves those namespaces.

mod common;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use xipsec_ebpf::{AttachMode, Classifier, ClassifierConfig, Error, Fault, VerdictCounters};

/// Two network namespaces joined by a veth pair, `a` (10.200.0.1) and `b` (10.200.0.2).
/// Dropping it deletes both namespaces, which deletes the veth pair.
struct Topology {
    ns_a: String,
    ns_b: String,
    veth_a: String,
    veth_b: String,
}

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const IO_TIMEOUT: Duration = Duration::from_secs(2);

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("ip {args:?}: {error} (is iproute2 installed?)"));
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Topology {
    fn new(mtu: u32) -> Topology {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let topology = Topology {
            ns_a: format!("xipsec-ebpf-{pid}-{n}-a"),
            ns_b: format!("xipsec-ebpf-{pid}-{n}-b"),
            veth_a: format!("xe{pid}x{n}a"),
            veth_b: format!("xe{pid}x{n}b"),
        };
        // From here on, Drop cleans up whatever was made.
        let mtu = mtu.to_string();
        let (a, b) = (topology.ns_a.as_str(), topology.ns_b.as_str());
        let (va, vb) = (topology.veth_a.as_str(), topology.veth_b.as_str());
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&[
            "link", "add", va, "netns", a, "mtu", &mtu, "type", "veth", "peer", "name", vb,
            "netns", b, "mtu", &mtu,
        ]);
        ip(&["-n", a, "addr", "add", "10.200.0.1/24", "dev", va]);
        ip(&["-n", b, "addr", "add", "10.200.0.2/24", "dev", vb]);
        for (ns, dev) in [(a, va), (b, vb), (a, "lo"), (b, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        topology
    }

    /// `ip -d link show` of the `a` end.
    fn link_a(&self) -> String {
        ip(&["-n", &self.ns_a, "-d", "link", "show", "dev", &self.veth_a])
    }

    /// Waits (at most 2 s) until no XDP program is attached to the `a` end. Closing the link
    /// detaches at once, unless a child process forked meanwhile (another test running `ip`)
    /// still holds a copy of the descriptor until it execs.
    fn assert_detached(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let link = self.link_a();
            if !link.contains("xdp") {
                return;
            }
            assert!(Instant::now() < deadline, "still attached: {link}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns` (named by `ip netns`).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
                // SAFETY: setns(2) takes a namespace file descriptor that `file` keeps open for
                // the call; it changes the network namespace of this thread only, which ends
                // when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A raw IPv4 socket for protocol 50: the kernel writes the IP header, we write ESP.
fn raw_esp_socket() -> UdpSocket {
    // SAFETY: socket(2) with constant arguments; no memory is passed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 50) };
    assert!(
        fd >= 0,
        "raw ESP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A datagram-style wrapper: send_to is sendto(2) on it, the port is ignored by raw IPv4.
    UdpSocket::from(fd)
}

/// Polls the counters until `done` holds or 5 seconds pass; returns the last reading.
fn wait_for(
    classifier: &Classifier,
    before: &VerdictCounters,
    done: impl Fn(&VerdictCounters) -> bool,
) -> VerdictCounters {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let delta = classifier.counters().unwrap().since(before);
        if done(&delta) || Instant::now() > deadline {
            return delta;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attach_in(
    topology: &Topology,
    classifier: &mut Classifier,
    mode: AttachMode,
) -> Result<xipsec_ebpf::Attachment, Error> {
    let ifname = topology.veth_a.clone();
    in_netns(&topology.ns_a, move || classifier.attach(&ifname, mode))
}

/// Sockets in namespace `a`: the IKE port and the NAT-T port.
fn listeners(topology: &Topology) -> (UdpSocket, UdpSocket) {
    in_netns(&topology.ns_a, || {
        let ike = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 500)).unwrap();
        let natt = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 4500)).unwrap();
        for socket in [&ike, &natt] {
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        }
        (ike, natt)
    })
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0u8; 65536];
    let (length, from) = socket
        .recv_from(&mut buffer)
        .expect("datagram within the timeout");
    assert_eq!(from.ip(), ADDR_B);
    buffer[..length].to_vec()
}

#[test]
fn native_attach_classifies_real_frames_and_detaches_on_drop() {
    if !have_root("native_attach_classifies_real_frames_and_detaches_on_drop") {
        return;
    }
    let topology = Topology::new(1500);
    let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
    let attachment = attach_in(&topology, &mut classifier, AttachMode::Native).unwrap();
    assert_eq!(attachment.mode(), AttachMode::Native);
    assert_eq!(attachment.ifname(), topology.veth_a);
    let link = topology.link_a();
    assert!(
        link.contains("prog/xdp") && !link.contains("xdpgeneric"),
        "{link}"
    );

    let (ike_listener, natt_listener) = listeners(&topology);
    let before = classifier.counters().unwrap();

    in_netns(&topology.ns_b, || {
        let socket = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 4500)).unwrap();
        socket.send_to(&ike(), (ADDR_A, 500)).unwrap();
        socket.send_to(&KEEPALIVE, (ADDR_A, 4500)).unwrap();
        socket.send_to(&ike_with_marker(), (ADDR_A, 4500)).unwrap();
        socket
            .send_to(&esp(0x7001, &[0xab; 40]), (ADDR_A, 4500))
            .unwrap();
        let raw = raw_esp_socket();
        raw.send_to(&esp(0x7002, &[0xcd; 40]), (ADDR_A, 0)).unwrap();
    });

    // IKE reached the kernel's socket on 500; on 4500 the keepalive did not, the IKE message
    // with the marker did, then the ESP-in-UDP datagram (no AF_XDP socket: XDP_PASS fallback).
    assert_eq!(recv(&ike_listener), ike());
    assert_eq!(recv(&natt_listener), ike_with_marker());
    assert_eq!(recv(&natt_listener), esp(0x7001, &[0xab; 40]));

    let delta = wait_for(&classifier, &before, |d| d.esp_to_xsk >= 1);
    assert_eq!(delta.ike_pass, 2, "{delta:?}");
    assert_eq!(delta.keepalive_drop, 1, "{delta:?}");
    assert_eq!(delta.esp_in_udp_to_xsk, 1, "{delta:?}");
    assert_eq!(delta.esp_to_xsk, 1, "{delta:?}");
    assert_eq!(delta.xsk_fallback_pass, 2, "{delta:?}");
    assert_eq!(delta.malformed_pass, 0, "{delta:?}");

    // The same classifier serves one interface at a time.
    let error = attach_in(&topology, &mut classifier, AttachMode::Generic).unwrap_err();
    assert!(matches!(error, Error::AlreadyAttached { .. }), "{error:?}");
    assert_eq!(error.fault(), Fault::Config);

    // A second program on the same interface is refused.
    let mut other = Classifier::load(ClassifierConfig::default()).unwrap();
    let error = attach_in(&topology, &mut other, AttachMode::Native).unwrap_err();
    assert!(matches!(error, Error::Attach { .. }), "{error:?}");
    assert_eq!(error.fault(), Fault::Local);

    drop(attachment);
    topology.assert_detached();

    // Detached: frames no longer move the counters.
    let after_detach = classifier.counters().unwrap();
    in_netns(&topology.ns_b, || {
        let socket = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).unwrap();
        socket.send_to(&ike(), (ADDR_A, 500)).unwrap();
    });
    assert_eq!(recv(&ike_listener), ike());
    assert_eq!(classifier.counters().unwrap(), after_detach);

    // Both classifiers can attach again now; explicit detach reports success.
    attach_in(&topology, &mut classifier, AttachMode::Native)
        .unwrap()
        .detach()
        .unwrap();
    topology.assert_detached();
    let attachment = attach_in(&topology, &mut other, AttachMode::Auto).unwrap();
    assert_eq!(attachment.mode(), AttachMode::Native, "veth has native XDP");
    attachment.detach().unwrap();
    topology.assert_detached();
}

#[test]
fn generic_attach_works_too() {
    if !have_root("generic_attach_works_too") {
        return;
    }
    let topology = Topology::new(1500);
    let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
    let attachment = attach_in(&topology, &mut classifier, AttachMode::Generic).unwrap();
    assert_eq!(attachment.mode(), AttachMode::Generic);
    assert!(
        topology.link_a().contains("xdpgeneric"),
        "{}",
        topology.link_a()
    );
    let (ike_listener, _natt) = listeners(&topology);
    let before = classifier.counters().unwrap();
    in_netns(&topology.ns_b, || {
        let socket = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).unwrap();
        socket.send_to(&ike(), (ADDR_A, 500)).unwrap();
        raw_esp_socket()
            .send_to(&esp(9, &[0; 24]), (ADDR_A, 0))
            .unwrap();
    });
    assert_eq!(recv(&ike_listener), ike());
    let delta = wait_for(&classifier, &before, |d| {
        d.esp_to_xsk >= 1 && d.ike_pass >= 1
    });
    assert_eq!((delta.ike_pass, delta.esp_to_xsk), (1, 1), "{delta:?}");
    drop(attachment);
    topology.assert_detached();
}

/// At MTU 9000 veth refuses XDP programs that cannot take multi-buffer frames; the classifier
/// is an `xdp.frags` program and attaches. A jumbo ESP packet is classified from its first
/// buffer.
#[test]
fn native_attach_at_mtu_9000() {
    if !have_root("native_attach_at_mtu_9000") {
        return;
    }
    let topology = Topology::new(9000);
    let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
    let attachment = attach_in(&topology, &mut classifier, AttachMode::Native).unwrap();
    let (_ike, natt_listener) = listeners(&topology);
    let before = classifier.counters().unwrap();
    let big = esp(0x7003, &[0x5a; 8000]);
    in_netns(&topology.ns_b, || {
        let socket = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).unwrap();
        socket.send_to(&big, (ADDR_A, 4500)).unwrap();
        raw_esp_socket().send_to(&big, (ADDR_A, 0)).unwrap();
    });
    let received = recv(&natt_listener);
    assert!(
        received == big,
        "the fallback passes the whole jumbo datagram: {} bytes",
        received.len()
    );
    let delta = wait_for(&classifier, &before, |d| {
        d.esp_to_xsk >= 1 && d.esp_in_udp_to_xsk >= 1
    });
    assert_eq!(
        (delta.esp_in_udp_to_xsk, delta.esp_to_xsk),
        (1, 1),
        "{delta:?}"
    );
    assert_eq!(delta.malformed_pass, 0, "{delta:?}");
    drop(attachment);
}

#[test]
fn an_unknown_interface_is_a_config_error() {
    if !have_root("an_unknown_interface_is_a_config_error") {
        return;
    }
    let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
    for name in ["xipsec-nope0", "", "a-name-longer-than-15", "nul\0"] {
        let error = classifier.attach(name, AttachMode::Auto).unwrap_err();
        assert!(
            matches!(error, Error::UnknownInterface { .. }),
            "{name:?}: {error:?}"
        );
        assert_eq!(error.fault(), Fault::Config);
    }
}

/// A minimal AF_XDP socket (copy mode, RX only) over the kernel ABI, enough to see frames the
/// classifier redirects arrive: a 16-frame UMEM, its fill and completion rings, an RX ring.
mod xsk {
    use std::ffi::CString;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FRAMES: u32 = 16;
    const FRAME_SIZE: u32 = 4096;
    const RING: u32 = 16;

    struct Mapping {
        ptr: NonNull<libc::c_void>,
        len: usize,
    }

    impl Mapping {
        fn new(fd: Option<BorrowedFd<'_>>, len: usize, offset: u64) -> Mapping {
            let (flags, raw) = match fd {
                Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
                None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
            };
            // SAFETY: a fresh mapping chosen by the kernel (no address hint), of `len` bytes
            // of anonymous memory or of the socket's ring at `offset`; it aliases nothing.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    raw,
                    offset as libc::off_t,
                )
            };
            assert_ne!(
                ptr,
                libc::MAP_FAILED,
                "mmap: {}",
                std::io::Error::last_os_error()
            );
            Mapping {
                ptr: NonNull::new(ptr).expect("mmap returned NULL"),
                len,
            }
        }

        fn at<T>(&self, offset: u64) -> *mut T {
            assert!(offset as usize + std::mem::size_of::<T>() <= self.len);
            // SAFETY: in bounds of the mapping (checked above).
            unsafe { self.ptr.as_ptr().cast::<u8>().add(offset as usize).cast() }
        }

        fn counter(&self, offset: u64) -> &AtomicU32 {
            let ptr = self.at::<u32>(offset);
            // SAFETY: the ring's producer/consumer words are aligned u32s inside the mapping,
            // shared with the kernel, which accesses them atomically too; the reference lives
            // no longer than `self`.
            unsafe { AtomicU32::from_ptr(ptr) }
        }
    }

    // SAFETY: a mapping is process memory, valid from any thread; `Mapping` only hands out
    // raw pointers and atomics into it, and the owner moves between threads, not shares.
    unsafe impl Send for Mapping {}

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping made in `new`, no longer referenced.
            unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
        }
    }

    fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, value: &T) {
        // SAFETY: passes a pointer to a live `T` and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "setsockopt {name}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Fields are dropped in order: the socket closes before its rings and UMEM are unmapped.
    pub struct Xsk {
        fd: OwnedFd,
        rx: Mapping,
        rx_offsets: libc::xdp_ring_offset,
        _fill: Mapping,
        umem: Mapping,
    }

    impl AsFd for Xsk {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    impl Xsk {
        /// Binds to queue 0 of `ifname`, in the calling thread's network namespace.
        pub fn bind(ifname: &str) -> Xsk {
            // SAFETY: socket(2) with constant arguments.
            let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(
                raw >= 0,
                "AF_XDP socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: `raw` was just returned by socket(2) and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };

            let umem = Mapping::new(None, (FRAMES * FRAME_SIZE) as usize, 0);
            let reg = libc::xdp_umem_reg {
                addr: umem.ptr.as_ptr() as u64,
                len: u64::from(FRAMES * FRAME_SIZE),
                chunk_size: FRAME_SIZE,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            setsockopt(&fd, libc::XDP_UMEM_REG, &reg);
            setsockopt(&fd, libc::XDP_UMEM_FILL_RING, &RING);
            setsockopt(&fd, libc::XDP_UMEM_COMPLETION_RING, &RING);
            setsockopt(&fd, libc::XDP_RX_RING, &RING);

            // SAFETY: xdp_mmap_offsets is plain integers: all zeroes is a valid value.
            let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
            // SAFETY: the kernel writes at most `len` bytes into `offsets`.
            let rc = unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_XDP,
                    libc::XDP_MMAP_OFFSETS,
                    (&mut offsets as *mut libc::xdp_mmap_offsets).cast(),
                    &mut len,
                )
            };
            assert_eq!(
                rc,
                0,
                "XDP_MMAP_OFFSETS: {}",
                std::io::Error::last_os_error()
            );

            let fill = Mapping::new(
                Some(fd.as_fd()),
                (offsets.fr.desc + u64::from(RING) * 8) as usize,
                libc::XDP_UMEM_PGOFF_FILL_RING,
            );
            for i in 0..RING {
                let slot = fill.at::<u64>(offsets.fr.desc + u64::from(i) * 8);
                // SAFETY: slot `i` of the fill ring, in bounds, not yet published.
                unsafe { slot.write(u64::from(i * FRAME_SIZE)) };
            }
            fill.counter(offsets.fr.producer)
                .store(RING, Ordering::Release);

            let rx = Mapping::new(
                Some(fd.as_fd()),
                (offsets.rx.desc + u64::from(RING) * std::mem::size_of::<libc::xdp_desc>() as u64)
                    as usize,
                libc::XDP_PGOFF_RX_RING as u64,
            );

            let name = CString::new(ifname).unwrap();
            // SAFETY: a NUL-terminated string that outlives the call.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(ifindex, 0, "{ifname}: {}", std::io::Error::last_os_error());
            let address = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: libc::XDP_COPY,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: 0,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: a pointer to a live sockaddr_xdp and its exact size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&address as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "bind AF_XDP: {}", std::io::Error::last_os_error());

            Xsk {
                fd,
                rx,
                rx_offsets: offsets.rx,
                _fill: fill,
                umem,
            }
        }

        /// The frames received so far (at most one ring's worth; nothing is given back).
        pub fn received(&self) -> Vec<Vec<u8>> {
            let produced = self
                .rx
                .counter(self.rx_offsets.producer)
                .load(Ordering::Acquire);
            (0..produced.min(RING))
                .map(|i| {
                    let slot = self.rx.at::<libc::xdp_desc>(
                        self.rx_offsets.desc
                            + u64::from(i) * std::mem::size_of::<libc::xdp_desc>() as u64,
                    );
                    // SAFETY: a descriptor the kernel published (index below the producer).
                    let desc = unsafe { slot.read() };
                    assert!(desc.addr + u64::from(desc.len) <= u64::from(FRAMES * FRAME_SIZE));
                    let start = self.umem.at::<u8>(desc.addr);
                    // SAFETY: the frame lies inside the UMEM (checked above) and the kernel
                    // no longer writes it once published.
                    unsafe { std::slice::from_raw_parts(start, desc.len as usize) }.to_vec()
                })
                .collect()
        }
    }
}

#[test]
fn redirected_frames_reach_the_af_xdp_socket() {
    if !have_root("redirected_frames_reach_the_af_xdp_socket") {
        return;
    }
    let topology = Topology::new(1500);
    let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
    classifier
        .add_policy("10.201.0.0/24".parse().unwrap())
        .unwrap();
    let attachment = attach_in(&topology, &mut classifier, AttachMode::Native).unwrap();
    let ifname = topology.veth_a.clone();
    let socket = in_netns(&topology.ns_a, move || xsk::Xsk::bind(&ifname));
    classifier.register_xsk(0, &socket).unwrap();
    let (ike_listener, _natt) = listeners(&topology);
    let before = classifier.counters().unwrap();

    let payload = esp(0x7004, &[0x42; 64]);
    in_netns(&topology.ns_b, || {
        ip(&[
            "-n",
            &topology.ns_b,
            "route",
            "add",
            "10.201.0.0/24",
            "via",
            "10.200.0.1",
        ]);
        let udp = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).unwrap();
        raw_esp_socket().send_to(&payload, (ADDR_A, 0)).unwrap();
        udp.send_to(&payload, (ADDR_A, 4500)).unwrap();
        udp.send_to(
            b"plaintext for a protected host",
            (Ipv4Addr::new(10, 201, 0, 9), 9),
        )
        .unwrap();
        udp.send_to(&ike(), (ADDR_A, 500)).unwrap();
    });
    // IKE still reaches the kernel.
    assert_eq!(recv(&ike_listener), ike());
    let delta = wait_for(&classifier, &before, |d| {
        d.esp_to_xsk + d.esp_in_udp_to_xsk + d.policy_to_xsk >= 3
    });
    assert_eq!(
        (
            delta.esp_to_xsk,
            delta.esp_in_udp_to_xsk,
            delta.policy_to_xsk,
            delta.xsk_fallback_pass
        ),
        (1, 1, 1, 0),
        "{delta:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames = socket.received();
    while frames.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        frames = socket.received();
    }
    assert_eq!(frames.len(), 3, "frames on the AF_XDP socket");
    // Whole Ethernet frames, in order: ESP, ESP in UDP, the plaintext.
    assert!(frames[0].ends_with(&payload) && frames[0][14 + 9] == 50);
    assert!(frames[1].ends_with(&payload) && frames[1][14 + 9] == 17);
    assert!(frames[2].ends_with(b"plaintext for a protected host"));

    // Without the socket the same ESP falls back to the kernel again.
    classifier.unregister_xsk(0).unwrap();
    let before = classifier.counters().unwrap();
    in_netns(&topology.ns_b, || {
        raw_esp_socket().send_to(&payload, (ADDR_A, 0)).unwrap();
    });
    let delta = wait_for(&classifier, &before, |d| d.xsk_fallback_pass >= 1);
    assert_eq!(
        (delta.esp_to_xsk, delta.xsk_fallback_pass),
        (1, 1),
        "{delta:?}"
    );
    drop(attachment);
    drop(socket);
}

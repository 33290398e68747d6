//! Generators and sinks over sockets that carry whole packets: AF_PACKET (`--io packet`, and
//! where AF_XDP is unavailable on real interfaces: frames built as the AF_XDP generator builds
//! them), a raw IP socket that sends ESP the generator sealed itself, and a raw ESP socket whose
//! packets the sink decrypts (`--io socket` in the one-gateway topologies).

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::clock::now_ns;
use crate::frame::{EspProbes, Flow, ProbeTemplates};
use crate::generator::Transmit;
use crate::net::{Batch, BATCH};
use crate::payload::Probe;
use crate::rx::{Received, Receiver};
use crate::sink::{ReceiveBatch, Tally};
use crate::size::PacketSize;

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret == -1 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
    }
    Ok(())
}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> i32 {
    // SAFETY: a live int and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

fn set_receive_timeout(fd: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: a live timeval and its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    check(ret, "setsockopt SO_RCVTIMEO")
}

fn socket(domain: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let raw = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    check(raw, "socket")?;
    // SAFETY: raw was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn big_buffers(fd: &OwnedFd) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int(fd, libc::SOL_SOCKET, force, 16 << 20) == -1 {
            let _ = set_int(fd, libc::SOL_SOCKET, plain, 16 << 20);
        }
    }
}

fn ifindex(interface: &str) -> io::Result<i32> {
    let name = CString::new(interface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the name"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {interface}"),
        ));
    }
    Ok(index as i32)
}

/// An AF_PACKET socket on `interface` (in the calling thread's namespace) receiving
/// `protocol` (host order; 0: nothing).
fn packet_socket(interface: &str, protocol: u16) -> io::Result<(OwnedFd, i32)> {
    let index = ifindex(interface)?;
    let fd = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        libc::c_int::from(protocol.to_be()),
    )?;
    // SAFETY: sockaddr_ll is plain integers; zero is valid.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = index;
    // SAFETY: a live sockaddr_ll and its exact size.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(ret, &format!("bind AF_PACKET to {interface}"))?;
    big_buffers(&fd);
    Ok((fd, index))
}

/// How a [`PacketTransmit`] hands packets over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Ethernet frames on an AF_PACKET socket.
    Link,
    /// IP packets (header included) on a connected raw IP socket.
    Ip,
}

/// A generator over AF_PACKET (whole frames) or a raw IP socket (sealed ESP packets).
#[derive(Debug)]
pub struct PacketTransmit {
    fd: OwnedFd,
    framing: Framing,
    templates: ProbeTemplates,
    esp: Option<EspProbes>,
    batch: Batch,
}

impl PacketTransmit {
    /// Frames for `flow` on `interface` (in the calling thread's namespace), sealed by `esp`
    /// when given (then `flow` is the inner packet's).
    pub fn link(
        interface: &str,
        flow: &Flow,
        size: PacketSize,
        esp: Option<EspProbes>,
    ) -> io::Result<PacketTransmit> {
        let (fd, index) = packet_socket(interface, 0)?;
        // Past the qdisc, as AF_XDP and pktgen are: the generator measures the path, not tc.
        let _ = set_int(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1);
        let mut batch = Batch::new();
        batch.set_link_destination(index, 0x0800);
        Ok(PacketTransmit {
            fd,
            framing: Framing::Link,
            templates: ProbeTemplates::new(flow, size),
            esp,
            batch,
        })
    }

    /// ESP packets sealed by `esp` (inner packets for `flow`) on a raw IP socket connected to
    /// `gateway` (in the calling thread's namespace).
    pub fn ip(
        gateway: Ipv4Addr,
        flow: &Flow,
        size: PacketSize,
        esp: EspProbes,
    ) -> io::Result<PacketTransmit> {
        // IPPROTO_RAW: the packet carries its own IP header (IP_HDRINCL).
        let fd = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        big_buffers(&fd);
        // SAFETY: sockaddr_in is plain integers; zero is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(gateway).to_be();
        // SAFETY: a live sockaddr_in and its size.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        check(ret, &format!("connect a raw socket to {gateway}"))?;
        Ok(PacketTransmit {
            fd,
            framing: Framing::Ip,
            templates: ProbeTemplates::new(flow, size),
            esp: Some(esp),
            batch: Batch::new(),
        })
    }
}

impl Transmit for PacketTransmit {
    fn batch(&self) -> usize {
        BATCH
    }

    fn send(
        &mut self,
        run: u32,
        size: PacketSize,
        first: u64,
        n: usize,
        now_ns: u64,
    ) -> io::Result<usize> {
        let n = n.min(BATCH);
        for i in 0..n {
            let probe = Probe {
                run,
                seq: first + i as u64,
                sent_ns: now_ns,
            };
            let len = size.len_of(probe.seq);
            let buf = self.batch.buf_mut(i);
            let written = match self.esp.as_mut() {
                Some(esp) => esp.write(
                    buf,
                    &self.templates,
                    len,
                    &probe,
                    self.framing == Framing::Link,
                ),
                None => self.templates.write_frame(buf, len, &probe).map(|n| (0, n)),
            };
            let Some((start, len)) = written else {
                return Err(io::Error::other("a probe did not fit its buffer"));
            };
            self.batch.set_window(i, start, len);
        }
        self.batch.send(&self.fd, n)
    }

    fn esp_next_sequence(&self) -> Option<u64> {
        self.esp.as_ref().map(EspProbes::next_sequence)
    }
}

/// A sink over AF_PACKET (IPv4 frames arriving on an interface) or a raw ESP socket.
#[derive(Debug)]
pub struct PacketReceive {
    fd: OwnedFd,
    framing: Framing,
    receiver: Receiver,
    batch: Batch,
}

impl PacketReceive {
    /// IPv4 frames arriving on `interface` (in the calling thread's namespace).
    pub fn link(interface: &str, receiver: Receiver) -> io::Result<PacketReceive> {
        let (fd, _) = packet_socket(interface, 0x0800)?;
        // Our own transmissions on the same interface are not arrivals.
        let _ = set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        set_receive_timeout(&fd, Duration::from_millis(50))?;
        Ok(PacketReceive {
            fd,
            framing: Framing::Link,
            receiver,
            batch: Batch::new(),
        })
    }

    /// ESP packets to `local` (in the calling thread's namespace), header included, decrypted
    /// by `receiver`.
    pub fn esp(local: SocketAddrV4, receiver: Receiver) -> io::Result<PacketReceive> {
        let fd = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ESP)?;
        big_buffers(&fd);
        set_receive_timeout(&fd, Duration::from_millis(50))?;
        // SAFETY: sockaddr_in is plain integers; zero is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(*local.ip()).to_be();
        // SAFETY: a live sockaddr_in and its size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        check(ret, &format!("bind a raw ESP socket to {}", local.ip()))?;
        Ok(PacketReceive {
            fd,
            framing: Framing::Ip,
            receiver,
            batch: Batch::new(),
        })
    }
}

impl ReceiveBatch for PacketReceive {
    fn receive(&mut self, tally: &mut Tally) -> io::Result<u64> {
        let n = match self.batch.recv(&self.fd) {
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(0)
            }
            Err(err) => return Err(err),
        };
        let now = now_ns();
        let mut first = 0;
        for i in 0..n {
            let (buf, len) = self.batch.received_mut(i);
            let received = match self.framing {
                Framing::Link => self.receiver.frame(buf, 0, len, tally, now),
                Framing::Ip => self.receiver.ip_packet(buf, 0, len, tally, now),
            };
            first += u64::from(received == Received::First);
        }
        Ok(first)
    }
}

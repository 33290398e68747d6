//! The outer side of the portable backend: ESP in UDP on the NAT-T port, or plain ESP on a raw
//! socket, moved in batches with `recvmmsg(2)` and `sendmmsg(2)`.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::ike_sender::IkeSender;
use super::outer::{outer_facts, synthesize, RX_HEADROOM};
use super::sys::{self, errno, is_would_block, setsockopt_int, IoStats};
use super::MAX_BATCH;
use crate::esp::ip::{proto, IPV4_HEADER_LEN};
use crate::esp::PacketBuf;

/// How ESP travels on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EspTransport {
    /// ESP in UDP (RFC 3948) on the NAT-T port; IKE and keepalives share the port.
    Udp,
    /// Plain ESP, IP protocol 50, on a raw socket.
    Raw,
}

/// Where a received packet came from and went to, as the kernel reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// The sender: source address, and UDP source port (0 for raw sockets).
    pub peer: SocketAddr,
    /// The destination address the packet carried (`IP_PKTINFO` / `IPV6_PKTINFO`), and our UDP
    /// port (0 for raw sockets).
    pub local: SocketAddr,
    /// TOS byte / traffic class: DSCP and ECN.
    pub traffic_class: u8,
    /// Bytes of outer IP (and UDP) header at the front of the buffer's window: what was
    /// synthesised, or for a raw IPv4 socket the header the kernel delivered.
    pub header_len: usize,
}

impl Default for RecvMeta {
    fn default() -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        Self {
            peer: unspecified,
            local: unspecified,
            traffic_class: 0,
            header_len: 0,
        }
    }
}

/// Room for the control messages of one datagram: `IPV6_PKTINFO` (40 bytes with its header)
/// and `IPV6_TCLASS` (24) are the largest pair asked for.
const CMSG_BUF_LEN: usize = 128;

/// A control-message buffer aligned as `struct cmsghdr` needs.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// The `mmsghdr`s of one batch and everything they point to, allocated once. The pointers in
/// `hdrs` are written right before each system call and only used by it.
struct MsgSlots {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
}

// SAFETY: the raw pointers inside `hdrs` and `iovs` are scratch values, rewritten before every
// system call that reads them and never dereferenced by Rust code; moving the slots to another
// thread moves no access to the memory they last pointed at.
unsafe impl Send for MsgSlots {}

impl MsgSlots {
    fn new() -> Self {
        // SAFETY: mmsghdr and iovec are integers and pointers; all zeros (null pointers, zero
        // lengths) is a valid value of each.
        let (hdr, iov) = unsafe {
            (
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
            )
        };
        Self {
            hdrs: vec![hdr; MAX_BATCH],
            iovs: vec![iov; MAX_BATCH],
            addrs: vec![sys::zeroed_storage(); MAX_BATCH],
            cmsgs: vec![CmsgBuf([0; CMSG_BUF_LEN]); MAX_BATCH],
        }
    }

    /// Points message `i` at its iovec, address and control buffer.
    fn prepare(&mut self, i: usize, namelen: libc::socklen_t, controllen: usize) {
        let hdr = &mut self.hdrs[i];
        hdr.msg_len = 0;
        hdr.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_hdr.msg_namelen = namelen;
        hdr.msg_hdr.msg_iov = &mut self.iovs[i];
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = if controllen == 0 {
            std::ptr::null_mut()
        } else {
            self.cmsgs[i].0.as_mut_ptr().cast()
        };
        hdr.msg_hdr.msg_controllen = controllen as _;
        hdr.msg_hdr.msg_flags = 0;
    }
}

/// What the control messages of a received datagram said.
#[derive(Default)]
struct Ancillary {
    destination: Option<IpAddr>,
    traffic_class: u8,
}

/// Reads `IP_PKTINFO`, `IP_TOS`, `IPV6_PKTINFO` and `IPV6_TCLASS` from a received message.
fn read_ancillary(msg: &libc::msghdr) -> Ancillary {
    let mut found = Ancillary::default();
    // SAFETY: `msg` is a msghdr the kernel has just filled by recvmmsg: msg_control points at
    // our live control buffer and msg_controllen is the length it wrote, which is all that
    // CMSG_FIRSTHDR and CMSG_NXTHDR read and what bounds the headers they return.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return either null or a header lying wholly in the
        // control buffer; the buffer is 8-aligned and headers are at aligned offsets.
        let header = unsafe { &*cmsg };
        // SAFETY: the data follows the header inside the same buffer.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        let header_len = data as usize - cmsg as usize;
        let data_len = (header.cmsg_len as usize).saturating_sub(header_len);
        match (header.cmsg_level, header.cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data_len >= size_of::<libc::in_pktinfo>() => {
                // SAFETY: the kernel wrote an in_pktinfo there (checked length); read_unaligned
                // makes no alignment assumption.
                let info: libc::in_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
                found.destination = Some(IpAddr::V4(Ipv4Addr::from(
                    info.ipi_addr.s_addr.to_ne_bytes(),
                )));
            }
            (libc::IPPROTO_IP, libc::IP_TOS) if data_len >= 1 => {
                // SAFETY: at least one byte of data lies there.
                found.traffic_class = unsafe { *data };
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                if data_len >= size_of::<libc::in6_pktinfo>() =>
            {
                // SAFETY: the kernel wrote an in6_pktinfo there (checked length).
                let info: libc::in6_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
                found.destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if data_len >= size_of::<libc::c_int>() => {
                // SAFETY: the kernel wrote an int there (checked length).
                let class: libc::c_int = unsafe { std::ptr::read_unaligned(data.cast()) };
                found.traffic_class = class as u8;
            }
            _ => {}
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header of this message.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    found
}

/// The outer-packet socket of the portable backend: ESP in UDP (NAT-T) or plain ESP on a raw
/// socket, for one address family. See the module documentation of
/// [`portable`](super) for how outer headers are rebuilt on receive and what is sent.
pub struct EspSocket {
    fd: OwnedFd,
    transport: EspTransport,
    local: SocketAddr,
    slots: MsgSlots,
    rx: IoStats,
    tx: IoStats,
}

impl fmt::Debug for EspSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspSocket")
            .field("fd", &self.fd)
            .field("transport", &self.transport)
            .field("local", &self.local)
            .field("rx", &self.rx)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

fn family_of(addr: IpAddr) -> libc::c_int {
    match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    }
}

impl EspSocket {
    /// A UDP socket bound to `bind` (usually the SA's local address and port 4500) for ESP in
    /// UDP. The kernel is asked for each datagram's destination address and TOS so that the
    /// outer header can be rebuilt faithfully. An IPv6 socket is IPv6-only.
    pub fn udp(bind: SocketAddr) -> io::Result<Self> {
        let fd = sys::socket(family_of(bind.ip()), libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
        match bind {
            SocketAddr::V4(_) => {
                setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
                setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)?;
            }
            SocketAddr::V6(_) => {
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1)?;
            }
        }
        sys::bind(&fd, bind)?;
        Self::finish(fd, EspTransport::Udp)
    }

    /// A raw `IPPROTO_ESP` socket for plain ESP, bound to `local` (the unspecified address
    /// receives ESP for every local address). Sends carry the outer header the ESP core built
    /// (`IP_HDRINCL` / `IPV6_HDRINCL`). Needs `CAP_NET_RAW`.
    pub fn raw(local: IpAddr) -> io::Result<Self> {
        let fd = sys::socket(family_of(local), libc::SOCK_RAW, libc::IPPROTO_ESP)?;
        match local {
            IpAddr::V4(_) => setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?,
            IpAddr::V6(_) => {
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_HDRINCL, 1)?;
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1)?;
            }
        }
        sys::bind(&fd, SocketAddr::new(local, 0))?;
        Self::finish(fd, EspTransport::Raw)
    }

    fn finish(fd: OwnedFd, transport: EspTransport) -> io::Result<Self> {
        let local = sys::local_addr(&fd)?;
        Ok(Self {
            fd,
            transport,
            local,
            slots: MsgSlots::new(),
            rx: IoStats::default(),
            tx: IoStats::default(),
        })
    }

    pub fn transport(&self) -> EspTransport {
        self.transport
    }

    /// The bound address (port 0 for a raw socket).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Asks for a larger receive buffer than `net.core.rmem_max` allows, which bursts of ESP
    /// need (`SO_RCVBUFFORCE`, `CAP_NET_ADMIN`).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        setsockopt_int(&self.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)
    }

    /// What the receives did.
    pub fn rx_stats(&self) -> &IoStats {
        &self.rx
    }

    /// What the sends did.
    pub fn tx_stats(&self) -> &IoStats {
        &self.tx
    }

    /// Receives up to `min(bufs.len(), meta.len(), MAX_BATCH)` packets with one `recvmmsg`;
    /// returns how many (the first buffers). Each buffer's window is then a whole outer IP packet
    /// for [`Decapsulator::decap_batch`]: the datagram lands at [`RX_HEADROOM`] in the frame and
    /// the headers the socket stripped are synthesised in front of it. `meta[i]` says where
    /// packet `i` came from. Datagrams larger than a frame's room (`frame.len() - RX_HEADROOM`)
    /// are counted as discarded and left out; the buffers may be reordered to keep the
    /// received ones first. `Ok(0)` when nothing is waiting; errors are counted in
    /// [`rx_stats`](Self::rx_stats).
    ///
    /// [`Decapsulator::decap_batch`]: crate::esp::Decapsulator::decap_batch
    pub fn recv_batch(&mut self, bufs: &mut [PacketBuf<'_>], meta: &mut [RecvMeta]) -> usize {
        let n = bufs.len().min(meta.len()).min(MAX_BATCH);
        let cmsg_len = if self.wants_ancillary() {
            CMSG_BUF_LEN
        } else {
            0
        };
        for (i, buf) in bufs[..n].iter_mut().enumerate() {
            let frame_len = buf.offset() + buf.len() + buf.tailroom();
            buf.reset(0, frame_len);
            let room = frame_len.saturating_sub(RX_HEADROOM);
            let at = frame_len.min(RX_HEADROOM);
            self.slots.iovs[i] = libc::iovec {
                iov_base: buf.data_mut()[at..].as_mut_ptr().cast(),
                iov_len: room,
            };
            self.slots.prepare(
                i,
                size_of::<libc::sockaddr_storage>() as libc::socklen_t,
                cmsg_len,
            );
        }
        let received = loop {
            // SAFETY: the first `n` headers point at live iovecs, addresses and control
            // buffers in `self.slots`, and each iovec at the room of a distinct frame borrowed
            // by `bufs`; the kernel writes only within the lengths given.
            let ret = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    self.slots.hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if ret >= 0 {
                break ret as usize;
            }
            match errno() {
                libc::EINTR => continue,
                e if is_would_block(e) => return 0,
                e => {
                    self.rx.error(e);
                    return 0;
                }
            }
        };
        let mut kept = 0;
        for i in 0..received.min(n) {
            if let Some(found) = self.finish_received(i, &mut bufs[i]) {
                bufs.swap(kept, i);
                meta[kept] = found;
                kept += 1;
            } else {
                self.rx.discarded += 1;
            }
        }
        kept
    }

    fn wants_ancillary(&self) -> bool {
        !(self.transport == EspTransport::Raw && self.local.is_ipv4())
    }

    /// Turns received message `i` into an outer packet in `buf`'s window.
    fn finish_received(&mut self, i: usize, buf: &mut PacketBuf<'_>) -> Option<RecvMeta> {
        let hdr = &self.slots.hdrs[i];
        let len = hdr.msg_len as usize;
        if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > self.slots.iovs[i].iov_len {
            return None;
        }
        let peer = sys::from_sockaddr(&self.slots.addrs[i])?;
        self.rx.packets += 1;
        self.rx.bytes += len as u64;
        if self.transport == EspTransport::Raw && self.local.is_ipv4() {
            // The kernel hands raw IPv4 sockets the whole packet, header included.
            let packet = buf.data().get(RX_HEADROOM..RX_HEADROOM + len)?;
            if packet.len() < IPV4_HEADER_LEN {
                return None;
            }
            let meta = RecvMeta {
                peer,
                local: SocketAddr::new(sys::ip_from(&packet[16..20])?, 0),
                traffic_class: packet[1],
                header_len: usize::from(packet[0] & 0x0F) * 4,
            };
            buf.reset(RX_HEADROOM, len);
            return Some(meta);
        }
        let ancillary = read_ancillary(&hdr.msg_hdr);
        let udp = self.transport == EspTransport::Udp;
        let port = if udp { self.local.port() } else { 0 };
        let local = SocketAddr::new(ancillary.destination.unwrap_or(self.local.ip()), port);
        let peer = if udp {
            peer
        } else {
            SocketAddr::new(peer.ip(), 0)
        };
        // The window still spans the whole frame, as `recv_batch` left it.
        let start = synthesize(
            buf.data_mut(),
            RX_HEADROOM,
            len,
            peer,
            local,
            ancillary.traffic_class,
            udp,
        )?;
        buf.reset(start, RX_HEADROOM + len - start);
        Some(RecvMeta {
            peer,
            local,
            traffic_class: ancillary.traffic_class,
            header_len: RX_HEADROOM - start,
        })
    }

    /// Sends outer packets as the ESP core built them (outer IP header first), batched with
    /// `sendmmsg`; returns how many the kernel took. A UDP socket sends what follows the IP and
    /// UDP headers to the header's destination address and port, with its TOS / traffic class
    /// as a control message; a raw socket sends the packet whole. Packets that do not fit the
    /// socket (another family, not UDP on a UDP socket, not ESP on a raw one, malformed) are
    /// counted as discarded; packets the kernel refuses are counted as errors and the rest of
    /// the batch still goes (see [`tx_stats`](Self::tx_stats)).
    pub fn send_batch<'p>(&mut self, packets: impl IntoIterator<Item = &'p [u8]>) -> usize {
        let mut sent = 0;
        let mut queued = 0;
        for packet in packets {
            if queued == MAX_BATCH {
                sent += self.flush(queued);
                queued = 0;
            }
            if self.queue(queued, packet) {
                queued += 1;
            } else {
                self.tx.discarded += 1;
            }
        }
        sent + self.flush(queued)
    }

    /// Fills message slot `i` for `packet`; `false` when the packet does not fit this socket.
    fn queue(&mut self, i: usize, packet: &[u8]) -> bool {
        let Some(facts) = outer_facts(packet) else {
            return false;
        };
        if facts.dst.is_ipv4() != self.local.is_ipv4() {
            return false;
        }
        let v4 = self.local.is_ipv4();
        let (payload, dst, controllen) = match self.transport {
            EspTransport::Udp if facts.protocol == proto::UDP => {
                let controllen = self.write_traffic_class(i, facts.traffic_class, v4);
                (&packet[facts.payload_at..facts.end], facts.dst, controllen)
            }
            EspTransport::Raw if facts.protocol == proto::ESP => {
                (&packet[..facts.end], SocketAddr::new(facts.dst.ip(), 0), 0)
            }
            _ => return false,
        };
        self.slots.iovs[i] = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        let namelen = sys::write_sockaddr(&mut self.slots.addrs[i], dst);
        self.slots.prepare(i, namelen, controllen);
        true
    }

    /// Writes an `IP_TOS` / `IPV6_TCLASS` control message into slot `i`; returns its length.
    fn write_traffic_class(&mut self, i: usize, class: u8, v4: bool) -> usize {
        let (level, kind) = if v4 {
            (libc::IPPROTO_IP, libc::IP_TOS)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        };
        let value = libc::c_int::from(class);
        // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize,
                libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize,
            )
        };
        let buf = &mut self.slots.cmsgs[i].0;
        buf[..space].fill(0);
        let header = libc::cmsghdr {
            cmsg_len: len as _,
            cmsg_level: level,
            cmsg_type: kind,
        };
        // SAFETY: the buffer is 8-aligned and `space` (<= CMSG_BUF_LEN) bytes long, room for
        // one cmsghdr followed at CMSG_DATA's offset by one int, the layout CMSG_SPACE
        // describes. The data offset is computed by CMSG_LEN(0), which is where CMSG_DATA
        // points.
        unsafe {
            std::ptr::write(buf.as_mut_ptr().cast::<libc::cmsghdr>(), header);
            let data_at = libc::CMSG_LEN(0) as usize;
            std::ptr::write_unaligned(buf.as_mut_ptr().add(data_at).cast(), value);
        }
        space
    }

    /// Sends the first `count` prepared messages; returns how many the kernel took.
    fn flush(&mut self, count: usize) -> usize {
        let mut start = 0;
        let mut sent = 0;
        while start < count {
            // SAFETY: messages `start..count` were prepared by `queue`: they point at live
            // iovecs, addresses and control buffers in `self.slots`, and each iovec at a packet
            // borrowed for the whole of `send_batch`, which the kernel only reads.
            let ret = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.slots.hdrs.as_mut_ptr().add(start),
                    (count - start) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if ret > 0 {
                let done = ret as usize;
                for hdr in &self.slots.hdrs[start..start + done] {
                    self.tx.packets += 1;
                    self.tx.bytes += u64::from(hdr.msg_len);
                }
                sent += done;
                start += done;
                continue;
            }
            let e = if ret == 0 { libc::EIO } else { errno() };
            if e == libc::EINTR {
                continue;
            }
            if is_would_block(e) {
                // The socket buffer is full: what is left of the batch is lost, as on a full
                // NIC queue.
                for _ in start..count {
                    self.tx.error(e);
                }
                break;
            }
            // The kernel refused the message at `start` (too big, no route, …); the others
            // may still go.
            self.tx.error(e);
            start += 1;
        }
        sent
    }

    /// Sends an IKE message from this socket's port with the four-byte non-ESP marker in front
    /// (RFC 3948 §2.2), as IKE on the NAT-T port must be. UDP sockets only.
    pub fn send_ike(&self, to: SocketAddr, message: &[u8]) -> io::Result<usize> {
        self.send_parts(to, &[&NON_ESP_MARKER, message])
    }

    /// Sends a NAT-keepalive, the single byte 0xFF (RFC 3948 §2.3). UDP sockets only.
    pub fn send_keepalive(&self, to: SocketAddr) -> io::Result<usize> {
        self.send_parts(to, &[&[0xFF]])
    }

    fn send_parts(&self, to: SocketAddr, parts: &[&[u8]]) -> io::Result<usize> {
        self.require_udp()?;
        send_parts(self.fd.as_fd(), to, parts)
    }

    fn require_udp(&self) -> io::Result<()> {
        if self.transport == EspTransport::Udp {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "IKE and keepalives travel on the UDP socket",
            ))
        }
    }

    /// A handle that sends IKE messages and keepalives from this socket's port on another
    /// thread (the IKE daemon's) while a worker owns the socket and does all the receiving.
    /// It holds a duplicate of the socket's fd. UDP sockets only.
    pub fn ike_sender(&self) -> io::Result<IkeSender> {
        self.require_udp()?;
        Ok(IkeSender::new(self.fd.try_clone()?, self.local))
    }

    /// A duplicate of the UDP socket as a standard socket, for a caller that wants to send
    /// through its own event loop (e.g. `tokio::net::UdpSocket::from_std`). It shares the
    /// socket: its port, its non-blocking flag (which the worker does not rely on) and its
    /// receive queue — so use it only to send, or it takes datagrams from the worker. IKE
    /// sent through it needs the four-byte non-ESP marker in front, which
    /// [`ike_sender`](Self::ike_sender) adds. UDP sockets only.
    pub fn try_clone_udp(&self) -> io::Result<std::net::UdpSocket> {
        self.require_udp()?;
        Ok(std::net::UdpSocket::from(self.fd.try_clone()?))
    }
}

/// What precedes an IKE message on the NAT-T port (RFC 3948 §2.2).
pub(super) const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// Sends `parts` as one UDP datagram to `to` with `sendmsg`, without copying them together.
/// At most two parts.
pub(super) fn send_parts(fd: BorrowedFd<'_>, to: SocketAddr, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2];
    for (iov, part) in iovs.iter_mut().zip(parts) {
        *iov = libc::iovec {
            iov_base: part.as_ptr() as *mut libc::c_void,
            iov_len: part.len(),
        };
    }
    let (mut addr, namelen) = sys::to_sockaddr(to);
    // SAFETY: msghdr is integers and pointers; all zeros is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = namelen;
    msg.msg_iov = iovs.as_mut_ptr();
    msg.msg_iovlen = parts.len().min(iovs.len()) as _;
    loop {
        // SAFETY: `msg` points at the live address and iovecs above, and they at `parts`,
        // which the kernel only reads.
        let ret = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

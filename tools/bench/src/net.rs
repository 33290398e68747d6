//! UDP sockets for the generator and the sink, and batched sending and receiving with
//! sendmmsg(2) and recvmmsg(2) over buffers allocated once (for UDP, AF_PACKET and raw IP
//! sockets alike).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Datagrams per sendmmsg/recvmmsg call.
pub const BATCH: usize = 64;

/// The largest datagram payload a probe has (size::MAX less the IP and UDP headers), with room.
pub const BUF_LEN: usize = 2048;

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret == -1 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
    }
    Ok(())
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain integers; zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sa
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a live int and its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret, "setsockopt")
}

fn set_timeout(fd: &OwnedFd, name: libc::c_int, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: a live timeval and its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    check(ret, "setsockopt timeout")
}

/// A UDP socket bound to `local`, connected to `remote` when given, with 16 MiB buffers (forced:
/// root may exceed the sysctl limits; ignored when not permitted) and `timeout` on blocking send
/// and receive so that loops notice when they are asked to stop. Call it in the namespace the
/// socket belongs to.
pub fn udp_socket(
    local: SocketAddrV4,
    remote: Option<SocketAddrV4>,
    timeout: Duration,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(raw, "socket")?;
    // SAFETY: raw was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int(&fd, libc::SOL_SOCKET, force, 16 << 20).is_err() {
            let _ = set_int(&fd, libc::SOL_SOCKET, plain, 16 << 20);
        }
    }
    set_timeout(&fd, libc::SO_RCVTIMEO, timeout)?;
    set_timeout(&fd, libc::SO_SNDTIMEO, timeout)?;
    let sa = sockaddr(local);
    // SAFETY: a live sockaddr_in and its size.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    check(ret, &format!("bind {local}"))?;
    if let Some(remote) = remote {
        let sa = sockaddr(remote);
        // SAFETY: a live sockaddr_in and its size.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        check(ret, &format!("connect {remote}"))?;
    }
    Ok(fd)
}

/// [`BATCH`] buffers with the iovecs and message headers that point into them, for one thread.
/// The pointers stay valid because the buffers are boxed and never reallocated.
pub struct Batch {
    bufs: Box<[[u8; BUF_LEN]]>,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    /// Where every message goes when the socket is not connected (AF_PACKET).
    link: Box<libc::sockaddr_ll>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("len", &BATCH).finish()
    }
}

// SAFETY: the raw pointers inside point only into the Batch's own boxes, which move with it.
unsafe impl Send for Batch {}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// Zeroed buffers, each iovec covering its whole buffer.
    pub fn new() -> Batch {
        let mut bufs = vec![[0u8; BUF_LEN]; BATCH].into_boxed_slice();
        let mut iovs: Box<[libc::iovec]> = bufs
            .iter_mut()
            .map(|buf| libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: BUF_LEN,
            })
            .collect();
        let msgs = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain integers and pointers; zero is valid (no name, no
                // control data).
                let mut msg: libc::mmsghdr = unsafe { zeroed() };
                msg.msg_hdr.msg_iov = iov;
                msg.msg_hdr.msg_iovlen = 1;
                msg
            })
            .collect();
        // SAFETY: sockaddr_ll is plain integers; zero is valid.
        let link = Box::new(unsafe { zeroed::<libc::sockaddr_ll>() });
        Batch {
            bufs,
            iovs,
            msgs,
            link,
        }
    }

    /// Sends every message to interface `ifindex` with Ethernet protocol `protocol` (host
    /// order): for an AF_PACKET socket bound without a protocol, which then receives nothing.
    pub fn set_link_destination(&mut self, ifindex: i32, protocol: u16) {
        self.link.sll_family = libc::AF_PACKET as libc::sa_family_t;
        self.link.sll_ifindex = ifindex;
        self.link.sll_protocol = protocol.to_be();
        let name: *mut libc::sockaddr_ll = &mut *self.link;
        for msg in self.msgs.iter_mut() {
            msg.msg_hdr.msg_name = name.cast();
            msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        }
    }

    /// Sends `len` bytes of buffer `i` starting at `start` (a packet built behind headroom).
    #[inline]
    pub fn set_window(&mut self, i: usize, start: usize, len: usize) {
        let start = start.min(BUF_LEN);
        let buf = &mut self.bufs[i][start..];
        self.iovs[i].iov_base = buf.as_mut_ptr().cast();
        self.iovs[i].iov_len = len.min(buf.len());
    }

    /// Buffer `i`, to fill before sending.
    #[inline]
    pub fn buf_mut(&mut self, i: usize) -> &mut [u8; BUF_LEN] {
        &mut self.bufs[i]
    }

    /// Sets how many bytes of buffer `i` are sent, from its start.
    #[inline]
    pub fn set_len(&mut self, i: usize, len: usize) {
        self.set_window(i, 0, len);
    }

    /// Sends the first `n` datagrams on the connected socket `fd`; returns how many went.
    pub fn send(&mut self, fd: impl AsFd, n: usize) -> io::Result<usize> {
        let n = n.min(BATCH);
        let fd = fd.as_fd().as_raw_fd();
        // SAFETY: the first n headers point at live iovecs and buffers owned by self.
        let ret = unsafe { libc::sendmmsg(fd, self.msgs.as_mut_ptr(), n as u32, 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ret as usize)
    }

    /// Receives up to [`BATCH`] datagrams, waiting (up to the socket's timeout) for the first;
    /// returns how many arrived. Their lengths are [`Batch::received`].
    pub fn recv(&mut self, fd: impl AsFd) -> io::Result<usize> {
        let fd = fd.as_fd().as_raw_fd();
        for (iov, buf) in self.iovs.iter_mut().zip(self.bufs.iter_mut()) {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = BUF_LEN;
        }
        // SAFETY: every header points at a live iovec and buffer owned by self; no timeout
        // pointer.
        let ret = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ret as usize)
    }

    /// Datagram `i` of the last [`Batch::recv`].
    #[inline]
    pub fn received(&self, i: usize) -> &[u8] {
        let len = (self.msgs[i].msg_len as usize).min(BUF_LEN);
        &self.bufs[i][..len]
    }

    /// Buffer `i` of the last [`Batch::recv`], writable (to decrypt in place), and the length
    /// received into it.
    #[inline]
    pub fn received_mut(&mut self, i: usize) -> (&mut [u8; BUF_LEN], usize) {
        let len = (self.msgs[i].msg_len as usize).min(BUF_LEN);
        (&mut self.bufs[i], len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_batch_crosses_loopback_intact() {
        let timeout = Duration::from_millis(500);
        let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let sink = udp_socket(any, None, timeout).unwrap();
        // Where the kernel bound it.
        // SAFETY: a live sockaddr_in and its size, written by getsockname.
        let port = unsafe {
            let mut sa: libc::sockaddr_in = zeroed();
            let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            libc::getsockname(
                sink.as_raw_fd(),
                (&mut sa as *mut libc::sockaddr_in).cast(),
                &mut len,
            );
            u16::from_be(sa.sin_port)
        };
        let source = udp_socket(
            any,
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            timeout,
        )
        .unwrap();
        let mut out = Batch::new();
        for i in 0..10 {
            out.buf_mut(i)[0] = i as u8;
            out.set_len(i, 100 + i);
        }
        assert_eq!(out.send(&source, 10).unwrap(), 10);
        let mut inb = Batch::new();
        let mut got = Vec::new();
        while got.len() < 10 {
            let n = inb.recv(&sink).unwrap();
            for i in 0..n {
                got.push((inb.received(i)[0], inb.received(i).len()));
            }
        }
        let expected: Vec<(u8, usize)> = (0..10usize).map(|i| (i as u8, 100 + i)).collect();
        assert_eq!(got, expected);
        // Nothing more: the timeout ends the wait.
        assert!(inb.recv(&sink).is_err());
    }
}

//! The system calls of the mirror: `NETLINK_ROUTE` sockets, the eventfd that wakes the
//! mirror's thread, and `poll(2)` over them. Every `unsafe` block of the mirror is here.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys::{cvt, setsockopt_int};

/// What one [`NetlinkSocket::recv`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// A datagram of `len` bytes at the front of the buffer. `truncated` when it was longer
    /// than the buffer (the rest is lost); `from_kernel` when its sender is the kernel (port
    /// 0), not another process.
    Datagram {
        len: usize,
        truncated: bool,
        from_kernel: bool,
    },
    /// Nothing waiting.
    Empty,
    /// The kernel could not queue messages for us (`ENOBUFS`): some were lost.
    Overrun,
}

/// A non-blocking `NETLINK_ROUTE` socket of the calling thread's network namespace.
#[derive(Debug)]
pub(crate) struct NetlinkSocket {
    fd: OwnedFd,
    port: u32,
}

impl NetlinkSocket {
    /// Opens the socket, joins the multicast `groups` (`RTNLGRP_*`) and asks for a receive
    /// buffer of `receive_buffer` bytes (beyond `net.core.rmem_max` when the process may).
    pub fn open(groups: &[u32], receive_buffer: usize) -> io::Result<Self> {
        // SAFETY: socket(2) takes no pointers.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let bytes = libc::c_int::try_from(receive_buffer).unwrap_or(libc::c_int::MAX);
        if setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
            // Without CAP_NET_ADMIN: as much as rmem_max allows.
            setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
        }
        // SAFETY: sockaddr_nl is plain integers; all zeros is a valid value.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // Port 0: the kernel picks ours; read it back below, to tell our dumps' answers from
        // notifications that carry another process's sequence number.
        // SAFETY: a live sockaddr_nl and its exact size.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        let mut length = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `length` bytes into `address`.
        cvt(unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut address as *mut libc::sockaddr_nl).cast(),
                &mut length,
            )
        })?;
        let port = address.nl_pid;
        for &group in groups {
            setsockopt_int(
                &fd,
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                group as libc::c_int,
            )?;
        }
        Ok(Self { fd, port })
    }

    /// The port id the kernel gave this socket: the `nlmsg_pid` of answers to its requests.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sends one request to the kernel.
    pub fn send(&self, request: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: the kernel reads `request.len()` bytes of `request`. An unconnected
            // netlink socket sends to the kernel.
            let sent = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Receives one datagram into `buffer`, without waiting.
    pub fn recv(&self, buffer: &mut [u8]) -> io::Result<Received> {
        loop {
            // SAFETY: sockaddr_nl is plain integers; all zeros is a valid value.
            let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer` and at most
            // `from_len` bytes into `from`; MSG_TRUNC only changes the returned length to
            // the datagram's real one.
            let received = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if received >= 0 {
                let len = received as usize;
                return Ok(Received::Datagram {
                    len: len.min(buffer.len()),
                    truncated: len > buffer.len(),
                    from_kernel: from.nl_pid == 0,
                });
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => return Ok(Received::Overrun),
                Some(e) if e == libc::EAGAIN || e == libc::EWOULDBLOCK => {
                    return Ok(Received::Empty)
                }
                _ => return Err(error),
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An eventfd: any thread wakes the mirror's `poll` with [`EventFd::wake`].
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by eventfd(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Makes the eventfd readable. Cannot meaningfully fail: a counter at its maximum is
    /// readable already.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: the kernel reads the eight bytes of `one`.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Makes it unreadable again.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: the kernel writes eight bytes into `value`.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns which are readable.
/// An interrupted wait returns with none.
pub(crate) fn poll_readable<const N: usize>(
    fds: [RawFd; N],
    timeout: Duration,
) -> io::Result<[bool; N]> {
    let mut pollfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pollfds` is a live array of N pollfd structures.
    let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), N as libc::nfds_t, millis) };
    if ready == -1 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok([false; N]);
        }
        return Err(error);
    }
    // An error or hang-up counts as readable: the next read reports it.
    Ok(pollfds.map(|p| p.revents != 0))
}

//! Sending IKE from the NAT-T port that a worker receives on: the IKE daemon runs on another
//! thread, and RFC 3948 wants its messages to leave from the same port the ESP-in-UDP
//! arrives on, so that one NAT mapping serves both.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::socket::{send_parts, NON_ESP_MARKER};

/// Sends IKE messages (with the non-ESP marker) and NAT keepalives from a UDP
/// [`EspSocket`](super::EspSocket)'s address and port, from any thread, while a worker owns
/// the socket and does all the receiving. Made by
/// [`EspSocket::ike_sender`](super::EspSocket::ike_sender); it holds a duplicate of the
/// socket's fd, so the port stays bound while either is open.
///
/// Sends never block: a full socket buffer is `ErrorKind::WouldBlock`, which IKE's own
/// retransmission covers; a caller on an event loop can also wait for writability on the fd
/// ([`AsFd`]).
#[derive(Debug)]
pub struct IkeSender {
    fd: OwnedFd,
    local: SocketAddr,
}

impl IkeSender {
    pub(super) fn new(fd: OwnedFd, local: SocketAddr) -> Self {
        Self { fd, local }
    }

    /// The address and port messages leave from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends an IKE message to `to` with the four-byte non-ESP marker in front (RFC 3948
    /// §2.2); returns the bytes sent, marker included.
    pub fn send_ike(&self, to: SocketAddr, message: &[u8]) -> io::Result<usize> {
        send_parts(self.fd.as_fd(), to, &[&NON_ESP_MARKER, message])
    }

    /// Sends a NAT-keepalive, the single byte 0xFF (RFC 3948 §2.3).
    pub fn send_keepalive(&self, to: SocketAddr) -> io::Result<usize> {
        send_parts(self.fd.as_fd(), to, &[&[0xFF]])
    }
}

impl AsFd for IkeSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for IkeSender {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

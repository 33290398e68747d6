//! Routes to the remote subnets of Child SAs through the TUN device, over rtnetlink
//! (`NETLINK_ROUTE`), so that the kernel hands the worker the plaintext an SA must carry.
//!
//! The device itself (up, MTU) is configured by [`Tun::create`](super::Tun::create). Routes
//! go into a routing table of the caller's choice: the main one, or one of its own looked up
//! by an `ip rule` (strongSwan uses table 220), which keeps them apart from the host's own.
//!
//! The requests are built and the acknowledgements parsed by plain functions over bytes
//! (tested without a kernel); [`RouteSocket`] only moves them.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::sys::cvt;

/// The main routing table, where `ip route` puts routes by default.
pub const RT_TABLE_MAIN: u32 = 254;

/// How long [`RouteSocket`] waits for the kernel's answer before giving up.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A route to `destination/prefix_len` through interface `ifindex`, without a gateway (the
/// TUN device is point-to-point), in routing table `table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The network address: bits beyond `prefix_len` must be zero.
    pub destination: IpAddr,
    pub prefix_len: u8,
    /// The interface index, e.g. from [`interface_index`].
    pub ifindex: u32,
    /// The routing table, 1 to 2^32 − 1 ([`RT_TABLE_MAIN`] is `ip route`'s default).
    pub table: u32,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} dev #{} table {}",
            self.destination, self.prefix_len, self.ifindex, self.table
        )
    }
}

impl Route {
    /// Whether the kernel could take this route: a prefix length within the family's, no host
    /// bits, an interface and a table. The error names the field at fault.
    pub fn validate(&self) -> io::Result<()> {
        let invalid = |what: &str| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("route {self}: {what}"),
            ))
        };
        let (bits, address) = match self.destination {
            IpAddr::V4(a) => (32, u128::from(u32::from(a)) << 96),
            IpAddr::V6(a) => (128, u128::from(a)),
        };
        if self.prefix_len > bits {
            return invalid("prefix length longer than the address");
        }
        // The address as a 128-bit value with IPv4 in the top bits, so one mask serves both.
        let host_bits = u128::MAX
            .checked_shr(u32::from(self.prefix_len))
            .unwrap_or(0);
        if address & host_bits != 0 {
            return invalid("host bits set beyond the prefix length");
        }
        if self.ifindex == 0 {
            return invalid("no interface (index 0)");
        }
        if self.table == 0 {
            return invalid("table 0 is not a table");
        }
        Ok(())
    }
}

/// The index of the interface called `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `name` is a live NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// What a request asks of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`: add, or replace a route to the same
    /// prefix in the same table.
    Add,
    /// `RTM_DELROUTE` of the route to the prefix through the interface, whatever its scope,
    /// type and protocol.
    Delete,
}

const NLMSG_HEADER_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
const NLMSG_ERROR: u16 = 2;
/// Header, `rtmsg`, `RTA_DST` (IPv6), `RTA_OIF`, `RTA_TABLE`.
const MAX_REQUEST_LEN: usize = NLMSG_HEADER_LEN + RTMSG_LEN + (4 + 16) + (4 + 4) + (4 + 4);

/// Appends a route attribute (all of ours are 4 or 16 bytes: no padding needed).
fn put_attr(out: &mut [u8], at: usize, kind: u16, value: &[u8]) -> usize {
    let len = 4 + value.len();
    out[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    out[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
    out[at + 4..at + len].copy_from_slice(value);
    at + len
}

/// Writes the netlink request for `op` on `route` into `out`; returns its length.
fn encode(route: &Route, op: Op, seq: u32, out: &mut [u8; MAX_REQUEST_LEN]) -> usize {
    let mut address = [0u8; 16];
    let (family, address_len) = match route.destination {
        IpAddr::V4(a) => {
            address[..4].copy_from_slice(&a.octets());
            (libc::AF_INET as u8, 4)
        }
        IpAddr::V6(a) => {
            address = a.octets();
            (libc::AF_INET6 as u8, 16)
        }
    };
    let (kind, flags, scope, route_type, protocol) = match op {
        Op::Add => (
            libc::RTM_NEWROUTE,
            libc::NLM_F_CREATE | libc::NLM_F_REPLACE,
            // A route without a gateway reaches its destination on the link (IPv6 ignores
            // the scope).
            if family == libc::AF_INET as u8 {
                libc::RT_SCOPE_LINK
            } else {
                libc::RT_SCOPE_UNIVERSE
            },
            libc::RTN_UNICAST,
            libc::RTPROT_STATIC,
        ),
        // Scope "nowhere", type and protocol 0 match any route to the prefix, as
        // `ip route del` does.
        Op::Delete => (libc::RTM_DELROUTE, 0, libc::RT_SCOPE_NOWHERE, 0, 0),
    };
    out.fill(0);
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK | flags) as u16;
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Port id 0: the kernel fills in ours.
    let rtm = &mut out[NLMSG_HEADER_LEN..NLMSG_HEADER_LEN + RTMSG_LEN];
    rtm[0] = family;
    rtm[1] = route.prefix_len;
    // rtm_table is 8 bits wide; a larger table number travels in RTA_TABLE only.
    rtm[4] = u8::try_from(route.table).unwrap_or(libc::RT_TABLE_UNSPEC);
    rtm[5] = protocol;
    rtm[6] = scope;
    rtm[7] = route_type;
    let mut at = NLMSG_HEADER_LEN + RTMSG_LEN;
    at = put_attr(out, at, libc::RTA_DST, &address[..address_len]);
    at = put_attr(out, at, libc::RTA_OIF, &route.ifindex.to_ne_bytes());
    at = put_attr(out, at, libc::RTA_TABLE, &route.table.to_ne_bytes());
    out[0..4].copy_from_slice(&(at as u32).to_ne_bytes());
    at
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The answer to request `seq` among the netlink messages in `reply`: `Some(Ok)` for an
/// acknowledgement, `Some(Err(errno))` for a refusal, `None` when it is not there.
fn parse_ack(reply: &[u8], seq: u32) -> Option<Result<(), i32>> {
    let mut at = 0;
    while at + NLMSG_HEADER_LEN <= reply.len() {
        let len = u32_at(reply, at)? as usize;
        if len < NLMSG_HEADER_LEN || at + len > reply.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
        if kind == NLMSG_ERROR && u32_at(reply, at + 8)? == seq {
            let error = u32_at(reply, at + NLMSG_HEADER_LEN)? as i32;
            return Some(if error == 0 { Ok(()) } else { Err(-error) });
        }
        // Messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    None
}

/// A `NETLINK_ROUTE` socket of the calling thread's network namespace, to add and delete
/// routes. Each request waits for the kernel's acknowledgement (at most a few seconds), so a
/// returned `Ok` means the route is in place, or gone.
#[derive(Debug)]
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RouteSocket {
    /// Opens the socket in the calling thread's network namespace; the routes it changes are
    /// that namespace's. Changing routes needs `CAP_NET_ADMIN`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket(2) takes no pointers.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: the option value is a live timeval and its exact size is passed along.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(Self { fd, seq: 0 })
    }

    /// Adds `route`, or replaces the route to the same prefix in the same table (another
    /// device, say). Errors are the kernel's: `ENODEV` for an unknown interface, `EPERM`
    /// without `CAP_NET_ADMIN`; an invalid route is refused before asking (`InvalidInput`).
    pub fn add(&mut self, route: &Route) -> io::Result<()> {
        self.request(route, Op::Add)
    }

    /// Deletes `route`. A route that is not there is the kernel's `ESRCH` ("No such
    /// process").
    pub fn delete(&mut self, route: &Route) -> io::Result<()> {
        self.request(route, Op::Delete)
    }

    fn request(&mut self, route: &Route, op: Op) -> io::Result<()> {
        route.validate()?;
        self.seq = self.seq.wrapping_add(1);
        let mut request = [0u8; MAX_REQUEST_LEN];
        let len = encode(route, op, self.seq, &mut request);
        loop {
            // SAFETY: the kernel reads `len` bytes of `request`, which is that long. An
            // unconnected netlink socket sends to the kernel.
            let sent = unsafe { libc::send(self.fd.as_raw_fd(), request.as_ptr().cast(), len, 0) };
            if sent >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        // The acknowledgement quotes the request: room for it and more.
        let mut reply = [0u8; 1024];
        loop {
            // SAFETY: the kernel writes at most `reply.len()` bytes into `reply`.
            let received = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if received < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("route {route}: no answer from the kernel"),
                        ))
                    }
                    _ => return Err(error),
                }
            }
            match parse_ack(&reply[..received as usize], self.seq) {
                Some(Ok(())) => return Ok(()),
                Some(Err(errno)) => return Err(io::Error::from_raw_os_error(errno)),
                // An answer to an earlier request that timed out: keep reading.
                None => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn route(destination: IpAddr, prefix_len: u8) -> Route {
        Route {
            destination,
            prefix_len,
            ifindex: 7,
            table: 220,
        }
    }

    #[test]
    fn an_ipv4_add_request_is_what_iproute2_sends() {
        let mut out = [0u8; MAX_REQUEST_LEN];
        let r = route(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 0)), 24);
        let len = encode(&r, Op::Add, 0x0102_0304, &mut out);
        // Written out by hand from rtnetlink(7) and linux/rtnetlink.h, little-endian host.
        #[rustfmt::skip]
        let expected: [u8; 52] = [
            52, 0, 0, 0,   24, 0,   0x05, 0x05,   4, 3, 2, 1,   0, 0, 0, 0, // nlmsghdr
            2, 24, 0, 0,   220, 4, 253, 1,   0, 0, 0, 0, // rtmsg: v4 /24 t220 static link unicast
            8, 0, 1, 0,   10, 2, 0, 0, // RTA_DST
            8, 0, 4, 0,   7, 0, 0, 0, // RTA_OIF
            8, 0, 15, 0,   220, 0, 0, 0, // RTA_TABLE
        ];
        if cfg!(target_endian = "little") {
            assert_eq!(&out[..len], &expected[..]);
        }
        assert_eq!(len, 52);
    }

    #[test]
    fn an_ipv6_delete_request_matches_any_scope_type_and_protocol() {
        let mut out = [0u8; MAX_REQUEST_LEN];
        let mut r = route(IpAddr::V6("2001:db8:2::".parse().unwrap()), 48);
        r.table = 1000;
        let len = encode(&r, Op::Delete, 9, &mut out);
        assert_eq!(len, MAX_REQUEST_LEN);
        assert_eq!(u16::from_ne_bytes([out[4], out[5]]), libc::RTM_DELROUTE);
        assert_eq!(
            u16::from_ne_bytes([out[6], out[7]]),
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16
        );
        // family, dst_len, src_len, tos, table (too big: in RTA_TABLE only), protocol, scope,
        // type
        assert_eq!(&out[16..24], &[10, 48, 0, 0, 0, 0, 255, 0]);
        assert_eq!(u16::from_ne_bytes([out[28], out[29]]), 20);
        assert_eq!(u16::from_ne_bytes([out[30], out[31]]), libc::RTA_DST);
        assert_eq!(
            &out[32..48],
            &"2001:db8:2::".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(u32_at(&out, 60), Some(1000));
    }

    #[test]
    fn acknowledgements_are_matched_by_sequence_number() {
        let message = |seq: u32, error: i32| {
            let mut m = vec![0u8; 36];
            m[0..4].copy_from_slice(&36u32.to_ne_bytes());
            m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m[8..12].copy_from_slice(&seq.to_ne_bytes());
            m[16..20].copy_from_slice(&error.to_ne_bytes());
            m
        };
        assert_eq!(parse_ack(&message(5, 0), 5), Some(Ok(())));
        assert_eq!(
            parse_ack(&message(5, -libc::ENODEV), 5),
            Some(Err(libc::ENODEV))
        );
        assert_eq!(parse_ack(&message(4, 0), 5), None);
        let mut two = message(4, -libc::EEXIST);
        two.extend(message(5, 0));
        assert_eq!(parse_ack(&two, 5), Some(Ok(())));
        // Truncated or nonsensical lengths end the search instead of reading past the end.
        assert_eq!(parse_ack(&message(5, 0)[..20], 5), None);
        let mut zero_len = message(5, 0);
        zero_len[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_ack(&zero_len, 5), None);
    }

    #[test]
    fn invalid_routes_are_refused_before_the_kernel_sees_them() {
        let v4 = |a: [u8; 4], len| route(IpAddr::V4(Ipv4Addr::from(a)), len);
        assert!(v4([10, 2, 0, 0], 24).validate().is_ok());
        assert!(v4([0, 0, 0, 0], 0).validate().is_ok());
        assert!(v4([10, 2, 0, 1], 32).validate().is_ok());
        assert!(v4([10, 2, 0, 1], 24).validate().is_err());
        assert!(v4([10, 2, 0, 0], 33).validate().is_err());
        let v6 = |a: &str, len| route(IpAddr::V6(a.parse().unwrap()), len);
        assert!(v6("2001:db8::", 32).validate().is_ok());
        assert!(v6("2001:db8::1", 128).validate().is_ok());
        assert!(v6("2001:db8::1", 64).validate().is_err());
        assert!(v6("2001:db8::", 129).validate().is_err());
        let mut no_device = v4([10, 2, 0, 0], 24);
        no_device.ifindex = 0;
        assert!(no_device.validate().is_err());
        let mut no_table = v4([10, 2, 0, 0], 24);
        no_table.table = 0;
        assert!(no_table.validate().is_err());
    }
}

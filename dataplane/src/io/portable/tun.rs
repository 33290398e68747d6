//! A TUN device: raw IP packets in and out of the kernel, read straight into the frames the ESP
//! core works in.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::sys::{self, cvt, IoStats};
use crate::esp::ip::{read_u16, Family, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use crate::esp::{PacketBuf, ENCAP_HEADROOM, ENCAP_TAILROOM};

/// How to create a TUN device.
#[derive(Clone, Debug)]
pub struct TunConfig {
    /// The interface name (at most 15 bytes); a pattern such as `xipsec%d` lets the kernel pick
    /// the number. An existing persistent device of that name is attached to.
    pub name: String,
    /// `IFF_MULTI_QUEUE`: more queues (one fd each, one per worker) can be attached with
    /// [`Tun::open_queue`].
    pub multi_queue: bool,
    /// The MTU to set; `None` keeps the kernel's (1500). Leave room for the ESP overhead below
    /// the outer path MTU, and keep it below the frames' capacity (see
    /// [`Tun::recv_batch`]).
    pub mtu: Option<u32>,
    /// Bring the interface up.
    pub up: bool,
}

impl TunConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            multi_queue: false,
            mtu: None,
            up: true,
        }
    }
}

/// One queue of a TUN device (`IFF_TUN | IFF_NO_PI`): each read gives one IP packet, each write
/// takes one. Non-blocking.
///
/// The device lives in the network namespace of the thread that creates it, and
/// [`create`](Self::create) configures it (up, MTU) through a socket of that same namespace:
/// create it in the namespace it belongs in.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    flags: libc::c_short,
    rx: IoStats,
    tx: IoStats,
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is integers, arrays and a union of such (and one pointer, which zero makes
    // null): all zeros is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long or contains NUL",
        ));
    }
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

fn name_of(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Attaches a fresh `/dev/net/tun` fd to the device `name` with `flags`; returns the fd and the
/// name the kernel gave.
fn attach(name: &str, flags: libc::c_short) -> io::Result<(OwnedFd, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(file);
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr` is.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })?;
    Ok((fd, name_of(&ifr)))
}

/// Sets the MTU and/or the up flag of interface `name` in the calling thread's namespace.
fn configure(name: &str, mtu: Option<u32>, up: bool) -> io::Result<()> {
    let control = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    if let Some(mtu) = mtu {
        let mut ifr = ifreq_for(name)?;
        ifr.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
        // SAFETY: SIOCSIFMTU reads one `struct ifreq`, which `ifr` is.
        cvt(unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCSIFMTU, &mut ifr) })?;
    }
    if up {
        let mut ifr = ifreq_for(name)?;
        // SAFETY: SIOCGIFFLAGS writes one `struct ifreq`, which `ifr` is.
        cvt(unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })?;
        // SAFETY: the kernel has just filled the flags member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads one `struct ifreq`, which `ifr` is.
        cvt(unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr) })?;
    }
    Ok(())
}

/// The length an IP packet's own header states; `None` when it has no plausible header.
fn stated_len(packet: &[u8]) -> Option<usize> {
    match Family::of(packet)? {
        Family::V4 if packet.len() >= IPV4_HEADER_LEN => Some(usize::from(read_u16(packet, 2))),
        Family::V6 if packet.len() >= IPV6_HEADER_LEN => {
            Some(IPV6_HEADER_LEN + usize::from(read_u16(packet, 4)))
        }
        _ => None,
    }
}

impl Tun {
    /// Creates (or attaches to) the device and configures it as `config` says.
    pub fn create(config: &TunConfig) -> io::Result<Tun> {
        let mut flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        if config.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE as libc::c_short;
        }
        let (fd, name) = attach(&config.name, flags)?;
        configure(&name, config.mtu, config.up)?;
        Ok(Tun {
            fd,
            name,
            flags,
            rx: IoStats::default(),
            tx: IoStats::default(),
        })
    }

    /// Another queue of a multi-queue device, for another worker. The kernel spreads the
    /// device's outgoing flows over its queues. Call it in the device's namespace.
    pub fn open_queue(&self) -> io::Result<Tun> {
        if self.flags & libc::IFF_MULTI_QUEUE as libc::c_short == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the device was not created with multi_queue",
            ));
        }
        let (fd, name) = attach(&self.name, self.flags)?;
        Ok(Tun {
            fd,
            name,
            flags: self.flags,
            rx: IoStats::default(),
            tx: IoStats::default(),
        })
    }

    /// The interface name the kernel gave.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// What the reads did.
    pub fn rx_stats(&self) -> &IoStats {
        &self.rx
    }

    /// What the writes did.
    pub fn tx_stats(&self) -> &IoStats {
        &self.tx
    }

    /// Reads one packet into `frame[offset..]`: `Ok(Some(len))`, or `Ok(None)` when there is
    /// none now. A packet longer than the room is truncated by the kernel, which still reports
    /// its full length: check `len <= frame.len() - offset`.
    pub fn read_into(&self, frame: &mut [u8], offset: usize) -> io::Result<Option<usize>> {
        let room = frame
            .get_mut(offset..)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond frame"))?;
        sys::read(self.fd.as_raw_fd(), room).map_err(io::Error::from_raw_os_error)
    }

    /// Writes one IP packet.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        sys::write(self.fd.as_raw_fd(), packet).map_err(io::Error::from_raw_os_error)
    }

    /// Reads packets into the buffers' frames until there are no more or every buffer is full;
    /// returns how many buffers were filled (the first ones). Each packet lands at
    /// [`ENCAP_HEADROOM`] in its frame with at least [`ENCAP_TAILROOM`] left behind it, and the
    /// buffer's window is set to it, ready for [`OutboundSa::encap_batch`]. A frame thus holds
    /// packets of up to `frame.len() - ENCAP_HEADROOM - ENCAP_TAILROOM` bytes; longer ones, and
    /// packets whose header states another length, are counted as discarded and skipped.
    /// Read errors are counted (see [`rx_stats`](Self::rx_stats)) and end the batch.
    ///
    /// [`OutboundSa::encap_batch`]: crate::esp::OutboundSa::encap_batch
    pub fn recv_batch(&mut self, bufs: &mut [PacketBuf<'_>]) -> usize {
        let mut filled = 0;
        // Bounded even if the kernel kept handing us packets to discard.
        let mut attempts = 2 * bufs.len();
        while filled < bufs.len() && attempts > 0 {
            attempts -= 1;
            let buf = &mut bufs[filled];
            let frame_len = buf.offset() + buf.len() + buf.tailroom();
            let Some(room) = frame_len.checked_sub(ENCAP_HEADROOM + ENCAP_TAILROOM) else {
                // Frames too small to hold anything: nothing can be read into them.
                break;
            };
            buf.reset(0, frame_len);
            let frame = buf.data_mut();
            let at = ENCAP_HEADROOM;
            let len = match sys::read(self.fd.as_raw_fd(), &mut frame[at..at + room]) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(errno) => {
                    self.rx.error(errno);
                    break;
                }
            };
            if len > room || stated_len(&frame[at..at + len]) != Some(len) {
                self.rx.discarded += 1;
                continue;
            }
            buf.reset(at, len);
            self.rx.packets += 1;
            self.rx.bytes += len as u64;
            filled += 1;
        }
        filled
    }

    /// Writes each packet; returns how many the kernel took. Failures are counted (see
    /// [`tx_stats`](Self::tx_stats)) and do not stop the batch.
    pub fn send_batch<'p>(&mut self, packets: impl IntoIterator<Item = &'p [u8]>) -> usize {
        let mut sent = 0;
        for packet in packets {
            match sys::write(self.fd.as_raw_fd(), packet) {
                Ok(len) => {
                    sent += 1;
                    self.tx.packets += 1;
                    self.tx.bytes += len as u64;
                }
                Err(errno) => self.tx.error(errno),
            }
        }
        sent
    }
}

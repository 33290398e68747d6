//! One AF_XDP socket bound to one (interface, queue), with its own UMEM.
//!
//! The UMEM is split in two: the first half of the frames feeds the fill ring (receive), the
//! second half is the pool transmit frames come from and return to through the completion
//! ring. Frames are `frame_size` bytes; the kernel places received packets after its own
//! headroom (at least 256 bytes), which leaves room to encapsulate in place.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use memmap2::{MmapMut, MmapOptions, MmapRaw};

use super::ring::{ConsumerRing, ProducerRing, RingMemory};

/// A received or to-be-sent frame: its address in the UMEM and its length.
pub type Descriptor = libc::xdp_desc;

/// How to set a socket up.
#[derive(Clone, Copy, Debug)]
pub struct XskConfig {
    /// Bytes per UMEM frame: 2048 or 4096 (2 KiB and 4 KiB performed the same here).
    pub frame_size: u32,
    /// Frames in the UMEM, half for receiving and half for sending.
    pub frame_count: u32,
    /// Entries per ring (a power of two).
    pub ring_size: u32,
    /// Ask for zero-copy; copy mode otherwise (veth offers only copy mode).
    pub zero_copy: bool,
}

impl Default for XskConfig {
    /// The sizes that did not run the fill ring dry on these machines: 16384 frames with
    /// 4096-entry rings (`../shared/notes/xdp-on-veth.md`).
    fn default() -> Self {
        Self {
            frame_size: 2048,
            frame_count: 16384,
            ring_size: 4096,
            zero_copy: false,
        }
    }
}

/// Why a socket could not be set up; every cause is local (kernel, permissions, interface).
#[derive(Debug)]
#[non_exhaustive]
pub enum XskError {
    /// The sizes are not powers of two or do not fit together.
    Config(&'static str),
    /// No interface of that name.
    NoSuchInterface(String),
    /// A system call failed; the string says which step.
    Sys(&'static str, io::Error),
}

impl std::fmt::Display for XskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XskError::Config(why) => write!(f, "AF_XDP socket configuration: {why}"),
            XskError::NoSuchInterface(name) => write!(f, "no interface {name}"),
            XskError::Sys(step, e) => write!(f, "AF_XDP {step}: {e}"),
        }
    }
}

impl std::error::Error for XskError {}

impl AsFd for XskSocket {
    /// The socket, for the XDP program's XSKMAP.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An AF_XDP socket with its UMEM and rings.
#[derive(Debug)]
pub struct XskSocket {
    fd: OwnedFd,
    umem: MmapMut,
    frame_size: u32,
    fill: ProducerRing<u64>,
    completion: ConsumerRing<u64>,
    rx: ConsumerRing<Descriptor>,
    tx: ProducerRing<Descriptor>,
    /// Transmit frames not in flight.
    free_tx: Vec<u64>,
    zero_copy: bool,
    // The ring mappings must outlive the rings that point into them.
    _maps: [MmapRaw; 4],
}

fn sys<T: PartialOrd + Default>(step: &'static str, result: T) -> Result<T, XskError> {
    if result < T::default() {
        Err(XskError::Sys(step, io::Error::last_os_error()))
    } else {
        Ok(result)
    }
}

fn set_option<T>(
    fd: RawFd,
    name: libc::c_int,
    value: &T,
    step: &'static str,
) -> Result<(), XskError> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel only reads it.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    sys(step, result).map(|_| ())
}

fn map_ring(fd: RawFd, offset: u64, len: usize, step: &'static str) -> Result<MmapRaw, XskError> {
    MmapOptions::new()
        .offset(offset)
        .len(len)
        .populate()
        .map_raw(fd)
        .map_err(|e| XskError::Sys(step, e))
}

impl XskSocket {
    /// Creates a socket, registers a UMEM, sets up its rings and binds it to `queue` of
    /// `interface` (in the caller's network namespace). Needs CAP_NET_RAW (and, without
    /// CAP_IPC_LOCK, a memlock limit that fits the UMEM).
    pub fn bind(interface: &str, queue: u32, config: XskConfig) -> Result<Self, XskError> {
        if !config.ring_size.is_power_of_two()
            || !config.frame_size.is_power_of_two()
            || config.frame_size < 2048
            || config.frame_count < 2 * config.ring_size
        {
            return Err(XskError::Config(
                "ring size and frame size must be powers of two, frames >= 2048 bytes, and at \
                 least two frames per ring entry",
            ));
        }
        let name =
            CString::new(interface).map_err(|_| XskError::NoSuchInterface(interface.into()))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoSuchInterface(interface.into()));
        }
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = sys("socket", unsafe {
            libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let umem_len = config.frame_size as usize * config.frame_count as usize;
        let mut umem = MmapOptions::new()
            .len(umem_len)
            .map_anon()
            .map_err(|e| XskError::Sys("UMEM allocation", e))?;
        let registration = libc::xdp_umem_reg {
            addr: umem.as_mut_ptr() as u64,
            len: umem_len as u64,
            chunk_size: config.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        set_option(raw, libc::XDP_UMEM_REG, &registration, "UMEM registration")?;
        for (option, step) in [
            (libc::XDP_UMEM_FILL_RING, "fill ring size"),
            (libc::XDP_UMEM_COMPLETION_RING, "completion ring size"),
            (libc::XDP_RX_RING, "RX ring size"),
            (libc::XDP_TX_RING, "TX ring size"),
        ] {
            set_option(raw, option, &config.ring_size, step)?;
        }

        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `offsets` is writable for `len` bytes; the kernel writes at most that.
        sys("ring offsets", unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut offsets as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        })?;

        let size = config.ring_size as usize;
        let fill_map = map_ring(
            raw,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            offsets.fr.desc as usize + size * 8,
            "fill ring mapping",
        )?;
        let completion_map = map_ring(
            raw,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            offsets.cr.desc as usize + size * 8,
            "completion ring mapping",
        )?;
        let descriptor = std::mem::size_of::<Descriptor>();
        let rx_map = map_ring(
            raw,
            libc::XDP_PGOFF_RX_RING as u64,
            offsets.rx.desc as usize + size * descriptor,
            "RX ring mapping",
        )?;
        let tx_map = map_ring(
            raw,
            libc::XDP_PGOFF_TX_RING as u64,
            offsets.tx.desc as usize + size * descriptor,
            "TX ring mapping",
        )?;
        let base = |map: &MmapRaw| {
            NonNull::new(map.as_mut_ptr()).ok_or(XskError::Config("null ring mapping"))
        };
        let ring_size = config.ring_size;
        // SAFETY: each mapping is the kernel's ring of that kind, as long as the offsets and
        // size say, and is kept alive in `_maps` for as long as the rings exist.
        let (fill, completion, rx, tx) = unsafe {
            (
                RingMemory::new(
                    base(&fill_map)?,
                    offsets.fr.producer,
                    offsets.fr.consumer,
                    offsets.fr.flags,
                    offsets.fr.desc,
                    ring_size,
                ),
                RingMemory::new(
                    base(&completion_map)?,
                    offsets.cr.producer,
                    offsets.cr.consumer,
                    offsets.cr.flags,
                    offsets.cr.desc,
                    ring_size,
                ),
                RingMemory::new(
                    base(&rx_map)?,
                    offsets.rx.producer,
                    offsets.rx.consumer,
                    offsets.rx.flags,
                    offsets.rx.desc,
                    ring_size,
                ),
                RingMemory::new(
                    base(&tx_map)?,
                    offsets.tx.producer,
                    offsets.tx.consumer,
                    offsets.tx.flags,
                    offsets.tx.desc,
                    ring_size,
                ),
            )
        };

        let mode = if config.zero_copy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
        let address = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `address` is a valid sockaddr_xdp of the size passed.
        sys("bind", unsafe {
            libc::bind(
                raw,
                (&address as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;

        let half = u64::from(config.frame_count / 2);
        let frame = u64::from(config.frame_size);
        let mut socket = Self {
            fd,
            umem,
            frame_size: config.frame_size,
            fill: ProducerRing::new(fill),
            completion: ConsumerRing::new(completion),
            rx: ConsumerRing::new(rx),
            tx: ProducerRing::new(tx),
            free_tx: (half..2 * half).rev().map(|i| i * frame).collect(),
            zero_copy: config.zero_copy,
            _maps: [fill_map, completion_map, rx_map, tx_map],
        };
        // Give the kernel every receive frame it can hold.
        let initial = (0..half.min(u64::from(ring_size)) as u32).map(|i| u64::from(i) * frame);
        socket.fill.produce(initial);
        Ok(socket)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The bytes of a frame, from `addr` for `len` bytes; `None` outside the UMEM.
    pub fn frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        self.umem.get(start..start.checked_add(len)?)
    }

    /// The whole frame that `addr` lies in, writable, and where `addr` is inside it: room to
    /// grow a packet in place before and after.
    pub fn frame_mut(&mut self, addr: u64) -> Option<(&mut [u8], usize)> {
        let addr = usize::try_from(addr).ok()?;
        let frame_size = self.frame_size as usize;
        let start = addr - addr % frame_size;
        let frame = self.umem.get_mut(start..start + frame_size)?;
        Some((frame, addr - start))
    }

    /// Received frames, up to `out.len()`. Each must go back through [`refill`](Self::refill)
    /// once processed (or be transmitted and then refilled from the completion ring).
    pub fn receive(&mut self, out: &mut [Descriptor]) -> usize {
        self.rx.consume(out)
    }

    /// Hands frames (by address) back to the kernel for receiving, waking it if it asked.
    pub fn refill(&mut self, addrs: impl ExactSizeIterator<Item = u64>) -> u32 {
        let count = self.fill.produce(addrs);
        if self.fill.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking recvfrom with null buffers is the documented
            // way to wake the kernel's receive processing (libxdp does the same).
            unsafe {
                libc::recvfrom(
                    self.fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
        count
    }

    /// A free transmit frame: its address, to write a packet into with `frame_mut`.
    pub fn take_tx_frame(&mut self) -> Option<u64> {
        if self.free_tx.is_empty() {
            self.reclaim_completed();
        }
        self.free_tx.pop()
    }

    /// Queues frames for transmission and kicks the kernel; returns how many were queued.
    pub fn transmit(&mut self, descriptors: &[Descriptor]) -> u32 {
        let count = self.tx.produce(descriptors.iter().copied());
        if count > 0 && self.tx.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking sendto with null buffers is how AF_XDP is
            // told to process its TX ring (libxdp's kick).
            unsafe {
                libc::sendto(
                    self.fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                );
            }
        }
        count
    }

    /// Moves sent frames from the completion ring back to the transmit pool; returns how many.
    pub fn reclaim_completed(&mut self) -> usize {
        let mut done = [0u64; 64];
        let mut total = 0;
        loop {
            let count = self.completion.consume(&mut done);
            self.free_tx.extend_from_slice(&done[..count]);
            total += count;
            if count < done.len() {
                return total;
            }
        }
    }

    /// Transmit frames not in flight.
    pub fn free_tx_frames(&self) -> usize {
        self.free_tx.len()
    }
}

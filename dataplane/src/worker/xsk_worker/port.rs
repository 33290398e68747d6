//! One interface of a worker: the AF_XDP socket on the worker's queue of it, known by its
//! ifindex (the name routes give), the frames waiting to be transmitted, and the transmit
//! frames the worker holds itself.
//!
//! Frames are conserved: the socket's API has no way to give a transmit frame back unsent, so
//! frames the TX ring would not take, and frames the fill ring had no room for, stay with the
//! port (`spare`) and are the first used for the next packet.

use std::ffi::CString;

use super::stats::WorkerCounters;
use super::MAX_BATCH;
use crate::io::xsk::{Descriptor, XskConfig, XskError, XskSocket};

/// Descriptors the kernel sends per wake-up in copy mode (`TX_BATCH_SIZE` in
/// net/xdp/xsk.c); the rest would wait in the ring for the next wake-up. `poll(2)` on the
/// socket drives transmission too, so an idle worker still sends what is left.
const COPY_MODE_TX_BUDGET: usize = 32;

const EMPTY: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    options: 0,
};

/// An AF_XDP socket and the interface it is bound to, for a worker to receive and send on.
#[derive(Debug)]
pub struct WorkerPort {
    ifindex: u32,
    socket: XskSocket,
}

impl WorkerPort {
    /// A socket already bound to the interface with index `ifindex`.
    pub fn new(ifindex: u32, socket: XskSocket) -> Self {
        Self { ifindex, socket }
    }

    /// Binds a socket to `queue` of `interface` (in the calling thread's network namespace).
    pub fn bind(interface: &str, queue: u32, config: XskConfig) -> Result<Self, XskError> {
        let name =
            CString::new(interface).map_err(|_| XskError::NoSuchInterface(interface.into()))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoSuchInterface(interface.into()));
        }
        Ok(Self::new(
            ifindex,
            XskSocket::bind(interface, queue, config)?,
        ))
    }

    /// The interface's index, as routes name it.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The socket, for the XDP program's XSKMAP.
    pub fn socket(&self) -> &XskSocket {
        &self.socket
    }
}

/// A port in a worker's hands.
pub(super) struct Port {
    pub(super) socket: XskSocket,
    pending: [Descriptor; MAX_BATCH],
    pending_len: usize,
    spare: Vec<u64>,
}

impl Port {
    pub(super) fn new(port: WorkerPort) -> Self {
        // Room for every frame of the UMEM: the list never grows on the packet path.
        let frames = 2 * port.socket.free_tx_frames();
        Self {
            socket: port.socket,
            pending: [EMPTY; MAX_BATCH],
            pending_len: 0,
            spare: Vec::with_capacity(frames),
        }
    }

    /// A frame to write a packet into, by the address of its start (frames back from the
    /// completion ring may carry the offset a packet had in them).
    fn take_frame(&mut self) -> Option<u64> {
        let addr = self.spare.pop().or_else(|| self.socket.take_tx_frame())?;
        let (_, offset) = self.socket.frame_mut(addr)?;
        Some(addr - offset as u64)
    }

    fn keep(&mut self, addr: u64) {
        self.spare.push(addr);
    }

    /// Copies `packet` (a whole Ethernet frame) into a transmit frame and queues it; `false`
    /// (counted) when there is no frame or the packet does not fit.
    pub(super) fn send_copy(&mut self, packet: &[u8], counters: &mut WorkerCounters) -> bool {
        let Some(addr) = self.take_frame() else {
            counters.tx_dropped += 1;
            return false;
        };
        let Some(out) = self
            .socket
            .frame_mut(addr)
            .and_then(|(frame, _)| frame.get_mut(..packet.len()))
        else {
            counters.tx_dropped += 1;
            self.keep(addr);
            return false;
        };
        out.copy_from_slice(packet);
        self.queue(
            Descriptor {
                addr,
                len: packet.len() as u32,
                options: 0,
            },
            counters,
        );
        true
    }

    /// Sends a received frame back out of the same port as it is (its packet already
    /// rewritten in place at `start..start + len` of the chunk `rx_addr` lies in). Returns
    /// the frame to give the fill ring in its place, a transmit frame; `None` (counted) when
    /// none is free: the packet is dropped and `rx_addr` goes back to the fill ring.
    pub(super) fn hairpin(
        &mut self,
        rx_addr: u64,
        start: usize,
        len: usize,
        counters: &mut WorkerCounters,
    ) -> Option<u64> {
        let Some(replacement) = self.take_frame() else {
            counters.tx_dropped += 1;
            return None;
        };
        let Some((_, offset)) = self.socket.frame_mut(rx_addr) else {
            counters.tx_dropped += 1;
            self.keep(replacement);
            return None;
        };
        let chunk = rx_addr - offset as u64;
        self.queue(
            Descriptor {
                addr: chunk + start as u64,
                len: len as u32,
                options: 0,
            },
            counters,
        );
        Some(replacement)
    }

    fn queue(&mut self, descriptor: Descriptor, counters: &mut WorkerCounters) {
        if self.pending_len == MAX_BATCH {
            self.flush(counters);
        }
        self.pending[self.pending_len] = descriptor;
        self.pending_len += 1;
    }

    /// Hands the queued frames to the kernel, a wake-up's worth at a time, and takes back
    /// the ones it sent. Frames the ring has no room for are dropped (counted) and kept.
    pub(super) fn flush(&mut self, counters: &mut WorkerCounters) {
        let pending = self.pending_len;
        self.pending_len = 0;
        let mut at = 0;
        while at < pending {
            let end = pending.min(at + COPY_MODE_TX_BUDGET);
            let queued = self.socket.transmit(&self.pending[at..end]) as usize;
            counters.transmitted += queued as u64;
            at += queued;
            if at < end {
                break;
            }
        }
        counters.tx_dropped += (pending - at) as u64;
        for index in at..pending {
            let addr = self.pending[index].addr;
            self.keep(addr);
        }
        self.socket.reclaim_completed();
    }

    /// Gives received frames back to the fill ring; what it has no room for is kept.
    pub(super) fn refill(&mut self, addrs: &[u64]) {
        let given = self.socket.refill(addrs.iter().copied()) as usize;
        for &addr in &addrs[given..] {
            self.keep(addr);
        }
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("socket", &self.socket)
            .field("pending", &self.pending_len)
            .field("spare", &self.spare.len())
            .finish()
    }
}

/// Two different elements of `items`, both writable.
pub(super) fn pair_mut<T>(items: &mut [T], a: usize, b: usize) -> Option<(&mut T, &mut T)> {
    if a == b || a >= items.len() || b >= items.len() {
        return None;
    }
    if a < b {
        let (low, high) = items.split_at_mut(b);
        Some((&mut low[a], &mut high[0]))
    } else {
        let (low, high) = items.split_at_mut(a);
        Some((&mut high[0], &mut low[b]))
    }
}

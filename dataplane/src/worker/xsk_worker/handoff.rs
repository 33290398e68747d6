//! Handing packets to the worker that owns their SA: one lock-free inbox per worker
//! (`crossbeam_queue::ArrayQueue`) and one free list of packet buffers, all allocated up
//! front. A packet is copied once into a free buffer and the buffer (a pointer, not the bytes)
//! moves through the queues; the owner returns it to the free list when done. Nothing is
//! allocated per packet, and when the inbox is full or no buffer is free the packet is
//! refused, never waited for.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::frame::ETHERNET_HEADER_LEN;
use super::wake::Wake;
use crate::esp::{ENCAP_HEADROOM, ENCAP_TAILROOM};
use crate::table::SlotId;

/// Bytes kept free in front of a handed-over packet: its Ethernet header on the way out and
/// the outer headers of encapsulation, rounded up to a cache line.
pub const HANDOFF_HEADROOM: usize = (ETHERNET_HEADER_LEN + ENCAP_HEADROOM).next_multiple_of(64);
/// Bytes kept free after a handed-over packet: the ESP trailer and ICV, and TFC padding up
/// to the rest of a cache line.
pub const HANDOFF_TAILROOM: usize = ENCAP_TAILROOM.next_multiple_of(64);

/// How the hand-off between a set of workers is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoffConfig {
    /// Workers taking part, each with an inbox; worker indices run from 0 to `workers - 1`.
    pub workers: usize,
    /// Packets an inbox holds; a worker drains at most a batch of them per round.
    pub inbox_capacity: usize,
    /// Packet buffers shared by all workers: how many packets can be in flight between
    /// workers at once.
    pub buffers: usize,
    /// The longest IP packet a buffer takes (a UMEM frame's worth).
    pub max_packet: usize,
}

impl HandoffConfig {
    /// Sizes for `workers` workers: 512 packets per inbox, as many buffers as the inboxes
    /// hold, packets up to 3840 bytes (a 4096-byte frame less the kernel's headroom).
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            inbox_capacity: 512,
            buffers: 512 * workers,
            max_packet: 3840,
        }
    }
}

/// Why a hand-off could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandoffError {
    /// The configuration cannot work (the caller's fault); the text says why.
    Config(&'static str),
    /// The kernel refused an eventfd (a local resource limit).
    Eventfd(io::Error),
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoffError::Config(why) => write!(f, "hand-off configuration: {why}"),
            HandoffError::Eventfd(e) => write!(f, "hand-off wake-up eventfd: {e}"),
        }
    }
}

impl std::error::Error for HandoffError {}

/// What the owner is to do with a handed-over packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffWork {
    /// Decapsulate it (inbound ESP); the owner looks the SA up by SPI again.
    Decapsulate,
    /// Encapsulate it with the outbound SA in this slot (plaintext); the sender already
    /// looked the policy up.
    Encapsulate(SlotId),
}

/// Why a packet was not handed over; the sender counts it as a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffRefused {
    /// No worker has that index.
    NoSuchWorker,
    /// The packet is longer than a buffer takes.
    TooBig,
    /// Every buffer is in flight.
    NoBuffer,
    /// The owner's inbox is full: it is behind.
    InboxFull,
}

/// A packet in a hand-off buffer, with what the owner is to do with it.
#[derive(Debug)]
pub struct HandoffPacket {
    buffer: Box<[u8]>,
    start: usize,
    len: usize,
    work: HandoffWork,
    received_at: Instant,
}

impl HandoffPacket {
    /// What the owner is to do with it.
    pub fn work(&self) -> HandoffWork {
        self.work
    }

    /// When the sending worker received the packet (its batch's time).
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// The IP packet as handed over.
    pub fn data(&self) -> &[u8] {
        &self.buffer[self.start..self.start + self.len]
    }

    /// The whole buffer and where the packet lies in it: room to grow in place.
    pub(super) fn buffer_mut(&mut self) -> (&mut [u8], usize, usize) {
        (&mut self.buffer, self.start, self.len)
    }

    /// `len` bytes of the buffer from `start`: what an
    /// [`Outcome::Transmit`](super::Outcome::Transmit) for this packet names.
    pub fn bytes(&self, start: usize, len: usize) -> Option<&[u8]> {
        self.buffer.get(start..start.checked_add(len)?)
    }
}

/// One worker's inbox and doorbell.
#[derive(Debug)]
struct Inbox {
    packets: ArrayQueue<HandoffPacket>,
    wake: Wake,
}

/// The inboxes of a set of workers and their shared buffers. Shared (`Arc`) by all of them.
#[derive(Debug)]
pub struct Handoff {
    inboxes: Box<[Inbox]>,
    free: ArrayQueue<HandoffPacket>,
    max_packet: usize,
}

impl Handoff {
    /// Allocates every inbox and buffer.
    pub fn new(config: HandoffConfig) -> Result<Arc<Self>, HandoffError> {
        if config.workers == 0 {
            return Err(HandoffError::Config("at least one worker"));
        }
        if config.inbox_capacity == 0 || config.buffers == 0 {
            return Err(HandoffError::Config(
                "inboxes and the buffer pool need room for at least one packet",
            ));
        }
        if config.max_packet < 1280 {
            return Err(HandoffError::Config(
                "buffers must take at least a 1280-byte packet (the IPv6 minimum MTU)",
            ));
        }
        let mut inboxes = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            inboxes.push(Inbox {
                packets: ArrayQueue::new(config.inbox_capacity),
                wake: Wake::new().map_err(HandoffError::Eventfd)?,
            });
        }
        let free = ArrayQueue::new(config.buffers);
        let buffer_len = HANDOFF_HEADROOM + config.max_packet + HANDOFF_TAILROOM;
        for _ in 0..config.buffers {
            // Cannot fail: the queue was made for exactly this many.
            let _ = free.push(HandoffPacket {
                buffer: vec![0u8; buffer_len].into_boxed_slice(),
                start: HANDOFF_HEADROOM,
                len: 0,
                work: HandoffWork::Decapsulate,
                received_at: Instant::now(),
            });
        }
        Ok(Arc::new(Self {
            inboxes: inboxes.into_boxed_slice(),
            free,
            max_packet: config.max_packet,
        }))
    }

    /// How many workers have an inbox.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// The longest packet a buffer takes.
    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// Copies `packet` (an IP packet) into a free buffer and puts it into worker `to`'s
    /// inbox, waking that worker if it sleeps.
    pub fn send(
        &self,
        to: usize,
        work: HandoffWork,
        packet: &[u8],
        received_at: Instant,
    ) -> Result<(), HandoffRefused> {
        let inbox = self.inboxes.get(to).ok_or(HandoffRefused::NoSuchWorker)?;
        if packet.len() > self.max_packet {
            return Err(HandoffRefused::TooBig);
        }
        // Full already: refuse before spending a copy.
        if inbox.packets.is_full() {
            return Err(HandoffRefused::InboxFull);
        }
        let mut buffered = self.free.pop().ok_or(HandoffRefused::NoBuffer)?;
        buffered.start = HANDOFF_HEADROOM;
        buffered.len = packet.len();
        buffered.buffer[HANDOFF_HEADROOM..HANDOFF_HEADROOM + packet.len()].copy_from_slice(packet);
        buffered.work = work;
        buffered.received_at = received_at;
        match inbox.packets.push(buffered) {
            Ok(()) => {
                inbox.wake.ring();
                Ok(())
            }
            Err(buffered) => {
                // Another sender filled it meanwhile.
                self.recycle(buffered);
                Err(HandoffRefused::InboxFull)
            }
        }
    }

    /// The next packet in worker `worker`'s inbox. Give it back with
    /// [`recycle`](Self::recycle) when done.
    pub fn receive(&self, worker: usize) -> Option<HandoffPacket> {
        self.inboxes.get(worker)?.packets.pop()
    }

    /// Returns a packet's buffer to the free list.
    pub fn recycle(&self, packet: HandoffPacket) {
        // The list has room for every buffer there is; a full list would mean a buffer that
        // was never ours, which is simply freed.
        let _ = self.free.push(packet);
    }

    /// Buffers not in flight.
    pub fn free_buffers(&self) -> usize {
        self.free.len()
    }

    /// Packets waiting in worker `worker`'s inbox.
    pub fn waiting(&self, worker: usize) -> usize {
        self.inboxes
            .get(worker)
            .map_or(0, |inbox| inbox.packets.len())
    }

    pub(super) fn wake(&self, worker: usize) -> Option<&Wake> {
        self.inboxes.get(worker).map(|inbox| &inbox.wake)
    }
}

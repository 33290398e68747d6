//! The four AF_XDP rings (fill, completion, RX, TX) over the memory the kernel maps for them.
//!
//! Each ring is single-producer single-consumer between this process and the kernel: a
//! producer index, a consumer index and an array of entries, sizes a power of two. We keep
//! cached copies of both indices and touch the shared ones only when the cache says the ring
//! looks full (producer) or empty (consumer), as libxdp does — one atomic load per batch, not
//! per packet.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring's memory as the kernel laid it out (`XDP_MMAP_OFFSETS`).
#[derive(Debug)]
pub(crate) struct RingMemory<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    size: u32,
}

// SAFETY: the pointers address a shared mapping owned by the socket that owns the ring; the
// ring is used by one thread at a time (it is moved, never shared), and every access to the
// indices is atomic.
unsafe impl<T: Send> Send for RingMemory<T> {}

impl<T: Copy> RingMemory<T> {
    /// # Safety
    /// `base` is a live mapping of the ring at least `entries_offset + size * size_of::<T>()`
    /// bytes long, laid out as `offsets` says, that outlives the returned value; `size` is the
    /// ring size given to the kernel (a power of two).
    pub(crate) unsafe fn new(
        base: NonNull<u8>,
        producer_offset: u64,
        consumer_offset: u64,
        flags_offset: u64,
        entries_offset: u64,
        size: u32,
    ) -> Self {
        // SAFETY: each `add` stays inside the mapping: the offsets come from the kernel's
        // XDP_MMAP_OFFSETS for it, as the caller guarantees.
        unsafe {
            Self {
                producer: base.add(producer_offset as usize).cast(),
                consumer: base.add(consumer_offset as usize).cast(),
                flags: base.add(flags_offset as usize).cast(),
                entries: base.add(entries_offset as usize).cast(),
                size,
            }
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `new`), aligned by the kernel's layout.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    fn write(&mut self, index: u32, value: T) {
        let slot = (index & (self.size - 1)) as usize;
        // SAFETY: `slot < size`, inside the entries array of the live mapping; the kernel
        // does not read the entry until the producer index is published past it.
        unsafe { self.entries.as_ptr().add(slot).write_volatile(value) }
    }

    fn read(&self, index: u32) -> T {
        let slot = (index & (self.size - 1)) as usize;
        // SAFETY: `slot < size`; the kernel published the entry (producer index past it,
        // read with acquire ordering) and does not touch it until we release it.
        unsafe { self.entries.as_ptr().add(slot).read_volatile() }
    }
}

/// The side of a ring we fill (fill ring, TX ring).
#[derive(Debug)]
pub(crate) struct ProducerRing<T> {
    memory: RingMemory<T>,
    cached_producer: u32,
    cached_consumer: u32,
}

impl<T: Copy> ProducerRing<T> {
    pub(crate) fn new(memory: RingMemory<T>) -> Self {
        let cached_producer = memory.producer().load(Ordering::Relaxed);
        let cached_consumer = memory.consumer().load(Ordering::Acquire);
        Self {
            memory,
            cached_producer,
            cached_consumer,
        }
    }

    /// Room for how many more entries, looking at the kernel's index only when needed.
    pub(crate) fn free(&mut self, wanted: u32) -> u32 {
        let size = self.memory.size;
        let mut free = size - self.cached_producer.wrapping_sub(self.cached_consumer);
        if free < wanted {
            self.cached_consumer = self.memory.consumer().load(Ordering::Acquire);
            free = size - self.cached_producer.wrapping_sub(self.cached_consumer);
        }
        free
    }

    /// Writes as many of `values` as fit and publishes them; returns how many.
    pub(crate) fn produce(&mut self, values: impl ExactSizeIterator<Item = T>) -> u32 {
        let count = self.free(values.len() as u32).min(values.len() as u32);
        for (i, value) in values.take(count as usize).enumerate() {
            self.memory
                .write(self.cached_producer.wrapping_add(i as u32), value);
        }
        self.cached_producer = self.cached_producer.wrapping_add(count);
        // Publishes the entries written above before the kernel can see the new index.
        self.memory
            .producer()
            .store(self.cached_producer, Ordering::Release);
        count
    }

    /// Whether the kernel asks to be woken (`XDP_USE_NEED_WAKEUP`) to look at this ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.memory.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The side of a ring the kernel fills (RX ring, completion ring).
#[derive(Debug)]
pub(crate) struct ConsumerRing<T> {
    memory: RingMemory<T>,
    cached_producer: u32,
    cached_consumer: u32,
}

impl<T: Copy> ConsumerRing<T> {
    pub(crate) fn new(memory: RingMemory<T>) -> Self {
        let cached_producer = memory.producer().load(Ordering::Acquire);
        let cached_consumer = memory.consumer().load(Ordering::Relaxed);
        Self {
            memory,
            cached_producer,
            cached_consumer,
        }
    }

    /// Takes up to `out.len()` entries into `out` and releases them to the kernel; returns
    /// how many.
    pub(crate) fn consume(&mut self, out: &mut [T]) -> usize {
        let mut available = self.cached_producer.wrapping_sub(self.cached_consumer);
        if available == 0 {
            self.cached_producer = self.memory.producer().load(Ordering::Acquire);
            available = self.cached_producer.wrapping_sub(self.cached_consumer);
        }
        let count = (available as usize).min(out.len());
        for (i, slot) in out[..count].iter_mut().enumerate() {
            *slot = self
                .memory
                .read(self.cached_consumer.wrapping_add(i as u32));
        }
        self.cached_consumer = self.cached_consumer.wrapping_add(count as u32);
        // Orders our reads of the entries before the kernel may reuse them.
        self.memory
            .consumer()
            .store(self.cached_consumer, Ordering::Release);
        count
    }
}

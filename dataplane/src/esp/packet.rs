//! A packet inside a larger frame, with room before it for outer headers and after it for the
//! ESP trailer, so that encapsulation and decapsulation never copy the payload.

/// Bytes that tunnel-mode encapsulation may prepend: an IPv6 outer header (40), a UDP header for
/// NAT-T (8), the ESP header (8) and the explicit IV (8). Give every frame at least this much
/// headroom in front of the inner packet (the Ethernet header is the I/O layer's, on top).
pub const ENCAP_HEADROOM: usize = 40 + 8 + 8 + 8;

/// Bytes that encapsulation may append without TFC padding: up to 3 bytes of padding, the pad
/// length and next header bytes, and the 16-byte ICV.
pub const ENCAP_TAILROOM: usize = 3 + 2 + 16;

/// A window `[start, end)` into a frame buffer. Only the ESP core moves the window; the bytes
/// around it are the headroom and tailroom that encapsulation grows into.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    frame: &'a mut [u8],
    start: usize,
    end: usize,
}

impl<'a> PacketBuf<'a> {
    /// The packet is `frame[start..start + len]`. `None` when that lies outside the frame.
    pub fn new(frame: &'a mut [u8], start: usize, len: usize) -> Option<Self> {
        let end = start.checked_add(len)?;
        (end <= frame.len()).then_some(Self { frame, start, end })
    }

    /// The packet's bytes.
    pub fn data(&self) -> &[u8] {
        &self.frame[self.start..self.end]
    }

    /// The packet's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.frame[self.start..self.end]
    }

    /// Where the packet starts in the frame.
    pub fn offset(&self) -> usize {
        self.start
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn headroom(&self) -> usize {
        self.start
    }

    pub fn tailroom(&self) -> usize {
        self.frame.len() - self.end
    }

    /// Replaces the window; used by the I/O layer when it reuses a buffer for the next packet.
    /// `false` (and nothing changed) when the window lies outside the frame.
    pub fn reset(&mut self, start: usize, len: usize) -> bool {
        match start.checked_add(len) {
            Some(end) if end <= self.frame.len() => {
                self.start = start;
                self.end = end;
                true
            }
            _ => false,
        }
    }

    /// The whole frame and the window's position in it, for moves that cross the window's edge.
    pub(crate) fn frame_mut(&mut self) -> (&mut [u8], usize, usize) {
        (self.frame, self.start, self.end)
    }

    /// Sets the window; the caller has checked `start <= end <= frame.len()`.
    pub(crate) fn set_window(&mut self, start: usize, end: usize) {
        debug_assert!(start <= end && end <= self.frame.len());
        self.start = start;
        self.end = end;
    }
}

//! Frames allocated once per worker and lent out as packet buffers every round, so that the
//! loop itself never allocates.

use super::MAX_BATCH;
use crate::esp::PacketBuf;

/// Up to [`MAX_BATCH`] frames of one length in one allocation.
pub(super) struct FramePool {
    storage: Box<[u8]>,
    frame_len: usize,
}

impl FramePool {
    pub(super) fn new(frame_len: usize, frames: usize) -> Self {
        Self {
            storage: vec![0u8; frame_len * frames.min(MAX_BATCH)].into_boxed_slice(),
            frame_len,
        }
    }

    /// A buffer per frame (empty windows; the I/O calls set them). Buffers past the pool's
    /// frame count have empty frames.
    pub(super) fn bufs(&mut self) -> [PacketBuf<'_>; MAX_BATCH] {
        let mut frames = self.storage.chunks_exact_mut(self.frame_len.max(1));
        std::array::from_fn(|_| {
            let frame = frames.next().unwrap_or_default();
            PacketBuf::new(frame, 0, 0).expect("an empty window at 0 lies in any frame")
        })
    }
}

impl std::fmt::Debug for FramePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePool")
            .field("frame_len", &self.frame_len)
            .field("frames", &(self.storage.len() / self.frame_len.max(1)))
            .finish()
    }
}

//! The packet buffer the workers hand to the engine, and the control thread to its replies.

/// A frame inside a larger buffer: `buf` is the whole data buffer of a packet (headroom
/// included) and the frame is `buf[head..head + len]`. The engine may grow the frame at the
/// front (prepend an encapsulation) or shrink it (strip one), and rewrite bytes in place; the
/// worker then writes `head` and `len` back into the packet's descriptor.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

/// A window that does not fit its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame window {head}+{len} exceeds the buffer of {capacity} bytes")]
pub struct BadWindow {
    pub head: usize,
    pub len: usize,
    pub capacity: usize,
}

impl<'a> PacketBuf<'a> {
    /// Wraps a buffer whose frame is `buf[head..head + len]`.
    #[inline]
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Result<Self, BadWindow> {
        match head.checked_add(len) {
            Some(end) if end <= buf.len() => Ok(PacketBuf { buf, head, len }),
            _ => Err(BadWindow {
                head,
                len,
                capacity: buf.len(),
            }),
        }
    }

    /// The frame.
    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The frame, writable.
    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// The first `N` bytes of the frame as an array, `None` when the frame is shorter: one
    /// bounds check for every fixed-offset field read from them.
    #[inline(always)]
    pub fn head_chunk<const N: usize>(&self) -> Option<&[u8; N]> {
        if self.len < N {
            return None;
        }
        self.buf.get(self.head..)?.first_chunk::<N>()
    }

    /// The first `N` bytes of the frame, writable: [`head_chunk`](Self::head_chunk).
    #[inline(always)]
    pub fn head_chunk_mut<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        if self.len < N {
            return None;
        }
        self.buf.get_mut(self.head..)?.first_chunk_mut::<N>()
    }

    /// Offset of the frame in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Length of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free behind the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Grows the frame by `n` bytes at the front; the new bytes hold whatever was there. False
    /// (and nothing changes) when the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        self.len += n;
        true
    }

    /// Removes `n` bytes from the front of the frame. False when the frame is shorter.
    #[inline]
    pub fn strip(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }

    /// Shortens the frame to `len` bytes (no effect if it is already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sets the frame length, growing into the tailroom if needed. False when it does not fit.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.head + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_validated() {
        let mut buf = [0u8; 64];
        assert!(PacketBuf::new(&mut buf, 60, 5).is_err());
        assert!(PacketBuf::new(&mut buf, usize::MAX, 2).is_err());
        let p = PacketBuf::new(&mut buf, 16, 48).unwrap();
        assert_eq!((p.headroom(), p.tailroom(), p.len()), (16, 0, 48));
    }

    #[test]
    fn prepend_strip_truncate() {
        let mut buf = [0u8; 64];
        buf[16] = 0xaa;
        let mut p = PacketBuf::new(&mut buf, 16, 20).unwrap();
        assert!(!p.prepend(17));
        assert!(p.prepend(16));
        assert_eq!((p.head(), p.len()), (0, 36));
        assert_eq!(p.frame()[16], 0xaa);
        assert!(p.strip(16));
        assert!(!p.strip(21));
        assert_eq!(p.frame()[0], 0xaa);
        p.truncate(4);
        assert_eq!(p.len(), 4);
        assert!(p.set_len(48));
        assert!(!p.set_len(49));
    }

    #[test]
    fn head_chunk_is_bounded_by_the_frame() {
        let mut buf = [0u8; 64];
        buf[16] = 0xaa;
        let mut p = PacketBuf::new(&mut buf, 16, 20).unwrap();
        assert_eq!(p.head_chunk::<20>().map(|h| h[0]), Some(0xaa));
        // The buffer holds 48 bytes from the head, the frame only 20.
        assert!(p.head_chunk::<21>().is_none());
        p.head_chunk_mut::<4>().unwrap()[1] = 0xbb;
        assert_eq!(p.frame()[1], 0xbb);
        assert!(p.head_chunk_mut::<21>().is_none());
    }
}

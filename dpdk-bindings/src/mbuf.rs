//! One packet buffer (`rte_mbuf`), owned: dropping it frees it.
//!
//! An mbuf's data buffer (`buf_addr`, `buf_len` bytes) holds the frame in the window
//! `[data_off, data_off + data_len)`; the bytes before it are headroom, those after it
//! tailroom. Metadata fields are read through the raw pointer, never through a reference to
//! the whole `rte_mbuf`, because `refcnt` may be updated atomically by other threads.

use std::fmt;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::error::{Error, Result};
use crate::mempool::Mempool;
use crate::port::PortId;
use crate::sys;

/// `RTE_MBUF_F_EXTERNAL`: the data buffer is external, shared through `shinfo`.
const F_EXTERNAL: u64 = 1 << 61;
/// `RTE_MBUF_F_INDIRECT`: the mbuf is a clone pointing at another mbuf's data buffer.
const F_INDIRECT: u64 = 1 << 62;
/// `RTE_MBUF_PORT_INVALID`: the mbuf did not come from a port.
const PORT_INVALID: u16 = u16::MAX;

/// An owned packet buffer. Holds one reference to one `rte_mbuf` (the head of its segment
/// chain) and frees it on drop (`rte_pktmbuf_free`). Same layout as `*mut rte_mbuf`.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: the handle owns its reference; the mbuf may be used and freed from any thread
// (freeing returns it to its pool, whose handler is thread-safe).
unsafe impl Send for Mbuf {}

/// The whole data buffer of a single-segment mbuf with the window that holds the frame:
/// `buf[head..head + len]`. The engine may move `head` and change `len` (prepend, strip);
/// write them back with [`Mbuf::set_window`] or [`MbufBurst::set_window`](crate::MbufBurst::set_window).
#[derive(Debug)]
pub struct PacketWindow<'a> {
    /// The whole data buffer, headroom and tailroom included.
    pub buf: &'a mut [u8],
    /// Offset of the frame's first byte in `buf` (`data_off`).
    pub head: usize,
    /// Length of the frame in bytes (`data_len`).
    pub len: usize,
}

impl Mbuf {
    /// Allocates an empty mbuf from `pool`, with the default headroom (`ENOBUFS` when the pool
    /// is exhausted).
    #[inline]
    pub fn alloc(pool: &Mempool) -> Result<Mbuf> {
        // SAFETY: the pool is alive for the duration of the call (borrowed).
        let raw = unsafe { sys::rte_pktmbuf_alloc(pool.raw()) };
        NonNull::new(raw)
            .map(Mbuf)
            .ok_or_else(|| Error::new("rte_pktmbuf_alloc", libc::ENOBUFS))
    }

    /// Allocates an mbuf from `pool` holding a copy of `bytes` after the default headroom
    /// (`ENOSPC` when they do not fit in one segment).
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf> {
        let mut mbuf = Mbuf::alloc(pool)?;
        mbuf.append(bytes.len())?.copy_from_slice(bytes);
        Ok(mbuf)
    }

    /// A deep copy of the whole packet (all segments) in mbufs from `pool`
    /// (`rte_pktmbuf_copy`), for sending one packet to several destinations.
    pub fn copy(&self, pool: &Mempool) -> Result<Mbuf> {
        // SAFETY: self is a valid mbuf chain that the copy only reads; the pool is alive.
        let raw = unsafe { sys::rte_pktmbuf_copy(self.ptr(), pool.raw(), 0, u32::MAX) };
        NonNull::new(raw)
            .map(Mbuf)
            .ok_or_else(|| Error::new("rte_pktmbuf_copy", libc::ENOBUFS))
    }

    /// Length of the packet in bytes, all segments (`pkt_len`).
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: self owns a valid mbuf; pkt_len is only written through this handle.
        let pkt_len = unsafe { (*self.ptr()).pkt_len };
        pkt_len as usize
    }

    /// Whether the packet holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments in the chain (`nb_segs`).
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: self owns a valid mbuf; nb_segs is only written through this handle.
        unsafe { (*self.ptr()).nb_segs }
    }

    /// Whether the packet is one segment, so that the whole frame is in [`Mbuf::data`].
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.nb_segs() == 1
    }

    /// The port the packet was received on, if any.
    #[inline]
    pub fn port(&self) -> Option<PortId> {
        // SAFETY: self owns a valid mbuf; port is only written through this handle.
        let port = unsafe { (*self.ptr()).port };
        (port != PORT_INVALID).then_some(PortId(port))
    }

    /// Free bytes in front of the frame in the first segment (`data_off`).
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.data_off())
    }

    /// Free bytes after the data of the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        usize::from(self.buf_len())
            .saturating_sub(usize::from(self.data_off()) + usize::from(self.data_len()))
    }

    /// The bytes of the first segment: the whole frame when [`is_contiguous`](Self::is_contiguous).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: data_off + data_len <= buf_len is an mbuf invariant (kept by set_window and
        // DPDK), the data buffer is initialised memory of the pool, and it is not written while
        // this shared borrow of the owning handle lives.
        unsafe {
            std::slice::from_raw_parts(
                self.buf_addr().add(usize::from(self.data_off())),
                usize::from(self.data_len()),
            )
        }
    }

    /// The bytes of the first segment, writable; `None` when the data buffer is shared with
    /// another mbuf (a clone or an external buffer with several users), which mbufs made by
    /// this crate never are.
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if !self.is_exclusive() {
            return None;
        }
        // SAFETY: as in data(); the buffer is referenced by this mbuf alone (is_exclusive) and
        // the handle is borrowed mutably, so the slice is the only access.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.buf_addr().add(usize::from(self.data_off())),
                usize::from(self.data_len()),
            )
        })
    }

    /// The whole data buffer and the frame's window, for in-place rewriting; `None` unless the
    /// packet is a single segment whose buffer no other mbuf shares.
    #[inline]
    pub fn window_mut(&mut self) -> Option<PacketWindow<'_>> {
        if !self.is_contiguous() || !self.is_exclusive() {
            return None;
        }
        let head = usize::from(self.data_off());
        let len = usize::from(self.data_len());
        // SAFETY: the data buffer is buf_len bytes of initialised pool memory, referenced by
        // this mbuf alone (is_exclusive) and borrowed mutably through the handle.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(self.buf_addr(), usize::from(self.buf_len())) };
        Some(PacketWindow { buf, head, len })
    }

    /// Sets the frame's window of a single-segment mbuf: `data_off = head`,
    /// `data_len = pkt_len = len`. `EINVAL` unless `head + len` fits in the data buffer,
    /// `ENOTSUP` for a multi-segment packet; the mbuf is unchanged on error.
    #[inline]
    pub fn set_window(&mut self, head: usize, len: usize) -> Result<()> {
        const OP: &str = "set_window";
        if !self.is_contiguous() {
            return Err(Error::new(OP, libc::ENOTSUP));
        }
        let fits = head
            .checked_add(len)
            .is_some_and(|end| end <= usize::from(self.buf_len()));
        let (Ok(head), Ok(len), true) = (u16::try_from(head), u16::try_from(len), fits) else {
            return Err(Error::new(OP, libc::EINVAL));
        };
        let m = self.ptr();
        // SAFETY: self owns a valid mbuf, borrowed mutably; the new window lies inside the data
        // buffer (checked above) and the packet has one segment, so pkt_len equals data_len.
        unsafe {
            (*m).data_off = head;
            (*m).data_len = len;
            (*m).pkt_len = u32::from(len);
        }
        Ok(())
    }

    /// Grows the frame by `n` bytes at the front (into the headroom) and returns them
    /// (`rte_pktmbuf_prepend`). `ENOSPC` when the headroom is smaller, `EPERM` when the buffer
    /// is shared.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8]> {
        const OP: &str = "rte_pktmbuf_prepend";
        let n16 = self.writable_len(OP, n)?;
        // SAFETY: self owns a valid mbuf, borrowed mutably; DPDK checks the headroom.
        let start = unsafe { sys::rte_pktmbuf_prepend(self.ptr(), n16) };
        if start.is_null() {
            return Err(Error::new(OP, libc::ENOSPC));
        }
        // SAFETY: DPDK returned the start of n bytes inside the exclusively owned data buffer.
        Ok(unsafe { std::slice::from_raw_parts_mut(start.cast::<u8>(), n) })
    }

    /// Grows a single-segment packet by `n` bytes at the end and returns them
    /// (`rte_pktmbuf_append`). `ENOSPC` when the tailroom is smaller, `EPERM` when the buffer
    /// is shared, `ENOTSUP` for a multi-segment packet.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<&mut [u8]> {
        const OP: &str = "rte_pktmbuf_append";
        let n16 = self.writable_len(OP, n)?;
        if !self.is_contiguous() {
            // The last segment's buffer is not covered by the exclusivity check of the first.
            return Err(Error::new(OP, libc::ENOTSUP));
        }
        // SAFETY: self owns a valid mbuf, borrowed mutably; DPDK checks the tailroom.
        let start = unsafe { sys::rte_pktmbuf_append(self.ptr(), n16) };
        if start.is_null() {
            return Err(Error::new(OP, libc::ENOSPC));
        }
        // SAFETY: DPDK returned the start of n bytes inside the exclusively owned data buffer.
        Ok(unsafe { std::slice::from_raw_parts_mut(start.cast::<u8>(), n) })
    }

    /// Removes `n` bytes from the front of the frame (`rte_pktmbuf_adj`); `EINVAL` when the
    /// first segment holds fewer.
    #[inline]
    pub fn adj(&mut self, n: usize) -> Result<()> {
        const OP: &str = "rte_pktmbuf_adj";
        let n16 = u16::try_from(n).map_err(|_| Error::new(OP, libc::EINVAL))?;
        // SAFETY: self owns a valid mbuf, borrowed mutably; DPDK checks the length.
        let start = unsafe { sys::rte_pktmbuf_adj(self.ptr(), n16) };
        if start.is_null() {
            return Err(Error::new(OP, libc::EINVAL));
        }
        Ok(())
    }

    /// Removes `n` bytes from the end of the packet (`rte_pktmbuf_trim`); `EINVAL` when the
    /// last segment holds fewer.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<()> {
        const OP: &str = "rte_pktmbuf_trim";
        let n16 = u16::try_from(n).map_err(|_| Error::new(OP, libc::EINVAL))?;
        // SAFETY: self owns a valid mbuf, borrowed mutably; DPDK checks the length.
        let ret = unsafe { sys::rte_pktmbuf_trim(self.ptr(), n16) };
        if ret != 0 {
            return Err(Error::new(OP, libc::EINVAL));
        }
        Ok(())
    }

    /// Asks the CPU to bring the frame's first cache line closer (a hint, never a fault).
    #[inline]
    pub fn prefetch(&self) {
        prefetch(self.buf_addr().wrapping_add(usize::from(self.data_off())));
    }

    /// Whether no other mbuf references this packet's (first) data buffer.
    #[inline]
    fn is_exclusive(&self) -> bool {
        let m = self.ptr();
        // SAFETY: self owns a valid mbuf; refcnt is aligned and DPDK updates it atomically.
        let refcnt = unsafe { AtomicU16::from_ptr(addr_of_mut!((*m).refcnt)) };
        if refcnt.load(Ordering::Acquire) != 1 {
            return false;
        }
        // SAFETY: as above; ol_flags is only written through this handle.
        let flags = unsafe { (*m).ol_flags };
        if flags & F_INDIRECT != 0 {
            return false;
        }
        if flags & F_EXTERNAL == 0 {
            return true;
        }
        // SAFETY: an mbuf with an external buffer has a valid shinfo whose refcnt is aligned
        // and updated atomically by DPDK.
        let ext = unsafe { AtomicU16::from_ptr(addr_of_mut!((*(*m).shinfo).refcnt)) };
        ext.load(Ordering::Acquire) == 1
    }

    /// Checks that `n` bytes may be added to a writable buffer and converts `n` to u16.
    #[inline]
    fn writable_len(&self, op: &'static str, n: usize) -> Result<u16> {
        if !self.is_exclusive() {
            return Err(Error::new(op, libc::EPERM));
        }
        u16::try_from(n).map_err(|_| Error::new(op, libc::ENOSPC))
    }

    #[inline]
    fn buf_addr(&self) -> *mut u8 {
        // SAFETY: self owns a valid mbuf; buf_addr is only written through this handle.
        unsafe { (*self.ptr()).buf_addr.cast::<u8>() }
    }

    #[inline]
    fn buf_len(&self) -> u16 {
        // SAFETY: self owns a valid mbuf; buf_len is only written through this handle.
        unsafe { (*self.ptr()).buf_len }
    }

    #[inline]
    fn data_off(&self) -> u16 {
        // SAFETY: self owns a valid mbuf; data_off is only written through this handle.
        unsafe { (*self.ptr()).data_off }
    }

    #[inline]
    fn data_len(&self) -> u16 {
        // SAFETY: self owns a valid mbuf; data_len is only written through this handle.
        unsafe { (*self.ptr()).data_len }
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the handle owns one reference to a valid mbuf chain and gives it up here;
        // nothing uses the pointer afterwards.
        unsafe { sys::rte_pktmbuf_free(self.ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("head", &self.data_off())
            .field("data_len", &self.data_len())
            .field("pkt_len", &self.len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

/// Prefetches the cache line at `addr` into all cache levels (`rte_prefetch0`).
#[inline]
pub(crate) fn prefetch(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that never dereferences or faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(addr.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

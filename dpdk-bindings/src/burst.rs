//! A fixed-capacity array of owned mbufs: what one RX or TX call moves.

use std::fmt;
use std::iter::FusedIterator;
use std::mem::MaybeUninit;
use std::ptr;

use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, PacketWindow};
use crate::sys;

/// Packets moved per RX/TX call: the default capacity of an [`MbufBurst`].
pub const BURST_SIZE: usize = 32;

/// Up to `N` owned mbufs, in order. No allocation: the array lives inline.
///
/// Dropping or [`clear`](Self::clear)ing the burst frees the mbufs it holds; taking one out
/// ([`pop`](Self::pop), [`swap_remove`](Self::swap_remove), [`drain`](Self::drain)) moves its
/// ownership to the caller, so no mbuf can be freed twice.
///
/// The per-burst pattern of a worker:
/// 1. [`RxQueue::rx_burst`](crate::RxQueue::rx_burst) fills the burst;
/// 2. [`windows_mut`](Self::windows_mut) lends each packet's whole data buffer and window,
///    disjoint, for the forwarding engine;
/// 3. [`set_window`](Self::set_window) writes back each packet's new head and length;
/// 4. [`drain`](Self::drain) moves each mbuf to a TX burst, a channel, or drops (frees) it.
pub struct MbufBurst<const N: usize = BURST_SIZE> {
    /// Slots `..len` hold owned mbufs; the rest are uninitialised.
    mbufs: [MaybeUninit<Mbuf>; N],
    len: usize,
}

impl<const N: usize> MbufBurst<N> {
    /// `N` fits DPDK's 16-bit burst counts and is not zero.
    const CAPACITY_FITS: () = assert!(N > 0 && N <= u16::MAX as usize);

    /// An empty burst.
    #[inline]
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)] // evaluating the constant is the compile-time check
        let () = Self::CAPACITY_FITS;
        MbufBurst {
            mbufs: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst holds no mbuf.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst holds `N` mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The capacity `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Appends `mbuf`, or gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> std::result::Result<(), Mbuf> {
        match self.mbufs.get_mut(self.len) {
            Some(slot) => {
                slot.write(mbuf);
                self.len += 1;
                Ok(())
            }
            None => Err(mbuf),
        }
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.len = self.len.checked_sub(1)?;
        // SAFETY: the slot at the old len - 1 held an owned mbuf; shrinking len first moves
        // its ownership out of the burst.
        Some(unsafe { self.mbufs[self.len].assume_init_read() })
    }

    /// Removes and returns the mbuf at `index`, moving the last one into its place (O(1));
    /// `None` when `index` is out of range.
    #[inline]
    pub fn swap_remove(&mut self, index: usize) -> Option<Mbuf> {
        if index >= self.len {
            return None;
        }
        let last = self.len - 1;
        self.mbufs.swap(index, last);
        self.pop()
    }

    /// Frees every mbuf held (one `rte_pktmbuf_free_bulk` call).
    #[inline]
    pub fn clear(&mut self) {
        let len = std::mem::replace(&mut self.len, 0);
        if len == 0 {
            return;
        }
        // SAFETY: the first len slots held owned mbufs (same layout as *mut rte_mbuf); len was
        // reset first, so the burst no longer owns them and they are freed exactly once.
        unsafe { free_bulk(self.mbufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>(), len) };
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let len = std::mem::replace(&mut self.len, 0);
        for index in 0..len {
            // SAFETY: slots index..len still hold owned mbufs not yet visited; self.len
            // (the kept prefix) is always <= index, so the slot is not aliased by a kept one.
            let mut mbuf = unsafe { self.mbufs[index].assume_init_read() };
            if keep(&mut mbuf) {
                self.mbufs[self.len].write(mbuf);
                self.len += 1;
            }
        }
    }

    /// The mbufs held, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first len slots are initialised, and MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.mbufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, in order, mutably (each one disjoint from the others).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.mbufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the mbufs held.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Lends, for every packet in order, its whole data buffer and window (see
    /// [`Mbuf::window_mut`]): `None` for a packet that is not one exclusively owned segment
    /// (drop those first with [`retain`](Self::retain) to keep indexes aligned with a
    /// slice of windows). The borrows are disjoint and allocate nothing.
    #[inline]
    pub fn windows_mut(&mut self) -> impl ExactSizeIterator<Item = Option<PacketWindow<'_>>> {
        self.as_mut_slice().iter_mut().map(Mbuf::window_mut)
    }

    /// Writes back the window of the packet at `index` (see [`Mbuf::set_window`]); `EINVAL`
    /// when `index` is out of range.
    #[inline]
    pub fn set_window(&mut self, index: usize, head: usize, len: usize) -> Result<()> {
        match self.as_mut_slice().get_mut(index) {
            Some(mbuf) => mbuf.set_window(head, len),
            None => Err(Error::new("set_window", libc::EINVAL)),
        }
    }

    /// Prefetches the frame of the packet at `index` (nothing when out of range).
    #[inline]
    pub fn prefetch(&self, index: usize) {
        if let Some(mbuf) = self.as_slice().get(index) {
            mbuf.prefetch();
        }
    }

    /// Moves every mbuf out, front to back. The burst is empty afterwards; mbufs the iterator
    /// did not yield are freed when it is dropped.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = std::mem::replace(&mut self.len, 0);
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Free slots.
    #[inline]
    pub(crate) fn spare_capacity(&self) -> usize {
        N - self.len
    }

    /// The array as DPDK's `struct rte_mbuf **`.
    #[inline]
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.mbufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>()
    }

    /// The first free slot as DPDK's `struct rte_mbuf **` (for RX and bulk allocation).
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.raw_ptr().wrapping_add(self.len)
    }

    /// Sets the length after DPDK filled slots.
    ///
    /// # Safety
    /// `len <= N`, and every slot below `len` holds a valid mbuf pointer whose ownership
    /// belongs to this burst.
    #[inline]
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= N);
        self.len = len;
    }

    /// Forgets the first `n` mbufs (their ownership went to DPDK, e.g. a sent TX burst) and
    /// moves the rest to the front, in order.
    #[inline]
    pub(crate) fn forget_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let rest = self.len - n;
        self.len = 0;
        if rest != 0 {
            let base = self.mbufs.as_mut_ptr();
            // SAFETY: slots n..n + rest hold owned mbufs; copying them to 0..rest (overlap
            // allowed) keeps one owner each, and the forgotten slots are overwritten or past len.
            unsafe { ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a MbufBurst<N> {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Moves the mbufs out of a burst, front to back ([`MbufBurst::drain`]).
pub struct Drain<'a, const N: usize> {
    /// The burst, whose length is 0: slots `next..end` are owned by this iterator.
    burst: &'a mut MbufBurst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        // SAFETY: slot index is in next..end, owned by this iterator, and read once.
        Some(unsafe { self.burst.mbufs[index].assume_init_read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}
impl<const N: usize> FusedIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let left = self.end - self.next;
        if left != 0 {
            let first = self.burst.raw_ptr().wrapping_add(self.next);
            // SAFETY: slots next..end are owned by this iterator and were not yielded.
            unsafe { free_bulk(first, left) };
        }
    }
}

impl<const N: usize> fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("left", &(self.end - self.next))
            .finish()
    }
}

/// Frees `count` mbufs starting at `first` with one `rte_pktmbuf_free_bulk` call.
///
/// # Safety
/// `first..first + count` are valid mbuf pointers owned by the caller, which gives them up.
#[inline]
unsafe fn free_bulk(first: *mut *mut sys::rte_mbuf, count: usize) {
    // A burst holds at most u16::MAX mbufs (CAPACITY_FITS), so the count fits.
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    // SAFETY: guaranteed by the caller.
    unsafe { sys::rte_pktmbuf_free_bulk(first, count) };
}

// A slot is an owned `Mbuf` that DPDK reads and writes as `struct rte_mbuf *`.
const _: () = assert!(
    std::mem::size_of::<MaybeUninit<Mbuf>>() == std::mem::size_of::<*mut sys::rte_mbuf>()
        && std::mem::align_of::<MaybeUninit<Mbuf>>() == std::mem::align_of::<*mut sys::rte_mbuf>()
);

//! Packet buffer pools (`rte_mempool` created by `rte_pktmbuf_pool_create`).

use std::ptr::NonNull;
use std::sync::Arc;

use crate::burst::MbufBurst;
use crate::eal::EalRef;
use crate::error::{c_name, socket_arg, Error, Result};
use crate::sys;

/// Default size of an mbuf's data buffer: 2048 bytes of frame plus the headroom.
#[allow(clippy::cast_possible_truncation)] // checked by the assertion below
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Bytes reserved in front of the frame in every fresh mbuf (`RTE_PKTMBUF_HEADROOM`), room for
/// encapsulation headers.
#[allow(clippy::cast_possible_truncation)] // checked by the assertion below
pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

const _: () = assert!(sys::RTE_MBUF_DEFAULT_BUF_SIZE <= u16::MAX as u32);
const _: () = assert!(sys::RTE_PKTMBUF_HEADROOM < sys::RTE_MBUF_DEFAULT_BUF_SIZE);

/// A pool of packet buffers. Cloning is cheap and shares the pool; the pool is freed when the
/// last handle (including those held by configured ports) is dropped, but only if no mbuf is in
/// use: memory that is still referenced is never freed (the pool is leaked instead, and
/// [`Mempool::close`] reports it).
#[derive(Debug, Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    /// `None` once handed back (freed) or leaked.
    eal: Option<EalRef>,
}

// SAFETY: a pktmbuf pool uses DPDK's default "ring_mp_mc" handler, which is safe for
// concurrent get/put from any thread; the counts are plain reads. The pointer is only freed
// by the last owner (Drop/close of the only PoolInner).
unsafe impl Send for PoolInner {}
// SAFETY: see Send: every operation reachable through &PoolInner is thread-safe.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n_mbufs` packet buffers, each with a `data_room`-byte data buffer
    /// (headroom included; [`DEFAULT_DATA_ROOM`] fits a 1500-byte MTU), a per-lcore cache of
    /// `cache_size` mbufs, on NUMA `socket` (`None`: any). `name` must be unique in the process.
    pub fn pktmbuf(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool> {
        const OP: &str = "rte_pktmbuf_pool_create";
        let c_name = c_name(OP, name)?;
        let socket = socket_arg(OP, socket)?;
        let eal = EalRef::acquire(OP)?;
        // SAFETY: EAL is running (eal), c_name is a valid C string that DPDK copies.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(c_name.as_ptr(), n_mbufs, cache_size, 0, data_room, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno(OP).detail(format!(
                "pool {name:?}: {n_mbufs} mbufs, cache {cache_size}, data room {data_room}"
            ))
        })?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_owned(),
                eal: Some(eal),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Mbufs currently allocated, held by the application or a device (mbufs in per-lcore
    /// caches count as available): 0 once everything was freed.
    pub fn in_use(&self) -> u32 {
        self.inner.in_use()
    }

    /// Mbufs available for allocation (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while self exists; the call only reads counters.
        unsafe { sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Allocates `count` mbufs into the free space of `burst`, all or none (`ENOBUFS`), with
    /// one bulk call (`rte_pktmbuf_alloc_bulk`).
    pub fn alloc_burst<const N: usize>(
        &self,
        burst: &mut MbufBurst<N>,
        count: usize,
    ) -> Result<()> {
        const OP: &str = "rte_pktmbuf_alloc_bulk";
        if count > burst.spare_capacity() {
            return Err(Error::new(OP, libc::ENOSPC));
        }
        if count == 0 {
            return Ok(());
        }
        let count_u32 = u32::try_from(count).map_err(|_| Error::new(OP, libc::EINVAL))?;
        // SAFETY: the pool is alive; the spare slots of burst have room for count pointers,
        // and on success each holds one freshly allocated mbuf that the burst then owns.
        let ret = unsafe { sys::rte_pktmbuf_alloc_bulk(self.raw(), burst.spare_ptr(), count_u32) };
        if ret != 0 {
            return Err(Error::new(OP, libc::ENOBUFS));
        }
        // SAFETY: the `count` slots after the current length were just initialised.
        unsafe { burst.set_len(burst.len() + count) };
        Ok(())
    }

    /// Hands this handle back and reports what happened to the pool: `Ok` when it was freed;
    /// `EBUSY` when other handles (a configured port, clones) still hold it; `EBUSY` naming the
    /// in-use count when mbufs are still out, in which case the pool is leaked on purpose.
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.release(),
            Err(shared) => Err(Error::with_detail(
                "rte_mempool_free",
                libc::EBUSY,
                format!(
                    "pool {:?} is still held by {} other handles (ports or clones)",
                    shared.name,
                    Arc::strong_count(&shared) - 1
                ),
            )),
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }
}

impl PoolInner {
    fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive while self exists; the call only reads counters.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Frees the pool if no mbuf is in use, otherwise leaks it (and its EAL reference).
    fn release(&mut self) -> Result<()> {
        let Some(eal) = self.eal.take() else {
            return Ok(());
        };
        let in_use = self.in_use();
        if in_use != 0 {
            eal.leak();
            return Err(Error::with_detail(
                "rte_mempool_free",
                libc::EBUSY,
                format!(
                    "pool {:?} has {in_use} mbufs in use: leaked, not freed",
                    self.name
                ),
            ));
        }
        // SAFETY: this is the only handle (release runs on the last owner), so no new mbuf can
        // be allocated from the pool, and none is in use, so nothing references its memory.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        drop(eal);
        Ok(())
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // A leak is reported through close(); a plain drop has nobody to tell.
        let _ = self.release();
    }
}

//! DPDK's own IPv4 longest-prefix-match tables (`rte_lpm`, `rte_fib`), kept as references to
//! benchmark the router's LPM against on the same routes.
//!
//! Both are a [`Table`] underneath: a pointer DPDK allocated, freed on drop, with EAL kept up
//! while it lives. What differs is how each is created, its next-hop width and how it marks a
//! miss.

use std::ffi::{c_char, c_int};
use std::ptr::NonNull;

use crate::eal::EalRef;
use crate::error::{c_name, check, socket_arg, Error, Result};
use crate::sys;

/// Lookup result for an address no route covers, in [`RteLpm::lookup_bulk`] and
/// [`RteFib::lookup_bulk`]. Not a valid next hop.
pub const LPM_MISS: u32 = u32::MAX;

/// Largest next hop an [`RteLpm`] stores (24 bits).
pub const RTE_LPM_MAX_NEXT_HOP: u32 = (1 << 24) - 1;

/// Largest next hop an [`RteFib`] with 4-byte entries stores (31 bits; one bit marks tbl8
/// pointers). [`LPM_MISS`] is reported as a miss, not as a next hop.
pub const RTE_FIB_MAX_NEXT_HOP: u32 = (1 << 31) - 2;

/// Addresses per DPDK bulk call. DPDK's LPM keeps a variable-length array of this many indexes
/// on the stack, so the count is kept small (and a multiple of 8, as DPDK recommends).
const BULK_CHUNK: usize = 64;

/// The FIB's default next hop, returned for misses and mapped to [`LPM_MISS`].
const FIB_DEFAULT_NH: u64 = (1 << 31) - 1;

/// A table type of DPDK's that [`Table`] owns.
trait RawTable {
    /// DPDK's function that frees it.
    ///
    /// # Safety
    /// `raw` came from the table's create function and nothing uses it afterwards.
    unsafe fn free(raw: *mut Self);
}

impl RawTable for sys::rte_lpm {
    unsafe fn free(raw: *mut Self) {
        // SAFETY: the caller guarantees that raw is a live table nothing uses afterwards.
        unsafe { sys::rte_lpm_free(raw) }
    }
}

impl RawTable for sys::rte_fib {
    unsafe fn free(raw: *mut Self) {
        // SAFETY: as for rte_lpm.
        unsafe { sys::rte_fib_free(raw) }
    }
}

/// A table DPDK allocated: freed on drop, EAL kept up while it lives.
struct Table<T: RawTable> {
    raw: NonNull<T>,
    _eal: EalRef,
}

impl<T: RawTable> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("raw", &self.raw).finish()
    }
}

// SAFETY: a table may be freed from any thread; nothing ties it to its creator.
unsafe impl<T: RawTable> Send for Table<T> {}
// SAFETY: through &RteLpm and &RteFib only lookups run, which read the table; changes need
// &mut self.
unsafe impl<T: RawTable> Sync for Table<T> {}

impl<T: RawTable> Table<T> {
    /// Creates a table named `name` on `socket` with `create(name, socket)`; `what` describes
    /// the table for the error.
    fn create(
        op: &'static str,
        name: &str,
        socket: Option<u32>,
        what: impl FnOnce() -> String,
        create: impl FnOnce(*const c_char, i32) -> *mut T,
    ) -> Result<Table<T>> {
        let c_name = c_name(op, name)?;
        let socket = socket_arg(op, socket)?;
        let eal = EalRef::acquire(op)?;
        let raw = create(c_name.as_ptr(), socket);
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno(op).detail(format!("table {name:?}: {}", what()))
        })?;
        Ok(Table { raw, _eal: eal })
    }

    #[inline]
    fn ptr(&self) -> *mut T {
        self.raw.as_ptr()
    }

    /// Changes the table with `change` (DPDK's add or delete on it), which returns DPDK's
    /// `0` or `-errno`.
    fn change(&mut self, op: &'static str, change: impl FnOnce(*mut T) -> c_int) -> Result<()> {
        check(op, change(self.raw.as_ptr()))?;
        Ok(())
    }
}

impl<T: RawTable> Drop for Table<T> {
    fn drop(&mut self) {
        // SAFETY: the table is alive and owned by self alone; nothing uses it afterwards.
        unsafe { T::free(self.raw.as_ptr()) };
    }
}

/// `EINVAL` for a next hop above `max`.
fn check_next_hop(op: &'static str, next_hop: u32, max: u32) -> Result<()> {
    if next_hop > max {
        return Err(Error::with_detail(
            op,
            libc::EINVAL,
            format!("next hop {next_hop}"),
        ));
    }
    Ok(())
}

/// Runs `lookup` over the first `min(ips.len(), out.len())` addresses in chunks of at most
/// [`BULK_CHUNK`]; returns that count.
#[inline(always)]
fn in_chunks<T>(ips: &[u32], out: &mut [T], mut lookup: impl FnMut(&[u32], &mut [T])) -> usize {
    let count = ips.len().min(out.len());
    for (ips, out) in ips[..count]
        .chunks(BULK_CHUNK)
        .zip(out[..count].chunks_mut(BULK_CHUNK))
    {
        lookup(ips, out);
    }
    count
}

/// A DPDK `rte_lpm` table (DIR-24-8). Lookups through `&self` may run on several threads;
/// changes take `&mut self`.
#[derive(Debug)]
pub struct RteLpm {
    table: Table<sys::rte_lpm>,
}

impl RteLpm {
    /// Creates a table for up to `max_rules` routes with `number_tbl8s` groups for prefixes
    /// longer than /24, on NUMA `socket` (`None`: any). `name` must be unique.
    pub fn new(
        name: &str,
        max_rules: u32,
        number_tbl8s: u32,
        socket: Option<u32>,
    ) -> Result<RteLpm> {
        let config = sys::rte_lpm_config {
            max_rules,
            number_tbl8s,
            flags: 0,
        };
        let table = Table::create(
            "rte_lpm_create",
            name,
            socket,
            || format!("{max_rules} rules, {number_tbl8s} tbl8 groups"),
            // SAFETY: EAL is running; name and config are valid for the call (DPDK copies
            // them).
            |name, socket| unsafe { sys::rte_lpm_create(name, socket, &config) },
        )?;
        Ok(RteLpm { table })
    }

    /// Adds (or replaces) the route `ip/depth -> next_hop`. `EINVAL` for a depth outside
    /// 1..=32 or a next hop above [`RTE_LPM_MAX_NEXT_HOP`]; `ENOSPC` when the table is full.
    pub fn add(&mut self, ip: u32, depth: u8, next_hop: u32) -> Result<()> {
        const OP: &str = "rte_lpm_add";
        check_next_hop(OP, next_hop, RTE_LPM_MAX_NEXT_HOP)?;
        // SAFETY: the table is alive and borrowed mutably, so no lookup runs concurrently;
        // DPDK validates ip and depth.
        self.table
            .change(OP, |t| unsafe { sys::rte_lpm_add(t, ip, depth, next_hop) })
    }

    /// Deletes the route `ip/depth`; `ENOENT` when there is none.
    pub fn delete(&mut self, ip: u32, depth: u8) -> Result<()> {
        // SAFETY: as in add().
        self.table.change("rte_lpm_delete", |t| unsafe {
            sys::rte_lpm_delete(t, ip, depth)
        })
    }

    /// The next hop of the longest prefix covering `ip`.
    #[inline]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        let mut next_hop = 0u32;
        // SAFETY: the table is alive; lookups only read it; next_hop is a valid out pointer.
        let ret = unsafe { sys::rte_lpm_lookup(self.table.ptr(), ip, &mut next_hop) };
        (ret == 0).then_some(next_hop)
    }

    /// Looks up `ips[i]` into `next_hops[i]` ([`LPM_MISS`] for a miss) for the first
    /// `min(ips.len(), next_hops.len())` addresses; returns that count.
    #[inline]
    pub fn lookup_bulk(&self, ips: &[u32], next_hops: &mut [u32]) -> usize {
        in_chunks(ips, next_hops, |ips, out| {
            self.lookup_chunk_raw(ips, out);
            for hop in out {
                *hop = Self::decode_raw(*hop).unwrap_or(LPM_MISS);
            }
        })
    }

    /// DPDK's bulk lookup as it is, for benchmarks: `next_hops[i]` gets DPDK's encoding (the
    /// next hop with `RTE_LPM_LOOKUP_SUCCESS` set on a hit). No per-result conversion, so the
    /// measured cost is DPDK's alone.
    #[inline]
    pub fn lookup_bulk_raw(&self, ips: &[u32], next_hops: &mut [u32]) -> usize {
        in_chunks(ips, next_hops, |ips, out| self.lookup_chunk_raw(ips, out))
    }

    /// One DPDK bulk call over a chunk (`ips` and `out` of the same length, at most
    /// [`BULK_CHUNK`]).
    #[inline(always)]
    fn lookup_chunk_raw(&self, ips: &[u32], out: &mut [u32]) {
        let n = u32::try_from(ips.len()).unwrap_or(0);
        // SAFETY: the table is alive; ips and out both hold n entries.
        unsafe {
            sys::rte_lpm_lookup_bulk_func(self.table.ptr(), ips.as_ptr(), out.as_mut_ptr(), n)
        };
    }

    /// Decodes a value written by [`lookup_bulk_raw`](Self::lookup_bulk_raw).
    #[inline]
    pub fn decode_raw(raw: u32) -> Option<u32> {
        (raw & sys::RTE_LPM_LOOKUP_SUCCESS != 0).then_some(raw & RTE_LPM_MAX_NEXT_HOP)
    }
}

/// A DPDK `rte_fib` table (DIR-24-8 with 4-byte next hops, over an `rte_rib`). Lookups through
/// `&self` may run on several threads; changes take `&mut self`.
#[derive(Debug)]
pub struct RteFib {
    table: Table<sys::rte_fib>,
}

impl RteFib {
    /// Creates a table for up to `max_routes` routes with `number_tbl8s` groups for prefixes
    /// longer than /24, on NUMA `socket` (`None`: any). `name` must be unique.
    pub fn new(
        name: &str,
        max_routes: u32,
        number_tbl8s: u32,
        socket: Option<u32>,
    ) -> Result<RteFib> {
        const OP: &str = "rte_fib_create";
        let max_routes_c = i32::try_from(max_routes)
            .map_err(|_| Error::with_detail(OP, libc::EINVAL, format!("{max_routes} routes")))?;
        let mut conf = sys::rte_fib_conf {
            type_: sys::RTE_FIB_DIR24_8,
            default_nh: FIB_DEFAULT_NH,
            max_routes: max_routes_c,
            ..Default::default()
        };
        conf.__bindgen_anon_1.dir24_8.nh_sz = sys::RTE_FIB_DIR24_8_4B;
        conf.__bindgen_anon_1.dir24_8.num_tbl8 = number_tbl8s;
        let table = Table::create(
            OP,
            name,
            socket,
            || format!("{max_routes} routes, {number_tbl8s} tbl8 groups"),
            // SAFETY: EAL is running; name and conf are valid for the call (DPDK copies them).
            |name, socket| unsafe { sys::rte_fib_create(name, socket, &mut conf) },
        )?;
        Ok(RteFib { table })
    }

    /// Adds (or replaces) the route `ip/depth -> next_hop`. `EINVAL` for a depth above 32 or
    /// a next hop above [`RTE_FIB_MAX_NEXT_HOP`]; `ENOSPC` when the table is full.
    pub fn add(&mut self, ip: u32, depth: u8, next_hop: u32) -> Result<()> {
        const OP: &str = "rte_fib_add";
        check_next_hop(OP, next_hop, RTE_FIB_MAX_NEXT_HOP)?;
        // SAFETY: as for RteLpm::add.
        self.table.change(OP, |t| unsafe {
            sys::rte_fib_add(t, ip, depth, u64::from(next_hop))
        })
    }

    /// Deletes the route `ip/depth`; `ENOENT` when there is none.
    pub fn delete(&mut self, ip: u32, depth: u8) -> Result<()> {
        // SAFETY: as for RteLpm::add.
        self.table.change("rte_fib_delete", |t| unsafe {
            sys::rte_fib_delete(t, ip, depth)
        })
    }

    /// Looks up `ips[i]` into `next_hops[i]` ([`LPM_MISS`] for a miss) for the first
    /// `min(ips.len(), next_hops.len())` addresses; returns that count.
    #[inline]
    pub fn lookup_bulk(&self, ips: &[u32], next_hops: &mut [u64]) -> usize {
        in_chunks(ips, next_hops, |ips, out| {
            let n = i32::try_from(ips.len()).unwrap_or(0);
            // SAFETY: the table is alive; ips and out both hold n entries. DPDK declares ips
            // mutable but only reads it, and lookups only read the table.
            unsafe {
                sys::rte_fib_lookup_bulk(
                    self.table.ptr(),
                    ips.as_ptr().cast_mut(),
                    out.as_mut_ptr(),
                    n,
                )
            };
            for hop in out {
                if *hop == FIB_DEFAULT_NH {
                    *hop = u64::from(LPM_MISS);
                }
            }
        })
    }
}

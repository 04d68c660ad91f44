//! The per-source limit on the ICMP errors the engine originates, under the router-wide one
//! ([`IcmpLimiter`](crate::dataplane::IcmpLimiter)). The router-wide limit alone lets one noisy
//! sender (500 TTL-1 packets in half a second) take the router's whole budget and starve every
//! other sender's traceroute and path MTU discovery; like Linux, which limits per destination
//! host (`icmp_ratelimit`, 1000 ms, after a burst of 6: `XRLIM_BURST_FACTOR`) under the
//! host-wide `icmp_msgs_per_sec` (1000/s, burst 50), a source gets about one error a second
//! after a small burst, whatever the others do.
//!
//! Memory is bounded and allocated once: a fixed array of [`SOURCE_CELLS`] cells, each one
//! atomic word holding the theoretical arrival time of the generic cell rate algorithm (GCRA),
//! shared by every worker and every router. A source's cell is found by hashing (router, source
//! address); two sources that hash to the same cell share its budget, which with 65,536 cells
//! and a few thousand noisy sources at a time is rare and never more permissive than one cell.
//! A lookup is a multiply and a shift; taking a token is a load and a compare-and-swap, with no
//! lock and no allocation. A lost race with another worker counts as exceeded.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dataplane::Nanos;
use crate::ids::RouterId;

/// Cells of the per-source table (a power of two): 512 KiB.
pub const SOURCE_CELLS: usize = 1 << 16;
/// Errors per second to one source, after the burst (Linux: `icmp_ratelimit` = 1000 ms).
pub const SOURCE_RATE_PER_S_DEFAULT: u32 = 1;
/// Errors to one source at once after a quiet period (Linux: `XRLIM_BURST_FACTOR` = 6).
pub const SOURCE_BURST_DEFAULT: u32 = 6;

/// The GCRA spacing of a rate and the tolerance of a burst, in nanoseconds: `rate_per_s`
/// tokens a second (0: no limit, an interval of 0), `burst` at once (at least 1).
fn gcra_params(rate_per_s: u32, burst: u32) -> (u64, u64) {
    let interval = if rate_per_s == 0 {
        0
    } else {
        1_000_000_000 / u64::from(rate_per_s)
    };
    (
        interval,
        interval.saturating_mul(u64::from(burst.max(1) - 1)),
    )
}

/// A rate shared by workers and set by the control thread: the interval between tokens and
/// the tolerance a burst may run ahead by, in nanoseconds. An interval of 0 is no limit.
#[derive(Debug, Default)]
pub struct GcraRate {
    interval_ns: AtomicU64,
    burst_ns: AtomicU64,
}

impl GcraRate {
    /// `rate_per_s` tokens a second on average, `burst` at once.
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        let r = GcraRate::default();
        r.set(rate_per_s, burst);
        r
    }

    /// Changes the rate (control thread).
    pub fn set(&self, rate_per_s: u32, burst: u32) {
        let (interval, tolerance) = gcra_params(rate_per_s, burst);
        self.interval_ns.store(interval, Ordering::Relaxed);
        self.burst_ns.store(tolerance, Ordering::Relaxed);
    }

    /// Takes one token of the cell `tat` at `now`: false when the rate is exceeded or another
    /// thread took the cell meanwhile; always true without a limit.
    #[inline]
    pub fn take(&self, tat: &AtomicU64, now: Nanos) -> bool {
        let interval = self.interval_ns.load(Ordering::Relaxed);
        if interval == 0 {
            return true;
        }
        let tolerance = self.burst_ns.load(Ordering::Relaxed);
        let t = tat.load(Ordering::Relaxed);
        if t > now.saturating_add(tolerance) {
            return false;
        }
        let next = t.max(now) + interval;
        tat.compare_exchange(t, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// Per-source ICMP error budgets, one hashed GCRA cell per (router, source address).
#[derive(Debug)]
pub struct SourceLimiter {
    cells: Box<[AtomicU64]>,
    rate: GcraRate,
}

impl SourceLimiter {
    /// Allows each source `rate_per_s` errors per second on average and bursts of `burst`. A
    /// rate of 0 disables the limit.
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        SourceLimiter {
            cells: (0..SOURCE_CELLS).map(|_| AtomicU64::new(0)).collect(),
            rate: GcraRate::new(rate_per_s, burst),
        }
    }

    /// Changes the rate (control thread).
    pub fn set(&self, rate_per_s: u32, burst: u32) {
        self.rate.set(rate_per_s, burst);
    }

    /// Takes one token of `source`'s budget in `router` at `now`; false when that source has
    /// had its share.
    #[inline]
    pub fn allow(&self, router: RouterId, source: u32, now: Nanos) -> bool {
        self.rate.take(&self.cells[cell_index(router, source)], now)
    }
}

impl Default for SourceLimiter {
    /// The Linux-like defaults: one error a second per source after a burst of 6.
    fn default() -> Self {
        SourceLimiter::new(SOURCE_RATE_PER_S_DEFAULT, SOURCE_BURST_DEFAULT)
    }
}

/// The cell of (router, source): Fibonacci hashing of both, the top bits of the product.
#[inline]
fn cell_index(router: RouterId, source: u32) -> usize {
    const SHIFT: u32 = u64::BITS - SOURCE_CELLS.trailing_zeros();
    let key = (u64::from(u16::from(router)) << 32) | u64::from(source);
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> SHIFT) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn a_noisy_source_gets_its_burst_then_one_a_second_while_others_keep_theirs() {
        let l = SourceLimiter::default();
        let r = RouterId::new(1);
        let (noisy, quiet) = (0x0a00_0105, 0x0a00_0207);
        let t0 = 10 * S;
        // 500 errors due in half a second: the burst, then nothing until the next token.
        let allowed = (0..500)
            .filter(|k| l.allow(r, noisy, t0 + k * S / 1000))
            .count();
        assert_eq!(allowed, SOURCE_BURST_DEFAULT as usize);
        assert!(
            l.allow(r, quiet, t0 + S / 2),
            "another source is not starved"
        );
        assert!(!l.allow(r, noisy, t0 + S / 2));
        assert!(
            l.allow(r, noisy, t0 + S + S / 100),
            "one a second after the burst"
        );
        assert!(!l.allow(r, noisy, t0 + S + S / 50));
        // The same address in another router is another source.
        assert!(l.allow(RouterId::new(2), noisy, t0 + S / 2));
        // A quiet period gives the whole burst back.
        let t1 = t0 + 60 * S;
        assert_eq!((0..20).filter(|_| l.allow(r, noisy, t1)).count(), 6);
    }

    #[test]
    fn a_rate_of_zero_disables_the_limit() {
        let l = SourceLimiter::new(0, 0);
        assert!((0..1000).all(|_| l.allow(RouterId::new(0), 1, 0)));
        l.set(SOURCE_RATE_PER_S_DEFAULT, 1);
        assert!(l.allow(RouterId::new(0), 1, S));
        assert!(!l.allow(RouterId::new(0), 1, S));
    }

    #[test]
    fn memory_is_the_fixed_table_whatever_the_sources() {
        let l = SourceLimiter::default();
        for source in 0..200_000u32 {
            l.allow(RouterId::new((source % 7) as u16), source, S);
        }
        assert_eq!(l.cells.len(), SOURCE_CELLS);
        assert!(SOURCE_CELLS.is_power_of_two());
    }

    #[test]
    fn neighbouring_addresses_spread_over_the_cells() {
        // A /16 of sources in one router: almost every address gets a cell of its own.
        let mut used = vec![false; SOURCE_CELLS];
        for source in 0x0a00_0000u32..0x0a00_4000 {
            used[cell_index(RouterId::new(3), source)] = true;
        }
        let distinct = used.iter().filter(|u| **u).count();
        assert!(
            distinct > 0x4000 * 9 / 10,
            "{distinct} cells for 16384 sources"
        );
    }

    proptest! {
        /// Over any window, a source never gets more than the burst plus one per interval,
        /// and a source that had nothing gets its first error whatever the others did.
        #[test]
        fn no_source_exceeds_burst_plus_rate(
            rate in 1u32..20,
            burst in 1u32..10,
            steps in proptest::collection::vec((0u32..4, 0u64..50_000_000), 1..400),
        ) {
            let l = SourceLimiter::new(rate, burst);
            let r = RouterId::new(0);
            let mut now = S;
            let mut allowed = [0u64; 4];
            for (source, gap) in steps {
                now += gap;
                if l.allow(r, source, now) {
                    allowed[source as usize] += 1;
                }
            }
            let elapsed = now - S;
            let cap = u64::from(burst) + elapsed * u64::from(rate) / S + 1;
            for n in allowed {
                prop_assert!(n <= cap, "{n} > {cap}");
            }
            prop_assert!(l.allow(r, 99, now));
        }
    }
}

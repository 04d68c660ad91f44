//! The data path's clock: TSC cycles, converted to the engine's nanoseconds.

/// Fractional bits of the fixed-point nanoseconds-per-cycle factor.
const NS_SHIFT: u32 = 32;
/// Nanoseconds per second.
const NS_PER_S: u128 = 1_000_000_000;

/// Converts TSC cycles to nanoseconds with one multiplication and one shift (no division on
/// the data path). Workers convert once per burst; the control thread must use the same
/// conversion, so that times it compares with the engine's (neighbour ageing, rate limits) are
/// on the same clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
    /// Nanoseconds per cycle, as a fixed-point number with [`NS_SHIFT`] fractional bits.
    ns_per_cycle: u64,
}

impl TscClock {
    /// A clock for a TSC of `hz` ticks per second (`Eal::tsc_hz`); `None` when `hz` is 0.
    pub fn new(hz: u64) -> Option<TscClock> {
        if hz == 0 {
            return None;
        }
        let factor = (NS_PER_S << NS_SHIFT) / u128::from(hz);
        // A TSC slower than 1 Hz would overflow; saturate (such a clock does not exist).
        let ns_per_cycle = u64::try_from(factor).unwrap_or(u64::MAX);
        Some(TscClock { hz, ns_per_cycle })
    }

    /// Ticks per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// `cycles` in nanoseconds (saturating at `u64::MAX`, some 584 years).
    #[inline]
    pub fn ns(&self, cycles: u64) -> u64 {
        let ns = (u128::from(cycles) * u128::from(self.ns_per_cycle)) >> NS_SHIFT;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The current time in nanoseconds on the data path's clock.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.ns(dpdk_bindings::tsc())
    }

    /// `ns` nanoseconds in cycles (control path: one division).
    pub fn cycles(&self, ns: u64) -> u64 {
        let cycles = u128::from(ns) * u128::from(self.hz) / NS_PER_S;
        u64::try_from(cycles).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        assert_eq!(TscClock::new(0), None);
        let clock = TscClock::new(2_600_000_000).unwrap();
        assert_eq!(clock.hz(), 2_600_000_000);
        assert_eq!(clock.ns(2_600_000_000), 999_999_999); // the fixed point rounds down
        assert_eq!(clock.ns(0), 0);
        assert_eq!(clock.cycles(1_000_000_000), 2_600_000_000);
        assert_eq!(clock.cycles(100), 260);
        // An uptime of a year of cycles still converts within one part in a million.
        let year = 2_600_000_000u64 * 86_400 * 365;
        let ns = clock.ns(year);
        let exact = 1_000_000_000u64 * 86_400 * 365;
        assert!(exact - ns < exact / 1_000_000, "{ns} vs {exact}");
        let one_ghz = TscClock::new(1_000_000_000).unwrap();
        assert_eq!(one_ghz.ns(12_345), 12_345);
        assert_eq!(one_ghz.ns(u64::MAX), u64::MAX);
        let slow = TscClock::new(1).unwrap();
        assert_eq!(slow.ns(3), 3_000_000_000);
    }

    #[test]
    fn now_advances() {
        let clock = TscClock::new(1_000_000_000).unwrap();
        let a = clock.now_ns();
        assert!(clock.now_ns() >= a);
    }
}

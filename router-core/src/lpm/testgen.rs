//! Deterministic route sets and destinations for tests and benchmarks.
//!
//! The same seed gives the same routes on every machine and in every crate, so that the benchmark
//! harness can load the same table into this LPM and into DPDK's `rte_lpm` and compare.

use std::collections::HashSet;

use super::Prefix;
use crate::ids::NextHopId;

/// The SplitMix64 generator: tiny, fast, and good enough for test data (not for anything that
/// must be unpredictable).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..bound` (`bound > 0`), by multiply-shift (bias below 2^-32).
    pub fn below(&mut self, bound: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(bound)) >> 32) as u32
    }
}

/// Prefix lengths of a full internet table, in routes per 10,000: about 55% /24, 42% /13../23,
/// 3% longer than /24 (the shape of public BGP tables in the 2020s, where /22 and /23 follow /24;
/// shorter than /13 is a handful of routes and is left out).
const LENGTH_MIX: [(u8, u32); 20] = [
    (13, 10),
    (14, 30),
    (15, 60),
    (16, 140),
    (17, 90),
    (18, 160),
    (19, 300),
    (20, 450),
    (21, 550),
    (22, 1300),
    (23, 1110),
    (24, 5500),
    (25, 60),
    (26, 50),
    (27, 40),
    (28, 40),
    (29, 40),
    (30, 30),
    (31, 10),
    (32, 30),
];

const LENGTH_MIX_TOTAL: u32 = 10_000;

const _: () = {
    let mut total = 0;
    let mut i = 0;
    while i < LENGTH_MIX.len() {
        total += LENGTH_MIX[i].1;
        i += 1;
    }
    assert!(total == LENGTH_MIX_TOTAL);
};

/// Route networks are unicast: 1.0.0.0 up to 223.255.255.255 (no 0/8, no class D/E).
const UNICAST_FIRST: u32 = 0x0100_0000;
const UNICAST_END: u32 = 0xE000_0000;

/// Next hops of generated routes are in `0..NEXT_HOPS`.
pub const NEXT_HOPS: u32 = 1 << 16;

/// Most routes [`realistic_routes`] makes: past this the short lengths run out of distinct
/// prefixes and generation slows down.
pub const REALISTIC_ROUTES_MAX: usize = 4_000_000;

/// Draws before a length that keeps producing duplicates is given up for /24.
const DRAWS_PER_ROUTE: u32 = 64;

fn draw_len(rng: &mut SplitMix64) -> u8 {
    let mut pick = rng.below(LENGTH_MIX_TOTAL);
    for &(len, weight) in &LENGTH_MIX {
        if pick < weight {
            return len;
        }
        pick -= weight;
    }
    24
}

fn draw_prefix(rng: &mut SplitMix64, len: u8) -> Prefix {
    let addr = UNICAST_FIRST + rng.below(UNICAST_END - UNICAST_FIRST);
    Prefix::containing(addr, len)
}

/// `n` distinct routes with the prefix-length mix of an internet table, networks spread over the
/// unicast space, next hops in `0..NEXT_HOPS`, in random order. Deterministic for a seed.
///
/// # Panics
///
/// If `n` is above [`REALISTIC_ROUTES_MAX`].
pub fn realistic_routes(seed: u64, n: usize) -> Vec<(Prefix, NextHopId)> {
    assert!(
        n <= REALISTIC_ROUTES_MAX,
        "at most {REALISTIC_ROUTES_MAX} routes, asked for {n}"
    );
    let mut rng = SplitMix64::new(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut routes = Vec::with_capacity(n);
    while routes.len() < n {
        let len = draw_len(&mut rng);
        let mut prefix = draw_prefix(&mut rng, len);
        let mut draws = 1;
        while !seen.insert(prefix) {
            // Short lengths have few distinct prefixes: fall back to /24 when one is crowded.
            let len = if draws < DRAWS_PER_ROUTE { len } else { 24 };
            prefix = draw_prefix(&mut rng, len);
            draws += 1;
        }
        let next_hop = NextHopId::from_low_bits(rng.below(NEXT_HOPS));
        routes.push((prefix, next_hop));
    }
    routes
}

/// `n` destinations uniform over the whole IPv4 space (host order).
pub fn random_addresses(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.next_u32()).collect()
}

/// `n` destinations, each inside a route of `routes` picked at random (so every one has a route
/// and the long prefixes get their share of lookups).
///
/// # Panics
///
/// If `routes` is empty.
pub fn random_addresses_in(seed: u64, routes: &[(Prefix, NextHopId)], n: usize) -> Vec<u32> {
    assert!(!routes.is_empty(), "no route to pick destinations in");
    let count = u32::try_from(routes.len()).expect("fewer than 2^32 routes");
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let (prefix, _) = routes[rng.below(count) as usize];
            prefix.first() | (rng.next_u32() & !prefix.mask())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_deterministic_distinct_and_realistic() {
        let n = 100_000;
        let routes = realistic_routes(42, n);
        assert_eq!(routes.len(), n);
        assert_eq!(routes, realistic_routes(42, n));
        assert_ne!(routes[..10], realistic_routes(43, 10)[..]);
        let distinct: HashSet<Prefix> = routes.iter().map(|&(p, _)| p).collect();
        assert_eq!(distinct.len(), n);
        let share = |f: &dyn Fn(u8) -> bool| {
            routes.iter().filter(|(p, _)| f(p.len())).count() as f64 / n as f64
        };
        let s24 = share(&|l| l == 24);
        let s13_23 = share(&|l| (13..=23).contains(&l));
        let s25 = share(&|l| l > 24);
        assert!((0.53..0.57).contains(&s24), "{s24}");
        assert!((0.40..0.44).contains(&s13_23), "{s13_23}");
        assert!((0.02..0.04).contains(&s25), "{s25}");
        assert!(routes.iter().all(|(p, h)| p.first() >= UNICAST_FIRST
            && p.last() < UNICAST_END
            && h.get() < NEXT_HOPS));
    }

    #[test]
    fn addresses_are_deterministic_and_inside_routes() {
        assert_eq!(random_addresses(1, 1000), random_addresses(1, 1000));
        let routes = realistic_routes(7, 1000);
        let addrs = random_addresses_in(9, &routes, 5000);
        assert_eq!(addrs, random_addresses_in(9, &routes, 5000));
        assert!(addrs
            .iter()
            .all(|&a| routes.iter().any(|(p, _)| p.contains(a))));
    }

    #[test]
    fn splitmix_below_stays_below() {
        let mut rng = SplitMix64::new(0);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
    }
}

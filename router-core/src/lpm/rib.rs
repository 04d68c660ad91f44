//! The routing information base: every installed prefix and its next hop, on the control side.
//!
//! The forwarding table keeps only what lookups need; removing a route needs more: the longest
//! remaining route that covers it, whose next hop takes the removed route's place. The RIB answers
//! that with one hash map per prefix length and a bit set of the lengths in use, so the search
//! probes only lengths that hold routes, longest first.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::prefix::{mask_of, Prefix, PREFIX_LEN_MAX};
use crate::ids::NextHopId;

/// Number of prefix lengths, `0..=32`.
const LENGTHS: usize = PREFIX_LEN_MAX as usize + 1;

/// A hasher for network addresses: one multiplication by a 64-bit odd constant (the golden ratio)
/// and a fold of the high half into the low half. The keys are not attacker-chosen in a way that
/// matters (routes come from the operator), and SipHash costs several times more per probe.
#[derive(Debug, Default, Clone, Copy)]
pub struct AddrHasher {
    hash: u64,
}

impl AddrHasher {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

    #[inline]
    fn mix(&mut self, word: u64) {
        // The product's high bits depend on every input bit; folding them down feeds the bucket
        // index (low bits) too. Addresses of /24s end in eight zero bits, which a bare
        // multiplication would leave in the low bits of the hash.
        let product = (self.hash ^ word).wrapping_mul(Self::MULTIPLIER);
        self.hash = product ^ (product >> 32);
    }
}

impl Hasher for AddrHasher {
    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type AddrMap = HashMap<u32, NextHopId, BuildHasherDefault<AddrHasher>>;

/// Every prefix and its next hop, indexed by length.
#[derive(Debug, Clone)]
pub struct Rib {
    /// `by_len[l]` maps the network address of each /l route to its next hop.
    by_len: [AddrMap; LENGTHS],
    /// Bit `l` is set when `by_len[l]` is not empty.
    lens_present: u64,
    routes: usize,
}

impl Default for Rib {
    fn default() -> Self {
        Self::new()
    }
}

impl Rib {
    /// An empty RIB.
    pub fn new() -> Self {
        Self {
            by_len: std::array::from_fn(|_| AddrMap::default()),
            lens_present: 0,
            routes: 0,
        }
    }

    /// Adds or replaces a route; returns the next hop it replaced.
    pub fn insert(&mut self, prefix: Prefix, next_hop: NextHopId) -> Option<NextHopId> {
        let len = usize::from(prefix.len());
        let old = self.by_len[len].insert(prefix.bits(), next_hop);
        if old.is_none() {
            self.routes += 1;
            self.lens_present |= 1 << len;
        }
        old
    }

    /// Removes a route; returns its next hop.
    pub fn remove(&mut self, prefix: Prefix) -> Option<NextHopId> {
        let len = usize::from(prefix.len());
        let map = &mut self.by_len[len];
        let old = map.remove(&prefix.bits())?;
        self.routes -= 1;
        if map.is_empty() {
            self.lens_present &= !(1 << len);
        }
        Some(old)
    }

    /// The next hop of exactly this prefix.
    pub fn get(&self, prefix: Prefix) -> Option<NextHopId> {
        self.by_len[usize::from(prefix.len())]
            .get(&prefix.bits())
            .copied()
    }

    /// The longest route strictly shorter than `prefix` that contains it: the route that takes
    /// over `prefix`'s addresses when `prefix` is removed.
    pub fn covering(&self, prefix: Prefix) -> Option<(Prefix, NextHopId)> {
        // Lengths below prefix.len(): bits 0..len.
        let shorter = self.lens_present & ((1u64 << prefix.len()) - 1);
        self.longest_in(prefix.bits(), shorter)
    }

    /// The longest route that contains `addr`: the reference answer for a lookup.
    pub fn longest_match(&self, addr: u32) -> Option<(Prefix, NextHopId)> {
        self.longest_in(addr, self.lens_present)
    }

    /// The longest route containing `addr` among the lengths set in `lens`.
    fn longest_in(&self, addr: u32, mut lens: u64) -> Option<(Prefix, NextHopId)> {
        while lens != 0 {
            let len = 63 - lens.leading_zeros();
            lens &= !(1 << len);
            // `len` is at most 32: it is a bit of `lens_present`.
            let len = len as u8;
            let bits = addr & mask_of(len);
            if let Some(&next_hop) = self.by_len[usize::from(len)].get(&bits) {
                return Some((Prefix::containing(bits, len), next_hop));
            }
        }
        None
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether the RIB holds no route.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Every route, shortest prefixes first; within a length in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, NextHopId)> + '_ {
        self.by_len.iter().enumerate().flat_map(|(len, map)| {
            // `len` indexes a 33-element array.
            let len = len as u8;
            map.iter()
                .map(move |(&bits, &next_hop)| (Prefix::containing(bits, len), next_hop))
        })
    }

    /// Removes every route.
    pub fn clear(&mut self) {
        for map in &mut self.by_len {
            map.clear();
        }
        self.lens_present = 0;
        self.routes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::nh;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn insert_replace_remove() {
        let mut rib = Rib::new();
        assert!(rib.is_empty());
        assert_eq!(rib.insert(p("10.0.0.0/8"), nh(1)), None);
        assert_eq!(rib.insert(p("10.0.0.0/8"), nh(2)), Some(nh(1)));
        assert_eq!(rib.len(), 1);
        assert_eq!(rib.get(p("10.0.0.0/8")), Some(nh(2)));
        assert_eq!(rib.get(p("10.0.0.0/9")), None);
        assert_eq!(rib.remove(p("10.0.0.0/8")), Some(nh(2)));
        assert_eq!(rib.remove(p("10.0.0.0/8")), None);
        assert!(rib.is_empty());
        assert_eq!(rib.lens_present, 0);
    }

    #[test]
    fn covering_is_the_longest_strictly_shorter_route() {
        let mut rib = Rib::new();
        rib.insert(Prefix::DEFAULT, nh(0));
        rib.insert(p("10.0.0.0/8"), nh(8));
        rib.insert(p("10.1.0.0/16"), nh(16));
        rib.insert(p("10.1.2.0/24"), nh(24));
        assert_eq!(
            rib.covering(p("10.1.2.0/24")),
            Some((p("10.1.0.0/16"), nh(16)))
        );
        assert_eq!(
            rib.covering(p("10.1.2.128/25")),
            Some((p("10.1.2.0/24"), nh(24)))
        );
        assert_eq!(
            rib.covering(p("10.2.0.0/16")),
            Some((p("10.0.0.0/8"), nh(8)))
        );
        assert_eq!(
            rib.covering(p("10.0.0.0/8")),
            Some((Prefix::DEFAULT, nh(0)))
        );
        assert_eq!(rib.covering(Prefix::DEFAULT), None);
        assert_eq!(
            rib.longest_match(0x0A01_0203),
            Some((p("10.1.2.0/24"), nh(24)))
        );
        assert_eq!(
            rib.longest_match(0x0B00_0000),
            Some((Prefix::DEFAULT, nh(0)))
        );
        rib.remove(Prefix::DEFAULT);
        assert_eq!(rib.longest_match(0x0B00_0000), None);
    }

    #[test]
    fn iter_lists_every_route() {
        let mut rib = Rib::new();
        let routes = [
            (p("0.0.0.0/0"), nh(0)),
            (p("10.0.0.0/8"), nh(1)),
            (p("1.2.3.4/32"), nh(2)),
            (p("10.1.0.0/16"), nh(3)),
        ];
        for (prefix, next_hop) in routes {
            rib.insert(prefix, next_hop);
        }
        let mut listed: Vec<_> = rib.iter().collect();
        listed.sort();
        let mut expected = routes.to_vec();
        expected.sort();
        assert_eq!(listed, expected);
        rib.clear();
        assert_eq!(rib.iter().count(), 0);
        assert!(rib.is_empty());
    }

    #[test]
    fn hasher_spreads_slash_24_addresses() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<AddrHasher>::default();
        // Low 7 bits of the hash pick the bucket in small tables: /24 network addresses (low byte
        // zero) must still spread over them.
        let buckets: HashSet<u64> = (0..1024u32)
            .map(|i| build.hash_one(i << 8) & 0x7F)
            .collect();
        assert!(buckets.len() > 100, "{}", buckets.len());
    }
}

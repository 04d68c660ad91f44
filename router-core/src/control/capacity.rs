//! What a batch takes from the tables, checked before the first write.
//!
//! While the model validates a batch, each object kind adds to a [`Plan`] what programming its
//! change will take: next-hop slots, tbl8 groups of each router's LPM, L2 entries and ids. The
//! plan refuses at the first change that does not fit, with the error programming it would
//! have returned, so that a batch that would run out of room half-way writes nothing at all.
//!
//! The count is exact for a batch that only adds, and an upper bound otherwise: room that a
//! delete or replace frees is not counted on (except L2 entries, which a delete frees at once),
//! and once a batch has deleted or replaced anything, nothing that existed before it (a
//! neighbour, an underlay neighbour, a tbl8 group) is counted on either, since it may be gone by
//! then. Slots waiting for a grace period count as free: taking a slot waits for the workers
//! when none is free otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{ApplyError, ControlPlane};
use crate::lpm::{LpmError, Prefix, ROOT_BITS_16, ROOT_BITS_24, TBL8_GROUPS_MAX};
use crate::model::{ModelError, MAX_FLOATING_IPS, MAX_NETWORKS, MAX_PEERS, MAX_ROUTERS};
use crate::qsbr::{Qsbr, Retired};
use crate::table::{AtomicMapError, NextHopsFull};

/// Whether what a change takes fits, and if not, the error programming it would have met.
pub(super) type Fits = Result<(), ApplyError>;

/// Most router interfaces on one host.
pub const MAX_IFACES: usize = 8192;

/// The kinds of small ids the control plane hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    Routers,
    Networks,
    Ifaces,
    Peers,
    Fips,
}

impl Pool {
    const ALL: [Pool; 5] = [
        Pool::Routers,
        Pool::Networks,
        Pool::Ifaces,
        Pool::Peers,
        Pool::Fips,
    ];

    /// The name errors give the ids.
    fn kind(self) -> &'static str {
        match self {
            Pool::Routers => "routers",
            Pool::Networks => "networks",
            Pool::Ifaces => "interfaces",
            Pool::Peers => "peers",
            Pool::Fips => "floating IPs",
        }
    }

    fn max(self) -> usize {
        match self {
            Pool::Routers => MAX_ROUTERS,
            Pool::Networks => MAX_NETWORKS,
            Pool::Ifaces => MAX_IFACES,
            Pool::Peers => MAX_PEERS,
            Pool::Fips => MAX_FLOATING_IPS,
        }
    }
}

/// Allocates small ids; a freed id comes back after a grace period.
#[derive(Debug)]
struct IdPool {
    next: u16,
    max: usize,
    free: Vec<u16>,
    retired: Retired<u16>,
}

impl IdPool {
    fn new(max: usize) -> Self {
        IdPool {
            next: 0,
            max,
            free: Vec::new(),
            retired: Retired::new(),
        }
    }

    /// Ids that can be taken now.
    fn available(&self) -> usize {
        self.free.len() + (self.max - usize::from(self.next))
    }
}

/// The id pools of routers, networks, interfaces and peers.
#[derive(Debug)]
pub(crate) struct IdPools([IdPool; 5]);

impl IdPools {
    pub fn new() -> Self {
        IdPools(Pool::ALL.map(|p| IdPool::new(p.max())))
    }

    /// Takes an id, or says that the pool is exhausted.
    pub fn alloc(&mut self, qsbr: &Qsbr, pool: Pool) -> Result<u16, ApplyError> {
        let p = &mut self.0[pool as usize];
        p.free.extend(p.retired.drain_safe(qsbr));
        if let Some(id) = p.free.pop() {
            return Ok(id);
        }
        if usize::from(p.next) >= p.max {
            return Err(ModelError::Limit {
                kind: pool.kind(),
                limit: p.max,
            }
            .into());
        }
        p.next += 1;
        Ok(p.next - 1)
    }

    /// Gives an id back; it is reused after a grace period.
    pub fn release(&mut self, qsbr: &Qsbr, pool: Pool, id: impl Into<u16>) {
        self.0[pool as usize]
            .retired
            .push(qsbr.retire_token(), id.into());
    }

    /// Moves the ids whose grace period is over back to the free lists.
    pub fn refill(&mut self, qsbr: &Qsbr) {
        for p in &mut self.0 {
            p.free.extend(p.retired.drain_safe(qsbr));
        }
    }
}

/// Routes longer than the root of an LPM, counted by the tbl8 group they live in: a group exists
/// exactly while a route lives in it (the LPM folds a group back when its last longer route
/// goes), so this mirrors which groups the table holds without reading it.
#[derive(Debug, Default)]
pub(crate) struct GroupTally(HashMap<Group, u32>);

/// A tbl8 group: its level below the root and the address bits above it.
type Group = (u8, u32);

/// The groups a route of `prefix` lives in, in a table whose root takes `root_bits`.
fn groups_of(prefix: Prefix, root_bits: u32) -> impl Iterator<Item = Group> {
    let len = u32::from(prefix.len());
    (0u8..)
        .map(move |level| (level, root_bits + 8 * u32::from(level)))
        .take_while(move |&(_, end)| len > end)
        .map(move |(level, end)| (level, prefix.bits() >> (32 - end)))
}

impl GroupTally {
    pub fn insert(&mut self, prefix: Prefix, root_bits: u32) {
        for g in groups_of(prefix, root_bits) {
            *self.0.entry(g).or_insert(0) += 1;
        }
    }

    pub fn remove(&mut self, prefix: Prefix, root_bits: u32) {
        for g in groups_of(prefix, root_bits) {
            if let Some(n) = self.0.get_mut(&g) {
                *n -= 1;
                if *n == 0 {
                    self.0.remove(&g);
                }
            }
        }
    }

    fn contains(&self, group: Group) -> bool {
        self.0.contains_key(&group)
    }
}

/// The tbl8 groups a batch takes from one router's LPM.
#[derive(Debug)]
struct RouterGroups {
    root_bits: u32,
    free: usize,
    capacity: u32,
    need: usize,
    planned: HashSet<Group>,
}

/// What a batch takes from the tables so far, against what they have free.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The batch deleted or replaced something: what existed before may be gone.
    shrunk: bool,
    next_hops: usize,
    next_hops_free: usize,
    l2: isize,
    l2_free: usize,
    ids: [usize; 5],
    ids_free: [usize; 5],
    /// Neighbours (router, address) and underlay neighbours the batch creates.
    neighbors: HashSet<(String, u32)>,
    underlay: HashSet<u32>,
    groups: BTreeMap<String, RouterGroups>,
}

impl Plan {
    pub fn new(cp: &ControlPlane) -> Self {
        let t = &cp.tables;
        Plan {
            shrunk: false,
            next_hops: 0,
            next_hops_free: t.next_hops.available(),
            l2: 0,
            l2_free: cp.dp.l2.capacity() - t.l2.len(),
            ids: [0; 5],
            ids_free: cp.ids.0.each_ref().map(IdPool::available),
            neighbors: HashSet::new(),
            underlay: HashSet::new(),
            groups: BTreeMap::new(),
        }
    }

    /// The batch deletes or replaces something: from here on count nothing that exists now, nor
    /// what the batch created so far, as still there.
    pub fn shrink(&mut self) {
        self.shrunk = true;
        self.neighbors.clear();
        self.underlay.clear();
        for g in self.groups.values_mut() {
            g.planned.clear();
        }
    }

    /// `n` more next-hop slots.
    pub fn next_hops(&mut self, cp: &ControlPlane, n: usize) -> Result<(), ApplyError> {
        self.next_hops += n;
        if self.next_hops > self.next_hops_free {
            return Err(NextHopsFull {
                capacity: cp.dp.next_hops.capacity(),
            }
            .into());
        }
        Ok(())
    }

    /// One more id of `pool`.
    pub fn id(&mut self, pool: Pool) -> Result<(), ApplyError> {
        let i = pool as usize;
        self.ids[i] += 1;
        if self.ids[i] > self.ids_free[i] {
            return Err(ModelError::Limit {
                kind: pool.kind(),
                limit: pool.max(),
            }
            .into());
        }
        Ok(())
    }

    /// L2 entries added (positive) or removed (negative).
    pub fn l2(&mut self, cp: &ControlPlane, delta: isize) -> Result<(), ApplyError> {
        self.l2 += delta;
        if self.l2 > 0 && self.l2.unsigned_abs() > self.l2_free {
            return Err(AtomicMapError::Full {
                capacity: cp.dp.l2.capacity(),
            }
            .into());
        }
        Ok(())
    }

    /// The neighbour `ip` of `router`: a slot unless it exists already.
    pub fn neighbor(&mut self, cp: &ControlPlane, router: &str, ip: u32) -> Result<(), ApplyError> {
        let exists = !self.shrunk
            && cp
                .routers
                .get(router)
                .is_some_and(|r| cp.neighbors.entries.contains_key(&(r.id, ip)));
        if exists || !self.neighbors.insert((router.to_string(), ip)) {
            return Ok(());
        }
        self.next_hops(cp, 1)
    }

    /// The underlay neighbour `ip`: a slot unless it exists already.
    pub fn underlay(&mut self, cp: &ControlPlane, ip: u32) -> Result<(), ApplyError> {
        let exists = !self.shrunk && cp.neighbors.underlay.contains_key(&ip);
        if exists || !self.underlay.insert(ip) {
            return Ok(());
        }
        self.next_hops(cp, 1)
    }

    /// A route of `prefix` in `router`: the tbl8 groups it lives in that do not exist yet.
    pub fn prefix(
        &mut self,
        cp: &ControlPlane,
        router: &str,
        prefix: Prefix,
    ) -> Result<(), ApplyError> {
        let shrunk = self.shrunk;
        let state = cp.routers.get(router);
        let g = self
            .groups
            .entry(router.to_string())
            .or_insert_with(|| match state {
                Some(r) => RouterGroups {
                    root_bits: r.lpm.lpm().config().root_bits,
                    free: (r.lpm.tbl8_capacity() - r.lpm.tbl8_in_use()) as usize,
                    capacity: r.lpm.tbl8_capacity(),
                    need: 0,
                    planned: HashSet::new(),
                },
                None => {
                    let large = cp.model.routers.get(router).is_some_and(|s| s.large);
                    let (root_bits, capacity) = if large {
                        (ROOT_BITS_24, cp.cfg.tbl8_groups_large)
                    } else {
                        (ROOT_BITS_16, cp.cfg.tbl8_groups_compact)
                    };
                    RouterGroups {
                        root_bits,
                        free: capacity.min(TBL8_GROUPS_MAX) as usize,
                        capacity,
                        need: 0,
                        planned: HashSet::new(),
                    }
                }
            });
        for group in groups_of(prefix, g.root_bits) {
            let exists = !shrunk && state.is_some_and(|r| r.groups.contains(group));
            if !exists && g.planned.insert(group) {
                g.need += 1;
            }
        }
        if g.need > g.free {
            return Err(ApplyError::Lpm {
                router: router.to_string(),
                source: LpmError::Tbl8Exhausted {
                    prefix,
                    capacity: g.capacity,
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_lives_in_one_group_per_level_below_the_root() {
        let cases: [(&str, u32, &[Group]); 5] = [
            ("10.0.0.0/16", 16, &[]),
            ("10.0.1.0/24", 16, &[(0, 0x0a00)]),
            ("10.0.1.5/32", 16, &[(0, 0x0a00), (1, 0x0a_0001)]),
            ("10.0.1.5/32", 24, &[(0, 0x0a_0001)]),
            ("10.0.1.0/24", 24, &[]),
        ];
        for (prefix, root_bits, groups) in cases {
            let got: Vec<_> = groups_of(prefix.parse().unwrap(), root_bits).collect();
            assert_eq!(got, groups, "{prefix} under a /{root_bits} root");
        }
    }

    #[test]
    fn the_tally_forgets_a_group_with_its_last_route() {
        let mut t = GroupTally::default();
        t.insert("10.0.1.5/32".parse().unwrap(), 16);
        t.insert("10.0.1.6/32".parse().unwrap(), 16);
        t.remove("10.0.1.5/32".parse().unwrap(), 16);
        assert!(t.contains((1, 0x0a_0001)));
        t.remove("10.0.1.6/32".parse().unwrap(), 16);
        assert!(!t.contains((1, 0x0a_0001)) && !t.contains((0, 0x0a00)));
    }
}

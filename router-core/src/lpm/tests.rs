//! Tests of the LPM: unit tests of every update path in both layouts, property tests against a
//! linear-scan reference, and concurrent tests of readers against a churning writer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use proptest::prelude::*;

use super::testgen::SplitMix64;
use super::*;
use crate::ids::nh;
use crate::qsbr::Qsbr;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
}

fn writer(config: LpmConfig) -> LpmWriter {
    LpmWriter::new(config, Arc::new(Qsbr::new(4))).unwrap()
}

const LAYOUTS: [LpmConfig; 2] = [LpmConfig::root24(64), LpmConfig::root16(64)];

/// The reference: the longest route containing `addr`, by a scan over every route.
fn reference_lookup(routes: &BTreeMap<Prefix, NextHopId>, addr: u32) -> Option<NextHopId> {
    routes
        .iter()
        .filter(|(prefix, _)| prefix.contains(addr))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, &next_hop)| next_hop)
}

/// Addresses around every route's edges: first, last, and just outside on both sides.
fn edge_addresses<'a>(prefixes: impl Iterator<Item = &'a Prefix>) -> Vec<u32> {
    let mut addrs = Vec::new();
    for prefix in prefixes {
        addrs.extend([
            prefix.first(),
            prefix.last(),
            prefix.first().wrapping_sub(1),
            prefix.last().wrapping_add(1),
            prefix.first() | ((prefix.last() - prefix.first()) / 2),
        ]);
    }
    addrs
}

/// Checks single and burst lookups of `addrs` against the reference, and the RIB against it.
fn check(writer: &LpmWriter, routes: &BTreeMap<Prefix, NextHopId>, addrs: &[u32]) {
    let lpm = writer.lpm();
    let mut out = vec![0; addrs.len()];
    lpm.lookup_burst(addrs, &mut out);
    for (&addr, &burst) in addrs.iter().zip(&out) {
        let expected = reference_lookup(routes, addr);
        assert_eq!(
            lpm.lookup(addr),
            expected,
            "lookup {} in {:?}",
            std::net::Ipv4Addr::from(addr),
            lpm.config()
        );
        assert_eq!(burst, expected.map_or(NO_ROUTE, u32::from));
    }
    assert_eq!(writer.len(), routes.len());
    let mut listed: Vec<_> = writer.iter().collect();
    listed.sort();
    assert_eq!(
        listed,
        routes.iter().map(|(&p, &h)| (p, h)).collect::<Vec<_>>()
    );
}

/// Applies an insert to the writer and the reference alike.
fn insert(
    writer: &mut LpmWriter,
    routes: &mut BTreeMap<Prefix, NextHopId>,
    prefix: Prefix,
    next_hop: NextHopId,
) {
    let old = writer.insert(prefix, next_hop).unwrap();
    assert_eq!(old, routes.insert(prefix, next_hop));
}

fn remove(writer: &mut LpmWriter, routes: &mut BTreeMap<Prefix, NextHopId>, prefix: Prefix) {
    assert_eq!(writer.remove(prefix), Ok(routes.remove(&prefix).unwrap()));
}

#[test]
fn empty_table_has_no_route() {
    for config in LAYOUTS {
        let writer = writer(config);
        let lpm = writer.lpm();
        assert_eq!(lpm.lookup(0), None);
        assert_eq!(lpm.lookup(u32::MAX), None);
        let mut out = [0; 3];
        lpm.lookup_burst(&[1, 2, 3], &mut out);
        assert_eq!(out, [NO_ROUTE; 3]);
        assert!(writer.is_empty());
        assert_eq!(writer.tbl8_in_use(), 0);
    }
}

#[test]
fn nested_routes_insert_replace_remove() {
    for config in LAYOUTS {
        let mut w = writer(config);
        let mut routes = BTreeMap::new();
        let prefixes = [
            ("10.0.0.0/8", 8),
            ("10.1.0.0/16", 16),
            ("10.1.2.0/24", 24),
            ("10.1.2.128/25", 25),
            ("10.1.2.200/32", 32),
            ("10.1.2.0/31", 31),
            ("10.1.3.0/24", 124),
            ("10.1.64.0/18", 18),
        ];
        let addrs = |routes: &BTreeMap<Prefix, NextHopId>| {
            let mut a = edge_addresses(
                prefixes
                    .iter()
                    .map(|(s, _)| p(s))
                    .collect::<Vec<_>>()
                    .iter(),
            );
            a.extend(edge_addresses(routes.keys()));
            a
        };
        for (s, hop) in prefixes {
            insert(&mut w, &mut routes, p(s), nh(hop));
            check(&w, &routes, &addrs(&routes));
        }
        assert_eq!(w.lpm().lookup(ip("10.1.2.200")), Some(nh(32)));
        assert_eq!(w.lpm().lookup(ip("10.1.2.201")), Some(nh(25)));
        assert_eq!(w.lpm().lookup(ip("10.1.2.1")), Some(nh(31)));
        assert_eq!(w.lpm().lookup(ip("10.1.2.2")), Some(nh(24)));
        assert_eq!(w.lpm().lookup(ip("10.1.4.0")), Some(nh(16)));
        assert_eq!(w.lpm().lookup(ip("10.2.0.0")), Some(nh(8)));
        assert_eq!(w.lpm().lookup(ip("11.0.0.0")), None);
        // Replace returns the old next hop and changes only that route's addresses.
        for (s, hop) in prefixes {
            assert_eq!(w.insert(p(s), nh(hop + 1000)), Ok(Some(nh(hop))));
            routes.insert(p(s), nh(hop + 1000));
            check(&w, &routes, &addrs(&routes));
        }
        // Replacing with the same next hop is a no-op that still reports it.
        assert_eq!(w.insert(p("10.0.0.0/8"), nh(1008)), Ok(Some(nh(1008))));
        assert_eq!(w.get(p("10.1.2.0/24")), Some(nh(1024)));
        assert_eq!(w.get(p("10.1.2.0/23")), None);
        // Remove in an order that exercises covering restores at every level.
        for s in [
            "10.1.2.0/24",
            "10.1.2.200/32",
            "10.1.0.0/16",
            "10.1.2.128/25",
            "10.0.0.0/8",
            "10.1.64.0/18",
            "10.1.2.0/31",
            "10.1.3.0/24",
        ] {
            remove(&mut w, &mut routes, p(s));
            check(&w, &routes, &addrs(&routes));
        }
        assert!(w.is_empty());
        w.reclaim();
        assert_eq!(w.tbl8_in_use(), 0, "{config:?}");
    }
}

#[test]
fn default_route_insert_replace_remove() {
    for config in LAYOUTS {
        let mut w = writer(config);
        let mut routes = BTreeMap::new();
        let addrs = [0, 1, 0x7FFF_FFFF, 0x8000_0000, u32::MAX, ip("10.1.2.3")];
        insert(&mut w, &mut routes, Prefix::DEFAULT, nh(0));
        check(&w, &routes, &addrs);
        insert(&mut w, &mut routes, p("10.1.2.0/25"), nh(25));
        check(&w, &routes, &addrs);
        assert_eq!(w.insert(Prefix::DEFAULT, nh(7)), Ok(Some(nh(0))));
        routes.insert(Prefix::DEFAULT, nh(7));
        check(&w, &routes, &addrs);
        remove(&mut w, &mut routes, Prefix::DEFAULT);
        check(&w, &routes, &addrs);
        assert_eq!(w.lpm().lookup(ip("10.1.2.3")), Some(nh(25)));
        assert_eq!(w.lpm().lookup(ip("10.1.2.129")), None);
        insert(&mut w, &mut routes, Prefix::DEFAULT, nh(1));
        remove(&mut w, &mut routes, p("10.1.2.0/25"));
        check(&w, &routes, &addrs);
        assert_eq!(w.lpm().lookup(ip("10.1.2.3")), Some(nh(1)));
        w.reclaim();
        assert_eq!(w.tbl8_in_use(), 0);
    }
}

#[test]
fn slash_32_at_the_ends_of_the_address_space() {
    for config in LAYOUTS {
        let mut w = writer(config);
        let mut routes = BTreeMap::new();
        for (s, hop) in [
            ("0.0.0.0/32", 1),
            ("255.255.255.255/32", 2),
            ("0.0.0.0/1", 3),
        ] {
            insert(&mut w, &mut routes, p(s), nh(hop));
        }
        check(
            &w,
            &routes,
            &[0, 1, u32::MAX, u32::MAX - 1, 0x7FFF_FFFF, 0x8000_0000],
        );
    }
}

#[test]
fn removing_a_long_route_collapses_its_group() {
    // (layout, groups a /25 takes: one level, or two of which the /24 needs one)
    for (config, groups) in [(LAYOUTS[0], 1), (LAYOUTS[1], 2)] {
        let mut w = writer(config);
        w.insert(p("10.1.2.0/24"), nh(24)).unwrap();
        assert_eq!(w.tbl8_in_use(), groups - 1);
        w.insert(p("10.1.2.128/25"), nh(25)).unwrap();
        assert_eq!(w.tbl8_in_use(), groups);
        w.insert(p("10.1.2.129/32"), nh(32)).unwrap();
        assert_eq!(w.tbl8_in_use(), groups);
        w.remove(p("10.1.2.129/32")).unwrap();
        // The /25 still needs the group.
        assert_eq!(w.tbl8_retired(), 0);
        w.remove(p("10.1.2.128/25")).unwrap();
        // The /25's group folds back; in the 16-bit layout the /24 keeps its level-1 group.
        assert_eq!(w.tbl8_retired(), 1);
        let lpm = Arc::clone(w.lpm());
        let root = lpm.root_slice();
        let slot = slot_index(ip("10.1.2.0"), 0, config.root_bits);
        let entry = root[slot].load(Ordering::Relaxed);
        if config.root_bits == 24 {
            assert_eq!(entry, route_entry(nh(24), 24));
        } else {
            assert!(is_extended(entry));
            let level1 = w.lpm().group(entry & VALUE_MASK);
            assert_eq!(level1[2].load(Ordering::Relaxed), route_entry(nh(24), 24));
        }
        assert_eq!(w.lpm().lookup(ip("10.1.2.200")), Some(nh(24)));
        // No reader: the retired groups come back at once.
        assert_eq!(w.reclaim(), 1);
        assert_eq!(w.tbl8_retired(), 0);
        w.remove(p("10.1.2.0/24")).unwrap();
        assert_eq!(w.tbl8_retired(), groups - 1);
        w.reclaim();
        assert_eq!(w.tbl8_in_use(), 0);
        assert_eq!(w.lpm().lookup(ip("10.1.2.200")), None);
        assert_eq!(root[slot].load(Ordering::Relaxed), INVALID);
    }
}

#[test]
fn group_of_two_halves_with_one_next_hop_is_not_collapsed() {
    for config in LAYOUTS {
        let mut w = writer(config);
        let mut routes = BTreeMap::new();
        insert(&mut w, &mut routes, p("10.1.2.0/25"), nh(5));
        insert(&mut w, &mut routes, p("10.1.2.128/25"), nh(5));
        let in_use = w.tbl8_in_use();
        assert!(in_use > 0);
        // Every entry of the group is the same next hop, but the depth (25) is not the slot's:
        // folding it would lose the routes.
        remove(&mut w, &mut routes, p("10.1.2.0/25"));
        check(&w, &routes, &edge_addresses([p("10.1.2.0/24")].iter()));
        assert_eq!(w.tbl8_retired(), 0);
        remove(&mut w, &mut routes, p("10.1.2.128/25"));
        assert_eq!(w.tbl8_retired(), in_use);
    }
}

#[test]
fn short_route_updates_entries_inside_groups() {
    for config in LAYOUTS {
        let mut w = writer(config);
        let mut routes = BTreeMap::new();
        insert(&mut w, &mut routes, p("10.1.2.128/25"), nh(25));
        insert(&mut w, &mut routes, p("10.1.2.64/26"), nh(26));
        insert(&mut w, &mut routes, p("10.0.0.0/8"), nh(8));
        insert(&mut w, &mut routes, p("10.1.0.0/16"), nh(16));
        insert(&mut w, &mut routes, p("10.1.2.0/23"), nh(23));
        let addrs = edge_addresses(routes.keys());
        check(&w, &routes, &addrs);
        assert_eq!(w.lpm().lookup(ip("10.1.2.0")), Some(nh(23)));
        remove(&mut w, &mut routes, p("10.1.2.0/23"));
        check(&w, &routes, &addrs);
        assert_eq!(w.lpm().lookup(ip("10.1.2.0")), Some(nh(16)));
        remove(&mut w, &mut routes, p("10.1.0.0/16"));
        remove(&mut w, &mut routes, p("10.0.0.0/8"));
        check(&w, &routes, &addrs);
        assert_eq!(w.lpm().lookup(ip("10.1.2.0")), None);
    }
}

#[test]
fn tbl8_exhaustion_leaves_the_table_unchanged() {
    // 24-bit: one group per /24 with longer routes.
    let mut w = writer(LpmConfig::root24(2));
    let mut routes = BTreeMap::new();
    insert(&mut w, &mut routes, p("10.0.0.0/8"), nh(8));
    insert(&mut w, &mut routes, p("10.0.1.0/25"), nh(1));
    insert(&mut w, &mut routes, p("10.0.2.0/25"), nh(2));
    // Same group: still fits.
    insert(&mut w, &mut routes, p("10.0.2.128/26"), nh(3));
    let err = w.insert(p("10.0.3.0/25"), nh(4)).unwrap_err();
    assert_eq!(
        err,
        LpmError::Tbl8Exhausted {
            prefix: p("10.0.3.0/25"),
            capacity: 2
        }
    );
    assert!(err.to_string().contains("10.0.3.0/25"));
    let mut addrs = edge_addresses(routes.keys());
    addrs.extend(edge_addresses([p("10.0.3.0/25")].iter()));
    check(&w, &routes, &addrs);
    assert_eq!(w.get(p("10.0.3.0/25")), None);
    // Replacing an existing long route needs no group.
    insert(&mut w, &mut routes, p("10.0.1.0/25"), nh(11));
    // Freeing a group makes room again.
    remove(&mut w, &mut routes, p("10.0.1.0/25"));
    insert(&mut w, &mut routes, p("10.0.3.0/25"), nh(4));
    check(&w, &routes, &addrs);

    // 16-bit: a /25 under a /16 with no group needs two groups; with one free, it fails whole.
    let mut w = writer(LpmConfig::root16(3));
    let mut routes = BTreeMap::new();
    insert(&mut w, &mut routes, p("10.1.2.0/25"), nh(1));
    assert_eq!(w.tbl8_in_use(), 2);
    assert!(matches!(
        w.insert(p("10.2.2.0/25"), nh(2)),
        Err(LpmError::Tbl8Exhausted { .. })
    ));
    // A /20 in another /16 needs only the level-1 group.
    insert(&mut w, &mut routes, p("10.2.16.0/20"), nh(3));
    assert_eq!(w.tbl8_in_use(), 3);
    // A /25 under the existing level-1 group of 10.1/16 needs one more: none left.
    assert!(matches!(
        w.insert(p("10.1.9.0/25"), nh(4)),
        Err(LpmError::Tbl8Exhausted { .. })
    ));
    let mut addrs = edge_addresses(routes.keys());
    addrs.extend(edge_addresses([p("10.2.2.0/25"), p("10.1.9.0/25")].iter()));
    check(&w, &routes, &addrs);
    assert_eq!(w.tbl8_capacity(), 3);
}

#[test]
fn zero_groups_accept_short_routes_only() {
    for config in [LpmConfig::root24(0), LpmConfig::root16(0)] {
        let mut w = writer(config);
        w.insert(p("10.0.0.0/16"), nh(1)).unwrap();
        let long = if config.root_bits == 24 {
            "10.0.0.0/25"
        } else {
            "10.0.0.0/17"
        };
        assert!(matches!(
            w.insert(p(long), nh(2)),
            Err(LpmError::Tbl8Exhausted { .. })
        ));
        assert_eq!(w.lpm().memory_regions().count(), 1);
    }
}

#[test]
fn remove_of_an_absent_route_is_not_found() {
    let mut w = writer(LAYOUTS[0]);
    assert_eq!(
        w.remove(p("10.0.0.0/8")),
        Err(LpmError::NotFound {
            prefix: p("10.0.0.0/8")
        })
    );
    w.insert(p("10.0.0.0/8"), nh(1)).unwrap();
    assert!(w.remove(p("10.0.0.0/9")).is_err());
    assert_eq!(w.len(), 1);
}

#[test]
fn next_hop_range() {
    assert_eq!(
        NextHopId::new(NextHopId::MAX).map(NextHopId::index),
        Some(0xFF_FFFF)
    );
    assert_eq!(NextHopId::new(NextHopId::MAX + 1), None);
    let mut w = writer(LAYOUTS[1]);
    w.insert(p("1.0.0.0/8"), nh(NextHopId::MAX)).unwrap();
    assert_eq!(w.lpm().lookup(ip("1.2.3.4")), Some(nh(NextHopId::MAX)));
    assert_eq!(nh(5).to_string(), "5");
}

#[test]
fn config_is_validated_and_memory_is_reported() {
    let qsbr = Arc::new(Qsbr::new(1));
    assert_eq!(
        LpmWriter::new(
            LpmConfig {
                root_bits: 20,
                tbl8_groups: 1
            },
            Arc::clone(&qsbr)
        )
        .unwrap_err(),
        LpmError::InvalidRootBits { root_bits: 20 }
    );
    assert!(matches!(
        LpmConfig::root24(TBL8_GROUPS_MAX + 1).validate(),
        Err(LpmError::Tbl8GroupsOutOfRange { .. })
    ));
    assert!(LpmConfig::root24(TBL8_GROUPS_MAX).validate().is_ok());
    for (config, root_bytes) in [
        (LpmConfig::root24(16), 64 << 20),
        (LpmConfig::root16(16), 256 << 10),
    ] {
        let w = LpmWriter::new(config, Arc::clone(&qsbr)).unwrap();
        let regions: Vec<_> = w.lpm().memory_regions().collect();
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].1, root_bytes);
        assert_eq!(regions[1].1, 16 * 1024);
        assert_eq!(config.memory_bytes(), root_bytes + 16 * 1024);
        assert_ne!(regions[0].0, 0);
        assert_eq!(w.lpm().config(), config);
    }
    let json = serde_json::to_string(&LpmConfig::root16(8)).unwrap();
    assert_eq!(json, r#"{"root_bits":16,"tbl8_groups":8}"#);
}

#[test]
fn construction_does_not_touch_the_table() {
    // A zeroed allocation of 64 MiB is a fresh mapping: microseconds, even unoptimised. Writing
    // every entry would take tens of milliseconds at least. The bound is loose for shared CI.
    let start = std::time::Instant::now();
    let w = writer(LpmConfig::root24(1024));
    let elapsed = start.elapsed();
    assert!(elapsed.as_millis() < 20, "{elapsed:?}");
    assert_eq!(w.lpm().lookup(0x0102_0304), None);
}

#[test]
fn burst_matches_single_lookups_for_any_length() {
    let routes = testgen::realistic_routes(3, 20_000);
    for config in [LpmConfig::root24(4096), LpmConfig::root16(24_000)] {
        let mut w = writer(config);
        for &(prefix, hop) in &routes {
            w.insert(prefix, hop).unwrap();
        }
        let mut addrs = testgen::random_addresses(5, 300);
        addrs.extend(testgen::random_addresses_in(6, &routes, 300));
        for len in [0, 1, 31, 32, 33, 64, 100, 600] {
            let addrs = &addrs[..len];
            // `out` may be longer than `addrs`; the tail is left alone.
            let mut out = vec![7; len + 3];
            w.lpm().lookup_burst(addrs, &mut out);
            for (i, &addr) in addrs.iter().enumerate() {
                assert_eq!(out[i], w.lpm().lookup(addr).map_or(NO_ROUTE, u32::from));
                let expected = w.rib().longest_match(addr).map(|(_, h)| h);
                assert_eq!(w.lpm().lookup(addr), expected);
            }
            assert_eq!(out[len..], [7, 7, 7]);
        }
    }
}

#[test]
#[should_panic]
fn burst_with_a_short_output_panics() {
    let w = writer(LAYOUTS[1]);
    let mut out = [0; 1];
    w.lpm().lookup_burst(&[1, 2], &mut out);
}

#[test]
fn lpm_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lpm>();
    fn assert_send<T: Send>() {}
    assert_send::<LpmWriter>();
}

/// A reader that is stuck (never reports) keeps a collapsed group from being reused; once it
/// reports, the group comes back. An offline reader holds nothing.
#[test]
fn stuck_reader_holds_group_reuse() {
    for config in [LpmConfig::root24(2), LpmConfig::root16(4)] {
        let qsbr = Arc::new(Qsbr::new(2));
        let mut w = LpmWriter::new(config, Arc::clone(&qsbr)).unwrap();
        let reader = qsbr.register().unwrap();
        w.insert(p("10.0.0.0/25"), nh(1)).unwrap();
        let per_route = w.tbl8_in_use();
        w.remove(p("10.0.0.0/25")).unwrap();
        assert_eq!(w.tbl8_retired(), per_route);
        w.insert(p("10.1.0.0/25"), nh(2)).unwrap();
        assert!(matches!(
            w.insert(p("10.2.0.0/25"), nh(3)),
            Err(LpmError::Tbl8Exhausted { .. })
        ));
        assert_eq!(w.reclaim(), 0);
        reader.quiescent();
        w.insert(p("10.2.0.0/25"), nh(3)).unwrap();
        assert_eq!(w.tbl8_retired(), 0);
        // Offline: retirement is immediate.
        reader.offline();
        w.remove(p("10.2.0.0/25")).unwrap();
        assert_eq!(w.reclaim(), per_route as usize);
        drop(reader);
    }
}

/// A reader thread follows a group pointer, then stalls before reading the group. The writer
/// collapses that group and tries to reuse it while the reader is stalled: it must not get it,
/// and the reader still reads the group's last values. After the reader's quiescent report the
/// group is reused.
#[test]
fn group_is_not_reused_under_a_stalled_reader() {
    let qsbr = Arc::new(Qsbr::new(2));
    let mut w = LpmWriter::new(LpmConfig::root24(1), Arc::clone(&qsbr)).unwrap();
    w.insert(p("10.0.0.0/24"), nh(24)).unwrap();
    w.insert(p("10.0.0.128/25"), nh(25)).unwrap();
    let lpm = Arc::clone(w.lpm());
    let reader = qsbr.register().unwrap();
    let followed = Arc::new(Barrier::new(2));
    let collapsed = Arc::new(Barrier::new(2));
    let reported = Arc::new(Barrier::new(2));
    // The reader thread asserts nothing before the last barrier (a panic there would leave the
    // test waiting forever); it returns what it read and the test checks it after the join.
    let handle = {
        let (followed, collapsed, reported) = (
            Arc::clone(&followed),
            Arc::clone(&collapsed),
            Arc::clone(&reported),
        );
        thread::spawn(move || {
            let addr = ip("10.0.0.200");
            let entry = lpm.root_slice()[(addr >> 8) as usize].load(Ordering::Acquire);
            followed.wait();
            collapsed.wait();
            // The writer has unpublished the group and tried to reuse it by now.
            let value = is_extended(entry).then(|| decode(load_tbl8(&lpm.tbl8, entry, addr)));
            reader.quiescent();
            reported.wait();
            value
        })
    };
    followed.wait();
    w.remove(p("10.0.0.128/25"))
        .unwrap_or_else(|e| panic!("{e}"));
    let retired = w.tbl8_retired();
    // The only group is retired: a new long route in another /24 must wait.
    let early = w.insert(p("10.0.9.0/25"), nh(9));
    collapsed.wait();
    reported.wait();
    let value = handle.join().unwrap();
    assert_eq!(retired, 1);
    assert!(
        matches!(early, Err(LpmError::Tbl8Exhausted { .. })),
        "{early:?}"
    );
    // The group still held its values: the /25's, or the /24's that replaced them on removal.
    assert!(matches!(value, Some(24 | 25)), "{value:?}");
    w.insert(p("10.0.9.0/25"), nh(9)).unwrap();
    assert_eq!(w.lpm().lookup(ip("10.0.9.1")), Some(nh(9)));
    assert_eq!(w.lpm().lookup(ip("10.0.0.200")), Some(nh(24)));
}

/// Readers look up continuously while the writer inserts, replaces and removes routes with a
/// distinct next hop per (prefix, version). Every result must be the base route's or a version
/// of a churned prefix that contains the address and was already written. The table has few
/// groups, so the writer depends on recycling them.
#[test]
fn concurrent_readers_see_only_valid_next_hops() {
    for config in [LpmConfig::root24(10), LpmConfig::root16(12)] {
        concurrent_churn(config, 20_000);
    }
}

fn concurrent_churn(config: LpmConfig, updates: u32) {
    const READERS: usize = 2;
    const VERSION_BITS: u32 = 12;
    const BASE: u32 = NextHopId::MAX;
    let base_prefix = p("10.0.0.0/8");
    let mut rng = SplitMix64::new(11);
    // Churned prefixes inside 10.0.0.0/16, distinct: 16 of lengths 17..=24 anywhere, and 32 of
    // lengths 25..=32 in 8 /24s, so that at most 8 (+1) groups are live at once and groups empty
    // out (and are recycled) often.
    let mut churned: Vec<Prefix> = Vec::new();
    while churned.len() < 48 {
        let prefix = if churned.len() < 16 {
            Prefix::containing(
                0x0A00_0000 | (rng.next_u32() & 0xFFFF),
                17 + rng.below(8) as u8,
            )
        } else {
            let slash24 = 0x0A00_0000 | (rng.below(8) * 0x1300);
            Prefix::containing(slash24 | (rng.next_u32() & 0xFF), 25 + rng.below(8) as u8)
        };
        if !churned.contains(&prefix) {
            churned.push(prefix);
        }
    }
    let churned = Arc::new(churned);
    let latest: Arc<Vec<AtomicU32>> =
        Arc::new((0..churned.len()).map(|_| AtomicU32::new(0)).collect());
    let qsbr = Arc::new(Qsbr::new(READERS));
    let mut w = LpmWriter::new(config, Arc::clone(&qsbr)).unwrap();
    w.insert(base_prefix, nh(BASE)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let reader = qsbr.register().unwrap();
            let lpm = Arc::clone(w.lpm());
            let (churned, latest, stop, lookups) = (
                Arc::clone(&churned),
                Arc::clone(&latest),
                Arc::clone(&stop),
                Arc::clone(&lookups),
            );
            thread::spawn(move || {
                let mut rng = SplitMix64::new(100 + r as u64);
                let mut addrs = [0u32; 64];
                let mut out = [0u32; 64];
                let verify = |addr: u32, hop: u32| {
                    assert_ne!(hop, NO_ROUTE, "10/8 is always routed");
                    if hop == BASE {
                        return;
                    }
                    let index = (hop >> VERSION_BITS) as usize;
                    let version = hop & ((1 << VERSION_BITS) - 1);
                    assert!(index < churned.len(), "garbage next hop {hop:#x}");
                    assert!(
                        churned[index].contains(addr),
                        "{hop:#x}: {} does not contain {addr:#x}",
                        churned[index]
                    );
                    assert!(
                        version <= latest[index].load(Ordering::Acquire),
                        "future version"
                    );
                };
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for a in addrs.iter_mut() {
                        // Mostly inside churned prefixes, some anywhere in 10.0/16.
                        let prefix = churned[rng.below(churned.len() as u32) as usize];
                        *a = if rng.below(4) == 0 {
                            0x0A00_0000 | (rng.next_u32() & 0xFFFF)
                        } else {
                            prefix.first() | (rng.next_u32() & !prefix.mask())
                        };
                    }
                    lpm.lookup_burst(&addrs, &mut out);
                    for (&addr, &hop) in addrs.iter().zip(&out) {
                        verify(addr, hop);
                    }
                    for &addr in &addrs[..8] {
                        verify(addr, lpm.lookup(addr).map_or(NO_ROUTE, u32::from));
                    }
                    done += 72;
                    reader.quiescent();
                }
                lookups.fetch_add(done, Ordering::Relaxed);
            })
        })
        .collect();

    let mut present = vec![false; churned.len()];
    let mut reclaimed = 0usize;
    let mut exhausted = 0u32;
    let mut applied = 0u32;
    while applied < updates {
        reclaimed += w.reclaim();
        let index = rng.below(churned.len() as u32) as usize;
        let prefix = churned[index];
        if present[index] && rng.below(2) == 0 {
            w.remove(prefix).unwrap();
            present[index] = false;
        } else {
            let v = latest[index].load(Ordering::Relaxed) + 1;
            assert!(v < 1 << VERSION_BITS, "too many versions of one prefix");
            // Published before the route, so a reader that sees the route sees the version.
            latest[index].store(v, Ordering::Release);
            let hop = nh(((index as u32) << VERSION_BITS) | v);
            match w.insert(prefix, hop) {
                Ok(_) => present[index] = true,
                Err(LpmError::Tbl8Exhausted { .. }) => {
                    exhausted += 1;
                    thread::yield_now();
                    continue;
                }
                Err(e) => panic!("{e}"),
            }
        }
        applied += 1;
        if applied % 64 == 0 {
            thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // Every group went through the retire/reuse cycle several times.
    assert!(
        reclaimed > 3 * config.tbl8_groups as usize,
        "{config:?}: reclaimed {reclaimed}, exhausted {exhausted}"
    );
    assert!(lookups.load(Ordering::Relaxed) > 0);
    // Final state is exact.
    let mut routes: BTreeMap<Prefix, NextHopId> = w.iter().collect();
    assert_eq!(routes.remove(&base_prefix), Some(nh(BASE)));
    assert_eq!(routes.len(), present.iter().filter(|&&x| x).count());
    routes.insert(base_prefix, nh(BASE));
    check(&w, &routes, &edge_addresses(churned.iter()));
}

/// Generated operations for the property tests.
#[derive(Debug, Clone)]
enum Op {
    Insert(Prefix, u32),
    /// Removes the route at this index (modulo the count) of the current routes.
    Remove(usize),
    /// Removes a prefix that may not be present.
    RemoveAny(Prefix),
}

/// Prefixes clustered in a few regions so that they nest and overlap.
fn prefix_strategy(len_min: u8) -> impl Strategy<Value = Prefix> {
    const BASES: [u32; 4] = [0x0A00_0000, 0x0A01_0000, 0xC0A8_0000, 0xFFFF_0000];
    (
        0..BASES.len(),
        any::<u32>(),
        prop_oneof![
            4 => 24u8..=32,
            3 => 16u8..=24,
            1 => len_min..=16,
        ],
        0u32..3,
    )
        .prop_map(|(base, noise, len, spread)| {
            // Narrow spreads keep routes in the same /24 or /16, so groups are shared.
            let noise = noise & [0xFF, 0xFFFF, 0x00FF_FFFF][spread as usize];
            Prefix::containing(BASES[base] ^ noise, len)
        })
}

fn op_strategy(len_min: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (prefix_strategy(len_min), 0u32..16).prop_map(|(p, h)| Op::Insert(p, h)),
        3 => any::<usize>().prop_map(Op::Remove),
        1 => prefix_strategy(len_min).prop_map(Op::RemoveAny),
    ]
}

fn run_ops(config: LpmConfig, ops: &[Op], probes: &[u32]) {
    let mut w = writer(config);
    let mut routes: BTreeMap<Prefix, NextHopId> = BTreeMap::new();
    let mut addrs: Vec<u32> = probes.to_vec();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Insert(prefix, hop) => {
                addrs.extend(edge_addresses([prefix].iter()));
                match w.insert(prefix, nh(hop)) {
                    Ok(old) => assert_eq!(old, routes.insert(prefix, nh(hop))),
                    // The table must be unchanged; the check below verifies it.
                    Err(LpmError::Tbl8Exhausted { .. }) => assert!(!routes.contains_key(&prefix)),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Remove(index) => {
                if let Some(&prefix) = routes.keys().nth(index % routes.len().max(1)) {
                    remove(&mut w, &mut routes, prefix);
                }
            }
            Op::RemoveAny(prefix) => {
                let expected = routes.remove(&prefix).ok_or(LpmError::NotFound { prefix });
                assert_eq!(w.remove(prefix), expected);
            }
        }
        if i % 8 == 7 {
            check(&w, &routes, &addrs);
        }
    }
    check(&w, &routes, &addrs);
    // Removing everything leaves no group in use and an empty table.
    let prefixes: Vec<Prefix> = routes.keys().copied().collect();
    for prefix in prefixes {
        remove(&mut w, &mut routes, prefix);
    }
    w.reclaim();
    assert_eq!(w.tbl8_in_use(), 0);
    check(&w, &routes, &addrs);
    if config.root_bits == ROOT_BITS_16 {
        assert!(w
            .lpm()
            .root_slice()
            .iter()
            .all(|e| e.load(Ordering::Relaxed) == INVALID));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn root24_matches_linear_scan(
        ops in prop::collection::vec(op_strategy(8), 1..60),
        probes in prop::collection::vec(any::<u32>(), 0..32),
    ) {
        // Few groups, so that exhaustion and recycling happen too.
        run_ops(LpmConfig::root24(6), &ops, &probes);
    }

    #[test]
    fn root16_matches_linear_scan(
        ops in prop::collection::vec(op_strategy(0), 1..60),
        probes in prop::collection::vec(any::<u32>(), 0..32),
    ) {
        run_ops(LpmConfig::root16(10), &ops, &probes);
    }
}

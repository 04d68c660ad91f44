//! Two readers under route churn, as two workers read one router's table while the control
//! thread changes it: two threads look up continuously and report a quiescent state after
//! every burst, while the writer adds, replaces and removes routes. The routes are short
//! prefixes replaced in place (a /8 rewrites 256 root entries of the 16-bit layout, 65,536 of
//! the 24-bit one, while the readers read them) and long ones that need tbl8 groups, which the
//! writer gets back only through QSBR: the tables have a few groups, so the churn goes on only
//! if retired groups are really reclaimed.
//!
//! Every next hop names the route and the version that wrote it, so a reader checks each
//! result: a route that contains the address, in a version that was already published (never
//! garbage, never the contents of a reused group). Halfway, one reader goes idle the way a
//! worker does (offline, still registered): the writer's reclamation must go on with the other
//! reader alone, and the idle one must not be waited for.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use router_core::ids::NextHopId;
use router_core::lpm::testgen::SplitMix64;
use router_core::lpm::{LpmConfig, LpmError, LpmWriter, Prefix, NO_ROUTE};
use router_core::qsbr::{Qsbr, QsbrReader};

/// Bits of a next hop that hold the version; the bits above hold the route's index + 1.
const VERSION_BITS: u32 = 12;

/// The whole test must end well within this, stalls of a shared machine included: the writer
/// never waits for a reader, so only a hang would come near it.
const DEADLINE: Duration = Duration::from_secs(120);

/// The routes the writer churns, and the newest version of each it has published.
struct Routes {
    prefixes: Vec<Prefix>,
    latest: Vec<AtomicU32>,
}

impl Routes {
    /// Short prefixes of 10/8 (10/8 itself always present, replaced in place) and long ones
    /// in eight /24s (each /24 holding a long route needs a tbl8 group, a /17../24 one more
    /// in the 16-bit layout).
    fn new() -> Routes {
        let mut rng = SplitMix64::new(15);
        let mut prefixes: Vec<Prefix> = ["10.0.0.0/8", "10.0.0.0/9", "10.0.0.0/12", "10.0.0.0/16"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        while prefixes.len() < 28 {
            let slash24 = 0x0A00_0000 | (rng.below(8) << 8);
            let p = if prefixes.len() < 12 {
                Prefix::containing(slash24, 17 + rng.below(8) as u8)
            } else {
                Prefix::containing(slash24 | (rng.next_u32() & 0xFF), 25 + rng.below(8) as u8)
            };
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
        let latest = prefixes.iter().map(|_| AtomicU32::new(0)).collect();
        Routes { prefixes, latest }
    }

    /// The next hop of version `version` of route `index`.
    fn hop(index: usize, version: u32) -> NextHopId {
        NextHopId::new(((index as u32 + 1) << VERSION_BITS) | version).unwrap()
    }

    /// Why `hop` cannot be the answer for `addr`, if it cannot.
    fn invalid(&self, addr: u32, hop: u32) -> Option<String> {
        if hop == NO_ROUTE {
            return Some(format!("{addr:#010x}: no route, but 10/8 is never removed"));
        }
        let index = (hop >> VERSION_BITS) as usize;
        let version = hop & ((1 << VERSION_BITS) - 1);
        let Some(prefix) = index.checked_sub(1).and_then(|i| self.prefixes.get(i)) else {
            return Some(format!("{addr:#010x}: garbage next hop {hop:#x}"));
        };
        if !prefix.contains(addr) {
            return Some(format!("{addr:#010x}: {hop:#x} is {prefix}'s"));
        }
        let latest = self.latest[index - 1].load(Ordering::Acquire);
        if version == 0 || version > latest {
            return Some(format!(
                "{addr:#010x}: {prefix} version {version}, latest {latest}"
            ));
        }
        None
    }

    /// An address under a random route, mostly, or anywhere in 10.0.0.0/16.
    fn address(&self, rng: &mut SplitMix64) -> u32 {
        let prefix = self.prefixes[rng.below(self.prefixes.len() as u32) as usize];
        if rng.below(4) == 0 {
            0x0A00_0000 | (rng.next_u32() & 0xFFFF)
        } else {
            prefix.first() | (rng.next_u32() & !prefix.mask())
        }
    }
}

/// What the readers share with the test: stop, the idle request for reader 1, and what each
/// reader did.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Reader 1 goes offline (idle) while this is set, and comes back when it is cleared.
    idle: AtomicBool,
    /// Reader 1 is offline now.
    idle_seen: AtomicBool,
    lookups: [AtomicU64; 2],
    quiescent_reports: [AtomicU64; 2],
    first_error: Mutex<Option<String>>,
}

/// Reader `r`: bursts of 64 lookups, each result checked, a quiescent report after each burst
/// (a worker's poll loop). It records the first wrong result and goes on, so that the writer
/// never waits on a reader that stopped.
fn reader(r: usize, lpm: Arc<router_core::lpm::Lpm>, q: QsbrReader, routes: &Routes, sh: &Shared) {
    let mut rng = SplitMix64::new(100 + r as u64);
    let (mut addrs, mut out) = ([0u32; 64], [0u32; 64]);
    while !sh.stop.load(Ordering::Relaxed) {
        if r == 1 && sh.idle.load(Ordering::Acquire) {
            // What an idle worker does before it sleeps; still registered.
            q.offline();
            sh.idle_seen.store(true, Ordering::Release);
            while sh.idle.load(Ordering::Acquire) && !sh.stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
            }
            q.online();
            sh.idle_seen.store(false, Ordering::Release);
            continue;
        }
        for a in addrs.iter_mut() {
            *a = routes.address(&mut rng);
        }
        lpm.lookup_burst(&addrs, &mut out);
        if let Some(e) = addrs
            .iter()
            .zip(&out)
            .find_map(|(&a, &h)| routes.invalid(a, h))
        {
            let mut first = sh.first_error.lock().unwrap();
            if first.is_none() {
                *first = Some(format!("reader {r}: {e}"));
            }
        }
        sh.lookups[r].fetch_add(64, Ordering::Relaxed);
        q.quiescent();
        sh.quiescent_reports[r].fetch_add(1, Ordering::Relaxed);
    }
    q.offline();
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The writer's side: the table, which routes are in it, and what the churn cost.
struct Writer<'a> {
    w: LpmWriter,
    routes: &'a Routes,
    present: Vec<bool>,
    rng: SplitMix64,
    /// Inserts refused for want of a free group (the writer retries later: it never waits).
    exhausted: u64,
    /// Groups taken by inserts: more than the table has only if retired ones came back.
    groups_taken: u64,
    /// Groups retired by removals.
    groups_retired: u64,
}

impl Writer<'_> {
    /// One change: route 0 (10/8) and the other short ones are replaced in place; the
    /// long ones are added, replaced or removed.
    fn step(&mut self) {
        self.w.reclaim();
        let (in_use, retired) = (self.w.tbl8_in_use(), self.w.tbl8_retired());
        let index = self.rng.below(self.routes.prefixes.len() as u32) as usize;
        let prefix = self.routes.prefixes[index];
        if index > 0 && self.present[index] && self.rng.below(2) == 0 {
            self.w.remove(prefix).unwrap();
            self.present[index] = false;
            self.groups_retired += u64::from(self.w.tbl8_retired() - retired);
        } else {
            let version = self.routes.latest[index].load(Ordering::Relaxed) + 1;
            assert!(version < 1 << VERSION_BITS, "too many versions of {prefix}");
            // Published before the route, so that a reader that sees the route sees it.
            self.routes.latest[index].store(version, Ordering::Release);
            match self.w.insert(prefix, Routes::hop(index, version)) {
                Ok(_) => self.present[index] = true,
                Err(LpmError::Tbl8Exhausted { .. }) => self.exhausted += 1,
                Err(e) => panic!("{prefix}: {e}"),
            }
            self.groups_taken += u64::from(self.w.tbl8_in_use().saturating_sub(in_use));
        }
    }

    /// Reclaims until nothing is retired; fails past `deadline` (a reader that held the
    /// groups forever).
    fn drain(&mut self, deadline: Instant) {
        while self.w.tbl8_retired() > 0 {
            self.w.reclaim();
            assert!(Instant::now() < deadline, "retired groups never came back");
            thread::yield_now();
        }
    }

    /// At least `n` changes, and on until inserts have taken `groups` more groups (which
    /// needs retired groups back once the free ones are gone); fails past `deadline`, which
    /// only a reclamation that stalled would reach. A refused insert lets the readers run: on
    /// a loaded machine the writer is faster than their reports.
    fn churn(&mut self, n: u32, groups: u64, deadline: Instant) {
        let goal = self.groups_taken + groups;
        let mut done = 0u32;
        while done < n || self.groups_taken < goal {
            let refused = self.exhausted;
            self.step();
            done += 1;
            if self.exhausted > refused {
                thread::sleep(Duration::from_micros(50));
            }
            if done % 256 == 0 {
                assert!(
                    Instant::now() < deadline,
                    "reclamation stalled: {} of {goal} groups taken after {done} changes",
                    self.groups_taken
                );
            }
        }
    }
}

fn two_readers_under_churn(config: LpmConfig, changes: u32) {
    let deadline = Instant::now() + DEADLINE;
    let routes = Routes::new();
    let qsbr = Arc::new(Qsbr::new(2));
    let mut w = LpmWriter::new(config, Arc::clone(&qsbr)).unwrap();
    routes.latest[0].store(1, Ordering::Release);
    w.insert(routes.prefixes[0], Routes::hop(0, 1)).unwrap();
    let mut present = vec![false; routes.prefixes.len()];
    present[0] = true;
    let sh = Shared::default();
    let lpm = Arc::clone(w.lpm());
    thread::scope(|t| {
        // Stops the readers however the writer ends, a failed assertion included, so that the
        // scope's join never waits for them.
        let _stop = StopOnDrop(&sh.stop);
        for r in 0..2 {
            let (lpm, q) = (Arc::clone(&lpm), qsbr.register().unwrap());
            let (routes, sh) = (&routes, &sh);
            t.spawn(move || reader(r, lpm, q, routes, sh));
        }
        let mut writer = Writer {
            w,
            routes: &routes,
            present,
            rng: SplitMix64::new(7),
            exhausted: 0,
            groups_taken: 0,
            groups_retired: 0,
        };
        let groups = 3 * u64::from(config.tbl8_groups);
        writer.churn(changes, groups, deadline);
        let both = (writer.groups_taken, writer.groups_retired);

        // Reader 1 idles, registered but offline: reclamation goes on with reader 0 alone, to
        // the last retired group.
        sh.idle.store(true, Ordering::Release);
        while !sh.idle_seen.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "reader 1 never went idle");
            thread::yield_now();
        }
        let reports_idle = sh.quiescent_reports[1].load(Ordering::Relaxed);
        writer.churn(changes, groups, deadline);
        writer.drain(deadline);
        let alone = (writer.groups_taken - both.0, writer.groups_retired - both.1);
        assert_eq!(
            sh.quiescent_reports[1].load(Ordering::Relaxed),
            reports_idle,
            "an idle reader reports nothing"
        );
        sh.idle.store(false, Ordering::Release);
        writer.churn(changes / 4, 0, deadline);
        writer.drain(deadline);
        assert_reclaimed(config, &writer, both, alone);
    });
    if let Some(e) = sh.first_error.lock().unwrap().take() {
        panic!("{config:?}: {e}");
    }
    for r in 0..2 {
        let (lookups, reports) = (
            sh.lookups[r].load(Ordering::Relaxed),
            sh.quiescent_reports[r].load(Ordering::Relaxed),
        );
        assert!(
            lookups > 0 && reports > 0,
            "reader {r}: {lookups} lookups, {reports} quiescent reports"
        );
    }
}

/// After the churn (the retired groups all drained): inserts took many times the groups the
/// table has, with both readers and with one of them idle, which only reclamation allows; and
/// what is in use is what the routes left in the table need (a fresh table with the same
/// routes uses as many groups): nothing leaked.
fn assert_reclaimed(
    config: LpmConfig,
    writer: &Writer<'_>,
    (taken_both, retired_both): (u64, u64),
    (taken_alone, retired_alone): (u64, u64),
) {
    let capacity = u64::from(config.tbl8_groups);
    assert!(
        taken_both > 2 * capacity && taken_alone > 2 * capacity,
        "{config:?}: groups taken {taken_both} with two readers (retired {retired_both}), \
         {taken_alone} with one idle (retired {retired_alone}); capacity {capacity}, {} \
         inserts found no free group",
        writer.exhausted
    );
    assert_eq!(writer.w.tbl8_retired(), 0);
    let mut fresh = LpmWriter::new(config, Arc::new(Qsbr::new(1))).unwrap();
    for (prefix, hop) in writer.w.iter() {
        fresh.insert(prefix, hop).unwrap();
    }
    assert_eq!(
        writer.w.tbl8_in_use(),
        fresh.tbl8_in_use(),
        "{config:?}: groups leaked"
    );
}

#[test]
fn two_readers_see_only_published_routes_and_groups_are_reclaimed() {
    two_readers_under_churn(LpmConfig::root16(12), 8_000);
    two_readers_under_churn(LpmConfig::root24(10), 4_000);
}

/// The grace period waits for every online reader, and only for those: a group retired while
/// one reader is online but has not reported stays retired however often the other reports;
/// it comes back once both have, and at once when the silent one is idle (offline).
#[test]
fn a_retired_group_waits_for_both_readers_unless_one_is_idle() {
    for config in [LpmConfig::root16(4), LpmConfig::root24(2)] {
        let qsbr = Arc::new(Qsbr::new(2));
        let mut w = LpmWriter::new(config, Arc::clone(&qsbr)).unwrap();
        let (a, b) = (qsbr.register().unwrap(), qsbr.register().unwrap());
        let long: Prefix = "10.0.0.0/25".parse().unwrap();
        let hop = NextHopId::new(7).unwrap();
        w.insert(long, hop).unwrap();
        w.remove(long).unwrap();
        let retired = w.tbl8_retired() as usize;
        assert!(retired > 0, "{config:?}: a /25 needs a group");
        b.quiescent();
        assert_eq!(w.reclaim(), 0, "{config:?}: reader a has not reported");
        b.quiescent();
        assert_eq!(
            w.reclaim(),
            0,
            "{config:?}: reader a still has not reported"
        );
        a.quiescent();
        assert_eq!(w.reclaim(), retired, "{config:?}: both reported");

        a.offline();
        w.insert(long, hop).unwrap();
        w.remove(long).unwrap();
        b.quiescent();
        assert_eq!(w.reclaim(), retired, "{config:?}: reader a is idle");
        assert_eq!(w.tbl8_retired(), 0);
    }
}

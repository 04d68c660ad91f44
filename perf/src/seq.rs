//! Per-flow sequence tracking: in order, reordered, duplicated, in bounded memory.
//!
//! Each flow keeps the next sequence number it expects and a 64-bit window of which of the
//! last 64 sequence numbers below it arrived. A packet at or past the expected number moves the
//! window (the numbers it skipped are missing, for now); one below it is a duplicate if its bit
//! is set and a reordered packet otherwise; one more than [`WINDOW`] behind is counted as
//! `late` (reordered, or a duplicate the window has forgotten). Lost packets are what is left:
//! sent minus received distinct packets. Memory: 16 bytes per flow, whatever the run length.

use serde::{Deserialize, Serialize};

/// Sequence numbers a flow remembers below the highest one received.
pub const WINDOW: u32 = 64;

#[derive(Debug, Clone, Copy, Default)]
struct FlowState {
    /// The sequence number after the highest one received.
    next: u32,
    /// Bit `i` set: sequence number `next - 1 - i` was received.
    seen: u64,
}

/// The counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqCounts {
    /// Test packets received (duplicates included).
    pub received: u64,
    /// Packets that arrived after a packet of their flow with a higher sequence number.
    pub reordered: u64,
    /// Packets received a second time.
    pub duplicated: u64,
    /// Packets more than [`WINDOW`] behind their flow: reordered, or an old duplicate.
    pub late: u64,
}

impl SeqCounts {
    /// Distinct packets received (duplicates removed; late ones counted as distinct).
    pub fn distinct(&self) -> u64 {
        self.received - self.duplicated
    }
}

/// What one packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// At or after the next expected number (numbers skipped over are missing for now).
    InOrder,
    /// Behind the highest number received, not seen before.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Too far behind to tell.
    Late,
}

/// Sequence state of every flow of a run.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    flows: Vec<FlowState>,
    counts: SeqCounts,
}

impl SeqTracker {
    /// A tracker for flows `0..flows`.
    pub fn new(flows: usize) -> SeqTracker {
        SeqTracker {
            flows: vec![FlowState::default(); flows],
            counts: SeqCounts::default(),
        }
    }

    /// Forgets everything (a new trial).
    pub fn reset(&mut self) {
        self.flows.fill(FlowState::default());
        self.counts = SeqCounts::default();
    }

    /// Number of flows tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The counts so far.
    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// Accounts one packet of `flow` with sequence number `seq`; `None` (and nothing counted)
    /// for a flow number out of range.
    #[inline]
    pub fn record(&mut self, flow: usize, seq: u32) -> Option<Arrival> {
        let state = self.flows.get_mut(flow)?;
        self.counts.received += 1;
        // Distance from the expected number, modulo 2^32 (wraps are harmless).
        let ahead = seq.wrapping_sub(state.next);
        let arrival = if ahead < u32::MAX / 2 {
            let shift = ahead + 1;
            state.seen = if shift >= WINDOW {
                0
            } else {
                state.seen << shift
            };
            state.seen |= 1;
            state.next = seq.wrapping_add(1);
            Arrival::InOrder
        } else {
            let behind = state.next.wrapping_sub(1).wrapping_sub(seq);
            if behind >= WINDOW {
                self.counts.late += 1;
                Arrival::Late
            } else if state.seen & (1 << behind) != 0 {
                self.counts.duplicated += 1;
                Arrival::Duplicate
            } else {
                state.seen |= 1 << behind;
                self.counts.reordered += 1;
                Arrival::Reordered
            }
        };
        Some(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream() {
        let mut t = SeqTracker::new(2);
        for seq in 0..1000 {
            assert_eq!(t.record(seq as usize % 2, seq / 2), Some(Arrival::InOrder));
        }
        assert_eq!(
            t.counts(),
            SeqCounts {
                received: 1000,
                ..SeqCounts::default()
            }
        );
    }

    #[test]
    fn gaps_reorder_and_duplicates() {
        let mut t = SeqTracker::new(1);
        assert_eq!(t.record(0, 0), Some(Arrival::InOrder));
        assert_eq!(t.record(0, 3), Some(Arrival::InOrder));
        assert_eq!(t.record(0, 1), Some(Arrival::Reordered));
        assert_eq!(t.record(0, 1), Some(Arrival::Duplicate));
        assert_eq!(t.record(0, 3), Some(Arrival::Duplicate));
        assert_eq!(t.record(0, 200), Some(Arrival::InOrder));
        assert_eq!(t.record(0, 2), Some(Arrival::Late));
        assert_eq!(t.record(0, 199), Some(Arrival::Reordered));
        assert_eq!(t.record(1, 0), None);
        let c = t.counts();
        assert_eq!(
            (c.received, c.reordered, c.duplicated, c.late),
            (8, 2, 2, 1)
        );
        assert_eq!(c.distinct(), 6);
    }

    #[test]
    fn window_edge_and_wrap() {
        let mut t = SeqTracker::new(1);
        for seq in [0, 0x7fff_0000, 0xfff0_0000, u32::MAX - 1, 5] {
            assert_eq!(t.record(0, seq), Some(Arrival::InOrder), "{seq:#x}");
        }
        assert_eq!(
            t.record(0, u32::MAX),
            Some(Arrival::Reordered),
            "across the wrap"
        );
        t.reset();
        t.record(0, 0);
        t.record(0, 64);
        assert_eq!(t.record(0, 0), Some(Arrival::Late), "64 behind is outside");
        assert_eq!(
            t.record(0, 1),
            Some(Arrival::Reordered),
            "63 behind is inside"
        );
    }

    /// Against a naive model that remembers every number, on random permutations with
    /// duplicates, as long as nothing falls out of the window.
    #[test]
    fn matches_a_naive_model_within_the_window() {
        let mut rng = router_core::lpm::testgen::SplitMix64::new(5);
        for _ in 0..200 {
            let n = 300u32;
            let mut order: Vec<u32> = (0..n).collect();
            // Shuffles inside blocks of 20: every displacement stays below the window.
            for block in order.chunks_mut(20) {
                for i in (1..block.len()).rev() {
                    let j = rng.below(i as u32 + 1) as usize;
                    block.swap(i, j);
                }
            }
            let mut extra = Vec::new();
            for (i, &s) in order.iter().enumerate() {
                extra.push(s);
                if rng.below(10) == 0 && i > 0 {
                    extra.push(order[i - 1]);
                }
            }
            let mut t = SeqTracker::new(1);
            let mut seen = std::collections::HashSet::new();
            let mut highest: Option<u32> = None;
            let (mut dups, mut reord) = (0, 0);
            for &s in &extra {
                let arrival = t.record(0, s).unwrap();
                let expect = if !seen.insert(s) {
                    dups += 1;
                    Arrival::Duplicate
                } else if highest.is_some_and(|h| s < h) {
                    reord += 1;
                    Arrival::Reordered
                } else {
                    Arrival::InOrder
                };
                highest = Some(highest.map_or(s, |h| h.max(s)));
                assert_eq!(arrival, expect, "seq {s}");
            }
            let c = t.counts();
            assert_eq!((c.duplicated, c.reordered, c.late), (dups, reord, 0));
            assert_eq!(c.distinct(), u64::from(n));
        }
    }
}

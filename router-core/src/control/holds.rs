//! Packets held while their next hop resolves.
//!
//! A packet punted because its neighbour is not resolved ([`PuntAction::Hold`]) waits in a
//! [`Holds`] queue of its next hop, up to `hold_max` packets each (the next are dropped, counted
//! as [`DropReason::HoldQueueFull`]). The control plane remembers which next hops have packets
//! waiting and reports, as [`HoldEvent`]s, what happens to them: the neighbour resolved (by ARP,
//! or because an instance port now has the address), resolution failed, or the next hop was
//! freed. [`Holds::settle`] turns each event into what to do with the queue: run the packets
//! through the engine again (resolved: they are forwarded; failed: the engine answers each with
//! ICMP host unreachable), or drop them, counted as [`DropReason::Stale`], when the next hop
//! they waited for no longer exists.
//!
//! The packet type is the caller's (the daemon holds mbufs with their input port); nothing here
//! touches packets.
//!
//! [`PuntAction::Hold`]: super::PuntAction::Hold

use std::collections::{HashMap, HashSet, VecDeque};

use super::ControlPlane;
use crate::ids::NextHopId;
use crate::reason::DropReason;

/// What happened to a next hop that packets are held for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldEvent {
    /// The neighbour resolved: the packets can be forwarded now.
    Resolved(NextHopId),
    /// The neighbour did not answer ARP.
    Failed(NextHopId),
    /// The next hop was freed (its port, interface or route went).
    Forgotten(NextHopId),
}

impl HoldEvent {
    pub fn next_hop(self) -> NextHopId {
        match self {
            HoldEvent::Resolved(nh) | HoldEvent::Failed(nh) | HoldEvent::Forgotten(nh) => nh,
        }
    }
}

/// What to do with the packets a [`HoldEvent`] releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Run each through the engine again.
    Reinject,
    /// Free each and count the reason.
    Drop(DropReason),
}

/// Packets held per next hop, at most `per_next_hop_max` each.
#[derive(Debug)]
pub struct Holds<P> {
    per_next_hop_max: usize,
    queues: HashMap<NextHopId, VecDeque<P>>,
    held: usize,
}

impl<P> Holds<P> {
    pub fn new(per_next_hop_max: usize) -> Self {
        Holds {
            per_next_hop_max,
            queues: HashMap::new(),
            held: 0,
        }
    }

    /// Holds `packet` for `nh`, or hands it back with the reason to drop it (the queue of `nh`
    /// is full).
    pub fn hold(&mut self, nh: NextHopId, packet: P) -> Result<(), (P, DropReason)> {
        let q = self.queues.entry(nh).or_default();
        if q.len() >= self.per_next_hop_max {
            return Err((packet, DropReason::HoldQueueFull));
        }
        q.push_back(packet);
        self.held += 1;
        Ok(())
    }

    /// The packets `event` releases, oldest first, and what to do with them; `None` when none
    /// were held for its next hop.
    pub fn settle(&mut self, event: HoldEvent) -> Option<(Settle, VecDeque<P>)> {
        let q = self.queues.remove(&event.next_hop())?;
        self.held -= q.len();
        let settle = match event {
            HoldEvent::Resolved(_) | HoldEvent::Failed(_) => Settle::Reinject,
            HoldEvent::Forgotten(_) => Settle::Drop(DropReason::Stale),
        };
        Some((settle, q))
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Takes every held packet (at shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = P> + '_ {
        self.held = 0;
        self.queues.drain().flat_map(|(_, q)| q)
    }
}

/// The next hops that packets are held for, and what happened to them since the events were
/// last taken. Only next hops with packets waiting are tracked, and each has at most one event
/// waiting (the latest), so both stay within the size of the next-hop table even if the events
/// are never taken.
#[derive(Debug, Default)]
pub(super) struct Waits {
    waiting: HashSet<NextHopId>,
    events: HashMap<NextHopId, HoldEvent>,
}

impl Waits {
    /// Packets are held for `nh`.
    pub fn wait(&mut self, nh: NextHopId) {
        self.waiting.insert(nh);
    }

    /// Reports `event` if packets wait for its next hop.
    pub fn report(&mut self, event: HoldEvent) {
        if self.waiting.remove(&event.next_hop()) {
            self.events.insert(event.next_hop(), event);
        }
    }

    /// The events, by next hop.
    fn take(&mut self) -> Vec<HoldEvent> {
        let mut events: Vec<_> = self.events.drain().map(|(_, e)| e).collect();
        events.sort_by_key(|e| e.next_hop());
        events
    }
}

impl ControlPlane {
    /// What happened, since the last call, to the next hops that packets were held for
    /// ([`super::PuntAction::Hold`]): hand each to [`Holds::settle`]. Call after every punt
    /// handled, change applied and [`ControlPlane::tick`].
    pub fn hold_events(&mut self) -> Vec<HoldEvent> {
        self.neighbors.waits.take()
    }

    /// Packets held per unresolved neighbour.
    pub fn hold_max(&self) -> usize {
        self.neighbors.resolver.config().hold_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::nh;

    /// A packet the tests can tell apart.
    #[derive(Debug, PartialEq, Eq)]
    struct Fake(u32);

    #[test]
    fn a_full_queue_hands_the_packet_back_to_drop() {
        let mut h = Holds::new(2);
        assert!(h.hold(nh(7), Fake(1)).is_ok());
        assert!(h.hold(nh(7), Fake(2)).is_ok());
        assert_eq!(
            h.hold(nh(7), Fake(3)),
            Err((Fake(3), DropReason::HoldQueueFull))
        );
        // Another next hop has its own queue.
        assert!(h.hold(nh(8), Fake(4)).is_ok());
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn resolution_releases_packets_in_order_and_failure_too() {
        let mut h = Holds::new(4);
        for i in 0..3 {
            h.hold(nh(7), Fake(i)).unwrap();
        }
        h.hold(nh(9), Fake(10)).unwrap();
        let (settle, q) = h.settle(HoldEvent::Resolved(nh(7))).unwrap();
        assert_eq!(settle, Settle::Reinject);
        assert_eq!(Vec::from(q), vec![Fake(0), Fake(1), Fake(2)]);
        assert_eq!(h.settle(HoldEvent::Resolved(nh(7))), None, "released once");
        // A failed neighbour's packets go through the engine again: it answers them with ICMP
        // host unreachable.
        let (settle, q) = h.settle(HoldEvent::Failed(nh(9))).unwrap();
        assert_eq!((settle, q.len()), (Settle::Reinject, 1));
        assert!(h.is_empty());
    }

    #[test]
    fn a_forgotten_next_hop_drops_its_packets_as_stale() {
        let mut h = Holds::new(4);
        h.hold(nh(5), Fake(1)).unwrap();
        let (settle, q) = h.settle(HoldEvent::Forgotten(nh(5))).unwrap();
        assert_eq!(settle, Settle::Drop(DropReason::Stale));
        assert_eq!(q.len(), 1);
        assert_eq!(h.settle(HoldEvent::Forgotten(nh(6))), None);
    }

    #[test]
    fn only_next_hops_waited_for_are_reported_once() {
        let mut w = Waits::default();
        w.report(HoldEvent::Resolved(nh(1)));
        w.wait(nh(2));
        w.report(HoldEvent::Resolved(nh(2)));
        w.report(HoldEvent::Failed(nh(2)));
        assert_eq!(w.take(), vec![HoldEvent::Resolved(nh(2))]);
        assert!(w.take().is_empty());
        // Waited for again before the event was taken: the latest fate counts.
        w.wait(nh(3));
        w.report(HoldEvent::Failed(nh(3)));
        w.wait(nh(3));
        w.report(HoldEvent::Forgotten(nh(3)));
        assert_eq!(w.take(), vec![HoldEvent::Forgotten(nh(3))]);
    }

    #[test]
    fn drain_takes_everything() {
        let mut h = Holds::new(4);
        h.hold(nh(1), Fake(1)).unwrap();
        h.hold(nh(2), Fake(2)).unwrap();
        assert_eq!(h.drain().count(), 2);
        assert!(h.is_empty());
    }
}

//! Fragmentation on the control thread (RFC 1812 section 5.2.6, RFC 791 section 3.2): the
//! datagrams the engine punted as too big for their next hop without DF, once the control
//! plane found the MTU their fragments must fit ([`PuntAction::Fragment`]).
//!
//! Each fragment becomes a frame of its own in a fresh packet buffer: the original frame's
//! Ethernet header (to the gateway MAC), then the fragment's datagram as
//! [`Fragmenter::emit`] writes it, with the original TTL. Each then goes through the engine
//! again, as if it had come in on the original port, so that routing, the TTL decrement, the
//! MAC rewrite, the DVR MAC and, toward a peer, the VXLAN encapsulation are the engine's own:
//! toward the fabric, the inner packet is fragmented and each fragment encapsulated, and the
//! outer packet is never fragmented. The original buffer is freed.
//!
//! It is bounded. A datagram becomes at most [`FRAGMENTS_MAX`] fragments; the control thread
//! builds at most [`FRAGMENT_BUDGET`] fragments per turn of its loop (the rest of the turn's
//! datagrams are dropped, counted as `fragment_budget_spent`), so that fragmenting never takes
//! the inject queue from ARP and the answers the control thread sends. It is all or nothing:
//! a receiver cannot reassemble a datagram with a fragment missing, so a datagram is dropped
//! whole, before any fragment is sent, when the pool has no buffer for one of its fragments
//! (`no_buffer`) or the inject queue no room for all of them (`tx_full`).
//!
//! [`PuntAction::Fragment`]: router_core::control::PuntAction::Fragment

use dpdk_bindings::Mbuf;
use lcore_workers::INJECT_QUEUE_CAPACITY;
use router_core::ids::PortId;
use router_core::reason::DropReason;
use router_core::wire::fragment::FRAGMENTS_MAX;
use router_core::wire::{self, Fragmenter, Ipv4Packet};

use super::control_thread::ControlThread;

/// Fragments the control thread builds per turn of its loop: a quarter of the inject queue,
/// which is also what it sends ARP requests and replies, ICMP answers and floods through.
pub(super) const FRAGMENT_BUDGET: usize = INJECT_QUEUE_CAPACITY / 4;

const ETH_LEN: usize = wire::ethernet::HEADER_LEN;

// A datagram of the most fragments fits one turn's budget.
const _: () = assert!(FRAGMENTS_MAX <= FRAGMENT_BUDGET);

impl ControlThread {
    /// Splits the datagram in `mbuf`, punted from `port`, into fragments of at most `mtu`
    /// bytes and runs each through the engine; `depth` counts the times the datagram went
    /// through the engine on the control thread already.
    pub(super) fn fragment(&mut self, mbuf: Mbuf, port: PortId, mtu: u16, depth: u32) {
        let frames = match self.fragment_frames(&mbuf, mtu) {
            Ok(frames) => frames,
            Err(reason) => return self.count_drop(reason),
        };
        drop(mbuf);
        let counters = self.worker.counters();
        counters.fragmented_packets.inc();
        counters.fragments_created.add(frames.len() as u64);
        for frame in frames {
            self.reinject(frame, port, depth + 1);
        }
    }

    /// The frames of the fragments of the datagram in `mbuf`, each in a buffer of its own, or
    /// why none is sent.
    fn fragment_frames(&mut self, mbuf: &Mbuf, mtu: u16) -> Result<Vec<Mbuf>, DropReason> {
        let frame = mbuf.data();
        let (eth, ip) = frame
            .split_at_checked(ETH_LEN)
            .ok_or(DropReason::FrameTruncated)?;
        let ip = Ipv4Packet::new_checked(ip).map_err(|_| DropReason::Ipv4Truncated)?;
        // The control plane planned the same split already: this one fails only if the
        // datagram changed meanwhile, which it cannot.
        let plan = Fragmenter::new(ip, usize::from(mtu))
            .map_err(|_| DropReason::FragmentationUnsupported)?;
        let count = plan.count();
        if count > self.fragment_budget {
            return Err(DropReason::FragmentBudgetSpent);
        }
        // Only the control thread pushes onto the inject queue, so its room only grows
        // until the fragments are sent.
        if self.inject.capacity() - self.inject.len() < count {
            return Err(DropReason::TxFull);
        }
        self.fragment_budget -= count;
        let mut frames = Vec::with_capacity(count);
        for k in 0..count {
            let mut m = Mbuf::alloc(&self.pool).map_err(|_| DropReason::NoBuffer)?;
            let len = ETH_LEN + plan.fragment(k).total_len();
            let out = m.append(len).map_err(|_| DropReason::NoBuffer)?;
            out[..ETH_LEN].copy_from_slice(eth);
            plan.emit(k, &mut out[ETH_LEN..]);
            frames.push(m);
        }
        Ok(frames)
    }
}

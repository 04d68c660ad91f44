//! Punted packets on the control thread: what the workers could not finish. The control plane
//! decides ([`ControlPlane::handle_punt`]); this module carries the decision out with the
//! packet buffers: it sends a reply, holds a packet until its neighbour resolves, runs a packet
//! through the engine again, or floods copies to the network's local ports and, VXLAN
//! encapsulated, to its peers. Everything the control thread sends goes out through worker 0's
//! inject queue.
//!
//! [`ControlPlane::handle_punt`]: router_core::control::ControlPlane::handle_punt

use std::collections::{HashMap, VecDeque};

use dpdk_bindings::Mbuf;
use lcore_workers::Punted;
use router_core::control::{Flood, PuntAction};
use router_core::engine::{DropReason, PacketBuf, PuntReason, Verdict};
use router_core::table::NextHopIndex;
use tracing::debug;

use super::control_thread::ControlThread;

/// Times a packet may go back through the engine on the control thread.
const REINJECT_DEPTH_MAX: u32 = 2;

impl ControlThread {
    /// Handles one punted packet; `depth` counts the times it went through the engine again.
    pub(super) fn handle(&mut self, p: Punted, depth: u32) {
        let Punted {
            mut mbuf,
            port,
            reason,
            ..
        } = p;
        let now = self.now();
        let mut solicits = Vec::new();
        let cp = &mut self.cp;
        let action = match with_packet(&mut mbuf, |pkt| {
            cp.handle_punt(pkt, port, reason, now, &mut solicits)
        }) {
            Ok(action) => action,
            Err(r) => return self.count_drop(r),
        };
        self.send_solicits(solicits);
        if reason == PuntReason::Arp {
            self.release_resolved();
        }
        match action {
            PuntAction::Reply(out) => self.send(out, mbuf),
            PuntAction::Drop(r) => self.count_drop(r),
            PuntAction::Hold(nh) => {
                if !self.holds.hold(nh, mbuf, port, self.cp.hold_max()) {
                    self.count_drop(DropReason::HoldQueueFull);
                }
            }
            PuntAction::Reinject => self.reinject(mbuf, port, depth),
            PuntAction::Flood(f) => self.flood(&mbuf, &f),
        }
    }

    /// Sends a copy of the frame to each local port of the flood, and one VXLAN-encapsulated
    /// copy to each peer.
    fn flood(&mut self, mbuf: &Mbuf, f: &Flood) {
        for &out in &f.ports {
            let Ok(mut c) = mbuf.copy(&self.pool) else {
                self.count_drop(DropReason::NoBuffer);
                continue;
            };
            if f.strip > 0 && c.adj(f.strip).is_err() {
                self.count_drop(DropReason::FrameTruncated);
                continue;
            }
            self.send(out, c);
        }
        for &peer in &f.peers {
            let Some(fabric) = self.cp.fabric_port() else {
                break;
            };
            self.ident = self.ident.wrapping_add(1);
            let Some(header) = self.cp.fabric_header(peer, f.vni, mbuf.data(), self.ident) else {
                self.count_drop(DropReason::NoFloodTarget);
                continue;
            };
            let Ok(mut c) = mbuf.copy(&self.pool) else {
                self.count_drop(DropReason::NoBuffer);
                continue;
            };
            match with_packet(&mut c, |pkt| router_core::engine::encapsulate(pkt, &header)) {
                Ok(true) => self.send(fabric, c),
                _ => self.count_drop(DropReason::NoHeadroom),
            }
        }
    }

    /// Runs a packet through the engine again (its next hop changed since it was punted).
    fn reinject(&mut self, mut mbuf: Mbuf, port: u16, depth: u32) {
        let now = self.now();
        let (engine, worker) = (&self.engine, &mut self.worker);
        let verdict = match with_packet(&mut mbuf, |pkt| {
            let mut verdicts = [Verdict::Drop(DropReason::Stale)];
            engine.process_burst(worker, port, now, std::slice::from_mut(pkt), &mut verdicts);
            verdicts[0]
        }) {
            Ok(v) => v,
            Err(r) => return self.count_drop(r),
        };
        match verdict {
            Verdict::Forward(out) => self.send(out, mbuf),
            Verdict::Drop(r) => self.count_drop(r),
            Verdict::Punt(r) if depth < REINJECT_DEPTH_MAX => {
                self.worker.counters().count_punt(r);
                let punted = Punted {
                    mbuf,
                    port,
                    reason: r,
                    rx_tsc: 0,
                };
                self.handle(punted, depth + 1);
            }
            Verdict::Punt(_) => self.count_drop(DropReason::Stale),
        }
    }

    /// Sends the held packets of neighbours that resolved.
    pub(super) fn release_resolved(&mut self) {
        for nh in self.holds.waiting(|nh| self.cp.resolved(nh)) {
            self.release(nh);
        }
    }

    /// Runs the packets held for `nh` through the engine again (it resolved or failed).
    pub(super) fn release(&mut self, nh: NextHopIndex) {
        for (mbuf, port) in self.holds.release(nh) {
            self.reinject(mbuf, port, 0);
        }
    }
}

/// Runs `f` on the packet in `mbuf` as the engine sees it, then takes the packet's new bounds
/// back into the mbuf. Fails, with the reason to count, when the buffer is shared, the frame
/// too short, or the packet grew past the buffer's headroom.
fn with_packet<R>(
    mbuf: &mut Mbuf,
    f: impl FnOnce(&mut PacketBuf<'_>) -> R,
) -> Result<R, DropReason> {
    let w = mbuf.window_mut().ok_or(DropReason::SharedBuffer)?;
    let mut pkt = PacketBuf::new(w.buf, w.head, w.len).map_err(|_| DropReason::FrameTruncated)?;
    let out = f(&mut pkt);
    let (head, len) = (pkt.head(), pkt.len());
    mbuf.set_window(head, len)
        .map_err(|_| DropReason::NoHeadroom)?;
    Ok(out)
}

/// Packets waiting for a neighbour to resolve, by next hop, each with its input port. At most
/// the neighbour configuration's `hold_max` per next hop.
#[derive(Default)]
pub(super) struct Holds {
    queues: HashMap<NextHopIndex, VecDeque<(Mbuf, u16)>>,
}

impl Holds {
    /// Keeps the packet for `nh`; false (and the packet freed) when `max` are held already.
    fn hold(&mut self, nh: NextHopIndex, mbuf: Mbuf, port: u16, max: usize) -> bool {
        let q = self.queues.entry(nh).or_default();
        if q.len() >= max {
            return false;
        }
        q.push_back((mbuf, port));
        true
    }

    /// The next hops with packets held for which `ready` says yes.
    fn waiting(&self, ready: impl Fn(NextHopIndex) -> bool) -> Vec<NextHopIndex> {
        self.queues
            .keys()
            .copied()
            .filter(|&nh| ready(nh))
            .collect()
    }

    /// Takes out the packets held for `nh`, in the order they came.
    fn release(&mut self, nh: NextHopIndex) -> VecDeque<(Mbuf, u16)> {
        let Some(q) = self.queues.remove(&nh) else {
            return VecDeque::new();
        };
        debug!(next_hop = nh, packets = q.len(), "releasing held packets");
        q
    }

    /// Frees every held packet (the daemon is stopping).
    pub(super) fn clear(&mut self) {
        let held: usize = self.queues.values().map(VecDeque::len).sum();
        if held > 0 {
            debug!(held, "dropping held packets at stop");
        }
        self.queues.clear();
    }
}

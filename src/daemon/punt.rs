//! Punted packets on the control thread: what the workers could not finish. The control plane
//! decides ([`ControlPlane::handle_punt`]); this module carries the decision out with the
//! packet buffers: it sends a reply, counts an ARP reply that resolved a neighbour (learned,
//! not a drop), holds a packet until its neighbour resolves, runs a packet through the engine
//! again, floods copies to the network's local ports and, VXLAN encapsulated, to its peers, or
//! fragments a datagram too big for its next hop (`fragment.rs`). Everything the control
//! thread sends goes out through worker 0's inject queue.
//!
//! [`ControlPlane::handle_punt`]: router_core::control::ControlPlane::handle_punt

use dpdk_bindings::Mbuf;
use lcore_workers::Punted;
use router_core::control::{Flood, PuntAction, Settle};
use router_core::engine::Verdict;
use router_core::ids::PortId;
use router_core::reason::DropReason;
use router_core::wire::PacketBuf;
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
        match action {
            PuntAction::Reply(out) => self.send(out, mbuf),
            PuntAction::Drop(r) => self.count_drop(r),
            PuntAction::Learned => self.worker.counters().arp_learned.inc(),
            PuntAction::Hold(nh) => {
                if let Err((_, r)) = self.holds.hold(nh, (mbuf, port)) {
                    self.count_drop(r);
                }
            }
            PuntAction::Reinject => self.reinject(mbuf, port, depth),
            PuntAction::Flood(f) => self.flood(&mbuf, &f),
            PuntAction::Fragment { mtu } => self.fragment(mbuf, port, mtu, depth),
        }
        // An ARP reply or a learned neighbour may have resolved what packets wait for. Settled
        // once per punt taken from the workers, not again for those reinjected meanwhile.
        if depth == 0 {
            self.settle_holds();
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

    /// Runs a packet through the engine again (its next hop changed since it was punted, or it
    /// is a fragment the control thread built).
    pub(super) fn reinject(&mut self, mut mbuf: Mbuf, port: PortId, depth: u32) {
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

    /// Carries out what happened to the next hops that packets are held for: the packets of a
    /// neighbour that resolved or failed go through the engine again (forwarded, or answered with
    /// ICMP host unreachable); those of a next hop that is gone are dropped, counted.
    pub(super) fn settle_holds(&mut self) {
        for event in self.cp.hold_events() {
            let Some((settle, packets)) = self.holds.settle(event) else {
                continue;
            };
            debug!(?event, packets = packets.len(), "settling held packets");
            for (mbuf, port) in packets {
                match settle {
                    Settle::Reinject => self.reinject(mbuf, port, 0),
                    Settle::Drop(r) => {
                        drop(mbuf);
                        self.count_drop(r);
                    }
                }
            }
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

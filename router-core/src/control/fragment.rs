//! The control thread's half of IPv4 fragmentation (RFC 1812 section 5.2.6): a datagram
//! without DF that is larger than the MTU toward its next hop is punted by the engine
//! (`fragment`), unmodified, and split here, off the common path.
//!
//! The engine punts it from the MTU check, before any rewrite, so the punted frame is still
//! the one the instance sent: addressed to the gateway MAC, with its TTL. The control plane
//! looks its next hop up again and finds the MTU the fragments must fit: the local port's, or
//! the fabric's less the VXLAN encapsulation (the outer packet is never fragmented; the inner
//! one is). The daemon then builds each fragment as a frame of its own, the original's
//! Ethernet header in front of [`Fragmenter::emit`]'s datagram, and runs each through the
//! engine again, exactly as a packet from that port: routing, the TTL decrement (once, on each
//! fragment), the MAC rewrite, the DVR MAC and the VXLAN encapsulation are the engine's, with
//! nothing written twice. A fragment that no longer fits (the MTU shrank meanwhile) is punted
//! again, a bounded number of times.

use super::punt::PuntAction;
use super::ControlPlane;
use crate::dataplane::{PortRole, Topology};
use crate::ids::RouterId;
use crate::reason::DropReason;
use crate::table::{NextHopKind, NextHopState};
use crate::wire::vxlan::VXLAN_ENCAP_OVERHEAD;
use crate::wire::{self, FragmentError, Fragmenter, Ipv4Packet, PacketBuf};

const ETH_LEN: usize = wire::ethernet::HEADER_LEN;

impl ControlPlane {
    /// A datagram routed on `network` that is too big for its next hop and may be fragmented:
    /// [`PuntAction::Fragment`] with the MTU its fragments must fit, or, when its next hop
    /// changed and no longer needs it, back through the engine.
    pub(super) fn fragment(
        &self,
        topo: &Topology,
        pkt: &PacketBuf<'_>,
        role: PortRole,
    ) -> PuntAction {
        let Some((router, src, dst)) = self.fragment_route(topo, pkt, role) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let Some(r) = topo.router(router) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        // An instance with a floating IP here leaves by the external port for what its router
        // reaches only by the default route (as the engine decides, `engine/external.rs`).
        let outside = topo.fip_by_fixed(router, src).is_some()
            && r.lpm.lookup_with_len(dst).is_none_or(|(_, len)| len == 0);
        let mtu = if outside {
            topo.external.and_then(|e| topo.port(e.port)).map(|p| p.mtu)
        } else {
            r.lpm
                .lookup(dst)
                .and_then(|hop| egress_mtu(topo, self.dp.next_hops.get(hop).state))
        };
        let Some(mtu) = mtu else {
            return PuntAction::Reinject;
        };
        let Ok(ip) = Ipv4Packet::new_checked(&pkt.frame()[ETH_LEN..]) else {
            return PuntAction::Drop(DropReason::Ipv4Truncated);
        };
        match Fragmenter::new(ip, usize::from(mtu)) {
            Ok(_) => PuntAction::Fragment { mtu },
            Err(FragmentError::Fits | FragmentError::DontFragment) => PuntAction::Reinject,
            Err(FragmentError::BadOptions) => PuntAction::Drop(DropReason::Ipv4BadOptions),
            Err(
                FragmentError::MtuTooSmall
                | FragmentError::TooManyFragments
                | FragmentError::OffsetOverflow,
            ) => PuntAction::Drop(DropReason::FragmentationUnsupported),
        }
    }
}

/// The largest IPv4 packet the engine sends toward a resolved next hop, as its MTU check has
/// it: the local port's MTU, or the fabric's less the encapsulation. `None` for a next hop
/// that sends nothing (unresolved, failed, a blackhole, local delivery).
impl ControlPlane {
    /// The router a datagram to fragment is routed in, with its source and the destination
    /// looked up: from a local port, the network's router; from the external port, the router
    /// of the floating IP it is addressed to, and its fixed IP.
    fn fragment_route(
        &self,
        topo: &Topology,
        pkt: &PacketBuf<'_>,
        role: PortRole,
    ) -> Option<(RouterId, u32, u32)> {
        let ip = Ipv4Packet::new_checked(pkt.frame().get(ETH_LEN..)?).ok()?;
        match role {
            PortRole::Local { network } => {
                let (_, router, dst) = self.routed_destination(topo, pkt, network)?;
                Some((router, ip.src_addr_u32(), dst))
            }
            PortRole::External => {
                let fip = topo.fip_by_ip(ip.dst_addr_u32())?;
                Some((fip.router, ip.src_addr_u32(), fip.fixed))
            }
            PortRole::Fabric | PortRole::Unused => None,
        }
    }
}

fn egress_mtu(topo: &Topology, state: NextHopState) -> Option<u16> {
    match state.kind() {
        NextHopKind::Local => topo.port(state.port()).map(|p| p.mtu),
        NextHopKind::Remote => {
            let fabric = topo.port(topo.fabric?)?;
            Some(fabric.mtu.saturating_sub(VXLAN_ENCAP_OVERHEAD as u16))
        }
        _ => None,
    }
}

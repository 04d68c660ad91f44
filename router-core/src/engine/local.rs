//! Frames from a local port, where the instances of one tenant network attach: the three
//! passes over the burst, the first of them here. A frame to the gateway MAC is checked as RFC
//! 1812 asks and either punted (ARP, the router's own address) or queued for the LPM lookup; a
//! frame to another MAC is bridged by the L2 table, to a local port or to a peer host.

use std::net::Ipv4Addr;

use super::route::Gateway;
use super::trace::{TraceEvent, Tracer};
use super::{check_ipv4, Burst, DropReason, PacketBuf, PuntReason, Verdict};
use super::{ETH_LEN, MAX_BURST, MIN_IPV4_FRAME};
use crate::dataplane::{l2_key, L2Location, NetworkInfo};
use crate::ids::{NetworkId, NextHopId};
use crate::lpm::NO_ROUTE;
use crate::wire::{self, checksum, EtherType, EthernetAddress, EthernetFrame, Ipv4Packet};

/// The network a local port attaches to, and the router behind its gateway if it has one.
pub(super) struct Lan<'a> {
    network: NetworkId,
    net: &'a NetworkInfo,
    pub(super) gateway: Option<Gateway<'a>>,
    /// The gateway's MAC as a word ([`EthernetAddress::to_u64`]). No 48-bit MAC equals the
    /// value with bit 63 set that stands here without a router: then nothing is routed.
    pub(super) gw_mac: u64,
}

/// What the third pass reads for each frame: the gateway, and the destinations looked up with
/// what the lookups found.
struct Pass3<'g, 'a> {
    gw: Gateway<'g>,
    dsts: &'a [u32; MAX_BURST],
    hops: &'a [u32; MAX_BURST],
}

/// How the first pass left a frame.
enum Classified {
    Done(Verdict),
    /// Route to this destination address.
    Route(u32),
}

impl<T: Tracer> Burst<'_, T> {
    /// The three passes over a burst from a local port of `network`.
    pub(super) fn ingress_local(
        &mut self,
        network: NetworkId,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        let topo = self.topo;
        let Some(net) = topo.network(network) else {
            verdicts[..pkts.len()].fill(Verdict::Drop(DropReason::PortNotAttached));
            return;
        };
        let gateway = net.iface.and_then(|i| topo.iface(i)).and_then(|iface| {
            let router = topo.router(iface.router)?;
            Some(Gateway { iface, router })
        });
        let lan = Lan {
            network,
            net,
            gateway,
            gw_mac: gateway.map_or(1 << 63, |g| g.iface.mac.to_u64()),
        };

        // Pass 1: classify; collect the destinations to route.
        let mut dsts = [0u32; MAX_BURST];
        let mut which = [0u8; MAX_BURST];
        let mut n = 0;
        for (i, pkt) in pkts.iter_mut().enumerate() {
            match self.classify_local(&lan, pkt, i) {
                Classified::Done(v) => verdicts[i] = v,
                Classified::Route(dst) => {
                    dsts[n] = dst;
                    which[n] = i as u8;
                    n += 1;
                }
            }
        }
        let Some(gw) = lan.gateway else {
            debug_assert_eq!(n, 0);
            return;
        };

        // Pass 2: all lookups of the burst together.
        let mut hops = [NO_ROUTE; MAX_BURST];
        gw.router.lpm.lookup_burst(&dsts[..n], &mut hops[..n]);

        // Pass 3: next hop, checks that depend on it, rewrite; by the next hop's plan where
        // one applies (`fast.rs`). Instances with a floating IP here reach the outside by it:
        // that test has a loop of its own, so that a host without floating IPs pays nothing
        // for it per packet.
        let pass = Pass3 {
            gw,
            dsts: &dsts,
            hops: &hops,
        };
        self.route_all(&pass, &which[..n], pkts, verdicts);
    }

    /// The third pass over the looked-up frames, `pkts[which[k]]` for the `k`-th lookup.
    #[inline(always)]
    fn route_all(
        &mut self,
        pass: &Pass3<'_, '_>,
        which: &[u8],
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        let gw = pass.gw;
        let mut plan = None;
        if self.topo.fips.is_empty() {
            for (k, &w) in which.iter().enumerate() {
                let i = usize::from(w);
                let pkt = &mut pkts[i];
                verdicts[i] = match self.route_planned(&mut plan, gw, pass.hops[k], pkt) {
                    Some(v) => v,
                    None => self.route_looked_up(pass, pkt, k, i),
                };
            }
        } else {
            for (k, &w) in which.iter().enumerate() {
                let i = usize::from(w);
                let pkt = &mut pkts[i];
                verdicts[i] = match self.route_floating(gw, pkt, i) {
                    Some(v) => v,
                    None => match self.route_planned(&mut plan, gw, pass.hops[k], pkt) {
                        Some(v) => v,
                        None => self.route_looked_up(pass, pkt, k, i),
                    },
                };
            }
        }
        if let Some(plan) = plan {
            self.settle(gw, &plan);
        }
    }

    /// Third pass over the `k`-th looked-up frame of the burst, `pkts[i]`.
    #[inline(always)]
    fn route_looked_up(
        &mut self,
        pass: &Pass3<'_, '_>,
        pkt: &mut PacketBuf<'_>,
        k: usize,
        i: usize,
    ) -> Verdict {
        // The LPM writes `NO_ROUTE` for a miss, the only value above `NextHopId::MAX`.
        let hop = NextHopId::new(pass.hops[k]);
        self.trace(i, || TraceEvent::Lookup {
            router: pass.gw.iface.router,
            dst: Ipv4Addr::from(pass.dsts[k]),
            next_hop: hop,
        });
        self.route(pass.gw, pkt, hop, i)
    }

    /// First pass over a frame from a local port.
    #[inline]
    fn classify_local(&mut self, lan: &Lan<'_>, pkt: &mut PacketBuf<'_>, i: usize) -> Classified {
        use Classified::Done;
        if let Some(dst) = self.classify_plain(lan, pkt) {
            return Classified::Route(dst);
        }
        let f = pkt.frame();
        let Some(h) = f.first_chunk::<ETH_LEN>() else {
            return Done(Verdict::Drop(DropReason::FrameTruncated));
        };
        let eth = EthernetFrame::new_unchecked(h);
        let (dst, src) = eth.addrs_u64();
        let ethertype = eth.outer_ethertype();
        self.trace(i, || TraceEvent::ethernet(f));
        self.trace(i, || TraceEvent::Network {
            network: lan.network,
            router: lan.gateway.map(|g| g.iface.router),
        });
        if self.topo.is_dvr_mac(src) {
            return Done(Verdict::Drop(DropReason::SpoofedDvrMac));
        }
        if ethertype == EtherType::VLAN {
            return Done(Verdict::Drop(DropReason::VlanTagged));
        }
        if let Some(gw) = lan.gateway.filter(|_| dst == lan.gw_mac) {
            return match ethertype {
                EtherType::IPV4 => self.classify_ipv4(pkt, gw, i),
                EtherType::ARP => Done(Verdict::Punt(PuntReason::Arp)),
                _ => Done(Verdict::Drop(DropReason::UnsupportedEthertype)),
            };
        }
        if is_multicast_mac(dst) {
            // Gateway ARP is answered here and never leaves the host; other ARP is answered
            // from the known instance ports or flooded by the control thread.
            return Done(Verdict::Punt(if ethertype == EtherType::ARP {
                PuntReason::Arp
            } else {
                PuntReason::Flood
            }));
        }
        Done(self.bridge_local(lan, pkt, dst, i))
    }

    /// RFC 1812 section 5.2.2 checks and the address checks of section 5.3.7 on a frame to the
    /// gateway MAC. A datagram for the gateway's own address is delivered locally, by punting
    /// it to the control thread.
    #[inline]
    fn classify_ipv4(&mut self, pkt: &mut PacketBuf<'_>, gw: Gateway<'_>, i: usize) -> Classified {
        use Classified::Done;
        let total_len = match check_ipv4_fast(pkt.frame()) {
            Some(len) => len,
            None => match check_ipv4(&pkt.frame()[ETH_LEN..]) {
                Ok(len) => len,
                Err(reason) => return Done(Verdict::Drop(reason)),
            },
        };
        // Ethernet pads short frames: the datagram ends at its total length.
        pkt.truncate(ETH_LEN + total_len);
        let f = pkt.frame();
        let Some(h) = f.first_chunk::<MIN_IPV4_FRAME>() else {
            return Done(Verdict::Drop(DropReason::Ipv4Truncated));
        };
        let ip = Ipv4Packet::new_unchecked(&h[ETH_LEN..]);
        let (src, dst) = (ip.src_addr_u32(), ip.dst_addr_u32());
        self.trace(i, || TraceEvent::ipv4(&f[ETH_LEN..]));
        if !is_unicast_host(src) {
            return Done(Verdict::Drop(DropReason::MartianSource));
        }
        if dst >> 28 == 0xe {
            return Done(Verdict::Drop(DropReason::Multicast));
        }
        if dst == u32::MAX {
            return Done(Verdict::Drop(DropReason::Broadcast));
        }
        if dst >> 24 == 0 || dst >> 24 == 127 || dst >> 28 == 0xf {
            return Done(Verdict::Drop(DropReason::MartianDestination));
        }
        if dst == gw.iface.ip {
            return Done(Verdict::Punt(PuntReason::LocalDelivery));
        }
        Classified::Route(dst)
    }

    /// Bridges a unicast frame not addressed to the gateway, by its destination MAC.
    #[inline]
    fn bridge_local(
        &mut self,
        lan: &Lan<'_>,
        pkt: &mut PacketBuf<'_>,
        dst: u64,
        i: usize,
    ) -> Verdict {
        let location = self.l2_lookup(lan.network, dst, i);
        match location {
            Some(L2Location::Local(port)) if port == self.input => {
                Verdict::Drop(DropReason::L2SamePort)
            }
            Some(L2Location::Local(port)) => {
                self.counters.bridged_local.inc();
                Verdict::Forward(port)
            }
            Some(L2Location::Remote(peer)) => {
                let v = self.send_to_peer(pkt, peer, lan.net.vni, i);
                if matches!(v, Verdict::Forward(_)) {
                    self.counters.bridged_remote.inc();
                }
                v
            }
            None => Verdict::Punt(PuntReason::Flood),
        }
    }

    /// Where `mac` is in `network`, by the L2 table.
    #[inline]
    pub(super) fn l2_lookup(
        &mut self,
        network: NetworkId,
        mac: u64,
        i: usize,
    ) -> Option<L2Location> {
        let location = self
            .dp
            .l2
            .get(l2_key(network, mac))
            .and_then(L2Location::decode);
        self.trace(i, || TraceEvent::L2 {
            network,
            mac: EthernetAddress::from_u64(mac),
            location,
        });
        location
    }
}

/// True for a source address that names one host (RFC 1812 section 5.3.7).
#[inline]
pub(super) fn is_unicast_host(addr: u32) -> bool {
    let first = addr >> 24;
    first != 0 && first != 127 && addr >> 28 < 0xe
}

/// True for a group (multicast or broadcast) MAC given as a word.
#[inline]
pub(super) fn is_multicast_mac(mac: u64) -> bool {
    mac & (1 << 40) != 0
}

/// RFC 1812 section 5.2.2 checks for the common case, an IPv4 header without options: the
/// version and IHL are 4 and 5, the total length fits the frame and the header checksum
/// verifies. `None` sends the frame to [`check_ipv4`], which names what is wrong (or accepts
/// options).
#[inline]
pub(super) fn check_ipv4_fast(f: &[u8]) -> Option<usize> {
    let h = f.first_chunk::<MIN_IPV4_FRAME>()?;
    let header = h[ETH_LEN..].first_chunk::<{ wire::ipv4::HEADER_LEN }>()?;
    let ip = Ipv4Packet::new_unchecked(header);
    if !ip.is_plain_header() {
        return None;
    }
    let total_len = usize::from(ip.total_len());
    if total_len < wire::ipv4::HEADER_LEN || ETH_LEN + total_len > f.len() {
        return None;
    }
    checksum::verify_plain_ipv4_header(header).then_some(total_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_mac_classes() {
        assert!(is_unicast_host(0x0a00_0001));
        assert!(!is_unicast_host(0x7f00_0001));
        assert!(!is_unicast_host(0));
        assert!(!is_unicast_host(0xe000_0001));
        assert!(!is_unicast_host(0xffff_ffff));
        assert!(is_multicast_mac(0xffff_ffff_ffff));
        assert!(is_multicast_mac(0x0100_5e00_0001));
        assert!(!is_multicast_mac(0xfa16_3e00_0001));
    }
}

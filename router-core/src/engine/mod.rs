//! The forwarding engine: one burst of frames from one port in, one [`Verdict`] per frame out.
//!
//! A frame from a **local port** (where instances of one tenant network attach) is
//! - routed, when it is addressed to the network's gateway MAC: RFC 1812 checks, LPM lookup in
//!   the router's table, next hop, TTL decrement and MAC rewrite, and, for a neighbour on a peer
//!   host, the DVR rewrite (source MAC = this host's DVR MAC) and VXLAN encapsulation;
//! - bridged otherwise, by destination MAC: to another local port, to a peer host over VXLAN, or
//!   punted for flooding when it is a broadcast or unknown;
//! - punted when it is ARP, for the router itself, or to an unresolved neighbour.
//!
//! A frame from the **fabric port** is decapsulated after checking the outer headers, the VTEP
//! and the VNI. If its inner source MAC is a peer's DVR MAC it was routed on that host already:
//! its source MAC is restored to the gateway MAC and it is delivered to the local instance,
//! without routing it again and without learning. Otherwise it is bridged to the local instance.
//!
//! The burst is processed in three passes so that memory latency overlaps: classify every
//! frame, look all destinations up in the LPM together, then finish each routed frame.
//!
//! One file per path, each a set of methods on the per-burst context [`Burst`]:
//! - `local.rs`: frames from a local port, the first pass (classification, the RFC 1812 checks,
//!   delivery to the router's own addresses by punting, bridging);
//! - `route.rs`: the third pass, next hop, MTU, TTL and MAC rewrite;
//! - `fast.rs`: the common case of the first and third passes in fewer instructions, each
//!   next hop resolved once per burst, everything else left to the general path;
//! - `icmp_error.rs`: the ICMP errors routing originates;
//! - `fabric.rs`: frames from the fabric (decapsulation, delivery) and VXLAN encapsulation
//!   toward peer hosts;
//! - `trace.rs`: the events a traced burst records.
//!
//! Every header is read and written through [`crate::wire`]; the worker threads run all of it,
//! each on its own bursts, reading the tables lock-free.

mod external;
mod fabric;
mod fast;
mod icmp_error;
mod local;
mod route;
pub mod trace;

use std::sync::Arc;

use arc_swap::cache::Cache;
use arc_swap::ArcSwap;

pub use self::fabric::encapsulate;
use self::trace::{NoTrace, TraceEvent, Tracer};
use crate::reason::{DropReason, PuntReason};
use crate::wire::PacketBuf;

use crate::dataplane::{Dataplane, Nanos, PortRole, Topology};
use crate::ids::PortId;
use crate::stats::EngineCounters;
use crate::wire::{self, Ipv4Packet};

/// Most frames in one burst.
pub const MAX_BURST: usize = 64;

const ETH_LEN: usize = wire::ethernet::HEADER_LEN;
/// An untagged Ethernet header and an IPv4 header without options.
const MIN_IPV4_FRAME: usize = ETH_LEN + wire::ipv4::HEADER_LEN;

/// What happens to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame on this port.
    Forward(PortId),
    /// Hand the frame to the control thread.
    Punt(PuntReason),
    /// Free the frame and count the reason.
    Drop(DropReason),
}

/// The read side of the data plane: cheap to clone, one per worker.
#[derive(Clone, Debug)]
pub struct Engine {
    dp: Arc<Dataplane>,
}

/// State a worker keeps between bursts: its view of the topology and its counters.
pub struct WorkerState {
    topology: Cache<Arc<ArcSwap<Topology>>, Arc<Topology>>,
    counters: Arc<EngineCounters>,
    ip_ident: u16,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState")
            .field("ip_ident", &self.ip_ident)
            .finish_non_exhaustive()
    }
}

impl WorkerState {
    /// The worker's counters (shared with the control thread, which reads them).
    pub fn counters(&self) -> &Arc<EngineCounters> {
        &self.counters
    }

    /// The topology as of the last burst.
    pub fn topology(&mut self) -> &Arc<Topology> {
        self.topology.load()
    }
}

/// What the passes over one burst share: the tables, the topology as of the burst, the worker's
/// counters and IPv4 identification, the input port, the time and the tracer. Every path of
/// the engine is a method on it, so that a frame's handling takes the frame and what was
/// learnt about it, and nothing that is the same for the whole burst.
struct Burst<'a, T> {
    dp: &'a Dataplane,
    topo: &'a Topology,
    counters: &'a EngineCounters,
    ident: &'a mut u16,
    input: PortId,
    now: Nanos,
    tracer: &'a mut T,
}

impl<T: Tracer> Burst<'_, T> {
    fn next_ident(&mut self) -> u16 {
        *self.ident = self.ident.wrapping_add(1);
        *self.ident
    }

    /// Records the event `event` builds for packet `i`; nothing is built on the fast path.
    #[inline(always)]
    fn trace(&mut self, i: usize, event: impl FnOnce() -> TraceEvent) {
        if T::ENABLED {
            self.tracer.record(i, event());
        }
    }
}

impl Engine {
    pub fn new(dp: Arc<Dataplane>) -> Self {
        Engine { dp }
    }

    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dp
    }

    /// A worker's state, with fresh counters.
    pub fn worker_state(&self) -> WorkerState {
        self.worker_state_with(Arc::new(EngineCounters::default()))
    }

    /// A worker's state that counts into `counters`.
    pub fn worker_state_with(&self, counters: Arc<EngineCounters>) -> WorkerState {
        WorkerState {
            topology: Cache::new(Arc::clone(&self.dp.topology)),
            counters,
            ip_ident: 0,
        }
    }

    /// Processes a burst of frames received on `input`; `verdicts[i]` tells what to do with
    /// `pkts[i]`. Frames are rewritten in place.
    ///
    /// # Panics
    /// If `pkts` holds more than [`MAX_BURST`] frames or `verdicts` is shorter than `pkts`.
    pub fn process_burst(
        &self,
        w: &mut WorkerState,
        input: PortId,
        now: Nanos,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        self.process_burst_traced(w, input, now, pkts, verdicts, &mut NoTrace);
    }

    /// [`process_burst`](Self::process_burst), reporting every decision to `tracer`.
    pub fn process_burst_traced<T: Tracer>(
        &self,
        w: &mut WorkerState,
        input: PortId,
        now: Nanos,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
        tracer: &mut T,
    ) {
        assert!(pkts.len() <= MAX_BURST && verdicts.len() >= pkts.len());
        let topo = Arc::clone(w.topology.load());
        let mut burst = Burst {
            dp: &self.dp,
            topo: &topo,
            counters: &w.counters,
            ident: &mut w.ip_ident,
            input,
            now,
            tracer,
        };
        let role = topo.port(input).map_or(PortRole::Unused, |p| p.role);
        match role {
            PortRole::Local { network } => burst.ingress_local(network, pkts, verdicts),
            PortRole::Fabric => {
                for (i, pkt) in pkts.iter_mut().enumerate() {
                    verdicts[i] = burst.ingress_fabric(pkt, i);
                }
            }
            PortRole::External => burst.ingress_external(pkts, verdicts),
            PortRole::Unused => {
                verdicts[..pkts.len()].fill(Verdict::Drop(DropReason::PortNotAttached))
            }
        }
    }
}

/// RFC 1812 section 5.2.2: checks an IPv4 header at the start of `ip` (the Ethernet payload)
/// and returns the datagram's total length.
#[inline]
pub fn check_ipv4(ip: &[u8]) -> Result<usize, DropReason> {
    let packet = match Ipv4Packet::new_checked(ip) {
        Ok(p) => p,
        Err(wire::Error::BadVersion) => return Err(DropReason::Ipv4BadVersion),
        Err(wire::Error::BadHeaderLength) => return Err(DropReason::Ipv4BadHeaderLength),
        Err(wire::Error::BadTotalLength) => return Err(DropReason::Ipv4BadTotalLength),
        // The header fits but the total length runs past the frame.
        Err(_)
            if ip.len() >= wire::ipv4::HEADER_LEN
                && Ipv4Packet::new_unchecked(ip).header_len() <= ip.len() =>
        {
            return Err(DropReason::Ipv4BadTotalLength)
        }
        Err(_) => return Err(DropReason::Ipv4Truncated),
    };
    if !packet.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    Ok(usize::from(packet.total_len()))
}

/// The IPv4 header, without options, of a frame whose datagram the first pass checked: one
/// bounds check covers every field read from it.
#[inline(always)]
fn ipv4_header(f: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    f.get(ETH_LEN..MIN_IPV4_FRAME)
        .map(Ipv4Packet::new_unchecked)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::{IpProtocol, Ipv4Repr};

    #[test]
    fn check_ipv4_names_each_rfc1812_failure() {
        let mut h = [0u8; 28];
        let repr = Ipv4Repr {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            protocol: IpProtocol::Unknown(0),
            payload_len: 8,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut h[..]));
        assert_eq!(check_ipv4(&h), Ok(28));
        assert_eq!(check_ipv4(&h[..19]), Err(DropReason::Ipv4Truncated));
        assert_eq!(check_ipv4(&h[..27]), Err(DropReason::Ipv4BadTotalLength));
        let mut bad = h;
        bad[0] = 0x55;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadVersion));
        bad[0] = 0x43;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadHeaderLength));
        bad[0] = 0x4f;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4Truncated));
        let mut bad = h;
        bad[11] ^= 1;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadChecksum));
    }
}

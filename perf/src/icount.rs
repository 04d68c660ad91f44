//! The deterministic counterpart of the throughput runs: instructions the forwarding engine
//! (`Engine::process_burst`, pure Rust, no DPDK) executes per packet, counted by valgrind's
//! callgrind, for a fixed burst of 32 64-byte frames in each of the data-path scenarios.
//!
//! Instruction counts do not depend on the machine's load, so they catch a regression that a
//! noisy throughput run would hide. They are not a speed: cache misses (the LPM on a large
//! table, the packet's first touch) cost cycles that instructions do not show.
//!
//! The topology is two hosts of one DVR fabric (as in router-core's tests): BLUE 10.0.1.0/24
//! and RED 10.0.2.0/24 joined by one router; 10.0.1.5 (the sender) and 10.0.2.7 on host A,
//! 10.0.2.8 on host B, a route 198.18.0.0/15 via 10.0.2.7. The floating-IP scenarios add an
//! external network (203.0.113.0/24, this host 203.0.113.21, gateway 203.0.113.1 resolved) and
//! the floating IP 203.0.113.10 of 10.0.1.5; the other scenarios run without them.

use std::net::Ipv4Addr;
use std::sync::Arc;

use router_core::control::{ControlConfig, ControlPlane, PortSetup, Solicit};
use router_core::engine::{Engine, Verdict, WorkerState};
use router_core::ids::PortId;
use router_core::model::{
    Change, ExternalSpec, FloatingIpSpec, InstancePortSpec, InterfaceSpec, NetworkSpec, RouteSpec,
    RouterSpec,
};
use router_core::qsbr::{Qsbr, QsbrReader};
use router_core::reason::PuntReason;
use router_core::testing::{host_and_peer, VTEP_A, VTEP_B};
use router_core::wire::PacketBuf;
use router_core::wire::{
    ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr,
};

use crate::frame::{Endpoints, Stamp, Template};

/// Frames per burst.
pub const BURST: usize = 32;
/// Headroom in front of every frame (room for the VXLAN headers).
const HEADROOM: usize = 128;
/// Data buffer per frame.
const BUF_LEN: usize = 2048 + HEADROOM;

const PORT_BLUE: PortId = PortId::new(0);
const PORT_RED: PortId = PortId::new(1);
const PORT_FABRIC: PortId = PortId::new(2);
const PORT_EXT: PortId = PortId::new(3);
const EXT_A: &str = "02:00:00:00:e0:0a";
const UPSTREAM: &str = "02:00:00:00:aa:01";
const FIP: &str = "203.0.113.10";

const GW_BLUE: &str = "fa:16:3e:00:01:01";
const GW_RED: &str = "fa:16:3e:00:02:01";
const VM_BLUE_A: &str = "fa:16:3e:aa:01:05";
const VM_RED_A: &str = "fa:16:3e:aa:02:07";
const VM_RED_B: &str = "fa:16:3e:bb:02:08";
const FABRIC_A: &str = "02:00:00:00:f0:0a";
const FABRIC_B: &str = "02:00:00:00:f0:0b";

/// A data-path scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Routed to an instance on a connected subnet on this host.
    RouteLocal,
    /// Routed by a route (`198.18.0.0/15 via 10.0.2.7`) to an instance on this host.
    RoutePrefix,
    /// Routed to an instance on a peer host: DVR rewrite and VXLAN encapsulation.
    RouteRemote,
    /// A routed frame from a peer: decapsulation and delivery to the local instance.
    Decap,
    /// From the external network to a floating IP: DNAT and routing to the instance.
    FipDnat,
    /// From an instance with a floating IP to the outside: SNAT and out of the external port.
    FipSnat,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 6] = [
        Scenario::RouteLocal,
        Scenario::RoutePrefix,
        Scenario::RouteRemote,
        Scenario::Decap,
        Scenario::FipDnat,
        Scenario::FipSnat,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::RouteLocal => "route-local",
            Scenario::RoutePrefix => "route-prefix",
            Scenario::RouteRemote => "route-remote-vxlan",
            Scenario::Decap => "decap-deliver",
            Scenario::FipDnat => "fip-dnat-in",
            Scenario::FipSnat => "fip-snat-out",
        }
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }
}

fn mac(s: &str) -> EthernetAddress {
    s.parse().expect("valid MAC")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("valid address")
}

/// One host's control plane and a worker's view of its engine.
pub struct Host {
    cp: ControlPlane,
    engine: Engine,
    worker: WorkerState,
    reader: QsbrReader,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

fn topology(me: &str) -> Vec<Change> {
    let port = |network: &str, addr: &str, m: &str, host: &str| Change::AddPort {
        spec: InstancePortSpec {
            network: network.into(),
            ip: ip(addr),
            mac: mac(m).into(),
            host: host.into(),
            port: None,
        },
        replace: false,
    };
    let net = |name: &str, vni: u32| Change::AddNetwork {
        spec: NetworkSpec {
            name: name.into(),
            vni,
            ports: vec![name.into()],
        },
        replace: false,
    };
    let iface = |network: &str, addr: &str, m: &str| Change::AddInterface {
        spec: InterfaceSpec {
            router: "r1".into(),
            network: network.into(),
            address: addr.parse().expect("valid interface address"),
            mac: mac(m).into(),
        },
        replace: false,
    };
    let mut changes = host_and_peer(me).to_vec();
    changes.extend([
        net("blue", 1001),
        net("red", 1002),
        Change::AddRouter {
            spec: RouterSpec {
                name: "r1".into(),
                large: false,
            },
            replace: false,
        },
        iface("blue", "10.0.1.1/24", GW_BLUE),
        iface("red", "10.0.2.1/24", GW_RED),
        port("blue", "10.0.1.5", VM_BLUE_A, "host-a"),
        port("red", "10.0.2.7", VM_RED_A, "host-a"),
        port("red", "10.0.2.8", VM_RED_B, "host-b"),
        Change::AddRoute {
            spec: RouteSpec {
                router: "r1".into(),
                prefix: "198.18.0.0/15".parse().expect("valid prefix"),
                via: ip("10.0.2.7"),
            },
            replace: false,
        },
    ]);
    changes
}

impl Host {
    /// Host `host-a` or `host-b`, with the underlay toward the peer resolved.
    pub fn new(name: &str) -> Host {
        let (fabric, my_vtep, peer_fabric, peer_vtep) = if name == "host-a" {
            (FABRIC_A, VTEP_A, FABRIC_B, VTEP_B)
        } else {
            (FABRIC_B, VTEP_B, FABRIC_A, VTEP_A)
        };
        let local = |n: &str, m: &str| PortSetup {
            name: n.into(),
            mac: mac(m),
            mtu: 1500,
            fabric: false,
            external: false,
        };
        let ports = vec![
            local("blue", "02:00:00:00:00:01"),
            local("red", "02:00:00:00:00:02"),
            PortSetup {
                name: "fabric".into(),
                mac: mac(fabric),
                mtu: 1600,
                fabric: true,
                external: false,
            },
            PortSetup {
                name: "ext".into(),
                mac: mac(EXT_A),
                mtu: 1500,
                fabric: false,
                external: true,
            },
        ];
        let qsbr = Arc::new(Qsbr::new(4));
        let reader = qsbr.register().expect("a QSBR reader slot");
        let mut cp =
            ControlPlane::new(ControlConfig::new(ports), qsbr).expect("control plane starts");
        cp.apply_batch(&topology(name))
            .expect("the topology is valid");
        let engine = Engine::new(Arc::clone(cp.dataplane()));
        let worker = engine.worker_state();
        let mut host = Host {
            cp,
            engine,
            worker,
            reader,
        };
        // The peer's VTEP answers ARP on the fabric, as it would at start-up.
        let reply = arp_reply(mac(peer_fabric), ip(peer_vtep), mac(fabric), ip(my_vtep));
        let mut buf = vec![0u8; BUF_LEN];
        buf[HEADROOM..HEADROOM + reply.len()].copy_from_slice(&reply);
        let mut pkt = PacketBuf::new(&mut buf, HEADROOM, reply.len()).expect("fits");
        let mut solicits = Vec::new();
        host.cp
            .handle_punt(&mut pkt, PORT_FABRIC, PuntReason::Arp, 1, &mut solicits);
        host
    }

    /// Host `host-a` on the external network, with the floating IP of 10.0.1.5 and the
    /// external gateway resolved.
    pub fn with_floating_ip() -> Host {
        let mut host = Host::new("host-a");
        host.cp
            .apply_batch(&[
                Change::SetExternal(ExternalSpec {
                    address: "203.0.113.21/24".parse().expect("valid address"),
                    gateway: ip("203.0.113.1"),
                }),
                Change::AddFloatingIp {
                    spec: FloatingIpSpec {
                        ip: ip(FIP),
                        router: "r1".into(),
                        port: ip("10.0.1.5"),
                    },
                    replace: false,
                },
            ])
            .expect("the floating IP is valid");
        // The first packet out asks for the gateway, which answers.
        let first = frames_to(&sender(), ip("198.51.100.7")).remove(0);
        let mut solicits = Vec::new();
        host.punt(PORT_BLUE, PuntReason::ExternalMiss, &first, &mut solicits);
        let reply = arp_reply(
            mac(UPSTREAM),
            ip("203.0.113.1"),
            mac(EXT_A),
            ip("203.0.113.21"),
        );
        host.punt(PORT_EXT, PuntReason::Arp, &reply, &mut solicits);
        host
    }

    fn punt(&mut self, input: PortId, reason: PuntReason, frame: &[u8], out: &mut Vec<Solicit>) {
        let mut buf = vec![0u8; BUF_LEN];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut pkt = PacketBuf::new(&mut buf, HEADROOM, frame.len()).expect("fits");
        self.cp.handle_punt(&mut pkt, input, reason, 2, out);
    }
}

/// An ARP reply from `sha`/`spa` to `tha`/`tpa`, padded to the 60 bytes of a minimum frame.
fn arp_reply(sha: EthernetAddress, spa: Ipv4Addr, tha: EthernetAddress, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let eth = EthernetRepr {
        src: sha,
        dst: tha,
        ethertype: EtherType::ARP,
        vlan: None,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let arp = ArpRepr {
        operation: ArpOperation::Reply,
        source_hw: sha,
        source_ip: spa,
        target_hw: tha,
        target_ip: tpa,
    };
    arp.emit(&mut ArpPacket::new_unchecked(
        &mut f[ethernet::HEADER_LEN..],
    ));
    f
}

/// 10.0.1.5 on BLUE, sending to its gateway.
fn sender() -> Endpoints {
    Endpoints {
        src_mac: mac(VM_BLUE_A).0,
        dst_mac: mac(GW_BLUE).0,
        src_ip: ip("10.0.1.5"),
        dst_port: 5001,
    }
}

/// A client on the outside, behind the external gateway.
fn outside() -> Endpoints {
    Endpoints {
        src_mac: mac(UPSTREAM).0,
        dst_mac: mac(EXT_A).0,
        src_ip: ip("198.51.100.7"),
        dst_port: 5001,
    }
}

/// 32 64-byte UDP frames from `ends` to `dst`, UDP source ports varying.
fn frames_to(ends: &Endpoints, dst: Ipv4Addr) -> Vec<Vec<u8>> {
    let t = Template::new(64, ends);
    (0..BURST)
        .map(|i| {
            let mut f = vec![0u8; t.len];
            let stamp = Stamp {
                trial: 1,
                flow: i as u16,
                seq: 0,
                tsc: 0,
            };
            t.write(&mut f, u32::from(dst), 1024 + i as u16, &stamp);
            f
        })
        .collect()
}

/// A scenario ready to run: the host, its input port and the frames of one burst.
#[derive(Debug)]
pub struct Bench {
    host: Host,
    input: PortId,
    frames: Vec<Vec<u8>>,
    bufs: Vec<Vec<u8>>,
    verdicts: Vec<Verdict>,
    expect: Verdict,
}

impl Bench {
    /// Builds the scenario and checks that its frames take the intended path.
    pub fn new(s: Scenario) -> Bench {
        let (host, input, frames, expect) = match s {
            Scenario::RouteLocal => (
                Host::new("host-a"),
                PORT_BLUE,
                frames_to(&sender(), ip("10.0.2.7")),
                Verdict::Forward(PORT_RED),
            ),
            Scenario::RoutePrefix => (
                Host::new("host-a"),
                PORT_BLUE,
                frames_to(&sender(), ip("198.19.3.4")),
                Verdict::Forward(PORT_RED),
            ),
            Scenario::RouteRemote => (
                Host::new("host-a"),
                PORT_BLUE,
                frames_to(&sender(), ip("10.0.2.8")),
                Verdict::Forward(PORT_FABRIC),
            ),
            Scenario::Decap => {
                // What host A sends to host B.
                let outer = Bench::new(Scenario::RouteRemote).run_checked();
                (
                    Host::new("host-b"),
                    PORT_FABRIC,
                    outer,
                    Verdict::Forward(PORT_RED),
                )
            }
            Scenario::FipDnat => (
                Host::with_floating_ip(),
                PORT_EXT,
                frames_to(&outside(), ip(FIP)),
                Verdict::Forward(PORT_BLUE),
            ),
            Scenario::FipSnat => (
                Host::with_floating_ip(),
                PORT_BLUE,
                frames_to(&sender(), ip("198.51.100.7")),
                Verdict::Forward(PORT_EXT),
            ),
        };
        let mut bench = Bench {
            host,
            input,
            frames,
            bufs: Vec::new(),
            verdicts: Vec::new(),
            expect,
        };
        bench.run_checked();
        bench
    }

    /// Runs the burst once (not counted) and checks every verdict; returns the frames as they
    /// left.
    fn run_checked(&mut self) -> Vec<Vec<u8>> {
        let (input, expect) = (self.input, self.expect);
        self.with_burst(|host, pkts, verdicts| {
            host.engine
                .process_burst(&mut host.worker, input, 0, pkts, verdicts);
            assert!(
                verdicts.iter().all(|v| *v == expect),
                "scenario verdicts {verdicts:?}, expected {expect:?}"
            );
            pkts.iter().map(|p| p.frame().to_vec()).collect()
        })
    }

    /// Restores the frames into their buffers and hands them to `f` as one burst, with the
    /// verdicts to fill.
    fn with_burst<R>(
        &mut self,
        f: impl FnOnce(&mut Host, &mut [PacketBuf<'_>], &mut [Verdict]) -> R,
    ) -> R {
        if self.bufs.len() != self.frames.len() {
            self.bufs = vec![vec![0u8; BUF_LEN]; self.frames.len()];
            self.verdicts = vec![Verdict::Forward(PortId::new(0)); self.frames.len()];
        }
        let mut pkts: Vec<PacketBuf<'_>> = self
            .bufs
            .iter_mut()
            .zip(&self.frames)
            .map(|(b, frame)| {
                b[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
                PacketBuf::new(b, HEADROOM, frame.len()).expect("fits")
            })
            .collect();
        f(&mut self.host, &mut pkts, &mut self.verdicts)
    }

    /// Runs the burst `iterations` times through `burst` (restoring the frames in between,
    /// outside it); the frames processed.
    pub fn run(&mut self, iterations: usize, burst: BurstFn) -> usize {
        let input = self.input;
        for _ in 0..iterations {
            self.with_burst(|host, pkts, verdicts| {
                burst(&host.engine, &mut host.worker, input, pkts, verdicts);
                host.reader.quiescent();
            });
        }
        iterations * self.frames.len()
    }
}

/// A function that processes one burst.
pub type BurstFn = fn(&Engine, &mut WorkerState, PortId, &mut [PacketBuf<'_>], &mut [Verdict]);

/// The counted burst: callgrind collects only inside this function
/// (`--toggle-collect=*icount_measured_burst*`).
#[inline(never)]
pub fn icount_measured_burst(
    engine: &Engine,
    worker: &mut WorkerState,
    input: PortId,
    pkts: &mut [PacketBuf<'_>],
    verdicts: &mut [Verdict],
) {
    engine.process_burst(worker, input, 0, pkts, verdicts);
}

/// The same, not counted: warms up whatever is initialised on first use. Its body differs
/// from the counted one's (the `now` argument) so that the two are never folded into one.
#[inline(never)]
pub fn icount_warmup_burst(
    engine: &Engine,
    worker: &mut WorkerState,
    input: PortId,
    pkts: &mut [PacketBuf<'_>],
    verdicts: &mut [Verdict],
) {
    engine.process_burst(worker, input, std::hint::black_box(1), pkts, verdicts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_takes_its_path() {
        for s in Scenario::ALL {
            let mut b = Bench::new(s);
            assert_eq!(b.run(3, icount_measured_burst), 3 * BURST, "{}", s.name());
            assert!(b.verdicts.iter().all(|v| *v == b.expect), "{}", s.name());
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
    }
}

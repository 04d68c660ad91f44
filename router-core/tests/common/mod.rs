//! A two-host DVR topology built through the public API, and frame builders.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use router_core::control::{ControlConfig, ControlPlane, PortSetup, PuntAction, Solicit};
use router_core::engine::{Engine, Verdict, WorkerState};
use router_core::ids::PortId;
use router_core::model::{
    Change, InstancePortSpec, InterfaceSpec, NetworkSpec, RouteSpec, RouterSpec,
};
use router_core::qsbr::Qsbr;
use router_core::reason::PuntReason;
use router_core::wire::PacketBuf;
use router_core::wire::{self, EthernetAddress};

pub const HEADROOM: usize = 128;
pub const BUF_LEN: usize = 2048 + HEADROOM;

pub const BLUE: PortId = PortId::new(0);
pub const RED: PortId = PortId::new(1);
pub const FABRIC: PortId = PortId::new(2);
pub const BLUE2: PortId = PortId::new(3);
/// The external (provider) network's port, where floating IPs live.
pub const EXT: PortId = PortId::new(4);

pub fn mac(s: &str) -> EthernetAddress {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub const GW_BLUE: &str = "fa:16:3e:00:01:01";
pub const GW_RED: &str = "fa:16:3e:00:02:01";
pub const GW_BLUE2: &str = "fa:16:3e:00:11:01";
// The benchmarks include this module too and use only part of it.
#[allow(unused_imports)]
pub use router_core::testing::{DVR_A, DVR_B, VTEP_A, VTEP_B};
pub const VM_BLUE_A: &str = "fa:16:3e:aa:01:05";
pub const VM_RED_A: &str = "fa:16:3e:aa:02:07";
pub const VM_RED_B: &str = "fa:16:3e:bb:02:08";
pub const VM_SNAT: &str = "fa:16:3e:cc:01:fe";
pub const VM_T2_A: &str = "fa:16:3e:aa:11:05";
pub const FABRIC_A: &str = "02:00:00:00:f0:0a";
pub const EXT_A: &str = "02:00:00:00:e0:0a";
pub const EXT_B: &str = "02:00:00:00:e0:0b";
pub const FABRIC_B: &str = "02:00:00:00:f0:0b";
pub const VNI_BLUE: u32 = 1001;
pub const VNI_RED: u32 = 1002;
pub const VNI_BLUE2: u32 = 2001;

/// One host: its control plane and a worker's view of the engine.
pub struct Host {
    pub name: &'static str,
    pub cp: ControlPlane,
    pub engine: Engine,
    pub worker: WorkerState,
    pub reader: router_core::qsbr::QsbrReader,
    pub fabric_mac: EthernetAddress,
}

fn ports(fabric_mac: &str, external_mac: &str) -> Vec<PortSetup> {
    let local = |name: &str, m: &str| PortSetup {
        name: name.into(),
        mac: mac(m),
        mtu: 1500,
        fabric: false,
        external: false,
    };
    vec![
        local("blue", "02:00:00:00:00:01"),
        local("red", "02:00:00:00:00:02"),
        PortSetup {
            name: "fabric".into(),
            mac: mac(fabric_mac),
            mtu: 1500,
            fabric: true,
            external: false,
        },
        local("blue2", "02:00:00:00:00:03"),
        PortSetup {
            name: "ext".into(),
            mac: mac(external_mac),
            mtu: 1500,
            fabric: false,
            external: true,
        },
    ]
}

/// Adds the instance port `address` (MAC `vm_mac`) on `network`, living on `host`.
pub fn add_port(network: &str, address: &str, vm_mac: &str, host: &str) -> Change {
    Change::AddPort {
        spec: InstancePortSpec {
            network: network.into(),
            ip: ip(address),
            mac: mac(vm_mac).into(),
            host: host.into(),
            port: None,
        },
        replace: false,
    }
}

/// The changes that build the BLUE/RED router (and a second tenant with an overlapping
/// subnet) as seen from host `me` of {host-a, host-b}.
pub fn topology(me: &str) -> Vec<Change> {
    let mut changes = router_core::testing::host_and_peer(me).to_vec();
    // Each network is named after the one port it attaches to.
    for (name, vni) in [("blue", VNI_BLUE), ("red", VNI_RED), ("blue2", VNI_BLUE2)] {
        let spec = NetworkSpec {
            name: name.into(),
            vni,
            ports: vec![name.into()],
        };
        changes.push(Change::AddNetwork {
            spec,
            replace: false,
        });
    }
    for name in ["r1", "r2"] {
        let spec = RouterSpec {
            name: name.into(),
            large: false,
        };
        changes.push(Change::AddRouter {
            spec,
            replace: false,
        });
    }
    let interfaces = [
        ("r1", "blue", "10.0.1.1/24", GW_BLUE),
        ("r1", "red", "10.0.2.1/24", GW_RED),
        ("r2", "blue2", "10.0.1.1/24", GW_BLUE2),
    ];
    for (router, network, address, gw_mac) in interfaces {
        let spec = InterfaceSpec {
            router: router.into(),
            network: network.into(),
            address: address.parse().unwrap(),
            mac: mac(gw_mac).into(),
        };
        changes.push(Change::AddInterface {
            spec,
            replace: false,
        });
    }
    let ports = [
        ("blue", "10.0.1.5", VM_BLUE_A, "host-a"),
        ("red", "10.0.2.7", VM_RED_A, "host-a"),
        ("red", "10.0.2.8", VM_RED_B, "host-b"),
        // The SNAT node's port on BLUE lives on host-b in this topology.
        ("blue", "10.0.1.254", VM_SNAT, "host-b"),
        ("blue2", "10.0.1.5", VM_T2_A, "host-a"),
    ];
    for (network, address, vm_mac, host) in ports {
        changes.push(add_port(network, address, vm_mac, host));
    }
    changes.push(Change::AddRoute {
        spec: RouteSpec {
            router: "r1".into(),
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: ip("10.0.1.254"),
        },
        replace: false,
    });
    changes
}

impl Host {
    pub fn new(name: &'static str) -> Host {
        Host::tuned(name, |_| {})
    }

    /// [`Host::new`] with `tweak` applied to its control plane's configuration first.
    pub fn tuned(name: &'static str, tweak: impl FnOnce(&mut ControlConfig)) -> Host {
        let fabric_mac = if name == "host-a" { FABRIC_A } else { FABRIC_B };
        let qsbr = Arc::new(Qsbr::new(4));
        let reader = qsbr.register().unwrap();
        let external_mac = if name == "host-a" { EXT_A } else { EXT_B };
        let mut cfg = ControlConfig::new(ports(fabric_mac, external_mac));
        // Small tables: fast to build for thousands of property-test cases.
        cfg.next_hops = 4096;
        cfg.l2_entries = 4096;
        cfg.tbl8_groups_compact = 64;
        tweak(&mut cfg);
        let mut cp = ControlPlane::new(cfg, qsbr).unwrap();
        cp.apply_batch(&topology(name)).unwrap();
        let engine = Engine::new(Arc::clone(cp.dataplane()));
        let worker = engine.worker_state();
        Host {
            name,
            cp,
            engine,
            worker,
            reader,
            fabric_mac: mac(fabric_mac),
        }
    }

    /// Runs one frame through the engine; returns the verdict and the frame as it left.
    pub fn process(&mut self, input: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; BUF_LEN];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut pkts = [PacketBuf::new(&mut buf, HEADROOM, frame.len()).unwrap()];
        let mut verdicts = [Verdict::Drop(router_core::reason::DropReason::Stale)];
        self.engine
            .process_burst(&mut self.worker, input, 0, &mut pkts, &mut verdicts);
        self.reader.quiescent();
        (verdicts[0], pkts[0].frame().to_vec())
    }

    /// Runs copies of `frame` through the engine from `input`, one per buffer of `bufs`, as one
    /// burst; `verdicts` gets their verdicts.
    pub fn process_copies(
        &mut self,
        input: PortId,
        frame: &[u8],
        bufs: &mut [Vec<u8>],
        verdicts: &mut [Verdict],
    ) {
        for buf in bufs.iter_mut() {
            buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        }
        let mut pkts: Vec<PacketBuf<'_>> = bufs
            .iter_mut()
            .map(|b| PacketBuf::new(b, HEADROOM, frame.len()).unwrap())
            .collect();
        self.engine
            .process_burst(&mut self.worker, input, 1, &mut pkts, verdicts);
    }

    /// Hands a punted frame to the control plane; returns the action, the frame after it and
    /// the ARP requests it sent.
    pub fn punt(
        &mut self,
        input: PortId,
        reason: PuntReason,
        frame: &[u8],
        now: u64,
    ) -> (PuntAction, Vec<u8>, Vec<Solicit>) {
        let mut buf = vec![0u8; BUF_LEN];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut pkt = PacketBuf::new(&mut buf, HEADROOM, frame.len()).unwrap();
        let mut solicits = Vec::new();
        let action = self
            .cp
            .handle_punt(&mut pkt, input, reason, now, &mut solicits);
        (action, pkt.frame().to_vec(), solicits)
    }

    /// Makes the underlay toward the peer resolved, as an ARP reply from its VTEP would.
    pub fn resolve_underlay(&mut self) {
        let (peer_vtep, peer_mac) = if self.name == "host-a" {
            (VTEP_B, FABRIC_B)
        } else {
            (VTEP_A, FABRIC_A)
        };
        let my_vtep = if self.name == "host-a" {
            VTEP_A
        } else {
            VTEP_B
        };
        let reply = arp_frame(
            2,
            mac(peer_mac),
            ip(peer_vtep),
            self.fabric_mac,
            ip(my_vtep),
            self.fabric_mac,
        );
        let (action, _, _) = self.punt(FABRIC, PuntReason::Arp, &reply, 1);
        assert_eq!(
            action,
            PuntAction::Learned,
            "the reply is taken in, not dropped"
        );
    }
}

/// An Ethernet + IPv4 test frame: its addresses, TTL, protocol, don't-fragment flag and a
/// payload of `payload_len` counting bytes. Start from [`Datagram::udp`] and change what the
/// test is about.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub src_mac: &'a str,
    pub dst_mac: &'a str,
    pub src: &'a str,
    pub dst: &'a str,
    pub ttl: u8,
    pub proto: u8,
    pub payload_len: usize,
    pub dont_frag: bool,
}

impl<'a> Datagram<'a> {
    /// A 64-byte UDP frame (14 Ethernet + 20 IPv4 + 26 payload, +4 FCS on the wire), TTL 64.
    pub fn udp(src_mac: &'a str, dst_mac: &'a str, src: &'a str, dst: &'a str) -> Self {
        Datagram {
            src_mac,
            dst_mac,
            src,
            dst,
            ttl: 64,
            proto: 17,
            payload_len: 26,
            dont_frag: false,
        }
    }

    /// The frame.
    pub fn frame(&self) -> Vec<u8> {
        let ip = wire::Ipv4Repr {
            src: ip(self.src),
            dst: ip(self.dst),
            protocol: wire::IpProtocol::from(self.proto),
            payload_len: self.payload_len,
            ttl: self.ttl,
            dscp: 0,
            ecn: 0,
            ident: 0x1234,
            dont_frag: self.dont_frag,
        };
        let mut f = vec![0u8; 14 + ip.buffer_len()];
        let eth = wire::EthernetRepr {
            src: mac(self.src_mac),
            dst: mac(self.dst_mac),
            ethertype: wire::EtherType::IPV4,
            vlan: None,
        };
        eth.emit(&mut wire::EthernetFrame::new_unchecked(&mut f[..]));
        let mut packet = wire::Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.emit(&mut packet);
        for (i, b) in packet.payload_mut().iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }
}

/// An ICMP echo request frame.
pub fn ping_frame(src_mac: &str, dst_mac: &str, src: &str, dst: &str, ttl: u8) -> Vec<u8> {
    let mut f = Datagram {
        ttl,
        proto: 1,
        payload_len: 16,
        ..Datagram::udp(src_mac, dst_mac, src, dst)
    }
    .frame();
    let icmp = &mut f[34..];
    icmp[0] = 8;
    icmp[1] = 0;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&[0, 1, 0, 1]);
    let sum = wire::checksum::compute(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// An ARP frame (op 1 request, 2 reply).
pub fn arp_frame(
    op: u16,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tha: EthernetAddress,
    tpa: Ipv4Addr,
    eth_dst: EthernetAddress,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&eth_dst.0);
    f[6..12].copy_from_slice(&sha.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    let a = &mut f[14..42];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&op.to_be_bytes());
    a[8..14].copy_from_slice(&sha.0);
    a[14..18].copy_from_slice(&spa.octets());
    a[18..24].copy_from_slice(&tha.0);
    a[24..28].copy_from_slice(&tpa.octets());
    f
}

/// The two hosts with the underlay of host-a resolved, and one 64-byte UDP frame of each DVR
/// path the benchmarks measure: routed to a local instance (into host-a from BLUE), routed to
/// a peer host (the same, to 10.0.2.8), and that frame as host-b receives it from the fabric.
pub struct DvrPaths {
    pub a: Host,
    pub b: Host,
    pub local: Vec<u8>,
    pub remote: Vec<u8>,
    pub encapsulated: Vec<u8>,
}

impl DvrPaths {
    pub fn new() -> Self {
        let mut a = Host::new("host-a");
        a.resolve_underlay();
        let local = Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7").frame();
        let remote = Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8").frame();
        let (_, encapsulated) = a.process(BLUE, &remote);
        DvrPaths {
            a,
            b: Host::new("host-b"),
            local,
            remote,
            encapsulated,
        }
    }
}

pub fn ttl(frame: &[u8]) -> u8 {
    frame[14 + 8]
}

pub fn ipv4_ok(frame: &[u8]) -> bool {
    wire::Ipv4Packet::new_checked(&frame[14..]).is_ok_and(|p| p.verify_checksum())
}

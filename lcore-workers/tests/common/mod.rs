//! Helpers shared by the end-to-end tests: EAL arguments, ring ports, a bridged topology,
//! frames, and sending/receiving from the test thread.
// Each test binary uses a subset of the helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_bindings::{Mbuf, MbufBurst, Mempool, Port, PortConfig, RxQueue, TxQueue};
use router_core::dataplane::{
    l2_key, Dataplane, L2Location, NetworkInfo, PortInfo, PortRole, Topology,
};
use router_core::engine::Engine;
use router_core::ids::{NetworkId, PortId};
use router_core::qsbr::Qsbr;
use router_core::table::{AtomicMap, AtomicMapWriter, NextHops};
use router_core::wire::EthernetAddress;

/// The tenant network every local port of the test topologies attaches to.
pub const NETWORK: NetworkId = NetworkId::new(0);
/// Descriptors per ring-port queue (the ring PMD's rings hold 1023 packets whatever this is).
const RING_DESC: u16 = 1024;
/// Packets a ring PMD queue holds: 1024 slots, one always empty.
pub const RING_CAPACITY: usize = 1023;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// EAL arguments for a test binary: no hugepages, no PCI, no shared files, one lcore.
pub fn eal_args(prefix: &str, vdevs: &[&str]) -> Vec<String> {
    dpdk_bindings::Eal::isolated_args(prefix, 256, vdevs)
}

/// A started ring port with `queues` RX and TX queues. What TX queue `q` sends, RX queue `q`
/// of the same port receives.
pub fn ring_port(name: &str, pool: &Mempool, queues: u16) -> Port {
    let mut port = Port::by_name(name).expect("ring vdev");
    let config = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: RING_DESC,
        tx_desc: RING_DESC,
        ..PortConfig::default()
    };
    port.configure(&config, pool).expect("configure ring port");
    port.start().expect("start ring port");
    port
}

/// A core for a worker, away from the test thread (which EAL pinned to core 0): the last online
/// core, or 0 on a one-core machine.
pub fn worker_core() -> usize {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    online
        .trim()
        .rsplit([',', '-'])
        .next()
        .and_then(|last| last.parse().ok())
        .unwrap_or(0)
}

/// A data plane with one tenant network and no router: every port whose role is
/// `Local { network: NETWORK }` bridges by destination MAC, using `l2` (MAC, port) entries.
pub struct Bridge {
    pub engine: Engine,
    pub qsbr: Arc<Qsbr>,
    pub l2: AtomicMapWriter,
}

pub fn bridge(roles: &[PortRole], l2: &[([u8; 6], PortId)]) -> Bridge {
    let ports = roles
        .iter()
        .enumerate()
        .map(|(i, &role)| PortInfo {
            role,
            mac: EthernetAddress::new(0x02, 0, 0, 0, 0xee, u8::try_from(i).unwrap()),
            mtu: 1500,
        })
        .collect();
    let local_ports = roles
        .iter()
        .enumerate()
        .filter(|(_, role)| matches!(role, PortRole::Local { .. }))
        .map(|(i, _)| PortId::new(u16::try_from(i).unwrap()))
        .collect();
    let topology = Topology {
        ports,
        networks: vec![Some(NetworkInfo {
            vni: 100,
            iface: None,
            local_ports,
            flood_peers: Vec::new(),
        })],
        ..Topology::default()
    };
    let qsbr = Arc::new(Qsbr::new(8));
    let map = Arc::new(AtomicMap::new(64));
    let mut writer = AtomicMapWriter::new(Arc::clone(&map), Arc::clone(&qsbr));
    for &(mac, port) in l2 {
        let key = l2_key(NETWORK, EthernetAddress(mac).to_u64());
        writer
            .insert(key, L2Location::Local(port).encode())
            .expect("L2 entry");
    }
    let dataplane = Dataplane::new(topology, Arc::new(NextHops::new(16)), map);
    Bridge {
        engine: Engine::new(Arc::new(dataplane)),
        qsbr,
        l2: writer,
    }
}

/// A frame `len` bytes long (at least 18) with a sequence number after the Ethernet header and
/// a payload that depends on it.
pub fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 18);
    let mut bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8))
        .collect();
    bytes[..6].copy_from_slice(&dst);
    bytes[6..12].copy_from_slice(&src);
    bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
    bytes[14..18].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// The sequence number of a frame built by [`frame`].
pub fn seq_of(data: &[u8]) -> u32 {
    u32::from_be_bytes([data[14], data[15], data[16], data[17]])
}

/// Sends every frame on `txq`, in order, retrying while the ring is full (the worker drains
/// it). Panics after `timeout`.
pub fn send_frames(txq: &mut TxQueue, pool: &Mempool, frames: &[Vec<u8>], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut burst: MbufBurst = MbufBurst::new();
    let mut next = 0;
    while next < frames.len() || !burst.is_empty() {
        while !burst.is_full() && next < frames.len() {
            let mbuf = Mbuf::from_bytes(pool, &frames[next]).expect("mbuf for a test frame");
            burst.push(mbuf).expect("room in the burst");
            next += 1;
        }
        if txq.tx_burst(&mut burst) == 0 {
            assert!(
                Instant::now() < deadline,
                "sent {} of {} frames before the timeout",
                next - burst.len(),
                frames.len()
            );
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Receives up to `count` frames from `rxq` (fewer if `timeout` passes first) and frees them.
pub fn receive_frames(rxq: &mut RxQueue, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::with_capacity(count);
    let mut burst: MbufBurst = MbufBurst::new();
    while frames.len() < count && Instant::now() < deadline {
        if rxq.rx_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        frames.extend(burst.drain().map(|m| m.data().to_vec()));
    }
    frames
}

/// Polls `condition` every millisecond until it holds; false after `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The thread of this process called `name`: its `/proc` status text.
pub fn thread_status(name: &str) -> Option<String> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return std::fs::read_to_string(task.path().join("status")).ok();
        }
    }
    None
}
